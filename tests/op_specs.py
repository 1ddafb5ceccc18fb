"""The op-spec table: one entry per NumPy-level operation users write, driving tests/test_ops.py.

Each ``OpSpec`` is a small function written as ordinary NumPy user code, plus fixed example
arguments. The tests run it as plain NumPy (the oracle), through ``tj.trace`` in every mode,
and check each primitive's ``abstract_eval`` against what its ``impl`` really produced. The
primitives a spec exercises are found by tracing it, so the registry test can insist that
every registered primitive appears in at least one spec.

Keep shapes tiny and reuse argument shapes: compiled mode builds one program per spec.
Arguments are made once, from a fixed seed; the tests pass copies, so a spec may not rely on
mutating them (in-place behaviour is tested in test_trace.py).

``grad=True`` marks specs whose float64 array arguments are smooth points of the function, so
finite-difference gradient checks may use them. ``tags``: "specials" specs feed NaN, infinities
and signed zeros, and run with NumPy's floating-point warnings silenced; "ufunc_methods" specs
use ``np.add.reduce`` and the like, which the ``tj.numpy`` namespace does not spell;
"slow_compile" specs' compiled programs or gradients take about ten seconds or more to compile
(the whole default suite has about eight minutes on two cores), and both run among the long
checks; their primitives are compiled in the default suite by smaller specs and by their own
test files (test_linalg, test_lstsq, test_sorting, test_scans, test_fft); "slow_gradient" specs'
compiled gradients alone (several seconds of compiling each) run among the long checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

_rng = np.random.default_rng(20240601)


def f64(*shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, shape).astype(np.float64)


def f32(*shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, shape).astype(np.float32)


def pos64(*shape):
    return f64(*shape, lo=0.5, hi=2.0)


def pos32(*shape):
    return f32(*shape, lo=0.5, hi=2.0)


def ints(*shape, dtype=np.int32, lo=-5, hi=6):
    return _rng.integers(lo, hi, shape).astype(dtype)


def nonzero_ints(*shape, dtype=np.int32):
    x = ints(*shape, dtype=dtype, lo=1, hi=6)
    return x * np.where(_rng.random(shape) < 0.5, -1, 1).astype(dtype)


def bools(*shape):
    return _rng.random(shape) < 0.5


def specials(dtype=np.float64):
    """NaN, infinities, zeros of both signs and ordinary values: for isnan, max, comparisons."""
    return np.array([[np.nan, 1.5, -np.inf], [0.0, -0.0, np.inf], [-2.5, np.nan, 3.0]], dtype=dtype)


@dataclass
class OpSpec:
    name: str
    fn: Callable
    args: tuple
    static_argnums: tuple = ()
    grad: bool = False
    tags: tuple = field(default_factory=tuple)

    def __repr__(self):
        return f"OpSpec({self.name})"


SPECS: list[OpSpec] = []


def spec(name, fn, *args, static_argnums=(), grad=False, tags=()):
    SPECS.append(OpSpec(name, fn, tuple(args), tuple(static_argnums), grad, tuple(tags)))


# Shared arguments (same shapes keep the number of distinct programs down).
A = f64(2, 3)
B = f64(2, 3)
ROW = f64(3)
COL = f64(2, 1)
P64 = pos64(2, 3)
A32 = f32(2, 3)
B32 = f32(2, 3)
P32 = pos32(2, 3)
I32 = ints(2, 3)
NZ32 = nonzero_ints(2, 3)
I8 = ints(2, 3, dtype=np.int8)
I64 = ints(2, 3, dtype=np.int64)
U8 = ints(2, 3, dtype=np.uint8, lo=0, hi=200)
BM = bools(2, 3)
BM2 = bools(2, 3)
SPECIAL = specials()
T3 = f64(2, 3, 4)
EMPTY = np.zeros((0, 3))
SCALAR0D = np.array(1.25)

# ----------------------------------------------------------------------------- arithmetic

spec("add", lambda x, y: x + y, A, B, grad=True)
spec("add_broadcast", lambda x, r, c: x + r + c, A, ROW, COL, grad=True, tags=("broadcast",))
spec("add_mixed_f32_i8", lambda x, i: x + i, A32, I8)
spec("add_bool_int", lambda b, i: b + i, BM, I32)
spec("subtract", lambda x, y: x - y - np.subtract(y, 0.25), A, B, grad=True)
spec("multiply", lambda x, y, r: x * y * r, A, B, ROW, grad=True)
spec("divide", lambda x, y: x / y + np.divide(1.0, y), A, P64, grad=True)
spec("divide_int_true", lambda i: i / 2, I32, tags=("nep50",))
spec("divide_int_int", lambda i, j: i / j, I32, NZ32)
spec("floor_divide", lambda x, y: (x // y, np.floor_divide(x, 0.75)), A, P64)
spec("floor_divide_int", lambda i, j: (i // j, i // 3, -7 // j), I32, NZ32)
spec("mod", lambda x, y: (x % y, np.mod(x, -0.75), np.remainder(-x, y)), A, P64)
spec("mod_grad", lambda x, y: x % y + np.mod(x, 0.75), A, P64, grad=True)
spec("mod_int", lambda i, j: (i % j, i % 4, np.mod(-i, 3)), I32, NZ32)
spec("power", lambda p, y: p ** y, P64, B, grad=True)
spec("power_scalars", lambda p, x: (p ** 2, x ** 3, p ** 0.5, 2.0 ** x, np.power(p, -1.5)), P64, A)
spec("power_f32", lambda p: (p ** 2, p ** 0.5, p ** np.float32(1.5)), P32, tags=("nep50",))
spec("power_edge_cases", lambda s: (s ** 0.5, np.power(s, 0.5), np.sqrt(s), s ** 2, s ** -1.0, s ** 0, 0.0 ** s),
     SPECIAL, tags=("specials",))
spec("power_int", lambda i: (i ** 2, np.power(i, 3)), I32)
spec("maximum", lambda x, y: np.maximum(x, y), A, B)
spec("minimum", lambda x, y: np.minimum(x, y), A, B)
spec("relu", lambda x: np.maximum(x, 0), A32, tags=("nep50",))
spec("maximum_int_float", lambda i, x: (np.maximum(i, x), np.minimum(i, 2)), I32, A)
spec("maximum_nan", lambda s, x: (np.maximum(s, x[0, 0]), np.minimum(s, 0.0)), SPECIAL, A, tags=("specials",))
spec("negative", lambda x: (-x, np.negative(x)), A, grad=True)
spec("negative_int", lambda i: (-i, np.negative(i)), I8)
spec("positive", lambda x: (+x, np.positive(x)), A)
spec("absolute", lambda x, i: (abs(x), np.abs(x), np.absolute(i)), A, I32)
spec("absolute_grad", lambda x: abs(x) * np.abs(x - 0.1), A, grad=True)
spec("sign", lambda x, i: (np.sign(x), np.sign(i)), A, I32)
spec("unary_specials", lambda s: (np.sign(s), np.abs(s), np.floor(s), np.ceil(s), np.trunc(s), np.exp(s), np.log(s),
                                  np.tanh(s), s / 0.0, 1.0 / s, s // 0.0, s % 0.0, s.astype(bool)), SPECIAL,
     tags=("specials",))
spec("int_division_by_zero", lambda i: (i // (i * 0), i % (i * 0)), I32, tags=("specials",))
spec("floor", lambda x: np.floor(x * 3), A)
spec("ceil", lambda x: (np.ceil(x * 3), np.ceil(x.astype(np.float32))), A)
spec("trunc", lambda x: np.trunc(x * 3), A)
spec("square", lambda x, i: (np.square(x), np.square(i)), A, I32)
spec("reciprocal", lambda p, q: (np.reciprocal(p), np.reciprocal(q)), P64, P32)

# ----------------------------------------------------------------------------- transcendental

spec("exp", lambda x: np.exp(x), A, grad=True)
spec("exp_f32", lambda x: np.exp(x), A32)
spec("exp_int", lambda i: np.exp(i), I32)
spec("log", lambda p: np.log(p), P64, grad=True)
spec("log_f32", lambda p: np.log(p), P32)
spec("log1p", lambda p: np.log1p(p), P64, grad=True)
spec("expm1", lambda x: np.expm1(x), A, grad=True)
spec("sqrt", lambda p, q: (np.sqrt(p), np.sqrt(q)), P64, P32, grad=True)
spec("tanh", lambda x: np.tanh(x), A, grad=True)
spec("sin", lambda x: np.sin(x), A, grad=True)
spec("cos", lambda x: np.cos(x), A, grad=True)
spec("tan_sinh_cosh", lambda x: (np.tan(x / 2), np.sinh(x), np.cosh(x)), A, grad=True)
spec("exp2_log2_log10", lambda p: (np.exp2(p), np.log2(p), np.log10(p)), P64, grad=True)

# Ufuncs and functions composed of other primitives (tracejit/numpy/ufuncs.py)
spec("fabs_degrees_radians", lambda x: (np.fabs(x), np.deg2rad(x), np.radians(x), np.rad2deg(x), np.degrees(x)), A,
     grad=True)
spec("fabs_degrees_radians_f32_int", lambda x, i: (np.fabs(x), np.deg2rad(x), np.rad2deg(x), np.fabs(i),
                                                   np.degrees(i)), A32, I32)
spec("hypot", lambda x, y, r: (np.hypot(x, y), np.hypot(x, r), np.hypot(3.0, x)), A, B, ROW, grad=True)
spec("hypot_f32", lambda x, y: np.hypot(x, y * 1e30), A32, B32)
spec("logaddexp", lambda x, y, r: (np.logaddexp(x, y), np.logaddexp2(x, r), np.logaddexp(x, x)), A, B, ROW, grad=True)
spec("logaddexp_f32", lambda x, y: (np.logaddexp(x, y), np.logaddexp2(x, y)), A32, B32)
spec("fmax_fmin", lambda x, y: (np.fmax(x, y), np.fmin(x, y), np.fmax(x, 0.5), np.fmin(0.5, y)), A, B, grad=True)
spec("heaviside", lambda x, y: (np.heaviside(x, 0.5), np.heaviside(x * 0, y)), A, B)
spec("sinc", lambda x, i: (np.sinc(x), np.sinc(x * 0), np.sinc(i)), A, I32)
spec("sinc_grad", lambda x: np.sinc(x), A, grad=True)
spec("nan_to_num", lambda x: np.nan_to_num(x) * 2 + np.nan_to_num(x, nan=1.0, posinf=9.0, neginf=-9.0), A, grad=True)


def nan_to_num_in_place(s, fill):
    y = s.copy()
    np.nan_to_num(y, copy=False, nan=fill)  # updates y, as NumPy does
    return y, np.nan_to_num(s.astype(np.float32), nan=np.float64(2.0), posinf=fill)


spec("nan_to_num_in_place", nan_to_num_in_place, SPECIAL, SCALAR0D, tags=("specials",))
spec("elementwise_composites_specials",
     lambda s: (np.fabs(s), np.hypot(s, s.T), np.hypot(s, 2.0), np.logaddexp(s, s.T), np.logaddexp2(s, 1.0),
                np.fmax(s, s.T), np.fmin(s, 0.0), np.heaviside(s, 0.5), np.nan_to_num(s), np.sinc(s),
                np.nan_to_num(s.astype(np.float32), posinf=1.0)),
     SPECIAL, tags=("specials",))

# The arguments that tell a real sinh/cosh/log10/log2/exp2 from one composed of exp and log:
# tiny (sinh(t)/t is 1 down to subnormals), huge (cosh just below float32/float64 overflow),
# signed zeros (seen through 1/x) and exact integer cases (powers of 10 and 2, under floor).
TINY64 = np.array([1e-8, -1e-8, 3e-12, 5e-324, -2.2250738585072014e-308, 1e-300])
TINY32 = np.array([1e-8, -1e-8, 1e-6, 1e-45, -1.1754944e-38, 1e-4], dtype=np.float32)
HUGE64 = np.array([709.0, 710.0, -710.0, 700.0, 1.0, -705.0])
HUGE32 = np.array([88.0, 89.0, -89.0, 88.7, 1.0, -88.5], dtype=np.float32)
ZEROS64 = np.array([0.0, -0.0])
POW10_64 = 10.0 ** np.arange(-6, 16)
POW2_64 = 2.0 ** np.arange(-1074, 1024, 97)
EXPONENTS64 = np.arange(-30, 30, 3).astype(np.float64)


def sinh_ratio_and_cosh(t):
    return np.sinh(t) / t, np.cosh(t)


spec("sinh_cosh_tiny", sinh_ratio_and_cosh, TINY64)
spec("sinh_cosh_tiny_f32", sinh_ratio_and_cosh, TINY32)
spec("sinh_cosh_huge", lambda h: (np.sinh(h), np.cosh(h)), HUGE64)
spec("sinh_cosh_huge_f32", lambda h: (np.sinh(h), np.cosh(h)), HUGE32)
spec("sinh_signed_zeros", lambda z: (1.0 / np.sinh(z), 1.0 / np.sinh(z.astype(np.float32)), np.cosh(z)), ZEROS64,
     tags=("specials",))
spec("log10_powers_of_10", lambda p: (np.floor(np.log10(p)), np.ceil(np.log10(p)),
                                      np.floor(np.log10(p.astype(np.float32)[6:13]))), POW10_64)
spec("log2_powers_of_2", lambda p: (np.floor(np.log2(p)), np.ceil(np.log2(p)),
                                    np.log2(np.float32(0.5) ** np.arange(1, 149, 7).astype(np.float32))), POW2_64)
spec("exp2_integers", lambda k: (np.floor(np.exp2(k)), np.ceil(np.exp2(k)), np.exp2(k.astype(np.float32)),
                                 np.exp2(np.array([-1074.0, 1023.0, -1022.5]))), EXPONENTS64)
spec("log_tiny_huge", lambda t, h: (np.log10(np.abs(t)), np.log2(np.abs(t)), np.exp2(h), np.log10(h * 1e300)),
     TINY64, HUGE64, tags=("specials",))

# ----------------------------------------------------------------------------- comparisons, logic

spec("compare", lambda x, y: (x == y, x != y, x < y, x <= y, x > y, x >= y), A, np.where(BM, A, B))
spec("compare_broadcast_scalar", lambda x, r: (x > r, x <= 0.5, 1 < x, np.equal(x, r)), A, ROW)
spec("compare_int_float", lambda i, x: (i < x, np.greater_equal(i, 1.5), i == 2), I32, A)
spec("compare_nan", lambda s: (s == s, s != s, s < 1.0, s >= np.inf), SPECIAL)
spec("logical", lambda a, b: (np.logical_and(a, b), np.logical_or(a, b), np.logical_not(a),
                              np.logical_xor(a, b)), BM, BM2)
spec("logical_numbers", lambda x, i: (np.logical_and(x > 0, i), np.logical_not(i), np.logical_or(x, 0)), A, I32)
spec("bool_operators", lambda a, b: (a & b, a | b, a ^ b, ~a), BM, BM2)
spec("isnan_isfinite", lambda s: (np.isnan(s), np.isfinite(s), np.isinf(s)), SPECIAL)
spec("isfinite_int", lambda i: (np.isfinite(i), np.isnan(i)), I32)

# ----------------------------------------------------------------------------- where, clip, casts

spec("where", lambda c, x, y: np.where(c, x, y), BM, A, B, grad=True)
spec("where_broadcast", lambda x, r: np.where(x > 0, x, r), A, ROW, grad=True, tags=("broadcast",))
spec("where_weak_scalars", lambda c, x: (np.where(c, x, 0.0), np.where(c, 1.0, 2.0), np.where(c, x, 7)), BM, A32,
     tags=("nep50",))
spec("where_mixed_dtypes", lambda c, i, x: np.where(c, i, x), BM, I32, A32)
spec("clip", lambda x: (np.clip(x, -1.0, 1.0), x.clip(0), np.clip(x, None, 0.5)), A, grad=True)
spec("clip_arrays", lambda x, lo: np.clip(x, lo, lo + 1.0), A, ROW)
spec("clip_f32", lambda x: np.clip(x, -1, 1), A32, tags=("nep50",))
spec("astype", lambda x: (x.astype(np.float32), x.astype(np.int32), x.astype(bool), x.astype(np.int8)), A)
spec("astype_from_int_bool", lambda i, b: (i.astype(np.float64), b.astype(np.float32), i.astype(np.uint8),
                                           b.astype(np.int64)), I32, BM)
spec("astype_same", lambda x: x.astype(np.float64) * 2, A)

# ----------------------------------------------------------------------------- NEP 50 promotion

spec("nep50_f32_times_float", lambda x: (x * 0.5, 0.5 * x, x + 1, x / 3, x - np.float32(1)), A32, tags=("nep50",))
spec("nep50_int8_plus_int", lambda i: (i + 1, i * 2, 3 - i, i // 2), I8, tags=("nep50",))
spec("nep50_uint8", lambda u: (u + 1, u * 0.5, u // 3), U8, tags=("nep50",))
spec("nep50_int32_div", lambda i: (i / 2, i * 1.5, i + True), I32, tags=("nep50",))
spec("nep50_bool_scalars", lambda b: (b + 1, b * 2.5, b & True), BM, tags=("nep50",))
spec("nep50_numpy_scalar_strong", lambda x: (x * np.float64(0.5), x + np.int64(1)), A32, tags=("nep50",))
spec("nep50_traced_float_arg", lambda x, s: (x * s, s * x + s), A32, 0.5, tags=("nep50",))
spec("nep50_traced_int_arg", lambda i, n: (i + n, i * n, n - i), I8, 3, tags=("nep50",))
spec("nep50_numpy_functions_on_traced_scalar", lambda x, s: (x * np.exp(s), x * np.maximum(s, 0), x * (1 - s),
                                                              x * np.where(x > 0, s, 1.0), x * -abs(s) ** 2), A32, 0.5,
     tags=("nep50",))
spec("nep50_traced_scalars_only", lambda s, n: (s * n, n + n, s / 4), 0.75, 3, tags=("nep50",))
spec("nep50_traced_bool_arg", lambda x, flag: x * flag, A32, True, tags=("nep50",))
spec("nep50_f32_f64_array", lambda x, y: x + y, A32, B)
spec("nep50_0d_array_strong", lambda x, s: x * s, A32, SCALAR0D)

# ----------------------------------------------------------------------------- shapes

spec("broadcast_to", lambda r: np.broadcast_to(r, (2, 3)), ROW, grad=True)
spec("broadcast_arrays", lambda r, c: tuple(np.broadcast_arrays(r, c)), ROW, COL)
spec("reshape", lambda x: (x.reshape(3, 2), np.reshape(x, (6,)), x.reshape((1, -1)), x.reshape(-1, 2, 1)), A,
     grad=True)
spec("ravel_flatten", lambda t: (t.ravel(), np.ravel(t), t.flatten()), T3)
spec("transpose", lambda t: (t.T, np.transpose(t), t.transpose(1, 0, 2), np.transpose(t, (2, 0, 1))), T3,
     grad=True)
spec("transpose_2d", lambda x: (x.T, x.mT), A)
spec("swapaxes_moveaxis", lambda t: (np.swapaxes(t, 0, -1), t.swapaxes(1, 2), np.moveaxis(t, 0, -1),
                                     np.moveaxis(t, [0, 1], [-1, 0])), T3)
spec("expand_dims_squeeze", lambda x: (np.expand_dims(x, 0), np.expand_dims(x, -1), np.expand_dims(x, (0, 2)),
                                       np.squeeze(x[None, :, None]), x[:, None].squeeze(1),
                                       np.squeeze(x[None], axis=0)), A)
spec("atleast_nd", lambda x, r: (np.atleast_2d(r), np.atleast_1d(x[0, 0]), np.atleast_2d(x)), A, ROW)
spec("concatenate", lambda x, y: (np.concatenate([x, y]), np.concatenate((x, y), axis=-1),
                                  np.concatenate([x, y], axis=None)), A, B, grad=True)
spec("concatenate_mixed", lambda x, i, r: (np.concatenate([x, i]), np.concatenate([x, r[None]], axis=0)),
     A32, I32, ROW)
spec("concatenate_empty", lambda x, e: np.concatenate([e, x, e]), A, EMPTY)
spec("stack", lambda x, y: (np.stack([x, y]), np.stack((x, y), axis=1), np.stack([x, y], axis=-1)), A, B,
     grad=True)
spec("hstack_vstack", lambda r, x: (np.hstack([r, r]), np.vstack([r, r]), np.vstack([x, r])), ROW, A)
spec("pad", lambda x: (np.pad(x, 1), np.pad(x, ((0, 1), (2, 0))), np.pad(x, ((1, 1), (0, 0)), constant_values=9)),
     A, grad=True)

# ----------------------------------------------------------------------------- indexing

spec("basic_indexing", lambda t: (t[0], t[-1, 1:], t[:, ::2], t[..., 1], t[1, -2, -1], t[:, 1:-1, ::3]), T3,
     grad=True)
spec("negative_steps", lambda t: (t[::-1], t[:, ::-2, 1], t[1, 2::-1], t[::-1, :, -2::-2]), T3, grad=True)
spec("newaxis_ellipsis", lambda t: (t[None], t[:, None, 0], t[..., None], t[np.newaxis, ..., 2:]), T3)
spec("empty_slices", lambda x: (x[2:], x[:, 3:], x[1:1]), A)
spec("integer_array_index", lambda x: (x[[1, 0, 1]], x[:, [2, 0]], x[np.array([-1, 0])], x[[[0], [1]]]), A,
     grad=True)
spec("integer_array_pairs", lambda t: (t[[1, 0], [2, 1]], t[[0, 1], :, [3, 0]], t[:, [0, 2], [1, 1]],
                                       t[1, [0, 2]], t[[1], 2:, [0]]), T3, grad=True)
spec("bool_constant_mask", lambda x: x[:, np.array([True, False, True])], A)
spec("traced_index", lambda x, i: (x[i], x[:, i], x[i, i]), A, np.array([1, 0, 1, 1]) % 2, grad=True)
spec("traced_scalar_index", lambda x, k: (x[k], x[:, k]), A, 1)
spec("traced_negative_index", lambda x, i: x[i], A, np.array([-1, -2, 0]))
spec("take", lambda x: (np.take(x, [0, 2], axis=1), np.take(x, [4, -1]), x.take([1, 0], axis=0),
                        np.take(x, 1, axis=-1)), A, grad=True)
spec("take_traced", lambda x, i: np.take(x, i, axis=-1), A, np.array([[2, 0], [1, 1]]), grad=True)
spec("take_along_axis", lambda x, i: (np.take_along_axis(x, i, axis=1), np.take_along_axis(x, i[:1] % 2, axis=0)),
     A, np.array([[2, 0, 0], [1, 1, 2]]), grad=True)
spec("take_along_axis_argmax", lambda x: np.take_along_axis(x, np.argmax(x, axis=-1)[:, None], axis=-1), A)
spec("setitem", lambda x, v: _setitem(x, v), A, ROW, grad=True)
spec("setitem_view_update", lambda x: _view_update(x), A)
spec("setitem_repeated_constant_indices", lambda x: _setitem_repeated(x), A, grad=True)
spec("setitem_traced_indices", lambda x, y: _setitem_traced(x, y), A, np.array([2, 2]), grad=True)
spec("setitem_traced_mask", lambda x: _setitem_mask(x), A, grad=True)


def _setitem(x, v):
    y = x * 1.0
    y[0] = v
    y[1, ::2] = -1.0
    y[:, 1] += v[:2]
    return y


def _setitem_repeated(x):
    y = x * 2.0
    y[[0, 1, 0], [2, 2, 2]] = x[1]  # position (0, 2) is written twice: the last value stays
    return y


def _setitem_traced(x, y):
    d = x * 1.0
    d[range(2), y] -= 1.0  # the softmax cross-entropy gradient, written by hand
    d[1, y] = x[0, :2] * 10  # repeated traced positions: the last value stays
    return d


def _setitem_mask(x):
    d = x + 0.0
    d[d < 0] = 0.0
    d[x > 1] = x[0, 0]
    return d


def _view_update(x):
    y = x.copy()
    y[0] *= 3
    row = y[1]
    row -= 1
    return y


# ----------------------------------------------------------------------------- reductions

spec("sum", lambda t: (t.sum(), np.sum(t, axis=0), t.sum(axis=-1), t.sum(axis=(0, 2)), t.sum(axis=1, keepdims=True),
                       np.sum(t, axis=(-1, 0), keepdims=True)), T3, grad=True)
spec("sum_dtypes", lambda i, b, u, x: (i.sum(), np.sum(b), b.sum(axis=0), u.sum(), i.sum(dtype=np.float64),
                                       x.sum(dtype=np.float64), np.sum(i, dtype=np.int8)), I8, BM, U8, A32)
spec("sum_empty", lambda e: (e.sum(), e.sum(axis=0), e.sum(axis=1), e.max(axis=1), e.mean(axis=1)), EMPTY)
spec("add_reduce", lambda x: (np.add.reduce(x), np.add.reduce(x, axis=1), np.maximum.reduce(x, axis=-1)), A,
     tags=("ufunc_methods",))
spec("mean", lambda t: (t.mean(), np.mean(t, axis=1), t.mean(axis=(0, -1), keepdims=True)), T3, grad=True)
spec("mean_int_f32", lambda i, x: (i.mean(), np.mean(x, axis=0), np.mean(i, axis=-1, dtype=np.float32)), I32, A32)
spec("var_std", lambda t: (t.var(), np.var(t, axis=0), t.std(axis=-1), np.std(t, ddof=1), t.var(axis=1, keepdims=True)),
     T3, grad=True)
spec("var_std_f32_int", lambda x, i: (np.var(x), x.std(axis=1), i.var(), np.std(i, axis=0)), A32, I32)
spec("max_min", lambda t: (t.max(), np.max(t, axis=0), t.min(axis=-1), np.amin(t, axis=(0, 2), keepdims=True),
                           np.amax(t, axis=1, keepdims=True)), T3, grad=True)
spec("max_min_int_bool", lambda i, b: (i.max(), np.min(i, axis=0), b.max(axis=1), np.min(b)), I32, BM)
spec("max_min_nan", lambda s: (s.max(), np.min(s, axis=0), s.max(axis=1)), SPECIAL)
spec("max_ties", lambda x: np.maximum(x, 0.5).max(axis=1), np.array([[1.0, 1.0, 0.0], [2.0, -1.0, 2.0]]))
spec("argmax_argmin", lambda t: (t.argmax(), np.argmin(t), t.argmax(axis=0), np.argmin(t, axis=-1),
                                 np.argmax(t, axis=1, keepdims=True), np.argmin(t, axis=None, keepdims=True)), T3)
spec("argmax_ties_int_bool", lambda i, b: (np.argmax(i, axis=1), i.argmin(), np.argmax(b, axis=0),
                                           np.argmin(np.zeros_like(i), axis=1)), I32, BM)
spec("argmax_nan", lambda s: (s.argmax(), np.argmin(s, axis=1), s.argmax(axis=0)), SPECIAL)
spec("any_all", lambda b, x: (np.any(b), b.all(), np.any(x > 1, axis=0), np.all(x > -1.5, axis=-1, keepdims=True),
                              x.any(), np.all(b, axis=(0, 1))), BM, A)
spec("reductions_0d", lambda s: (s.sum(), np.max(s), s.mean(), np.argmax(s), s.any(), np.min(s, axis=())), SCALAR0D)

# ----------------------------------------------------------------------------- linear algebra

spec("matmul", lambda x, w: x @ w, A, f64(3, 4), grad=True)
spec("matmul_f32", lambda x, w: (x @ w, np.matmul(x, w)), A32, f32(3, 2))
spec("matmul_vectors", lambda x, r, c: (r @ x.T, x @ r, r @ r, np.matmul(x.T, c[:, 0])), A, ROW, COL, grad=True)
spec("matmul_batched", lambda t, w, v: (t @ w, np.matmul(w, v), t.transpose(0, 2, 1) @ v[0]),
     T3, f64(2, 4, 3), f64(2, 3, 4), grad=True)
spec("matmul_broadcast_batch", lambda t, m: (t @ m, m.T @ t.transpose(0, 2, 1)[0]), T3, f64(4, 2), grad=True)
spec("matmul_int_mixed", lambda i, x: (i @ i.T, i @ x.T, x.astype(np.float32) @ A.T), I32, A)
spec("dot_outer_inner", lambda x, r: (np.dot(x, r), np.dot(r, r), x.dot(x.T), np.outer(r, x[0]), np.inner(r, r),
                                      np.dot(2.0, r), np.vdot(x, x)), A, ROW, grad=True)
spec("matmul_empty", lambda e, w: (e @ w, w.T @ e.T), EMPTY, f64(3, 2))
spec("einsum_products", lambda x, w, t, q: (np.einsum("ij,jk->ik", x, w), np.einsum("ij,jk", x, w),
                                             np.einsum("bij,bjk->bik", t, q), np.einsum("i,j->ij", x[0], w[0]),
                                             np.einsum("...ij,jk->...ik", t, w.T), np.einsum("ij,ij->", x, x),
                                             np.einsum("ij,j", x, w[:, 0]), np.einsum("ij,j->j", x, x[0])),
     A, f64(3, 4), T3, f64(2, 4, 3), grad=True, tags=("slow_gradient",))
spec("einsum_attention", lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k) * np.einsum("bhqd->bh", q)[..., None, None],
     f64(2, 1, 3, 4), f64(2, 1, 2, 4), grad=True)
spec("einsum_diagonals_sums", lambda m, c, t: (np.einsum("ii->i", m), np.einsum("ii", m), np.einsum("iij->ij", c),
                                               np.einsum("iji->j", c.transpose(0, 2, 1)), np.einsum("ij->", t[0]),
                                               np.einsum("ijk->kji", t), np.einsum("ij,ij->ij", t[0, :, :1], t[1])),
     f64(3, 3), f64(3, 3, 2), T3, grad=True)
spec("einsum_chains", lambda x, w, v, t: (np.einsum("ij,jk,kl->il", x, w, v), np.einsum("abc,cd,d->ab", t, v, x[0]),
                                          np.einsum("i,i,i->i", x[0], x[1], w[:, 0]), np.einsum("ij,jk,kl", x, w, v, optimize="optimal")),
     A, f64(3, 4), f64(4, 3), T3, grad=True, tags=("slow_gradient",))
spec("einsum_dtypes", lambda x, w, i: (np.einsum("ij,jk->ik", x, w), np.einsum("ij,kj->ik", i, i), np.einsum("ij,kj", i, x),
                                       np.einsum("ij->j", i)),
     A32, f32(3, 2), I32)
spec("sort", lambda x, t: (np.sort(x), np.sort(x, axis=0), np.sort(t, axis=1), np.sort(x, axis=None), np.sort(t[0, 0])),
     A, T3, grad=True, tags=("slow_compile",))
spec("argsort", lambda x, i, s: (np.argsort(x), np.argsort(x, axis=0), np.argsort(i, kind="stable"), np.argsort(s, axis=None),
                                 np.sort(s), np.sort(i, axis=0)), A, I32, specials(), tags=("specials", "slow_compile"))
spec("order_statistics", lambda x, t: (np.median(x), np.median(t, axis=1), np.median(t, axis=(0, 2), keepdims=True),
                                       np.quantile(x, 0.3, axis=-1), np.quantile(t, [0.1, 0.5, 0.99], axis=0),
                                       np.percentile(x, [25, 75]), np.percentile(t, 40.0, axis=2, keepdims=True)),
     A, T3, grad=True, tags=("slow_compile",))
spec("order_statistics_dtypes", lambda x, i, s: (np.median(x), np.quantile(x, [0.2, 0.7]), np.median(i, axis=0),
                                                  np.percentile(i, 30.0), np.median(s, axis=1), np.quantile(s, 0.5, axis=0)),
     A32, I32, specials(), tags=("specials", "slow_compile"))
Z = (f64(2, 3) + 1j * f64(2, 3)).astype(np.complex128)
spec("complex_parts", lambda z, w, x: (np.real(z), np.imag(z), np.conj(z), np.conjugate(z), z.real, z.imag, z.conj(),
                                       np.real(x), np.imag(x), x.real, np.var(z), np.std(z, axis=0), np.abs(z),
                                       np.var(z.astype(np.complex64), axis=1), z @ w, np.sum(z * w.T), np.mean(z, axis=1),
                                       np.angle(z), np.angle(z, deg=True), np.angle(x), np.einsum("ij,kj->ik", z, z),
                                       np.einsum("ij,ji", z, w), np.tensordot(z, x, ([1], [1]))),
     Z, Z.T.copy(), A)
spec("fft", lambda x, z: (np.fft.fft(x), np.fft.fft(x, n=5, axis=0), np.fft.fft(x, 2), np.fft.ifft(z, norm="ortho"),
                          np.fft.rfft(x), np.fft.rfft(x, n=3, axis=0, norm="forward"), np.fft.irfft(z), np.fft.irfft(z, n=4, axis=0),
                          np.fft.fft2(z), np.fft.ifftn(x, s=(3, 2), axes=(0, 1)), np.fft.rfftn(x), np.fft.irfftn(z), np.fft.irfft2(z, s=(2, 5)),
                          np.fft.fftshift(x), np.fft.ifftshift(z, axes=1)), A, Z, grad=True, tags=("slow_compile",))
spec("fft_f32", lambda x: (np.fft.fft(x), np.fft.rfft(x, axis=0), np.fft.irfft(np.fft.rfft(x)), np.fft.fft2(x)), A32)
spec("sliding_window_view", lambda x, t: (np.lib.stride_tricks.sliding_window_view(x, 2, axis=1),
                                          np.lib.stride_tricks.sliding_window_view(t, (2, 2), axis=(1, 2)),
                                          np.lib.stride_tricks.sliding_window_view(x, (2, 3)).sum(axis=(-1, -2)),
                                          np.einsum("ijkl,kl->ij", np.lib.stride_tricks.sliding_window_view(t[0], (2, 2)),
                                                    x[:, :2])), A, T3, grad=True)
spec("linspace", lambda a, b, r: (np.linspace(a, b, 5), np.linspace(a, b, 4, endpoint=False), np.linspace(a, r, 3, axis=1),
                                  np.linspace(0.0, b, 6, retstep=True), np.linspace(a, 3, 1)),
     np.array(-1.5), np.array(0.7), ROW, grad=True)
spec("linspace_dtypes", lambda a, b, i: (np.linspace(a, b, 5, dtype=np.float32), np.linspace(i, 7, 4), np.linspace(a, i, 3)),
     np.array(-1.5, np.float32), np.array(0.7), np.array(2))
spec("complex_parts_of_reals", lambda x: (np.real(x) * 2, np.imag(x) + x, np.conj(x) * x, x.real ** 2,
                                          np.abs((x + 1j * x[::-1]) * (2 - 1j))), A, grad=True)
WELL = f64(3, 3) + 3 * np.eye(3)  # well conditioned: finite differences of inverses stay accurate
WELL_BATCH = f64(2, 3, 3) + 3 * np.eye(3)
spec("linalg_inv_solve_det", lambda a, b, t: (np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.solve(a, b[:, 0]),
                                              np.linalg.det(a), np.linalg.slogdet(a)[1], np.linalg.inv(t),
                                              np.linalg.solve(t, b), np.linalg.det(t), np.linalg.slogdet(-a)[0]),
     WELL, f64(3, 2), WELL_BATCH, grad=True, tags=("slow_compile",))
spec("linalg_cholesky", lambda w, t: (np.linalg.cholesky(w @ w.T), np.linalg.cholesky(w.T @ w, upper=True),
                                      np.linalg.cholesky(t @ t.transpose(0, 2, 1))), WELL, WELL_BATCH, grad=True, tags=("slow_compile",))
spec("linalg_eigh", lambda a, t: (*np.linalg.eigh(a), np.linalg.eigvalsh(t), np.linalg.eigh(t)[1],
                                  np.linalg.eigvalsh(a, UPLO="U")), WELL, WELL_BATCH, grad=True, tags=("slow_compile",))
spec("linalg_svd", lambda a, w, t: (*np.linalg.svd(a, full_matrices=False), np.linalg.svd(w, compute_uv=False),
                                    np.linalg.svd(w, full_matrices=False)[2], np.linalg.svd(t)[0],
                                    np.linalg.norm(a, 2), np.linalg.norm(w, "nuc"), np.linalg.norm(t, -2, axis=(2, 1))),
     f64(4, 3), f64(3, 4), WELL_BATCH, grad=True, tags=("slow_compile",))
spec("linalg_qr_pinv", lambda a, w, t: (*np.linalg.qr(a), np.linalg.qr(t)[0], np.linalg.qr(a, mode="r"), np.linalg.pinv(a),
                                        np.linalg.pinv(w), np.linalg.pinv(t)), f64(4, 3), f64(3, 4), WELL_BATCH, grad=True, tags=("slow_compile",))
spec("linalg_qr_wide", lambda w: (*np.linalg.qr(w),), f64(3, 4))
spec("linalg_f32", lambda a, b: (np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.det(a), np.linalg.norm(a, axis=1)),
     WELL.astype(np.float32), f32(3, 2))
spec("linalg_norm", lambda x, t: (np.linalg.norm(x), np.linalg.norm(x, axis=0), np.linalg.norm(x, 1), np.linalg.norm(x, -1),
                                  np.linalg.norm(x, np.inf), np.linalg.norm(x, "fro"), np.linalg.norm(t, axis=(1, 2)),
                                  np.linalg.norm(x[0], 3), np.linalg.norm(x[0], np.inf), np.linalg.norm(x[0], -np.inf),
                                  np.linalg.norm(x[0], 1), np.linalg.norm(t, keepdims=True),
                                  np.linalg.norm(t, ord=-np.inf, axis=(2, 0), keepdims=True), np.linalg.norm(x[0], 0)),
     A, T3, grad=True, tags=("slow_gradient",))
spec("linalg_norm_ints", lambda i: (np.linalg.norm(i), np.linalg.norm(i, axis=1), np.linalg.norm(i, 1)), I32)


_complex_rng = np.random.default_rng(20261203)  # its own stream: the specs after these keep their arguments


def c128(*shape):
    return _complex_rng.uniform(-2.0, 2.0, shape) + 1j * _complex_rng.uniform(-2.0, 2.0, shape)


# Complex matrices: values in every mode (NumPy's LAPACK fixes the phases of complex singular
# vectors and eigenvectors, and the compiled program makes the same calls). Their gradients,
# checked through losses that do not depend on those phases, are in test_linalg.py.
Z_WELL = c128(3, 3) + 3 * np.eye(3)
Z_WELL_BATCH = c128(2, 3, 3) + 3 * np.eye(3)
# Hermitian but for its upper triangle and the imaginary parts of its diagonal, which LAPACK does not read
Z_HERMITIAN = Z_WELL @ Z_WELL.conj().T + 0.5j * np.triu(np.ones((3, 3)), 1) + 0.25j * np.eye(3)
spec("linalg_complex_inv_solve_det", lambda a, b, t: (np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.solve(a, b[:, 0]),
                                                      np.linalg.det(a), *np.linalg.slogdet(a), np.linalg.inv(t),
                                                      np.linalg.solve(t, b), np.linalg.det(t), *np.linalg.slogdet(t),
                                                      np.linalg.solve(a, b.real)),
     Z_WELL, c128(3, 2), Z_WELL_BATCH)
spec("linalg_complex_decompositions", lambda h, w, t: (np.linalg.cholesky(h), np.linalg.cholesky(h, upper=True),
                                                       *np.linalg.eigh(h), np.linalg.eigvalsh(h, UPLO="U"), np.linalg.eigvalsh(t),
                                                       *np.linalg.svd(w, full_matrices=False), np.linalg.svd(w.T, compute_uv=False),
                                                       *np.linalg.qr(w), np.linalg.qr(w.T, mode="r"), np.linalg.pinv(w),
                                                       np.linalg.pinv(w.T), np.linalg.cholesky(t @ t.conj().transpose(0, 2, 1))),
     Z_HERMITIAN, c128(4, 3), Z_WELL_BATCH, tags=("slow_compile",))
spec("linalg_complex_norm", lambda x, t: (np.linalg.norm(x), np.linalg.norm(x, axis=0), np.linalg.norm(x, 1), np.linalg.norm(x, -1),
                                          np.linalg.norm(x, np.inf), np.linalg.norm(x, -np.inf), np.linalg.norm(x, "fro"),
                                          np.linalg.norm(x, "nuc"), np.linalg.norm(x, 2), np.linalg.norm(x, -2),
                                          np.linalg.norm(t, axis=(1, 2)), np.linalg.norm(t, 2, axis=(2, 0), keepdims=True),
                                          np.linalg.norm(x[0], 3), np.linalg.norm(x[0], np.inf), np.linalg.norm(x[0], -np.inf),
                                          np.linalg.norm(x[0], 1), np.linalg.norm(x[0], 0), np.linalg.norm(t, keepdims=True)),
     c128(2, 3), c128(2, 3, 4))
spec("linalg_complex64", lambda a, b: (np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.det(a), *np.linalg.slogdet(a),
                                       np.linalg.eigvalsh(a @ a.conj().T), np.linalg.svd(a, compute_uv=False),
                                       np.linalg.norm(a, axis=1), np.linalg.norm(a, "nuc"), np.linalg.qr(a, mode="r")),
     Z_WELL.astype(np.complex64), c128(3, 2).real.astype(np.float32), tags=("slow_compile",))
spec("tensordot", lambda t, u, w: (np.tensordot(t, u, axes=([1, 2], [1, 0])), np.tensordot(t, w, 1), np.tensordot(t[0], w.T, 0),
                                   np.tensordot(t, u.transpose(1, 0, 2), 2), np.dot(t, w), np.dot(t, w[:, 0])),
     T3, f64(4, 3, 2), f64(4, 2), grad=True, tags=("slow_gradient",))

# ----------------------------------------------------------------------------- creation, 0-d, empty

spec("like_creation", lambda x, i: (np.zeros_like(x), np.ones_like(i), np.full_like(x, 2.5),
                                     np.zeros_like(x, dtype=int), np.ones_like(x, shape=(4,)), np.full_like(i, 7.9)),
     A32, I32)
spec("constants_inside", lambda x: x + np.arange(3.0) * np.ones((2, 1)) + np.eye(2, 3), A)
spec("asarray_list_of_tracers", lambda x, y: np.stack([x[0], y[1], x[1] * 2]), A, B)
spec("zero_d", lambda s, x: (s * 2, s + x, np.exp(s), s.reshape(1, 1), np.stack([s, s])), SCALAR0D, A)
spec("numpy_scalar_args", lambda a, b, x: (a * x, a + b, b * 2), np.float32(1.5), np.int16(3), A32)
spec("empty_elementwise", lambda e: (e * 2, np.exp(e), e > 0, e.T, e.reshape(3, 0), e[:, 1:]), EMPTY)
spec("composite_mlp", lambda x, w, b: np.tanh(x @ w + b).sum(axis=1).mean(), A, f64(3, 4), f64(4), grad=True)
spec("static_arg", lambda x, n, axis: x.sum(axis=axis) * n, A, 3, 1, static_argnums=(2,))

# ----------------------------------------------------------------------------- convolution and pooling

from tracejit import nn as _nn, ops as _ops  # noqa: E402

IMG = f64(2, 2, 5, 6)
FILTERS = f64(3, 2, 3, 2)
spec("conv2d", lambda x, w, b: (_nn.conv2d(x, w, b), _nn.conv2d(x, w, stride=2, padding="SAME"),
                                _nn.conv2d(x, w, stride=(1, 2), padding=1)), IMG, FILTERS, f64(3), grad=True, tags=("slow_gradient",))
spec("conv2d_f32", lambda x, w: _nn.conv2d(x, w, padding="SAME"), f32(2, 2, 5, 6), f32(3, 2, 3, 2))
# distinct values, so no ties: max's gradient is one-hot in every window
spec("max_pool2d", lambda x: (_nn.max_pool2d(x, 2), _nn.max_pool2d(x, (3, 2), stride=(1, 2)),
                              _nn.max_pool2d(x, 2, padding="SAME")),
     _rng.permutation(60).reshape(1, 2, 5, 6).astype(np.float64) / 7.0, grad=True)
spec("windows_sum", lambda c: _ops.windows_sum(c, window=(2, 3), strides=(1, 2), image=(4, 6)), f64(2, 3, 2, 2, 2, 3),
     grad=True)
# --------------------------------------------------------------------------- collectives
# In one process a sum over processes is the identity; tests/test_distributed.py runs them on two.


def _all_sum_pair(x, r, i):
    import tracejit as tj
    summed = tj.distributed.all_sum({"x": x, "r": r, "i": i})
    return summed["x"] * 2 + summed["r"], summed["i"]


spec("all_sum", _all_sum_pair, A, ROW, I32, grad=True)

# ----------------------------------------------------------------------------- shape functions
# flips, rolls, triangles, diagonals, repeats, tiles, splits, stacks, select, kron, meshgrid
# (tracejit/numpy/shapes.py and indexing.py)

import warnings  # noqa: E402


def _row_stack(*arrays):
    with warnings.catch_warnings():  # NumPy 2 deprecates the alias; traced calls do not reach NumPy
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.row_stack(arrays)


spec("flip_rot90", lambda t: (np.flip(t), np.flip(t, 1), np.flip(t, (0, -1)), np.fliplr(t), np.flipud(t), np.rot90(t),
                              np.rot90(t, 2, axes=(1, 2)), np.rot90(t, -1, axes=(-1, 0)), np.rot90(t, 4)),
     T3, grad=True, tags=("slow_gradient",))
spec("roll_rollaxis", lambda t: (np.roll(t, 1), np.roll(t, -2, axis=1), np.roll(t, (1, 5), axis=(0, 2)),
                                 np.roll(t, 3, axis=(1, 1)), np.roll(t, 0), np.rollaxis(t, 2), np.rollaxis(t, 0, 3),
                                 np.rollaxis(t, -1, 1)), T3, grad=True)
spec("tril_triu", lambda x, t, r: (np.tril(x), np.triu(x), np.tril(x, -1), np.triu(x, 2), np.tril(t, 1),
                                   np.triu(t, -5), np.tril(r), np.triu(x.T, 1)), A, T3, ROW, grad=True)
spec("diag_diagonal_trace", lambda x, t, r: (np.diag(r), np.diag(r, 2), np.diag(r, -1), np.diag(x), np.diag(x, 1),
                                             np.diag(x.T, -1), np.diag(x, 5), np.diagonal(t), np.diagonal(t, 1, 0, 2),
                                             np.diagonal(t, -1, -1, -2), x.diagonal(1), np.trace(x), np.trace(t, 1, 1, 2),
                                             x.trace(-1), np.trace(x, 4)), A, T3, ROW, grad=True)
spec("repeat_tile", lambda x, r: (np.repeat(x, 2), np.repeat(x, 2, axis=1), np.repeat(x, [1, 0, 3], axis=-1),
                                  np.repeat(x, [2], axis=0), x.repeat(0, axis=0), np.repeat(r, np.array([2, 1, 1])),
                                  np.tile(x, 2), np.tile(x, (2, 1, 2)), np.tile(r, (2, 1)), np.tile(x, 1)),
     A, ROW, grad=True, tags=("slow_gradient",))
spec("split_family", lambda t, r: (np.split(t, 2), np.split(t, [1, 3], axis=2), np.array_split(t, 3, axis=-1),
                                   np.array_split(t, [2, 1, 10], axis=1), np.hsplit(t, 3), np.vsplit(t, [1]),
                                   np.dsplit(t, 2), np.hsplit(r, [2])), T3, ROW, grad=True, tags=("slow_gradient",))
spec("stack_family", lambda x, y, r: (np.column_stack([r, r]), np.column_stack((x.T, r, y.T)), _row_stack(x, r),
                                      np.dstack([x, y]), np.dstack((r, r)), np.atleast_3d(r), np.atleast_3d(x, r[0]),
                                      np.atleast_2d(r, x), np.append(x, y), np.append(x, y, axis=1),
                                      np.append(r, 2.0), np.vstack([x, r], casting="no")),
     A, B, ROW, grad=True)
spec("select_kron_meshgrid", lambda x, y, r: (np.select([x > 0, y > 0], [x, y * 2], default=-1.0),
                                              np.select([x > 0.5], [x]), np.kron(x, y), np.kron(r, x), np.kron(x, 2.0),
                                              np.meshgrid(r, x[0]), np.meshgrid(r, x[:, 0], r[:2], indexing="ij"),
                                              np.meshgrid(r, x[:, 0], sparse=True), np.meshgrid(r)),
     A, B, ROW, grad=True, tags=("slow_gradient",))
def _cross_of_2_vectors(x, y):
    with warnings.catch_warnings():  # NumPy 2 deprecates 2-vectors; traced calls warn as NumPy does
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.cross(x[:, :2], y), np.cross(x, y[:, 1:]), np.cross(x[:, :2], y[:, 1:])


spec("cross", lambda x, y, r, t: (np.cross(x, y), np.cross(x, r), np.cross(r, x), np.cross(x.T, y.T, axis=0),
                                  np.cross(x.T, r, axisa=0, axisc=0), np.cross(t, t[..., ::-1], axisa=1, axisb=1),
                                  _cross_of_2_vectors(x, y)),
     A, B, ROW, T3[:, :, :3], grad=True, tags=("slow_compile",))
spec("cross_dtypes", lambda i, z, f: (np.cross(i, i[::-1]), np.cross(z, z[::-1]), np.cross(i, z), np.cross(f, f[::-1]),
                                     np.cross(f, i)), I32, Z, A32)

spec("shape_functions_int_bool", lambda i, b: (np.flip(i), np.fliplr(b), np.rot90(i, 3), np.roll(b, 1, axis=1),
                                               np.tril(i), np.triu(b, 1), np.diag(i), np.diag(i[0], 1), np.trace(i),
                                               np.diagonal(b), np.diag(b[0]), np.repeat(i, [2, 1], axis=0),
                                               np.tile(b, 2), np.split(i, 3, axis=1), np.kron(i, b), np.kron(b, b),
                                               np.select([b], [i], 7), np.select([b, i > 0], [i, 2.5]),
                                               np.meshgrid(i[0], b[0]), np.append(i, b), np.dstack([i, b])),
     I32, BM)
spec("stacks_mixed_dtypes", lambda i, x: (np.column_stack([i, x]), np.append(i, x), np.vstack([i, x], dtype=np.float64),
                                          np.hstack([x, i], casting="same_kind"), np.vstack([i, i], dtype=np.float32), np.kron(x, i),
                                          np.select([i > 0], [x], default=1), np.repeat(x, 2, axis=None)),
     I32, A32)

# --------------------------------------------------------------------------- products, scans, NaN-ignoring
# Products and running products are polynomials, so zeros are smooth points: their gradients
# (the product of the other factors; 0 with two zeros) are checked against finite differences.

ZEROS = np.array([[1.5, 0.0, -2.0, 0.5], [0.0, 1.25, 0.0, -0.75], [0.5, -1.5, 2.0, 1.25]])
POSITIVE_WEIGHTS = pos64(2, 4)
# NaNs, but no slice of NaNs only along either axis (distinct values: one maximum per slice)
SOME_NANS = np.array([[np.nan, 1.25, -0.5, 2.0], [0.5, np.nan, 1.75, -1.0], [0.75, -0.25, -1.5, np.nan]])
ALL_NAN_ROW = np.array([[np.nan, 1.25, -0.5, 2.0], [np.nan, np.nan, np.nan, np.nan], [0.75, np.nan, -1.5, np.nan]])

spec("prod", lambda t: (t.prod(), np.prod(t, axis=0), t.prod(axis=-1), np.prod(t, axis=(0, 2), keepdims=True)), T3,
     grad=True, tags=("slow_gradient",))
spec("prod_zeros", lambda z: (np.prod(z, axis=1), z.prod(axis=0), np.prod(z), np.prod(z[2]), np.prod(z[:2, :2])), ZEROS,
     grad=True)
spec("prod_dtypes", lambda i, b, u, x, e: (i.prod(), np.prod(b, axis=0), u.prod(axis=1), np.prod(i, dtype=np.float64),
                                           x.prod(axis=1), np.prod(e, axis=0), np.prod(e, axis=1), np.prod(e)),
     I8, BM, U8, A32, EMPTY)
spec("multiply_reduce_accumulate", lambda x, i: (np.multiply.reduce(x, axis=1), np.multiply.reduce(i), np.add.accumulate(x),
                                                 np.multiply.accumulate(x, axis=1), np.add.accumulate(i, axis=1)),
     A, I8, tags=("ufunc_methods",))
spec("cumsum", lambda t: (np.cumsum(t), t.cumsum(axis=1), np.cumsum(t, axis=-1), np.cumsum(t, axis=0)), T3, grad=True)
spec("cumsum_dtypes", lambda i, b, u, x, s, e: (np.cumsum(i), b.cumsum(axis=1), np.cumsum(u, axis=0), np.cumsum(x, axis=1),
                                                np.cumsum(i, dtype=np.float32), np.cumsum(b, axis=0, dtype=bool),
                                                np.cumsum(s), np.cumsum(e, axis=0), np.cumsum(i, axis=1, dtype=np.int8)),
     I8, BM, U8, A32, SCALAR0D, EMPTY)
spec("cumprod", lambda z, t: (np.cumprod(z, axis=1), z.cumprod(axis=0), np.cumprod(z), np.cumprod(t, axis=2)), ZEROS, T3,
     grad=True, tags=("slow_gradient",))
spec("linear_scan", lambda a, b: (_ops.linear_scan(a, b, axis=1, reverse=False), _ops.linear_scan(a, b, axis=2, reverse=True),
                                   _ops.linear_scan(a * 0.5, b, axis=0, reverse=True)), T3, f64(2, 3, 4), grad=True, tags=("slow_gradient",))
spec("linear_scan_int_f32", lambda i, x: (_ops.linear_scan(i, i, axis=1, reverse=True), _ops.linear_scan(x, x, axis=0, reverse=False)),
     I64, A32)
spec("cumprod_dtypes", lambda i, b, x: (np.cumprod(i, axis=1), b.cumprod(axis=0), np.cumprod(x, axis=1),
                                        np.cumprod(b, dtype=bool)), I8, BM, A32)
spec("diff", lambda t, x: (np.diff(t), np.diff(t, axis=0), np.diff(t, n=2, axis=1), np.diff(x, prepend=0.5),
                           np.diff(x, axis=0, append=x[:1]), np.diff(x, n=0), np.diff(x, n=3, prepend=x[:, :1], append=1.0)),
     T3, A, grad=True, tags=("slow_gradient",))
spec("diff_int_bool", lambda i, b, u: (np.diff(i), np.diff(b, axis=0), np.diff(u, prepend=0), np.diff(i, n=2, append=7)),
     I32, BM, U8)
spec("nan_reductions", lambda s: (np.nansum(s), np.nansum(s, axis=0), np.nanmean(s, axis=1, keepdims=True),
                                  np.nanmax(s, axis=0), np.nanmin(s), np.nanmax(s, axis=(0, 1)), np.nanmean(s),
                                  np.nanmin(s, axis=1, keepdims=True)), SOME_NANS, grad=True)


def nan_reductions_all_nan(s):
    import warnings
    with warnings.catch_warnings():  # NumPy's warnings for the row of NaNs: tests/test_scans.py checks them
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanmax(s, axis=1), np.nanmin(s, axis=1, keepdims=True), np.nanmean(s, axis=1), np.nansum(s, axis=1),
                np.nanmax(s, axis=0))


spec("nan_reductions_all_nan", nan_reductions_all_nan, ALL_NAN_ROW, tags=("specials",))
spec("nan_reductions_f32_int", lambda x, i: (np.nansum(x, axis=0), np.nanmean(x), np.nanmax(x, axis=1), np.nansum(i),
                                             np.nanmean(i, axis=0), np.nanmin(i, axis=1), np.nanmean(x, dtype=np.float64)),
     SOME_NANS.astype(np.float32), I32)
spec("ptp", lambda t: (np.ptp(t), np.ptp(t, axis=1), np.ptp(t, axis=(0, 2), keepdims=True)), T3, grad=True)
spec("ptp_int", lambda i, u: (np.ptp(i), np.ptp(u, axis=0)), I32, U8)
spec("average", lambda t, w, x: (np.average(t), np.average(t, axis=1), np.average(t, axis=(0, 2), weights=w),
                                 np.average(x, weights=x * x + 1.0, returned=True),
                                 np.average(x, axis=0, weights=np.array([0.25, 0.75]), keepdims=True),
                                 np.average(t, axis=2, returned=True)), T3, POSITIVE_WEIGHTS, A, grad=True)
spec("average_int_f32", lambda i, x: (np.average(i), np.average(i, axis=0, weights=np.array([1, 3])),
                                      np.average(x, axis=1, weights=np.abs(i[0]) + 1), np.average(x, returned=True)),
     I32, A32)

# --------------------------------------------------------------------------- inverse trigonometric, copysign, rounding
# New arguments are drawn here, after all the others, so the values above stay as they were.

UNIT = f64(2, 3, lo=-0.9, hi=0.9)
UNIT32 = f32(2, 3, lo=-0.9, hi=0.9)
# the domains' edges (arcsin(2), arccosh(0.5) and arctanh(+-1)), signed zeros, tiny and huge values
EDGES = np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0, -0.0, 1e-300, -5e-324, 1e300, -1e300, np.inf, -np.inf, np.nan])
# halves (which round to even), values just off them, signed zeros, and floats at 2**52 and beyond
HALVES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.4, 0.49999999999999994, -0.0,
                   4503599627370495.5, 4503599627370497.0, 1e300, 0.125, -0.375, 2.675])
INT8_EDGES = np.array([-128, 127, -7, 7, 0, -1, -128, 100], np.int8)
INT8_DIVISORS = np.array([3, -3, -3, 3, -1, 2, -1, 7], np.int8)

spec("arcsin_arccos_arctan", lambda u, x: (np.arcsin(u), np.arccos(u), np.arctan(x), np.arctan(x * 10)), UNIT, A,
     grad=True)
spec("arcsin_arccos_arctan_f32_int", lambda u, x, i: (np.arcsin(u), np.arccos(u), np.arctan(x), np.arctan(i),
                                                      np.arcsin(i // 5)), UNIT32, A32, I32)
spec("arctan2", lambda y, x, r: (np.arctan2(y, x), np.arctan2(y, r), np.arctan2(1.5, x), np.arctan2(y, -0.5)),
     A, B, ROW, grad=True, tags=("broadcast",))
spec("arctan2_f32_int", lambda y, x, i: (np.arctan2(y, x), np.arctan2(y, 2), np.arctan2(i, 3)), A32, B32, I32)
spec("arcsinh_arccosh_arctanh", lambda x, p, u: (np.arcsinh(x), np.arccosh(p + 1), np.arctanh(u)), A, P64, UNIT,
     grad=True)
spec("arcsinh_arccosh_arctanh_f32_int", lambda x, p, u, i: (np.arcsinh(x), np.arccosh(p + 1), np.arctanh(u),
                                                           np.arcsinh(i), np.arccosh(np.abs(i) + 1)), A32, P32, UNIT32, I32)
spec("copysign", lambda x, y, r: (np.copysign(x, y), np.copysign(x, r), np.copysign(x, -1.0), np.copysign(2.0, y)),
     A, B, ROW, grad=True)
spec("copysign_f32_int", lambda x, y, i: (np.copysign(x, y), np.copysign(i, x), np.copysign(i, -i)), A32, B32, I32)
spec("fmod", lambda x, y, p: (np.fmod(x, y), np.fmod(x, -0.75), np.fmod(-x, p), np.fmod(x * 10, p)), A, B, P64)
spec("fmod_grad", lambda x, y: np.fmod(x * 3, y) + np.fmod(x, -0.75) + np.fmod(2.5, y), A, P64, grad=True)
spec("fmod_f32_int", lambda x, y, i, j, e, d: (np.fmod(x, y), np.fmod(i, j), np.fmod(i, 3), np.fmod(-7, j),
                                               np.fmod(e, d), np.fmod(x, 2)), A32, P32, I32, NZ32, INT8_EDGES,
     INT8_DIVISORS)
spec("rint_round", lambda x: (np.rint(x * 3), np.round(x * 3), np.around(x, 1), x.round(2), np.round(x * 100, -1),
                              np.round(x, decimals=12), np.round(x * 1e-20, 25), np.round(x[0, 0])), A)
spec("rint_round_halves", lambda h: (np.rint(h), np.round(h), 1.0 / np.rint(h), np.round(h, 2), np.round(h, -1),
                                     np.rint(h.astype(np.float32)), np.round(h.astype(np.float32), 1)), HALVES,
     tags=("specials",))
spec("round_int", lambda i: (np.round(i), np.round(i, 2), np.round(i * 5, -1), np.around(i * 50, -2), i.round(1)),
     I32)
spec("round_grad", lambda x: x * np.round(x * 3, 1) + np.rint(x * 5) + np.round(x, -1) * x, A, grad=True)
spec("rint_round_f32", lambda x: (np.rint(x * 3), np.round(x, 2), np.round(x * 100, -1)), A32)


def inverse_trig_specials(s):
    edges = [s, s.astype(np.float32)]
    return [(np.arcsin(e), np.arccos(e), np.arctan(e), np.arctan2(e, e[::-1]), np.arctan2(e, -0.0),
             np.arctan2(-0.0, e), np.arcsinh(e), np.arccosh(e), np.arctanh(e), np.copysign(1.0, e),
             np.copysign(e, -e), np.rint(e), np.round(e, 1), np.fmod(e, e[::-1]), np.fmod(e, 0.0), np.fmod(0.75, e),
             # the sign of zero, through 1 / x
             1 / np.arcsin(e), 1 / np.arctan(e), 1 / np.arcsinh(e), 1 / np.arctanh(e), 1 / np.rint(e),
             1 / np.fmod(e, 3.0), 1 / np.arctan2(e, 1.0))
            for e in edges]


spec("inverse_trig_rounding_specials", inverse_trig_specials, EDGES, tags=("specials",))
spec("inverse_trig_rounding_specials_grid",
     lambda s: (np.arcsin(s), np.arctanh(s), np.arctan2(s, s.T), np.copysign(s, s.T), np.fmod(s, s.T), np.rint(s)),
     SPECIAL, tags=("specials",))

# --------------------------------------------------------------------------- linear algebra: least squares
# Full-rank matrices, tall and wide (tests/test_lstsq.py checks the rank-deficient case, whose
# residuals differ from NumPy's by rule). Drawn here, after all other arguments.

TALL = f64(4, 3)
WIDE = f64(3, 4)
spec("linalg_lstsq", lambda a, w, b, c: (*np.linalg.lstsq(a, b), *np.linalg.lstsq(a, c), *np.linalg.lstsq(w, b[:3]),
                                         *np.linalg.lstsq(w, c[:3], rcond=1e-3), *np.linalg.lstsq(a, c, rcond=-1)),
     TALL, WIDE, f64(4), f64(4, 2), grad=True, tags=("slow_compile",))
spec("linalg_lstsq_f32_int", lambda a, b, i: (*np.linalg.lstsq(a, b), *np.linalg.lstsq(i, b[:, 0]), *np.linalg.lstsq(a.T, i[:3])),
     TALL.astype(np.float32), f32(4, 2), ints(4, 3), tags=("slow_compile",))

# --------------------------------------------------------------------------- running extremes
# np.maximum.accumulate and friends. Distinct values for the gradient (no ties: the derivative
# is one-hot on each output's holder); tests/test_scans.py checks the rule for ties.

DISTINCT = _rng.permutation(24).reshape(2, 3, 4).astype(np.float64) / 5.0 - 2.0
spec("maximum_minimum_accumulate", lambda t: (np.maximum.accumulate(t), np.maximum.accumulate(t, axis=2),
                                              np.minimum.accumulate(t, axis=1), np.minimum.accumulate(t, axis=-1),
                                              np.maximum.accumulate(t[0, 0]), _ops.cummax(t, axis=1, reverse=True),
                                              _ops.cummin(t, axis=2, reverse=True)),
     DISTINCT, grad=True, tags=("ufunc_methods", "slow_compile"))
spec("maximum_minimum_accumulate_dtypes",
     lambda i, b, x, u: (np.maximum.accumulate(i, axis=1), np.minimum.accumulate(i), np.maximum.accumulate(b, axis=1),
                         np.minimum.accumulate(b), np.maximum.accumulate(x, axis=1), np.minimum.accumulate(u, axis=1),
                         np.maximum.accumulate(i, axis=1, dtype=np.float32), np.logical_and.accumulate(b, axis=1),
                         np.logical_or.accumulate(x, axis=1), np.logical_and.accumulate(i), np.logical_or.accumulate(b),
                         np.maximum.accumulate(np.zeros((2, 0)), axis=1)),
     I8, BM, A32, U8, tags=("ufunc_methods",))
spec("maximum_minimum_accumulate_specials",
     lambda s: (np.maximum.accumulate(s), np.minimum.accumulate(s, axis=1), 1 / np.maximum.accumulate(s, axis=1),
                1 / np.minimum.accumulate(s.T), np.maximum.accumulate(s.astype(np.float32), axis=1)),
     SPECIAL, tags=("specials", "ufunc_methods"))

# --------------------------------------------------------------------------- complex sorting
# Real part first, then imaginary part; NaNs last in NumPy's order (R + Rj, R + nanj, nan + Rj,
# nan + nanj). Ties between real parts, and NaNs in either part (tests/test_sorting.py checks
# the two parts of each NaN one by one).


def _complex(real, imag):
    z = np.empty(np.shape(real), np.complex128)
    z.real, z.imag = real, imag
    return z


COMPLEX_NANS = _complex([[1.0, np.nan, 0.5, 1.0, np.nan, -1.0], [np.nan, 0.5, 0.5, 2.0, -1.0, np.nan]],
                        [[np.nan, 1.0, 0.25, -1.0, np.nan, 2.0], [0.5, np.nan, -0.5, 0.0, 1.0, np.nan]])
COMPLEX_TIES = _complex(_rng.integers(-1, 2, (3, 4)).astype(np.float64), f64(3, 4))
spec("complex_sort", lambda z, t: (np.sort(z), np.sort(z, axis=0), np.argsort(z, kind="stable"), np.sort(t, axis=None),
                                   np.argsort(t, axis=0, kind="stable"), np.sort(t.astype(np.complex64), axis=1),
                                   np.median(t), np.median(t, axis=1), np.median(z, axis=1), np.median(z[:, :5], axis=1),
                                   np.median(t.astype(np.complex64), axis=0, keepdims=True), np.partition(t, 0)[:, 0]),
     COMPLEX_NANS, COMPLEX_TIES, tags=("specials", "slow_compile"))
spec("complex_sort_grad", lambda x, y: (np.real(np.sort(x + 1j * y)), np.imag(np.sort(x + 1j * y, axis=0)),
                                        np.abs(np.median(x * 1j + y, axis=1)), np.abs(np.median(x - 1j * y))),
     f64(3, 4), f64(3, 4), grad=True, tags=("slow_compile",))

# --------------------------------------------------------------------------- complex arguments
# Every function NumPy takes complex values for, on complex arguments, with gradients in JAX's
# and autograd's convention (tests/test_grad_ops.py differentiates complex128 arguments). The
# imaginary parts lie in [0.3, 0.8]: away from the branch cuts of log, sqrt and the inverse
# trigonometric functions (the real axis, and the imaginary axis beyond +-1j). Drawn from a
# generator of their own, so that the arguments of the specs above do not move.

_complex_rng = np.random.default_rng(19)


def _complex_args(*shape):
    return _complex_rng.uniform(-1.5, 1.5, shape) + 1j * _complex_rng.uniform(0.3, 0.8, shape)


ZG, WG, SQ = _complex_args(2, 3), _complex_args(2, 3), _complex_args(3, 3)
spec("complex_elementwise", lambda z, w: (np.arcsin(z), np.arccos(z), np.arctan(z), np.arcsinh(z), np.arccosh(z),
                                          np.arctanh(z), np.sinc(z), np.sin(z), np.cos(z), np.tan(z), np.sinh(z),
                                          np.cosh(z), np.tanh(z), np.exp(z), np.exp2(z), np.expm1(z), np.log(z),
                                          np.log2(z), np.log10(z), np.log1p(z), np.sqrt(z), np.square(z),
                                          np.reciprocal(z), np.power(z, w), z ** 3, 2.0 ** z, z / w, z * w - w,
                                          np.nan_to_num(z), np.angle(z), np.abs(z), np.conj(z) * w),
     ZG, WG, grad=True, tags=("slow_compile",))
spec("complex_elementwise_piecewise", lambda z: (np.round(z, 1), np.rint(z), np.sign(z), np.nan_to_num(z * np.inf),
                                                 np.isfinite(z), z == z[::-1], np.maximum(z, z[::-1]),
                                                 np.fmin(z, z[::-1]), np.where(z.real > 0, z, -z)), ZG)
spec("complex_reductions_scans", lambda z, s: (np.sum(z), np.mean(z, axis=0), np.prod(z, axis=1), np.cumsum(z, axis=1),
                                               np.cumprod(z, axis=0), np.diff(z), np.diff(z, 2, axis=1), np.nansum(z),
                                               np.nanmean(z, axis=1), np.average(z, axis=0, weights=[0.25, 0.75]),
                                               np.var(z, axis=1), np.std(z), np.trace(s), np.linalg.norm(z)),
     ZG, SQ, grad=True, tags=("slow_gradient",))
spec("complex_order", lambda z: (np.max(z), np.min(z, axis=0), np.argmax(z), np.ptp(z, axis=1), np.nanmax(z),
                                 np.nanmin(z, axis=1), np.median(z), np.sort(z, axis=0), np.maximum.accumulate(z, axis=1)),
     ZG, tags=("ufunc_methods", "slow_compile"))
spec("complex_shapes", lambda z, w, s: (np.tril(s), np.triu(s, 1), np.diag(s), np.diag(z[0]), np.diagonal(s, -1),
                                        np.repeat(z, 2, axis=0), np.tile(z, (2, 1)), np.split(z, 3, axis=1),
                                        np.roll(z, 1), np.flip(z), np.rot90(s), np.kron(z, w), np.cross(z, w),
                                        np.select([z.real > 0], [z], w), np.linspace(z[0], w[0], 4),
                                        np.meshgrid(z[0], w[:, 0]), np.column_stack([z, w]), np.dstack([z, w]),
                                        np.append(z, w), np.lib.stride_tricks.sliding_window_view(z, 2, axis=1),
                                        _row_stack(z, w), np.atleast_3d(z), np.rollaxis(z, 1), np.fliplr(z),
                                        np.flipud(z), np.hsplit(z, [1]), np.vsplit(z, 2), np.dsplit(z[:, :, None], 1),
                                        np.array_split(z, 2, axis=1)),
     ZG, WG, SQ, grad=True, tags=("slow_compile",))
spec("complex_contractions", lambda z, w, s: (np.einsum("ij,kj->ik", z, w), np.einsum("ij,jk,kl->il", z, s, s),
                                              np.tensordot(z, w, axes=([1], [1])), np.dot(z, s), np.matmul(s, z.T),
                                              z @ s @ w.T, np.einsum("ii", s)),
     ZG, WG, SQ, grad=True)
