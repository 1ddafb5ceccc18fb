"""The vectorisable math kernels of ``tracejit.backend.vecmath`` against NumPy.

Accuracy is measured in ulps: the distance between two floats in the ordered bit space, so
0 means equal and 1 means neighbours. float32 functions are checked over a strided sample of
all 2**32 bit patterns (every 4099th), all special values and dense sweeps around their
thresholds, against NumPy's float64 result rounded to float32 (the correctly rounded value,
up to double rounding) and against NumPy's float32 result. float64 functions are checked on
random bit patterns of every exponent and on ordinary ranges.
"""
from __future__ import annotations

import functools
import math
import os
import platform
import re
import subprocess
import sys

import numba
import numpy as np
import pytest

from tracejit.backend import vecmath as vm

# max ulp against the correctly rounded float32 result; measured exhaustively (see the
# module docstring of vecmath), asserted here on the sample.
F32_BOUND = {"exp": 1, "log": 1, "tanh": 1, "sigmoid": 2, "log1p": 2, "expm1": 2,
             "sin": 1, "cos": 1, "pow": 1}
# max ulp against NumPy float64.
F64_BOUND = {"exp": 1, "log": 1, "tanh": 3, "sigmoid": 2, "log1p": 2, "expm1": 2}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


NP_FUNC = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sigmoid": _sigmoid,
           "log1p": np.log1p, "expm1": np.expm1, "sin": np.sin, "cos": np.cos}
# exp_nonpositive is exp on part of its domain: test_exp_nonpositive_is_exp checks it there.
UNARY32 = sorted(n for (n, dt) in vm.VECTOR_MATH if dt == "float32" and n not in ("pow", "exp_nonpositive"))
UNARY64 = sorted(n for (n, dt) in vm.VECTOR_MATH if dt == "float64" and n not in ("pow", "exp_nonpositive"))


@functools.lru_cache(maxsize=None)
def unary_loop(fname):
    f = getattr(vm, fname)

    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])
    return loop


@functools.lru_cache(maxsize=None)
def binary_loop(fname):
    f = getattr(vm, fname)

    @numba.njit(error_model="numpy")
    def loop(x, y, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i], y[i])
    return loop


def apply(name, dtype, *args):
    fname = vm.VECTOR_MATH[(name, np.dtype(dtype).name)]
    args = [np.ascontiguousarray(a, dtype=dtype) for a in args]
    out = np.empty_like(args[0])
    (unary_loop if len(args) == 1 else binary_loop)(fname)(*args, out)
    return out


def ulp_distance(a, b):
    """Elementwise distance in ulps between same-dtype float arrays; NaN vs NaN is 0, NaN
    vs a number is huge, +0 and -0 are 0 apart."""
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype
    ity = np.int32 if a.dtype == np.float32 else np.int64
    mask = np.iinfo(ity).max

    def ordered(v):
        i = v.view(ity).astype(np.int64)
        return np.where(i < 0, -(i & mask), i)
    oa, ob = ordered(a), ordered(b)
    with np.errstate(over="ignore"):
        d = np.abs(oa - ob).astype(np.float64)
    opposite = (oa < 0) != (ob < 0)                  # the int64 difference may wrap there
    d[opposite] = np.abs(oa[opposite].astype(np.float64)) + np.abs(ob[opposite].astype(np.float64))
    an, bn = np.isnan(a), np.isnan(b)
    d[an & bn] = 0
    d[an ^ bn] = np.inf
    return d


def reference32(name, x):
    with np.errstate(all="ignore"):
        if name == "pow":
            return np.power(x[0].astype(np.float64), x[1].astype(np.float64)).astype(np.float32)
        return NP_FUNC[name](x.astype(np.float64)).astype(np.float32)


def numpy32(name, x):
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return _sigmoid(x)
        return NP_FUNC[name](x)


def same_bits_or_nan(a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    ity = np.int32 if a.dtype == np.float32 else np.int64
    return (a.view(ity) == b.view(ity)) | (np.isnan(a) & np.isnan(b))


def report(name, x, got, want, d):
    i = int(np.argmax(d))
    return f"{name}: {d[i]} ulp at x={x[i]!r}: got {got[i]!r}, want {want[i]!r}"


# ------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------

SPECIAL32 = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 2.0, -2.0, 0.5,
                      -0.5, 1e-45, -1e-45, 1.1754942e-38, -1.1754942e-38, 1.17549435e-38,
                      3.4028235e38, -3.4028235e38, 1e-7, -1e-7, 88.72283, 88.72284, 88.72285,
                      -87.33654, -103.97208, -103.972084, -104.0, 9.01, -9.01, 20.0, 100.0,
                      -100.0, 1e10, -1e10, 3.1415927, 1.5707964, 6.2831855, 1e30, 105414.35],
                     dtype=np.float32)


@functools.lru_cache(maxsize=None)
def strided_sample():
    """Every 4099th float32 bit pattern (~1.05M values, all exponents and both signs)."""
    bits = np.arange(0, 1 << 32, 4099, dtype=np.uint64).astype(np.uint32)
    return bits.view(np.float32)


def sweep(center, n_ulps):
    """All float32 within n_ulps of center (same sign, finite)."""
    c = np.float32(center)
    mag = int(np.array([abs(c)], np.float32).view(np.uint32)[0])
    bits = np.arange(max(mag - n_ulps, 0), min(mag + n_ulps + 1, 0x7F800000)).astype(np.uint32)
    if c < 0:
        bits |= np.uint32(0x80000000)
    return bits.view(np.float32)


def dense(lo, hi, n):
    return np.linspace(lo, hi, n, dtype=np.float64).astype(np.float32)


THRESHOLD_SWEEPS = {
    "exp": [sweep(88.72284, 3000), sweep(-87.33655, 3000), sweep(-103.972084, 3000),
            dense(-104.5, -86.0, 200_001), dense(-1e-3, 1e-3, 20_001)],
    "log": [sweep(1.0, 5000), sweep(1.17549435e-38, 3000), dense(0.5, 2.0, 100_001)],
    "tanh": [sweep(9.010913, 3000), sweep(-9.010913, 3000), dense(-1.0, 1.0, 100_001),
             sweep(np.float32(2.0 ** -12), 2000)],
    "sigmoid": [dense(-104.5, -80.0, 100_001), dense(15.0, 18.0, 10_001),
                dense(-2.0, 2.0, 40_001)],
    "log1p": [sweep(-1.0, 3000), dense(-1e-3, 1e-3, 20_001), dense(-0.9, 3.0, 100_001)],
    "expm1": [sweep(88.72284, 3000), dense(-1e-3, 1e-3, 20_001), dense(-18.0, -16.0, 10_001),
              dense(-1.0, 1.0, 100_001)],
    "sin": [dense(-10.0, 10.0, 100_001), sweep(np.float32(2.0 ** -12), 2000),
            sweep(np.float32(np.pi), 2000), sweep(np.float32(105414.35), 2000)],
    "cos": [dense(-10.0, 10.0, 100_001), sweep(np.float32(2.0 ** -12), 2000),
            sweep(np.float32(np.pi / 2), 2000), sweep(np.float32(105414.35), 2000)],
}


def inputs32(name):
    return np.concatenate([strided_sample(), SPECIAL32, -SPECIAL32, *THRESHOLD_SWEEPS[name]])


# ------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------

def test_table_names_exist_and_are_public():
    for (prim, dtype), fname in vm.VECTOR_MATH.items():
        assert dtype in ("float32", "float64")
        assert fname.endswith("_f32" if dtype == "float32" else "_f64")
        assert fname in vm.__all__
        assert isinstance(getattr(vm, fname), numba.core.registry.CPUDispatcher)
        assert vm.vector_math_name(prim, np.dtype(dtype)) == fname
    assert vm.vector_math_name("sin", np.float64) is None
    assert vm.vector_math_name("exp", np.float16) is None


# ------------------------------------------------------------------------------------------
# float32 accuracy
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", UNARY32)
def test_f32_accuracy_strided_all_bit_patterns(name):
    x = inputs32(name)
    got = apply(name, np.float32, x)
    want = reference32(name, x)
    d = ulp_distance(got, want)
    assert d.max() <= F32_BOUND[name], report(name, x, got, want, d)
    if name == "sigmoid":
        return  # NumPy has no sigmoid; its float32 formula overflows exp(-x) below -88.7
    # against NumPy's own float32 results, which are within ~1 ulp themselves
    npy = numpy32(name, x)
    d = ulp_distance(got, npy)
    assert d.max() <= F32_BOUND[name] + 2, report(name, x, got, npy, d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_nonpositive_is_exp(dtype):
    """Where it is defined (x <= 0, -inf, NaN), exp_nonpositive gives exp's bits: the strided
    sample of every float32 bit pattern, the subnormal and zero results, and the specials."""
    with np.errstate(invalid="ignore"):  # signalling NaNs among the bit patterns
        x = np.concatenate([strided_sample(), SPECIAL32, np.linspace(-110, 0, 40001, dtype=np.float32)]).astype(dtype)
    if dtype == np.float64:
        x = np.concatenate([x, np.linspace(-760, -700, 40001), -np.abs(x) * 8])
    x = x[~(x > 0)]
    assert x.size > 100_000 and np.isnan(x).any() and np.isneginf(x).any()
    assert same_bits_or_nan(apply("exp_nonpositive", dtype, x), apply("exp", dtype, x)).all()


@pytest.mark.parametrize("name", UNARY32)
def test_f32_special_values_exactly_as_numpy(name):
    x = np.concatenate([SPECIAL32, -SPECIAL32])
    got = apply(name, np.float32, x)
    want = reference32(name, x)
    # the special values themselves: NaN, infinities, zeros, saturation
    for xi, g, w in zip(x, got, want):
        if np.isnan(w) or np.isinf(w) or w == 0 or abs(w) == 1 or np.isinf(xi) or xi == 0:
            assert same_bits_or_nan(np.float32(g), np.float32(w)), (name, xi, g, w)


def test_f32_signed_zero():
    z = np.array([-0.0, 0.0], np.float32)
    for name in ("tanh", "expm1", "log1p", "sin"):
        got = apply(name, np.float32, z)
        assert np.signbit(got).tolist() == [True, False], name
        assert (got == 0).all()
    assert (apply("cos", np.float32, z) == 1).all()
    assert (apply("exp", np.float32, z) == 1).all()
    assert (apply("log", np.float32, z) == -np.inf).all()


def test_f32_exp_thresholds_match_numpy():
    # overflow: largest finite result exactly where NumPy has it
    x = sweep(88.72284, 3000)
    with np.errstate(over="ignore"):
        assert (np.isinf(apply("exp", np.float32, x)) == np.isinf(np.exp(x))).all()
    last_finite = np.nextafter(np.float32(88.72284), np.float32(0))
    assert np.isfinite(vm.exp_f32(last_finite)) and np.isfinite(np.exp(last_finite))
    assert np.isinf(vm.exp_f32(np.float32(88.72284))) and np.isinf(vm.exp_f32(np.float32(88.72285)))
    # subnormal results (x in about -87.3 .. -103.97) are kept, not flushed
    x = dense(-103.9, -87.4, 1001)
    y = apply("exp", np.float32, x)
    assert ((y > 0) & (y < np.finfo(np.float32).tiny)).all()
    assert ulp_distance(y, reference32("exp", x)).max() <= 1
    # underflow to +0 exactly where the correctly rounded result is 0
    x = sweep(-103.972084, 200)
    assert ((apply("exp", np.float32, x) == 0) == (reference32("exp", x) == 0)).all()


def test_f32_log_edges():
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 1.0, 1e-45, 3.4028235e38], np.float32)
    got = apply("log", np.float32, x)
    assert got[0] == -np.inf and got[1] == -np.inf
    assert np.isnan(got[2]) and np.isnan(got[3]) and np.isnan(got[5])
    assert got[4] == np.inf and got[6] == 0 and not np.signbit(got[6])
    assert ulp_distance(got[7:], reference32("log", x[7:])).max() == 0


def test_f32_tanh_saturates_exactly():
    x = np.concatenate([dense(9.02, 1e4, 10_001), np.array([np.inf, 3e38], np.float32)])
    assert (apply("tanh", np.float32, x) == 1).all()
    assert (apply("tanh", np.float32, -x) == -1).all()
    # exactly 1 from where the correctly rounded result is 1 (NumPy's float32 tanh only
    # from 10.0 on: it returns 1 - 2**-24 on [9.0109, 10))
    x = sweep(9.010913, 3000)
    assert ((apply("tanh", np.float32, x) == 1) == (reference32("tanh", x) == 1)).all()


def test_f32_sigmoid_tails():
    x = np.array([-np.inf, -1e30, -200.0, -100.0, -90.0, 0.0, -0.0, 90.0, 1e30, np.inf],
                 np.float32)
    got = apply("sigmoid", np.float32, x)
    assert got[0] == 0 and got[1] == 0 and got[2] == 0
    assert 0 < got[3] < np.finfo(np.float32).tiny          # subnormal, not flushed
    assert got[5] == 0.5 and got[6] == 0.5
    assert (got[7:] == 1).all()


def test_f32_log1p_expm1_edges():
    x = np.array([-1.0, -2.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e-45], np.float32)
    lp = apply("log1p", np.float32, x)
    assert lp[0] == -np.inf and np.isnan(lp[1]) and lp[2] == np.inf and np.isnan(lp[3])
    assert np.isnan(lp[4]) and (lp[5:] == x[5:]).all()
    em = apply("expm1", np.float32, x)
    assert em[2] == np.inf and em[3] == -1 and np.isnan(em[4]) and (em[5:] == x[5:]).all()
    assert apply("expm1", np.float32, np.array([-20.0, -1e30], np.float32)).tolist() == [-1, -1]
    with np.errstate(over="ignore"):
        x = sweep(88.72284, 3000)
        assert (np.isinf(apply("expm1", np.float32, x)) == np.isinf(np.expm1(x))).all()


def test_f32_sin_cos_edges():
    x = np.array([np.inf, -np.inf, np.nan], np.float32)
    assert np.isnan(apply("sin", np.float32, x)).all()
    assert np.isnan(apply("cos", np.float32, x)).all()
    big = np.array([3.4028235e38, -3.4028235e38, 1e38, 2.0 ** 100, 1e20, 16777216.0], np.float32)
    for name in ("sin", "cos"):
        assert ulp_distance(apply(name, np.float32, big), reference32(name, big)).max() <= 1


# ------------------------------------------------------------------------------------------
# pow (float32 and float64)
# ------------------------------------------------------------------------------------------

POW_SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5, -2.5,
                        np.inf, -np.inf, np.nan, 1e-45, 1e30, -1e30, 0.75, 1.5, 127.0, -127.0,
                        128.0, 1e10, -1e10, 16777217.0], dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pow_special_cases_exactly_as_numpy(dtype):
    x, y = np.meshgrid(POW_SPECIAL.astype(dtype), POW_SPECIAL.astype(dtype))
    x, y = x.ravel(), y.ravel()
    got = apply("pow", dtype, x, y)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    exact = np.isnan(want) | np.isinf(want) | (want == 0) | (np.abs(want) == 1)
    bad = ~same_bits_or_nan(got, want) & exact
    assert not bad.any(), list(zip(x[bad], y[bad], got[bad], want[bad]))[:10]
    rel = np.abs(got[~exact].astype(np.float64) / want[~exact] - 1)
    assert rel.max() <= (1.2e-7 if dtype == np.float32 else 1e-12)


def test_pow_f32_accuracy():
    rng = np.random.default_rng(1)
    n = 400_000
    x = np.concatenate([rng.uniform(0, 10, n), np.exp(rng.uniform(-100, 88, n)),
                        -rng.integers(1, 100, n).astype(np.float64)]).astype(np.float32)
    y = np.concatenate([rng.uniform(-20, 20, n), rng.uniform(-1.5, 1.5, n),
                        rng.integers(-30, 30, n).astype(np.float64)]).astype(np.float32)
    got = apply("pow", np.float32, x, y)
    want = reference32("pow", (x, y))
    d = ulp_distance(got, want)
    assert d.max() <= F32_BOUND["pow"], report("pow", x, got, want, d)
    with np.errstate(all="ignore"):
        d = ulp_distance(got, np.power(x, y))
    assert d.max() <= F32_BOUND["pow"] + 1


def test_pow_f64_accuracy():
    rng = np.random.default_rng(2)
    n = 400_000
    x = np.concatenate([rng.uniform(0, 10, n), np.exp(rng.uniform(-700, 700, n)),
                        -rng.integers(1, 100, n).astype(np.float64)])
    y = np.concatenate([rng.uniform(-50, 50, n), rng.uniform(-1, 1, n),
                        rng.integers(-100, 100, n).astype(np.float64)])
    got = apply("pow", np.float64, x, y)
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    normal = np.isfinite(want) & (np.abs(want) >= np.finfo(np.float64).tiny)
    rel = np.abs(got[normal] / want[normal] - 1)
    assert rel.max() <= 1e-12
    # outside the normal range: same overflow / underflow
    assert same_bits_or_nan(np.isinf(got[~normal]), np.isinf(want[~normal])).all()


# ------------------------------------------------------------------------------------------
# float64 accuracy
# ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def inputs64():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 1 << 63, 1 << 20, dtype=np.uint64) << np.uint64(1)
    bits |= rng.integers(0, 2, 1 << 20, dtype=np.uint64)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 5e-324, -5e-324,
                        2.2250738585072014e-308, 1.7976931348623157e308, 709.782712893384,
                        709.7827128933841, -708.3964185322641, -745.1332191019411,
                        -745.1332191019412, 19.06, 1e-300, -1e-300, 0.5, -0.5])
    return np.concatenate([bits.view(np.float64), special, -special,
                           rng.uniform(-1, 1, 200_000), rng.uniform(-50, 50, 200_000),
                           rng.uniform(-745.2, -700, 100_000), rng.uniform(700, 709.8, 100_000),
                           np.exp(rng.uniform(-745, 709, 100_000)),
                           rng.uniform(-1, 0, 100_000) * 1e-8])


@pytest.mark.parametrize("name", UNARY64)
def test_f64_accuracy(name):
    x = inputs64()
    got = apply(name, np.float64, x)
    with np.errstate(all="ignore"):
        want = NP_FUNC[name](x)
    if name == "sigmoid":
        # the NumPy formula overflows exp(-x) for x < -709 where the true value is subnormal
        with np.errstate(all="ignore"):
            want = np.where(x < 0, np.exp(x) / (1 + np.exp(x)), want)
    d = ulp_distance(got, want)
    assert d.max() <= F64_BOUND[name], report(name, x, got, want, d)
    # relative error contract of the generated code (float64 rtol 1e-12) with room to spare
    normal = np.isfinite(want) & (np.abs(want) >= np.finfo(np.float64).tiny)
    assert (np.abs(got[normal] - want[normal]) <= 1e-15 * np.abs(want[normal])).all()


def test_f64_edges():
    z = np.array([-0.0, 0.0])
    for name in ("tanh", "expm1", "log1p"):
        assert np.signbit(apply(name, np.float64, z)).tolist() == [True, False], name
    assert apply("log", np.float64, np.array([0.0, -1.0, np.inf]))[0] == -np.inf
    assert np.isnan(apply("log", np.float64, np.array([-1.0, np.nan, -np.inf]))).all()
    assert (apply("tanh", np.float64, np.array([19.1, 1e300, np.inf])) == 1).all()
    assert apply("exp", np.float64, np.array([709.782712893384]))[0] < np.inf
    assert apply("exp", np.float64, np.array([709.7827128933841]))[0] == np.inf
    assert apply("exp", np.float64, np.array([-745.1332191019411]))[0] == 5e-324
    assert apply("exp", np.float64, np.array([-745.1332191019412]))[0] == 0
    assert apply("expm1", np.float64, np.array([-np.inf, -50.0])).tolist() == [-1, -1]


# ------------------------------------------------------------------------------------------
# compiled use: loops, elementwise calls, vectorisation, sqrt
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fname", sorted(set(vm.VECTOR_MATH.values())))
def test_loop_matches_elementwise_calls(fname):
    dtype = np.float32 if fname.endswith("f32") else np.float64
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-20, 20, 61), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    x = x.astype(dtype)
    args = (np.abs(x), rng.uniform(-3, 3, x.size).astype(dtype)) if fname.startswith("pow") \
        else (x,)
    out = np.empty_like(x)
    f = getattr(vm, fname)
    (binary_loop if len(args) == 2 else unary_loop)(fname)(*args, out)
    one_by_one = np.array([f(*(a[i] for a in args)) for i in range(x.size)], dtype=dtype)
    assert same_bits_or_nan(out, one_by_one).all()


def test_fused_chain_in_one_loop():
    a, b, half = np.float32(1.3), np.float32(-0.2), np.float32(0.5)

    @numba.njit(error_model="numpy")
    def chain(x, out):
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = vm.tanh_f32(a * v + b) * vm.exp_f32(-v * v) + half * np.sqrt(abs(v))

    x = np.random.default_rng(5).uniform(-3, 3, 10_000).astype(np.float32)
    out = np.empty_like(x)
    chain(x, out)
    ref = np.tanh(a * x + b) * np.exp(-x * x) + half * np.sqrt(np.abs(x))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)
    assert out.dtype == np.float32


def test_caller_fastmath_does_not_break_kernels():
    # The kernels are separate functions compiled without fastmath; a fastmath caller only
    # changes its own instructions.
    @numba.njit(fastmath=True, error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = vm.exp_f32(x[i]) + vm.log_f32(x[i])

    x = np.array([np.nan, np.inf, -1.0, 0.0, 1e-45, 2.0], np.float32)
    out = np.empty_like(x)
    loop(x, out)
    with np.errstate(all="ignore"):
        want = np.exp(x) + np.log(x)
    assert same_bits_or_nan(out[[0, 2, 3, 5]], want[[0, 2, 3, 5]]).all()


def _is_x86():
    return platform.machine().lower() in ("x86_64", "amd64")


@pytest.mark.skipif(not _is_x86(), reason="checks x86 packed instructions")
@pytest.mark.parametrize("fname", sorted(set(vm.VECTOR_MATH.values())))
def test_loops_vectorise(fname):
    dtype = np.float32 if fname.endswith("f32") else np.float64
    x = np.ones(64, dtype)
    if fname.startswith("pow"):
        loop = binary_loop(fname)
        loop(x, x, np.empty_like(x))
    else:
        loop = unary_loop(fname)
        loop(x, np.empty_like(x))
    asm = loop.inspect_asm(loop.signatures[0])
    # packed arithmetic (ps / pd on ymm or zmm) ...
    assert re.search(r"\bv(mul|add|sub|fmadd\w*)p[sd]\s+.*%[yz]mm", asm), fname
    # ... and the kernel inlined: no call to it (nor to libm) left in the loop
    assert not re.search(r"(movabsq\s+\$|call\w*\s+)_ZN8tracejit7backend7vecmath", asm), fname
    assert not re.search(r"(movabsq\s+\$|call\w*\s+)(exp|log|tanh|sin|cos|pow)f?\b", asm), fname


@pytest.mark.skipif(not _is_x86(), reason="checks x86 packed instructions")
def test_sqrt_loop_vectorises_and_matches_numpy():
    @numba.njit(error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = np.sqrt(x[i])

    @numba.njit(error_model="numpy")
    def loop_math(x, out):
        for i in range(x.shape[0]):
            out[i] = math.sqrt(x[i])

    x = np.array([4.0, 2.0, 0.0, -0.0, -1.0, np.inf, np.nan, 1e-45] * 8, np.float32)
    for f in (loop, loop_math):
        out = np.empty_like(x)
        f(x, out)
        with np.errstate(invalid="ignore"):
            assert same_bits_or_nan(out, np.sqrt(x)).all()
        assert re.search(r"\bv?sqrtps\b", f.inspect_asm(f.signatures[0]))


def test_bit_cast_intrinsics_roundtrip():
    @numba.njit
    def roundtrip(a, b):
        return (vm.i32_as_f32(vm.f32_as_i32(a)), vm.u32_as_f32(vm.f32_as_u32(a)),
                vm.i64_as_f64(vm.f64_as_i64(b)), vm.u64_as_f64(vm.f64_as_u64(b)),
                vm.f32_as_i32(a), vm.f64_as_u64(b))

    a, b = np.float32(-1.5), -2.75
    r = roundtrip(a, b)
    assert r[0] == a and r[1] == a and r[2] == b and r[3] == b
    assert r[4] == np.array([a]).view(np.int32)[0]
    assert r[5] == np.array([b]).view(np.uint64)[0]


def test_prefer_vector_width_512_same_results():
    @numba.njit(error_model="numpy")
    def wide(x, out):
        vm.prefer_vector_width_512()
        for i in range(x.shape[0]):
            out[i] = vm.tanh_f32(x[i]) + vm.exp_f32(x[i])

    @numba.njit(error_model="numpy")
    def narrow(x, out):
        for i in range(x.shape[0]):
            out[i] = vm.tanh_f32(x[i]) + vm.exp_f32(x[i])

    x = np.random.default_rng(6).uniform(-50, 50, 4099).astype(np.float32)
    a, b = np.empty_like(x), np.empty_like(x)
    wide(x, a)
    narrow(x, b)
    assert same_bits_or_nan(a, b).all()
    import llvmlite.binding as llvm
    if _is_x86() and "+avx512f" in llvm.get_host_cpu_features().flatten():
        assert re.search(r"\bv\w+ps\s+.*%zmm", wide.inspect_asm(wide.signatures[0]))


def test_parallel_prange_loop():
    @numba.njit(parallel=True, error_model="numpy")
    def loop(x, out):
        for i in numba.prange(x.shape[0]):
            out[i] = vm.tanh_f32(x[i]) * vm.exp_f32(x[i]) + vm.log1p_f32(abs(x[i]))

    x = np.random.default_rng(7).uniform(-5, 5, 10_000).astype(np.float32)
    out = np.empty_like(x)
    loop(x, out)
    serial = apply("tanh", np.float32, x) * apply("exp", np.float32, x) + \
        apply("log1p", np.float32, np.abs(x))
    assert same_bits_or_nan(out, serial).all()


@pytest.mark.skipif(not vm.HAS_AVX512, reason="the vscalef path exists only with AVX-512")
def test_exp_scales_with_vscalef_on_avx512():
    loop = unary_loop("exp_f32")
    loop(np.ones(64, np.float32), np.empty(64, np.float32))
    assert re.search(r"\bvscalefps\b", loop.inspect_asm(loop.signatures[0]))


_PORTABLE_SCRIPT = """
import sys, numpy as np, numba
from tracejit.backend import vecmath as vm
assert not vm.HAS_AVX512
x = np.load(sys.argv[1])
@numba.njit(error_model="numpy")
def loop(x, o32, o64, s32, s64, n32, n64):
    for i in range(x.shape[0]):
        o32[i] = vm.exp_f32(x[i])
        o64[i] = vm.exp_f64(np.float64(x[i]) * 8.0)
        s32[i] = vm.sigmoid_f32(x[i])
        s64[i] = vm.sigmoid_f64(np.float64(x[i]) * 8.0)
        n32[i] = vm.exp_nonpositive_f32(-abs(x[i]))
        n64[i] = vm.exp_nonpositive_f64(-abs(np.float64(x[i]) * 8.0))
outs = [np.empty_like(x), np.empty(x.shape, np.float64)] * 3
outs = [np.empty_like(o) for o in outs]
loop(x, *outs)
for path, out in zip(sys.argv[2:], outs):
    np.save(path, out)
"""


def test_exp_without_avx512_gives_the_same_bits(tmp_path):
    """The two ways of scaling by 2**k (vscalef on AVX-512, two multiplications by a power of
    two elsewhere) agree bit for bit, across overflow, subnormal results and underflow to zero,
    in exp, in sigmoid and in exp_nonpositive (a cheaper scaling without AVX-512)."""
    x = np.concatenate([np.linspace(-110, 95, 20001, dtype=np.float32),
                        np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -1e30, 1e30, -np.float32(2.0) ** -149],
                                 np.float32)])
    paths = [tmp_path / n for n in ("x.npy", "o32.npy", "o64.npy", "s32.npy", "s64.npy", "n32.npy", "n64.npy")]
    np.save(paths[0], x)
    # An AVX2 + FMA target: without FMA the polynomials round differently (see vecmath).
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CACHE_DIR=str(tmp_path / "nc"),
               NUMBA_CPU_FEATURES="+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt")
    subprocess.run([sys.executable, "-c", _PORTABLE_SCRIPT, *map(str, paths)], env=env, check=True, timeout=300)
    x64 = x.astype(np.float64) * 8.0
    cases = [("exp_f32", x), ("exp_f64", x64), ("sigmoid_f32", x), ("sigmoid_f64", x64),
             ("exp_nonpositive_f32", -np.abs(x)), ("exp_nonpositive_f64", -np.abs(x64))]
    for (name, arg), path in zip(cases, paths[1:]):
        here = np.empty(arg.shape, arg.dtype)
        unary_loop(name)(arg, here)
        assert same_bits_or_nan(np.load(path), here).all(), name