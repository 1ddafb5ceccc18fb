"""The Numba backend: generated source, compiled programs against the reference interpreter.

Graphs come from tracing small NumPy functions (``tj.trace(fn).graph(*args)``, without the
fusion pass, so every primitive goes through its own emitter); each is run by
``compile_graph(graph)(arrays)`` and by ``tj.interpret(graph, arrays)``, which must agree in
shapes, dtypes and values (float64 rtol 1e-12, float32 rtol 1e-5, exact otherwise). The
end-to-end tests run ``@tj.trace`` functions with the default pipeline against eager mode.
Many operations share one traced function per dtype, so the file compiles few programs.
"""
from __future__ import annotations

import linecache
import re
import sys
import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import assert_tree_close, run
from tracejit import backend, ops
from tracejit.backend import BackendError, compile_graph, generate_source
from tracejit.backend.codegen import lower
from tracejit.backend.lowering import Lowered
from tracejit.primitives import registry
from tracejit.transforms import DEFAULT_PASSES

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


# The tests lower each primitive through the backend's own emitters, so their graphs skip
# fusion (fused kernels have their own tests); the end-to-end tests use the default pipeline.
UNFUSED = [p for p in DEFAULT_PASSES if getattr(p, "__name__", "") != "fuse"]


def graph_of(fn, *args):
    g = tj.trace(fn, passes=UNFUSED).graph(*args)
    assert len(g.inputs) == len(args), "test functions must not capture arrays"
    return g


def assert_same(got, expected, where=""):
    assert len(got) == len(expected), where
    for k, (a, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        label = f"{where} output {k}"
        assert isinstance(a, np.ndarray), label
        assert a.dtype == e.dtype, f"{label}: dtype {a.dtype}, expected {e.dtype}"
        assert a.shape == e.shape, f"{label}: shape {a.shape}, expected {e.shape}"
        rtol = RTOL.get(e.dtype)
        if rtol is None:
            np.testing.assert_array_equal(a, e, err_msg=label, strict=True)
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-6, equal_nan=True, err_msg=label)


def check(fn, *args, arrays=None):
    """Compile ``fn``'s graph for ``args`` and compare with the interpreter on ``arrays``
    (default: the same arguments). Returns the compiled program."""
    g = graph_of(fn, *args)
    arrays = [np.asarray(a) for a in (args if arrays is None else arrays)]
    program = compile_graph(g, name=getattr(fn, "__name__", "fn"))
    with np.errstate(all="ignore"):
        expected = tj.interpret(g, arrays)
        got = program(arrays)
    assert_same(got, expected, getattr(fn, "__name__", ""))
    return program


def floats(dtype):
    return np.array([[np.nan, 1.5, -np.inf, 0.25], [0.0, -0.0, np.inf, -7.5], [-2.5, 3.0, 1e-3, 2.0]], dtype)


# ----------------------------------------------------------------------------- registry


def test_every_primitive_has_a_loop_body_or_an_emitter():
    missing = [name for name, prim in registry.items() if backend.emitter_for(prim) is None]
    assert not missing, f"primitives the Numba backend cannot emit: {missing}"
    for name, prim in registry.items():
        if prim.kind == "elementwise":
            assert prim.scalar_src is not None or prim in backend.EMITTERS, name
        elif prim not in backend.EMITTERS:
            # a reduction's loop, a call per row or matrix (per_slice), or a host call
            assert (prim.kind == "reduce" and prim.identity is not None and prim.combine
                    or prim.extra.get("per_slice") or prim.extra.get("host_call")), name
    registered = set(registry.values())
    assert set(backend.EMITTERS) <= registered, set(backend.EMITTERS) - registered


def test_these_tests_compile_every_primitive():
    """The graphs the tests below compile, traced again (cheap), use every primitive."""
    f32, f64, i64 = np.ones((3, 4), np.float32), np.ones((3, 4)), np.ones((3, 4), np.int64)
    a, b = np.ones((2, 3, 4, 5)), np.ones((2, 3, 5, 2))
    graphs = [graph_of(float_ops, f64, f64), graph_of(int_ops, i64, i64), graph_of(bool_ops, f64 > 0, f64 > 0),
              graph_of(reductions, np.ones((3, 4, 5))), graph_of(shape_ops, f32), graph_of(_pad_fn, f64),
              graph_of(_gather_fn, f32, np.array([0, 1, 2, 1])),
              graph_of(_scatter_fn, f64, np.arange(5) % 4, np.ones((3, 5))),
              graph_of(_matmul_fn, a, b, a[0, 0], a[0, 0, 0]), graph_of(_windows_fn, np.ones((2, 2, 5, 6))),
              graph_of(_all_sum_fn, f32, f32.T[:2], np.float32(2)), graph_of(_scans_fn, np.ones((3, 4, 5))),
              graph_of(_per_slice_fn, *_per_slice_args(np.float64)), graph_of(_complex_fn, _complex_arg(np.complex128))]
    used = set()

    def walk(graph):
        for e in graph.eqns:
            used.add(e.prim.name)
            if isinstance(e.params.get("graph"), tj.Graph):
                walk(e.params["graph"])
    for g in graphs:
        walk(g)
    own = {name for name, prim in registry.items()
           if backend.emitter_for(prim).__module__ == backend.emitters.__name__}
    assert not own - used, f"primitives no backend test compiles: {sorted(own - used)}"


# ----------------------------------------------------------------------------- elementwise


def float_ops(x, y):
    """Every float elementwise primitive (float64 runs all of them)."""
    return (x + y, x - y, x * y, x / y, x // y, x % y, np.maximum(x, y), np.minimum(x, y), x ** y,
            -x, np.abs(x), np.sign(x), np.floor(x), np.exp(x), np.log(x), np.log1p(x), np.expm1(x),
            np.sqrt(x), np.tanh(x), np.sin(x), np.cos(x), np.sinh(x), np.cosh(x), np.log10(x), np.log2(x),
            np.exp2(x), x == y, x != y, x < y, x <= y, x > y, x >= y, np.where(x > y, x, y),
            x.astype(np.bool_), np.logical_not(x), np.logical_and(x, y), np.logical_or(x, y),
            np.arcsin(x), np.arccos(x), np.arctan(x), np.arctan2(x, y), np.arcsinh(x), np.arccosh(x),
            np.arctanh(x), np.copysign(x, y), np.rint(x))


def float32_ops(x, y):
    """The float32 loop bodies whose Numba implementation differs from the float64 one."""
    return (x / y, x // y, x % y, np.maximum(x, y), x ** y, np.abs(x), np.sign(x), np.floor(x), np.exp(x),
            np.log(x), np.log1p(x), np.expm1(x), np.sqrt(x), np.tanh(x), np.sin(x), np.cos(x), np.sinh(x),
            np.cosh(x), np.log10(x), np.log2(x), np.exp2(x), x < y, np.arcsin(x), np.arccos(x), np.arctan(x),
            np.arctan2(x, y), np.arcsinh(x), np.arccosh(x), np.arctanh(x), np.copysign(x, y), np.rint(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_elementwise_with_nan_inf_and_zero(dtype):
    x = floats(dtype)
    y = np.array([[2.0, -0.0, 0.5, np.nan], [0.0, 3.0, -np.inf, 2.0], [1.5, -1.5, 0.0, np.inf]], dtype)
    check(float_ops if dtype == np.float64 else float32_ops, x, y)


def test_float32_stays_float32_with_typed_constants():
    def f(x):
        return x * 2.0 + 0.1, np.float32(3) * x
    x = floats(np.float32)
    program = check(f, x)
    assert "np.float32(2.0)" in program.source
    assert "np.float32(0.10000000149011612)" in program.source  # the float32 value, exactly
    assert "np.float64" not in program.source.replace("np.float64(0.0)", "")


def int_ops(x, y):
    nonneg = np.abs(y) % 4
    return (x + y, x - y, x * y, x // y, x % y, np.maximum(x, y), np.minimum(x, y), x ** nonneg,
            -x, np.abs(x), np.sign(x), x == y, x < y, x >= y, np.where(x > y, x, y),
            x.astype(np.float32), x.astype(np.bool_), x.astype(np.int8), x + 3, x // 2, x % 3)


def small_int_ops(x, y):
    """Where 8-bit results wrap, and unsigned values >= 128 must stay positive."""
    return (x + y, x - y, x * y, x // y, x % y, x ** (y % 3), -x, np.abs(x), np.sign(x), np.maximum(x, y),
            x > y, x.astype(np.float32))


def test_int_elementwise_floor_semantics_and_division_by_zero():
    x = np.array([[-7, 7, -8, 9], [0, 5, -1, 13], [100, -100, 3, -3]], np.int64)
    y = np.array([[2, -2, -3, 0], [0, 3, -4, 5], [7, 7, -1, 1]], np.int64)
    check(int_ops, x, y)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_the_most_negative_int_divided_by_minus_one_wraps_like_numpy(dtype):
    low = np.iinfo(dtype).min
    x = np.array([low, low, low + 1, 5], dtype)
    y = np.array([-1, 1, -1, -1], dtype)
    with np.errstate(over="ignore"):
        expected = (x // y, x % y, np.floor_divide(x, -1))
    out = tj.trace(lambda x, y: (x // y, x % y, np.floor_divide(x, -1)), mode="compiled")(x, y)
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_small_int_elementwise_wraps_like_numpy(dtype):
    if np.dtype(dtype).kind == "u":
        x = np.array([[0, 7, 200, 255], [3, 9, 1, 13]], dtype)
        y = np.array([[3, 0, 7, 2], [0, 4, 5, 255]], dtype)
    else:
        x = np.array([[-7, 7, -128, 127], [0, 5, -1, 100]], dtype)
        y = np.array([[2, -2, -1, 0], [0, 3, -4, 100]], dtype)
    check(small_int_ops, x, y)


def test_int_pow_with_a_negative_exponent_raises_like_numpy():
    def f(x, y):
        return x ** y
    x, y = np.array([2, 3], np.int64), np.array([1, -1], np.int64)
    program = compile_graph(graph_of(f, x, y))
    with pytest.raises(ValueError, match="negative integer powers"):
        np.power(x, y)
    with pytest.raises(ValueError, match="negative integer powers"):
        program([x, y])
    np.testing.assert_array_equal(program([x, np.array([3, 2])])[0], [8, 9])


def bool_ops(a, b):
    return (a & b, a | b, a ^ b, ~a, np.logical_and(a, b), np.logical_or(a, b), np.logical_not(a),
            a == b, a != b, np.maximum(a, b), np.minimum(a, b), a + b, a * b, np.where(a, a, b),
            a.astype(np.float32), a.astype(np.int64), a.sum(), a.sum(axis=0), np.any(a, axis=1), np.all(a),
            np.max(a, axis=1), np.min(a), np.argmax(a, axis=1), np.argmin(a, axis=0))


def test_bool_operations():
    a = np.array([[True, False, True], [False, False, True]])
    b = np.array([[True, True, False], [False, True, True]])
    check(bool_ops, a, b)


def casts(x):
    return (x.astype(np.int64), x.astype(np.int32), x.astype(np.bool_), x.astype(np.float32),
            x.astype(np.uint8), x.astype(np.int8))


def test_casts_truncate_toward_zero_and_bool_is_nonzero():
    x = np.array([-2.7, -0.5, -0.0, 0.0, 0.3, 2.9, 127.9, 255.5, np.nan], np.float64)
    g = graph_of(casts, x)
    program = compile_graph(g)
    finite = x.copy()
    finite[-1] = 1.0  # NaN -> integer is undefined in NumPy too: checked only for bool
    assert_same(program([finite]), tj.interpret(g, [finite]))
    nan_bool = program([x])[2]
    assert nan_bool[-1] and nan_bool.dtype == np.bool_
    assert_same([program([x])[3]], [x.astype(np.float32)])


def test_int_casts_wrap_like_numpy():
    def f(x):
        return x.astype(np.int8), x.astype(np.uint8), x.astype(np.float64), x.astype(np.bool_)
    check(f, np.array([300, -1, -129, 0, 2 ** 40], np.int64))


def test_scalars_and_zero_d_arrays():
    def f(x, y, s):
        return x * s + y, np.exp(x), x > y, (x + s) * 2
    check(f, np.array(1.5, np.float32), np.array(-2.0, np.float32), 3.0)
    check(f, np.array(1.5), np.array(-2.0), 3)


def test_broadcasting_scalars_rows_and_columns():
    def f(x, row, col, s):
        return x + row, x * col, row - col, x + s, np.maximum(x, 0.0), np.broadcast_to(row, (2, 3, 4)) * 1
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    check(f, x, np.arange(4, dtype=np.float32), np.arange(3, dtype=np.float32).reshape(3, 1), np.float32(2))


# ----------------------------------------------------------------------------- reductions


def reductions(x):
    return (x.sum(), x.sum(axis=0), x.sum(axis=1), x.sum(axis=-1), x.sum(axis=(0, 2)), x.sum(axis=1, keepdims=True),
            x.max(), x.max(axis=0), x.min(axis=-1), x.min(axis=(0, 1)), x.mean(axis=1), x.var(axis=-1),
            np.argmax(x, axis=1), np.argmin(x, axis=-1), np.argmax(x), np.argmin(x, axis=0))


def few_reductions(x):
    return x.sum(axis=(0, 2)), x.sum(axis=-1), x.max(axis=0), x.min(), np.argmax(x, axis=1), np.argmin(x, axis=-1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_reductions_over_every_axis_combination(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 5)) * 10).astype(dtype)
    check(reductions if dtype == np.float64 else few_reductions, x)


def test_reductions_propagate_nan_and_argmax_takes_the_first_nan():
    x = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 5.0, -1.0], [np.nan, 0.0, 1.0, 2.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf]], np.float32)
    x3 = np.stack([x, x[::-1]])

    def f(x):
        return (x.max(axis=1), x.min(axis=0), x.sum(axis=1), np.argmax(x, axis=1), np.argmin(x, axis=1),
                np.argmax(x, axis=0), np.argmin(x, axis=0))
    check(f, x)
    check(few_reductions, x3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_maxima_keep_nans_apart_and_agree_with_numpy(dtype):
    """A float max/min over long rows combines with vmaxps/vminps and a flag of NaNs seen
    (scalar.NanFlag): a NaN anywhere in a row, a row of -inf and rows of signed zeros give
    NumPy's values, in a fused row kernel (max, then x - max) and in a reduction alone."""
    x = np.random.default_rng(3).standard_normal((9, 300)).astype(dtype)
    x[0, 0] = x[1, 150] = x[2, 299] = np.nan
    x[3] = -np.inf
    x[4] = 0.0
    x[4, 17] = -0.0
    x[5] = -0.0
    x[6, 40] = np.inf
    x[7, 41] = -np.inf

    def shifted_rows(x):
        return x - np.max(x, axis=1, keepdims=True), np.min(x, axis=1)

    def row_max(x):
        return np.max(x, axis=1)
    for fn in (shifted_rows, row_max):
        program = check(fn, x)
        assert "fmax_nonnan" in program.source or "fmin_nonnan" in program.source, fn.__name__
    with np.errstate(invalid="ignore"):
        got = tj.trace(shifted_rows, mode="compiled", tiered=False)(x)
        np.testing.assert_array_equal(got[0], shifted_rows(x)[0])
        np.testing.assert_array_equal(got[1], np.min(x, axis=1))


NONPOSITIVE_EXPS = {
    "negated_square": (lambda x, y: np.exp(-x * x), True),
    "negated_abs": (lambda x, y: np.exp(-abs(x) * 2.0), True),
    "shifted_by_row_maximum": (lambda x, y: np.exp(x - x.max(axis=1, keepdims=True)), True),
    "shifted_by_raised_maximum": (lambda x, y: np.exp(x - np.maximum(x.max(axis=1, keepdims=True), -1.0)), True),
    "other_array_maximum": (lambda x, y: np.exp(x - y.max(axis=1, keepdims=True)), False),
    "maximum_transposed": (lambda x, y: np.exp(x - x.max(axis=1).reshape(1, -1)), False),
    "row_minimum": (lambda x, y: np.exp(x - x.min(axis=1, keepdims=True)), False),
    "product": (lambda x, y: np.exp(x * y), False),
}


@pytest.mark.parametrize("name", sorted(NONPOSITIVE_EXPS))
def test_exp_of_a_provably_nonpositive_argument_takes_the_cheaper_exp(name):
    fn, nonpositive = NONPOSITIVE_EXPS[name]
    rng = np.random.default_rng(5)
    x, y = (rng.standard_normal((6, 6)) * 30).astype(np.float32), rng.standard_normal((6, 6)).astype(np.float32)
    x[0, 0], x[1] = np.nan, -np.inf
    traced = tj.trace(fn, mode="compiled", tiered=False)
    with np.errstate(all="ignore"):
        assert_same([traced(x, y)], [fn(x, y)], name)
    assert ("exp_nonpositive_f32" in traced.source(x, y)) == nonpositive, traced.source(x, y)


def test_empty_arrays_and_zero_size_reductions():
    def f(x, y):
        return x.sum(axis=0), x.sum(axis=1), x * 2, x.max(axis=1), y @ x.T, x.T @ x, np.argmax(x, axis=1)
    x = np.zeros((0, 3), np.float32)
    y = np.ones((2, 3), np.float32)
    check(f, x, y)

    def g(x):
        return x.sum(), np.exp(x), x.reshape(2, 0)
    check(g, np.zeros((0,), np.float64))


def test_float32_sums_of_many_terms_stay_within_tolerance():
    def f(x):
        return x.sum(), x.sum(axis=0), x.mean(axis=1)
    x = np.random.default_rng(1).random((1000, 300)).astype(np.float32)
    check(f, x)


# ----------------------------------------------------------------------------- shape ops


def shape_ops(x):
    return (x.T, x.reshape(4, 3), x.T.reshape(-1), x[1:, ::2], x[::-1], x[:, ::-2], x[None, :, 1],
            np.transpose(x[None], (2, 0, 1)) + 1, np.concatenate([x, x[:1] * 2], axis=0),
            np.stack([x, x], axis=-1), np.broadcast_to(x[:, :1], (3, 4)) + x, x[2], x[-1, -1])


@pytest.mark.parametrize("dtype", [np.float32])
def test_reshape_transpose_slice_concatenate(dtype):
    x = (np.arange(12).reshape(3, 4) % 5).astype(dtype)
    check(shape_ops, x)


def _pad_fn(x):
    return (ops.pad(x, config=((1, 2, 0), (0, 1, 2))), ops.pad(x, config=((0, 0, 1), (2, 0, 0))) * 2,
            ops.pad(x[:0], config=((1, 1, 1), (0, 0, 0))))


def test_pad_through_its_primitive():
    check(_pad_fn, np.arange(6, dtype=np.float64).reshape(2, 3) + 1)


def _windows_fn(x):
    from tracejit import ops
    cols = ops.windows(x, window=(3, 2), strides=(2, 1))
    return cols, ops.windows_sum(cols * 2, window=(3, 2), strides=(2, 1), image=x.shape[2:])


@pytest.mark.parametrize("parallel", [False, True])
def test_windows_and_windows_sum(parallel):
    """im2col and its transpose, also with the images shared out over threads (overlapping
    windows of one image add into the same pixels: only whole images may run in parallel)."""
    for x in (np.arange(120, dtype=np.float64).reshape(2, 2, 5, 6), np.arange(30, dtype=np.float32).reshape(1, 1, 5, 6)):
        g = graph_of(_windows_fn, x)
        program = compile_graph(g, parallel=parallel)
        assert_same(program([x]), tj.interpret(g, [x]))


def _gather_fn(x, i):
    return x[i], x[:, i], np.take(x, i, axis=1), x[[2, 0, 0]], x[i, i], np.take(x.reshape(-1), i * 3)


def test_gather_with_traced_and_constant_indices():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    check(_gather_fn, x, np.array([0, 2, -1, 1]))

    def g(x, i):
        return np.take(x, i, axis=0)
    check(g, x, np.array([[0, 2], [-3, 1]], np.int32))


def _all_sum_fn(x, y, s):
    a, b, c = ops.all_sum(x, y.T, s)  # y.T: a view, packed through its index map
    return a * 2, b, c


def test_all_sum_emits_nothing_in_one_process_and_packs_one_buffer_for_several(monkeypatch):
    from tracejit import communicator
    x, y, s = np.arange(12, dtype=np.float32).reshape(3, 4), np.arange(6, dtype=np.float32).reshape(2, 3), \
        np.array(5, np.float32)
    program = check(_all_sum_fn, x, y, s)
    assert "all_sum_in_place" not in program.source and "(one process: " in program.source
    # The code written for two ranks; with no MPI here, the communicator hands the buffer back as it is.
    monkeypatch.setattr(communicator, "size", lambda: 2)
    program = check(_all_sum_fn, x, y, s)
    assert program.source.count("all_sum_in_place(packed0)") == 1, program.source
    np.testing.assert_array_equal(program([x, y, s])[1], y.T)


# ----------------------------------------------------------------------------- products and scans

def _scans_fn(x):
    return (np.prod(x, axis=(0, 2)), x.prod(axis=-1), np.prod(x[:, :0], axis=1),
            ops.cumsum(x, axis=2, reverse=False), ops.cumsum(x, axis=1, reverse=True),
            ops.cumprod(x, axis=0, reverse=False), ops.cumprod(x, axis=2, reverse=True),
            ops.linear_scan(x, x + 1, axis=1, reverse=False), ops.linear_scan(x * 2, x, axis=2, reverse=True),
            ops.linear_scan(x, x, axis=0, reverse=True), ops.cumsum(x[:, :0], axis=1, reverse=False),
            ops.cummax(x, axis=1, reverse=False), ops.cummin(x, axis=2, reverse=True), ops.cummax(x, axis=0, reverse=True))


@pytest.mark.parametrize("dtype, parallel", [
    (np.float64, False), (np.float64, True), (np.float32, False), (np.int64, False),
    # the parallel loops of the other dtypes are the same loops: ten seconds of compiling each
    pytest.param(np.float32, True, marks=pytest.mark.long), pytest.param(np.int64, True, marks=pytest.mark.long)])
def test_products_and_scans_along_every_axis(dtype, parallel):
    """Scans along the last axis (a scalar per line) and along the others (a row of the
    trailing axes at a time), both ways, also with the lines shared out over threads."""
    x = (np.random.default_rng(0).standard_normal((3, 4, 5)) * 2).astype(dtype)
    g = graph_of(_scans_fn, x)
    program = compile_graph(g, parallel=parallel)
    assert_same(program([x]), tj.interpret(g, [x]), f"{np.dtype(dtype).name}, parallel={parallel}")


def test_scans_start_from_the_first_element():
    """-0.0 stays -0.0 (an identity added first would make it 0.0), and a recurrence's first
    coefficient is not read (inf * 0 would be NaN)."""
    def f(x, a):
        return ops.cumsum(x, axis=0, reverse=False), ops.cumprod(x, axis=0, reverse=True), \
            ops.linear_scan(a, x, axis=0, reverse=False)
    program = check(f, np.array([-0.0, 2.0, -0.0]), np.array([np.inf, 1.0, 2.0]))
    cumsum, cumprod, recurrence = program([np.array([-0.0, 2.0, -0.0]), np.array([np.inf, 1.0, 2.0])])
    assert np.signbit(cumsum[0]) and np.signbit(cumprod[2]) and np.signbit(recurrence[0])


def test_gather_out_of_range_raises_index_error():
    def f(x, i):
        return x[i] * 2
    x = np.arange(3, dtype=np.float64)
    program = compile_graph(graph_of(f, x, np.array([0, 1])))
    assert "raise IndexError" in program.source
    np.testing.assert_array_equal(program([x, np.array([2, -3])])[0], [4.0, 0.0])
    for bad in ([0, 3], [-7, 0], [2 ** 40, 0]):
        with pytest.raises(IndexError, match="out of bounds"):
            program([x, np.array(bad)])
    # the same through the primitive directly (no wrapping of negative indices by the front end)
    g = graph_of(lambda x, i: ops.gather(x, i, axis=0), x, np.array([0, 1]))
    program = compile_graph(g)
    np.testing.assert_array_equal(program([x, np.array([-1, 0])])[0], [2.0, 0.0])  # as np.take
    with pytest.raises(IndexError):
        program([x, np.array([5, 0])])


def _scatter_fn(x, i, u):
    return ops.scatter_add(x, i, u, axis=1), ops.scatter_add(x.T, i, u.T, axis=0)


def test_scatter_add_adds_repeated_indices():
    x = np.arange(8, dtype=np.float64).reshape(2, 4)
    u = np.ones((2, 5))
    check(_scatter_fn, x, np.array([0, 3, 3, 3, -1]), u)
    g = graph_of(_scatter_fn, x, np.array([0, 3, 3, 3, -1]), u)
    with pytest.raises(IndexError):
        compile_graph(g)([x, np.array([0, 4, 0, 0, 0]), u])


def test_setitem_and_gradient_of_indexing():
    def f(x, i):
        y = x * 1
        y[1:, 0] = 5.0
        return y, tj.grad(lambda x: (x[i] ** 2).sum())(x)
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    check(f, x, np.array([0, 2, 2]))


# ----------------------------------------------------------------------------- matmul


def _matmul_fn(a, b, m, v):
    return a @ b, a[0] @ b[0], m @ m.T, m.T @ m, m @ v, v @ m.T, m[:, 1:] @ m[1:, 1:].T, np.dot(v, v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_blas_plain_transposed_batched_and_vector(dtype):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    b = rng.standard_normal((2, 3, 5, 2)).astype(dtype)
    m = rng.standard_normal((4, 5)).astype(dtype)
    v = rng.standard_normal(5).astype(dtype)

    def g(a, b, m, v):
        return a @ b, m @ v
    program = check(_matmul_fn if dtype == np.float32 else g, a, b, m, v)
    assert ("gemm(" if backend.blas.NUMPY_GEMM else "np.dot(") in program.source


@pytest.mark.parametrize("dtype, m, k, n", [
    (np.float32, 128, 784, 10), (np.float64, 7, 5, 3), (np.float64, 1, 9, 1), (np.float64, 6, 3, 16),
    *[pytest.param(dtype, *shape, marks=pytest.mark.long)
      for dtype, shape in [(np.float64, (128, 784, 10)), (np.float32, (7, 5, 3)), (np.float32, (1, 9, 1)),
                           (np.float32, (6, 3, 16))]]])
def test_narrow_products_are_loops_reading_transposes_in_place(dtype, m, k, n):
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bt = np.ascontiguousarray(b.T)
    at = np.ascontiguousarray(a.T)

    def f(a, b, bt, at):
        return a @ b, a @ bt.T, at.T @ b, a.T @ a[:, :n]
    program = compile_graph(graph_of(f, a, b, bt, at), name="f")
    source = program.source
    assert "gemm(" not in source and "np.dot(" not in source
    assert source.count("(loops, not BLAS)") == 4
    assert "tmp" not in source  # the transposed operands are read in place
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    eps = np.finfo(dtype).eps
    for got, (x, y) in zip(program([a, b, bt, at]), [(a64, b64)] * 3 + [(a64.T, a64[:, :n])]):
        assert got.dtype == dtype
        # the bound of any summation order: k eps sum |x_i y_i|, with room for the products' rounding
        bound = (x.shape[1] + 2) * eps * (np.abs(x) @ np.abs(y))
        assert (np.abs(got - x @ y) <= bound).all()


def test_wider_or_doubly_transposed_products_stay_on_blas():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((8, 6)).astype(np.float32), rng.standard_normal((6, 17)).astype(np.float32)
    program = check(lambda a, b, c: (a @ b, c.T @ a.T), a, b, np.ascontiguousarray(b[:, :3]))
    assert program.source.count("gemm(" if backend.blas.NUMPY_GEMM else "np.dot(") == 2
    assert "(loops, not BLAS)" not in program.source


@pytest.mark.parametrize("dtype", [np.int32, np.bool_])
def test_matmul_integer_and_bool_loops(dtype):
    a = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    b = (np.arange(8).reshape(4, 2) % 2).astype(dtype)

    def f(a, b):
        return a @ b, a.T @ a, np.stack([a, a]) @ np.stack([b, b])
    program = check(f, a, b)
    assert "np.dot(" not in program.source and "gemm(" not in program.source


def test_mlp_gradients_compiled_equal_eager_and_large_programs_split_into_parts(monkeypatch):
    monkeypatch.setattr(backend.codegen, "PART_KERNELS", 4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    params = {"W1": rng.standard_normal((4, 8)).astype(np.float32) * 0.5, "b1": np.zeros(8, np.float32),
              "W2": rng.standard_normal((8, 3)).astype(np.float32) * 0.5, "b2": np.zeros(3, np.float32)}

    def loss(p, x, y):
        h = np.tanh(x @ p["W1"] + p["b1"])
        return tj.nn.cross_entropy(h @ p["W2"] + p["b2"], y)

    @tj.trace
    def step(p, x, y, lr):
        l, g = tj.value_and_grad(loss)(p, x, y)
        return {k: p[k] - lr * g[k] for k in p}, l

    with tj.mode("eager"):
        expected = step(params, x, y, 0.1)
    got = step(params, x, y, 0.1)  # compiled: the default mode
    assert tj.get_mode() == "compiled"
    assert float(got[1]) == pytest.approx(float(expected[1]), rel=1e-5)
    for k in params:
        np.testing.assert_allclose(got[0][k], expected[0][k], rtol=1e-5, atol=1e-6, err_msg=k)
        assert got[0][k].dtype == np.float32
    assert step.stats["compile_seconds"] > 0 and step.stats["kernels"] > 4
    assert "def step_part2(" in step.source(params, x, y, 0.1)
    again = step(params, x, y, 0.2)  # a new learning rate is a new value, not a new program
    assert step.stats["cache_hits"] == 1 and step.stats["traces"] == 1
    assert float(again[1]) == pytest.approx(float(expected[1]), rel=1e-5)


def _mlp_loss(p, x):
    h = np.tanh(x @ p["W1"] + p["b1"])
    return tj.nn.logsumexp(h @ p["W2"], axis=-1).mean()


def _mlp_step(p, x):
    # a dozen kernels: a program in parts once PART_KERNELS is small
    l, g = tj.value_and_grad(_mlp_loss)(p, x)
    return {k: p[k] - 0.1 * g[k] for k in p}, l


def test_an_interrupted_compile_of_a_program_in_parts_can_be_compiled_again(monkeypatch):
    # Compiling replaced the part functions inside the program's module: a second compile in
    # the same process (after Ctrl-C, or after clear_cache) found them jitted already and failed
    # with "A jit decorator was called on an already jitted function".
    from numba.core.dispatcher import Dispatcher

    from tracejit.backend import compiler
    monkeypatch.setattr(backend.codegen, "PART_KERNELS", 2)
    monkeypatch.setattr(compiler, "_load_machine_code", lambda fn, signature: False)  # always compile
    compile_once = Dispatcher.compile

    def interrupted(self, signature):
        monkeypatch.setattr(Dispatcher, "compile", compile_once)
        raise KeyboardInterrupt
    monkeypatch.setattr(Dispatcher, "compile", interrupted)
    rng = np.random.default_rng(5)
    p = {"W1": rng.standard_normal((4, 6)), "b1": rng.standard_normal(6), "W2": rng.standard_normal((6, 3))}
    x = rng.standard_normal((5, 4))
    with tj.mode("eager"):
        expected = _mlp_step(p, x)
    f = tj.trace(_mlp_step)
    assert "_part2(" in f.source(p, x)
    with pytest.raises(KeyboardInterrupt):
        f(p, x)
    assert_tree_close(f(p, x), expected)
    backend.clear_cache()
    assert_tree_close(tj.trace(_mlp_step)(p, x), expected)


def test_in_a_large_program_only_the_steps_with_a_prange_loop_are_compiled_parallel(monkeypatch):
    # Numba's parfor passes analyse all of a function compiled with parallel=True (two thirds of
    # the LeNet step's compile): a large program compiles its parallel steps as parts of their own.
    monkeypatch.setattr(backend.codegen, "PARALLEL_APART_MIN_KERNELS", 4)
    rng = np.random.default_rng(6)
    p = {"W1": rng.standard_normal((4, 6)), "b1": rng.standard_normal(6), "W2": rng.standard_normal((6, 3))}
    x = rng.standard_normal((5, 4))
    with tj.mode("eager"):
        expected = _mlp_step(p, x)
    f = tj.trace(_mlp_step, parallel=True)
    assert_tree_close(f(p, x), expected)
    lowered = backend.codegen.lower(f._entry_for((p, x), {}).program.graph, parallel=True, name="step")
    assert lowered.kernels > 4 and not lowered.flags["parallel"]
    bodies = {src.split("(")[0]: src for src in lowered.source.split("\ndef ")[1:]}
    assert set(bodies) == {"step", *lowered.parts}
    assert lowered.parallel_functions and set(lowered.parallel_functions) < set(lowered.parts)
    for part in lowered.parts:
        assert ("prange(" in bodies[part]) == (part in lowered.parallel_functions), part
    # below the threshold the program stays one function, compiled parallel as a whole
    monkeypatch.setattr(backend.codegen, "PARALLEL_APART_MIN_KERNELS", lowered.kernels)
    whole = backend.codegen.lower(f._entry_for((p, x), {}).program.graph, parallel=True, name="step")
    assert not whole.parts and whole.parallel_functions == ["step"] and whole.flags["parallel"]


# ----------------------------------------------------------------------------- inputs and outputs


def test_non_contiguous_read_only_and_fortran_inputs():
    def f(x, y):
        return x * y + x.sum(axis=0), x @ y.T
    base = np.arange(48, dtype=np.float64).reshape(6, 8)
    x = base[::2, ::2]                           # (3, 4), strided
    y = np.asfortranarray(base[:3, 4:] + 0.5)    # (3, 4), Fortran order
    y.flags.writeable = False
    assert not x.flags.c_contiguous and not y.flags.c_contiguous
    program = check(f, x, y)
    # the same program runs on contiguous writable inputs
    assert_same(program([np.ascontiguousarray(x), np.array(y)]), program([x, y]))


def test_outputs_are_fresh_arrays_unless_they_are_inputs():
    def f(x, y):
        return x, x.reshape(4), x.reshape(2, 2), y * 2, x.T, np.float64(3.0) * 1
    x = np.arange(4, dtype=np.float64).reshape(2, 2)
    x.flags.writeable = False
    y = np.ones(3)
    program = compile_graph(graph_of(f, x, y))
    outs = program([x, y])
    assert outs[0] is x and outs[2] is x  # a reshape to the same shape is the input itself
    for o in outs[1:2] + outs[3:]:
        assert not np.shares_memory(o, x) and o.flags.writeable
    assert_same(outs, tj.interpret(graph_of(f, x, y), [x, y]))


@pytest.mark.parametrize("case", ["passed in", "returned copy", "NumPy routine", "parallel loop"])
def test_only_programs_that_make_no_array_compile_without_numbas_runtime(case):
    # A program whose temporaries are workspace views and whose outputs are passed in makes no
    # array itself and is compiled without Numba's reference counting; one that returns an
    # array it made, calls a NumPy routine that returns one, or runs a parallel loop keeps it.
    # Either way the values are NumPy's.
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    f, runtime = {
        "passed in": (lambda x: (np.tanh(x) @ x.T).sum(axis=1), False),
        "returned copy": (lambda x: (x.reshape(12), x * 2), True),  # an input's view: its copy is returned
        "NumPy routine": (lambda x: np.sort(x * 2, axis=1), True),
        "parallel loop": (lambda x: np.exp(x) + 1.0, True),
    }[case]
    if case == "parallel loop":
        x = np.linspace(-1, 1, 1 << 20)
    graph = graph_of(f, x)
    program = compile_graph(graph, parallel=case == "parallel loop" or None)
    assert ("_nrt=False" not in program.source.splitlines()[1]) is runtime
    assert_same(program([x]), tj.interpret(graph, [x]))


def test_wrong_input_shapes_are_refused():
    program = compile_graph(graph_of(lambda x: x + 1, np.ones(3)))
    with pytest.raises(ValueError, match="shape"):
        program([np.ones(4)])
    with pytest.raises(TypeError, match="dtype"):
        program([np.ones(3, np.float32)])


# ----------------------------------------------------------------------------- source, cache, errors


def _user_line_fn(x, w):
    return np.tanh(x @ w).sum(axis=1)  # the user's line


def test_source_has_one_comment_per_equation_with_the_users_line():
    x, w = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    g = graph_of(_user_line_fn, x, w)
    source = generate_source(g, name="mlp")
    # the matmul's and tanh's results are temporaries; the output is passed in
    assert "def mlp(a, b, ws, e):" in source
    text = str(g).splitlines()
    for eqn_line in text[1:-1]:
        assert "# " + eqn_line.strip() in source
    assert source.count("np.tanh(x @ w).sum(axis=1)  # the user's line") == len(g.eqns)
    assert "test_backend.py:" in source
    assert "4x3 @ 3x2: 2 columns" in source  # a narrow product: loops (see test_narrow_products)
    compile(source, "<test>", "exec")  # it is valid Python
    assert tj.trace(_user_line_fn, passes=UNFUSED).source(x, w) == generate_source(g, name="_user_line_fn")


def test_variable_names_never_shadow_numpy_or_builtins():
    def f(x):
        for _ in range(400):  # enough equations to reach SSA names like "np", "if", "min"
            x = x + 1.0
        return x
    x = np.zeros(2)
    g = graph_of(f, x)
    source = generate_source(g, name="many")
    names = set(re.findall(r"\b([a-z]+):", str(g)))
    assert {"np", "if", "in", "is", "or"} <= names
    assigned = set(re.findall(r"^\s*(\w+) = ", source, re.M))
    assert not assigned & {"np", "if", "min", "in", "is", "or", "abs", "range"}
    # The generated program is plain Python too: run it without compiling (cheap for 400 loops).
    namespace = {}
    exec(compile(source, "<many>", "exec"), namespace)
    # the Numba intrinsics, in NumPy
    namespace["new_array"] = np.empty
    namespace["shape_is"] = lambda a, shape: a.shape == shape
    namespace["workspace_array"] = (
        lambda ws, start, shape, dtype: ws[start:].view(dtype)[:int(np.prod(shape))].reshape(shape))
    lowered = lower(g, name="many")
    workspace = np.empty(lowered.workspace_bytes, np.uint8)
    (shape, dtype), = lowered.output_args  # the result is passed in
    out = np.empty(shape, dtype)
    assert namespace["many"](x, workspace, out) is True  # all its outputs are passed in
    np.testing.assert_array_equal(out, tj.interpret(g, [x])[0])


def test_identical_graphs_share_one_compiled_function():
    def f(x):
        return np.exp(x) * 3.0 - x
    x = np.linspace(-1, 1, 7)
    first = compile_graph(graph_of(f, x), name="shared")
    before = backend.cache_info()
    second = compile_graph(tj.trace(f, passes=UNFUSED).graph(x), name="shared")  # a new Traced, a new graph
    after = backend.cache_info()
    assert second.fn is first.fn
    assert after["compiles"] == before["compiles"] and after["hits"] == before["hits"] + 1
    assert len(first.fn.overloads) == 1
    assert_same(second([x]), first([x]))
    other = compile_graph(graph_of(f, x), name="shared", fastmath=True)
    assert other.fn is not first.fn


def test_generated_source_is_visible_in_linecache():
    def f(x):
        return np.sqrt(x) + 1
    program = compile_graph(graph_of(f, np.ones(5)), name="visible")
    lines = program.source.splitlines()
    for n, line in enumerate(lines, 1):
        assert linecache.getline(program.filename, n).rstrip("\n") == line
    assert program.filename.startswith("<tracejit visible ")


def test_numba_errors_become_backend_errors_naming_the_generated_line():
    source = ("import numpy as np\n\n\ndef broken(a):\n    # b:f32[2] = add a a\n"
              "    b = np.empty((2,), np.float32)\n    for i0 in range(2):\n        b[i0] = a[i0] + 'text'\n"
              "    return (b,)\n")
    lowered = Lowered(source=source, fn_name="broken", n_inputs=1, in_avals=[tj.Aval((2,), np.float32)],
                      const_values=[], passthrough={}, n_returned=1, kernels=1,
                      flags={"fastmath": False, "parallel": False, "nogil": True})
    from tracejit.backend import compiler
    with pytest.raises(BackendError) as info:
        compiler._compile(lowered, compiler._signature(lowered), "0" * 64)
    message = str(info.value)
    assert "line 8" in message and "b[i0] = a[i0] + 'text'" in message
    assert "# b:f32[2] = add a a" in message and "internal error" in message


def test_parallel_true_runs_outer_loops_with_prange():
    def f(x):
        return np.exp(x) * 2, x.sum(axis=1), np.argmax(x, axis=1)
    x = np.random.default_rng(5).standard_normal((16, 8))
    g = graph_of(f, x)
    program = compile_graph(g, parallel=True)
    assert "prange(" in program.source and "from numba import prange" in program.source
    assert "for i0 in range(16):" not in program.source  # the rows are shared out in blocks
    assert "prange" not in generate_source(g) and "prange" not in generate_source(g, parallel=False)
    assert_same(program([x]), tj.interpret(g, [x]))
    with warnings.catch_warnings():  # no prange (all loops have length 1): compiled serially, no warning
        warnings.simplefilter("error")
        tiny = graph_of(lambda x: x * 3.5, np.ones((1, 1)))
        compile_graph(tiny, parallel=True)([np.ones((1, 1))])


@pytest.mark.parametrize("threads, expect_prange", [(1, False), (2, True)])
def test_parallel_none_decides_by_size_and_by_numbas_threads(monkeypatch, threads, expect_prange):
    import numba
    from tracejit.backend import fused_kernels
    monkeypatch.setattr(fused_kernels, "PARALLEL_MIN_SIZE", 64)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", threads)
    g = tj.trace(lambda x: np.tanh(x) * 2.0).graph(np.ones((8, 8)))
    small = tj.trace(lambda x: np.tanh(x) * 2.0).graph(np.ones((4, 4)))
    assert ("prange(" in generate_source(g)) == expect_prange
    assert "prange(" not in generate_source(small)
    assert "prange(" in generate_source(g, parallel=True)  # an explicit True is kept on one thread too


def test_unsupported_dtype_is_a_clear_error():
    with pytest.raises(BackendError, match="float16"):
        generate_source(graph_of(lambda x: x * 2, np.ones(2, np.float16)))


def test_log_topics_print_source_and_compile_time(capsys):
    old = tj.log._topics
    tj.set_log("source,compile")
    try:
        compile_graph(graph_of(lambda x: x * 7.25 - 1, np.ones((2, 7))), name="logged")
    finally:
        tj.log._topics = old
    err = capsys.readouterr().err
    assert "def logged(a" in err and "[tracejit:compile] logged" in err


# ----------------------------------------------------------------------------- end to end


def test_trace_compiled_equals_eager_end_to_end():
    @tj.trace
    def predict(w, x, threshold):
        scores = np.maximum(x @ w, 0.0).sum(axis=1)
        return np.argmax(x, axis=1), scores > threshold, scores.mean()

    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((3, 4)), rng.standard_normal((6, 3))
    with tj.mode("eager"):
        expected = predict(w, x, 0.5)
    got = predict(w, x, 0.5)
    assert type(got[2]) is type(expected[2])
    for a, e in zip(got, expected):
        np.testing.assert_allclose(a, e, rtol=1e-12)
        assert np.asarray(a).dtype == np.asarray(e).dtype
    assert predict.stats["kernels"] > 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_boolean_add_and_multiply_stay_logical_inside_a_fused_kernel():
    b = np.array([True, False, True])
    c = np.array([True, True, False])
    f = tj.trace(lambda b, c: ((b + c).astype(np.int64), (b * c + b).astype(np.int64)))
    expected = ((b + c).astype(np.int64), (b * c + b).astype(np.int64))
    for got, want in zip(f(b, c), expected):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- fused kernels: fast code


def _fused(fn, *args, parallel=None):
    """The default pipeline's graph (with fusion) and its compiled program."""
    g = tj.trace(fn).graph(*args)
    return g, compile_graph(g, name=fn.__name__, parallel=parallel)


def test_fused_float32_sums_add_float32_blocks_and_float64_block_sums():
    from tracejit.backend.fused_kernels import SUM_BLOCK

    def sums(x, v):
        return np.sqrt(x).sum(axis=-1), (x * 2).sum(axis=(1, 2)), v.sum(), x[:, :, :1].sum(axis=(1, 2))
    rng = np.random.default_rng(7)
    # positive terms over six decades, so the float64 sum is a fair reference for every order
    x = (rng.random((5, 3, 1000)) * 10.0 ** rng.integers(-3, 3, (5, 3, 1000))).astype(np.float32)
    v = rng.random(1 << 20).astype(np.float32)  # a sequential float32 sum is off by ~1e-4 here
    g, program = _fused(sums, x, v)
    assert f"range(0, 1000, {SUM_BLOCK})" in program.source and f"range(0, {1 << 20}, {SUM_BLOCK})" in program.source
    got = program([x, v])
    x64, v64 = x.astype(np.float64), v.astype(np.float64)
    for a, e in zip(got, [np.sqrt(x64).sum(axis=-1), (x64 * 2).sum(axis=(1, 2)), v64.sum(), x64[:, :, 0].sum(axis=1)]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-6)


def test_fused_kernels_ask_for_512_bit_vectors_in_prange_bodies_too():
    def f(x):
        return np.tanh(x) * 2, np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1)
    x = np.random.default_rng(3).standard_normal((16, 40)).astype(np.float32)
    for parallel in (False, True):
        g, program = _fused(f, x, parallel=parallel)
        lines = program.source.splitlines()
        wide = [k for k, line in enumerate(lines) if line.strip().startswith("_vm.prefer_vector_width_512()")]
        assert wide
        if parallel:  # the first statement of the loop body Numba outlines into its own function
            assert all("prange(" in lines[k - 1] for k in wide)
        assert_same(program([x]), tj.interpret(g, [x]))


def test_large_fused_outputs_are_advised_to_use_huge_pages():
    from tracejit.backend.fused_kernels import HUGE_PAGE_MIN_BYTES
    from tracejit.backend.intrinsics import advise_huge_pages

    def f(x):
        return np.sqrt(np.abs(x)) + 1
    big = np.ones(HUGE_PAGE_MIN_BYTES // 4, np.float32)
    _, program = _fused(f, big)
    assert ("advise_huge_pages(" in program.source) == sys.platform.startswith("linux")
    np.testing.assert_array_equal(program([big])[0], np.full_like(big, 2))
    _, small = _fused(f, big[:1000])
    assert "advise_huge_pages(" not in small.source
    for n in (0, 3, 1 << 22):  # no whole huge page inside, or several: only advice either way
        advise_huge_pages(np.zeros(n, np.uint8))


# ----------------------------------------------------------------------------- fused kernels: collapsed loops


def _collapsed_sizes(source):
    return [int(n) for n in re.findall(r"collapsed into one over (\d+)", source)]


def test_scalar_arguments_are_computed_in_the_kernels_that_read_them():
    """Python-scalar arguments cast to float32 form no 0-d kernel of their own: the elementwise
    chain is one kernel; a learning rate two kernels read is computed in each; a scalar the
    function returns as well is computed once more, in a 0-d kernel, for that output."""
    x = np.linspace(-2, 2, 50, dtype=np.float32)

    def chain(x, a, b):
        return np.tanh(a * x + b) * np.exp(-x * x) + 0.5 * np.sqrt(np.abs(x))

    traced = tj.trace(chain)
    np.testing.assert_allclose(run(traced, "compiled", x, 0.7, -0.2), chain(x, 0.7, -0.2), rtol=1e-5)
    assert traced.stats["kernels"] == 1
    assert [e.prim.name for e in traced.graph(x, 0.7, -0.2).eqns] == ["fused"]

    def update(w, v, gw, gv, lr):
        return w - lr * gw, v - (lr * 0.5) * gv * gv, -lr * 2

    rng = np.random.default_rng(1)
    args = (rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32),
            rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32), 0.25)
    traced = tj.trace(update)
    assert_tree_close(run(traced, "compiled", *args), update(*args))
    kernels = [e for e in traced.graph(*args).eqns if e.prim.name == "fused"]
    assert sorted(e.params["domain"] for e in kernels) == [(), (3, 4), (5,)]
    for kernel in kernels:  # each reads lr itself, none reads another's scalar
        assert [v.aval.shape for v in kernel.inputs if v.aval.shape == ()] == [()]


def test_a_scaled_gradient_is_updated_in_the_kernel_that_scales_it():
    """``all_mean`` then SGD: each gradient is scaled (``g * 0.5``), then ``w - lr * mean``. The
    broadcast ``lr`` is a scalar argument, so it starts no group of its own away from ``mean``'s
    (the groups of the other gradients between them once put it out of reach): one kernel per
    parameter, not two."""
    def update(ws, gs):
        means = [g * np.float32(0.5) for g in gs]
        return [w - np.float32(0.03) * m for w, m in zip(ws, means)]

    rng = np.random.default_rng(0)
    shapes = [(6, 5), (5,), (5, 4), (4,), (4, 3), (3,)]
    ws = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    traced = tj.trace(update)
    assert [e.prim.name for e in traced.graph(ws, gs).eqns] == ["fused"] * len(shapes)
    assert_tree_close(run(traced, "compiled", ws, gs), update(ws, gs))


def test_a_broadcast_scalar_that_a_matrix_product_reads_stays_a_view():
    def f(x, w, s):
        full = np.broadcast_to(s * 2, x.shape)  # s * 2: a scalar argument, computed once for the product
        return full @ w, np.exp(x * full)

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    s = np.float32(0.75)
    traced = tj.trace(f)
    assert [e.prim.name for e in traced.graph(x, w, s).eqns] == ["fused", "broadcast_to", "matmul", "fused"]
    for mode in ("graph", "compiled"):
        assert_tree_close(run(traced, mode, x, w, s), f(x, w, s))


def test_elementwise_kernel_over_a_short_last_axis_runs_as_one_loop():
    def sgd(w, g, lr):
        return w - lr * g
    rng = np.random.default_rng(0)
    w, g = rng.standard_normal((784, 10)).astype(np.float32), rng.standard_normal((784, 10)).astype(np.float32)
    _, program = _fused(sgd, w, g, 0.5)
    assert _collapsed_sizes(program.source) == [7840]
    assert "for i0 in range(7840):" in program.source and "range(10)" not in program.source
    assert re.search(r"a_c\d+ = reshaped\(a, \(7840,\)\)", program.source)  # a: the input w
    np.testing.assert_allclose(program([w, g, np.float64(0.5)])[0], w - np.float32(0.5) * g, rtol=1e-6)


@pytest.mark.parametrize("case", [
    # (function, input shapes, collapsed loop sizes expected)
    (lambda x, y: x * y + 1.0, [(3, 4, 5), (3, 4, 5)], [60]),
    (lambda x, y: np.exp(x) - y, [(6, 5), (5,)], []),                      # a row broadcast along the rows
    (lambda x, y: x * y, [(6, 5), (6, 1)], []),                             # a column broadcast along the columns
    (lambda x, y: x + y, [(4, 3, 5), (3, 5)], [15]),                        # constant along the first axis
    (lambda x, y: x * 2.0 + y, [(4, 1, 3, 5), (4, 1, 3, 5)], [60]),          # size-1 axes
    (lambda x, y: x.T + y, [(5, 6), (6, 5)], []),                           # a transpose
    (lambda x, y: x[:, ::2] * y, [(6, 10), (6, 5)], []),                    # a strided slice
    (lambda x, y: x[1:, :] * y, [(7, 5), (6, 5)], []),                      # a slice (offset rows)
    (lambda x, y: (x * y).sum(axis=(1, 2)), [(4, 3, 5), (4, 3, 5)], [15]),   # a sum over collapsed axes
    (lambda x, y: np.exp(x - x.max(axis=(1, 2), keepdims=True)) * y, [(4, 3, 5), (4, 3, 5)], [15]),  # both phases
    (lambda x, y: (x * y).sum(axis=2) + x.max(axis=2), [(4, 3, 5), (4, 3, 5)], []),  # one inner axis only
    (lambda x, y: (x - y.mean()) * 2.0, [(4, 6), (4, 6)], [24]),            # a 0-d value from another kernel
    (lambda x, y: x * y[..., None], [(4, 3, 5), (4, 3)], []),
])
def test_collapsed_kernels_equal_numpy(case):
    fn, shapes, sizes = case
    rng = np.random.default_rng(len(str(shapes)))
    args = [rng.standard_normal(s) for s in shapes]
    g, program = _fused(fn, *args)
    assert sorted(_collapsed_sizes(program.source)) == sorted(sizes), program.source
    assert_same(program(args), tj.interpret(g, args))
    with np.errstate(all="ignore"):
        expected = fn(*args)
    np.testing.assert_allclose(program(args)[0], expected, rtol=1e-12)


def test_collapsed_kernels_on_non_contiguous_and_0d_arguments():
    def f(x, y, s):
        return x * s + y, (x * y).sum(axis=(1, 2))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 10))[:, :, ::2]       # a strided view: copied to C order by the runtime
    y = np.asfortranarray(rng.standard_normal((4, 6, 5)))
    s = np.array(1.5)
    traced = tj.trace(f)
    got = traced(x, y, s)
    assert _collapsed_sizes(traced.source(x, y, s)) == [30]  # one kernel: the sum runs in its inner loop
    np.testing.assert_allclose(got[0], x * 1.5 + y, rtol=1e-12)
    np.testing.assert_allclose(got[1], (x * y).sum(axis=(1, 2)), rtol=1e-12)


def test_collapsed_parallel_kernel_runs_its_collapsed_loop_with_prange():
    def f(x):
        return np.sqrt(np.abs(x)) * 2.0
    x = np.random.default_rng(1).standard_normal((300, 7))
    g, program = _fused(f, x, parallel=True)
    assert "i0's 2100 iterations in blocks of" in program.source
    np.testing.assert_allclose(program([x])[0], np.sqrt(np.abs(x)) * 2.0, rtol=1e-12)


@pytest.mark.parametrize("shape", [(40960,), (3, 50000), (70001,)])
def test_parallel_loops_hand_out_blocks_to_the_threads(monkeypatch, shape):
    # Threads claim blocks of PARALLEL_BLOCK elements in turn; every element is computed once,
    # with a last partial block (70001, 50000 elements per row) and with fewer threads running
    # than the loop has workers.
    import numba
    from tracejit.backend import lowering
    monkeypatch.setattr(lowering, "PARALLEL_BLOCK", 1 << 12)
    def f(x):
        return np.tanh(x) * 2.0 + x
    x = np.random.default_rng(2).standard_normal(shape)
    g, program = _fused(f, x, parallel=True)
    source = program.source
    assert "claim_block(" in source and "prange(" in source
    expected = np.tanh(x) * 2.0 + x
    np.testing.assert_allclose(program([x])[0], expected, rtol=1e-12)
    # a kernel's inner loops count as the work of each outer iteration: 4096 columns per row
    # make a block of one row
    rows = np.random.default_rng(3).standard_normal((40, 4096))
    _, summed = _fused(lambda r: np.exp(r).sum(axis=1), rows, parallel=True)
    assert "i0's 40 iterations in blocks of 1:" in summed.source
    np.testing.assert_allclose(summed([rows])[0], np.exp(rows).sum(axis=1), rtol=1e-12)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        np.testing.assert_allclose(program([x])[0], expected, rtol=1e-12)
    finally:
        numba.set_num_threads(before)


# ----------------------------------------------------------------------------- fused kernels: short rows


def _rows_innermost(source):
    """Whether a kernel loops over the inner dimension outside and over the rows inside."""
    return re.search(r"for j\d+ in range\(\d+\):\n\s+for i0 in range\(\d+\):", source) is not None


def _log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("case", [
    # (function, input shapes, dtype, rows innermost expected)
    (lambda x: _log_softmax(x), [(128, 10)], np.float32, True),
    (lambda x: _log_softmax(x), [(40, 16)], np.float64, True),
    (lambda x: _log_softmax(x), [(40, 17)], np.float64, False),            # rows too long
    (lambda x: _log_softmax(x), [(15, 10)], np.float64, False),            # too few rows
    (lambda x: (np.exp(x).sum(axis=-1), x.max(axis=-1), x.argmax(axis=-1)), [(4, 8, 5)], np.float32, True),
    (lambda x, y: ((x * y).sum(axis=-1, keepdims=True) * x, np.tanh(x).min(axis=1)), [(64, 3), (64, 3)],
     np.float64, True),
    (lambda x: ((x > 0).any(axis=1), (x > 0).sum(axis=1), np.sqrt(np.abs(x)).mean(axis=1)), [(33, 7)],
     np.float32, True),
    (lambda x: (x.astype(np.int32).max(axis=1), x.astype(np.int64).sum(axis=1)), [(20, 6)], np.float64, True),
])
def test_short_rows_run_with_the_rows_innermost_and_equal_numpy(case):
    fn, shapes, dtype, expected_layout = case
    rng = np.random.default_rng(sum(map(sum, shapes)))
    args = [(rng.standard_normal(s) * 3).astype(dtype) for s in shapes]
    args[0].flat[::7] = -args[0].flat[::7]
    g, program = _fused(fn, *args)
    assert _rows_innermost(program.source) == expected_layout, program.source
    with np.errstate(all="ignore"):
        expected = fn(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = program(args)
    for a, interpreted, want in zip(got, tj.interpret(g, args), expected):
        assert a.dtype == want.dtype and a.shape == want.shape
        np.testing.assert_allclose(a, interpreted, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(a, want, rtol=rtol, atol=rtol)


def test_short_row_softmax_keeps_only_values_read_later_in_row_arrays():
    x = np.random.default_rng(0).standard_normal((128, 10)).astype(np.float32)
    g, program = _fused(_log_softmax, x)
    kept = re.findall(r"(\w+_rows\d+) = workspace_array", program.source)
    # the row maximum (read by the exp loop and the last loop) and the log of the row sum
    # (read by the last loop); not the sum itself, nor the values computed along with these
    assert len(kept) == 2, program.source
    np.testing.assert_allclose(program([x])[0], _log_softmax(x), rtol=1e-5, atol=1e-6)


def test_short_row_gradients_equal_finite_differences_and_eager():
    def loss(w, x, y):
        return tj.nn.cross_entropy(x @ w, y)
    rng = np.random.default_rng(3)
    w, x = rng.standard_normal((6, 10)), rng.standard_normal((32, 6))
    y = rng.integers(0, 10, 32)
    grad = tj.trace(tj.grad(loss))
    assert _rows_innermost(grad.source(w, x, y))
    compiled = run(grad, "compiled", w, x, y)
    np.testing.assert_allclose(compiled, run(grad, "eager", w, x, y), rtol=1e-12)
    eps, numeric = 1e-6, np.zeros_like(w)
    for i in np.ndindex(w.shape):
        dw = np.zeros_like(w)
        dw[i] = eps
        numeric[i] = (loss(w + dw, x, y) - loss(w - dw, x, y)) / (2 * eps)
    np.testing.assert_allclose(compiled, numeric, rtol=1e-5, atol=1e-8)


def test_cross_entropy_picks_labels_in_its_row_kernel_and_checks_them_in_every_mode():
    # The label's logit is picked by comparing columns with the label inside the row kernel,
    # and its gradient is a select in the softmax's kernel: no scatter-add, one gather (of the
    # labels themselves, which checks them). Negative labels count from the end; labels out of
    # range raise IndexError in every mode, never a loss that picked nothing.
    def loss(w, x, y):
        return tj.nn.cross_entropy(x @ w, y)
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((6, 10)).astype(np.float32), rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(-10, 10, 32)
    step = tj.trace(tj.value_and_grad(loss))
    source = step.source(w, x, y)
    assert "scatter_add" not in source and source.count(" = gather[") == 1
    forward = tj.trace(loss)
    assert forward.source(w, x, y).count("raise IndexError") == 1
    logits = (x @ w).astype(np.float64)
    rows = logits - logits.max(axis=1, keepdims=True)
    expected = np.mean(np.log(np.exp(rows).sum(axis=1)) - rows[np.arange(32), y])
    softmax = np.exp(rows) / np.exp(rows).sum(axis=1, keepdims=True)
    softmax[np.arange(32), y] -= 1.0
    expected_grad = x.astype(np.float64).T @ softmax / 32  # (softmax - one_hot) / rows, through x @ w
    for mode in ("eager", "graph", "compiled"):
        np.testing.assert_allclose(run(forward, mode, w, x, y), expected, rtol=1e-5)
        value, grad = run(step, mode, w, x, y)
        np.testing.assert_allclose(grad, run(step, "eager", w, x, y)[1], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)
        for bad in (10, -11):
            labels = y.copy()
            labels[7] = bad
            with pytest.raises(IndexError, match="out of bounds"):
                run(forward, mode, w, x, labels)
            with pytest.raises(IndexError, match="out of bounds"):
                run(step, mode, w, x, labels)


def test_programs_release_the_gil_only_when_their_calls_are_long():
    from tracejit.backend.codegen import NOGIL_MIN_ELEMENTS
    small, large = np.ones(8, np.float32), np.ones(NOGIL_MIN_ELEMENTS, np.float32)
    for x, released in ((small, False), (large, True)):
        program = compile_graph(graph_of(lambda a: a * 2, x))
        assert f"nogil={released}" in program.source.splitlines()[1]
        assert program.fn.targetoptions["nogil"] is released
        np.testing.assert_array_equal(program([x])[0], x * 2)


def test_a_kernel_that_sums_a_constant_compiles():
    # The passes can leave a reduction whose only operand is a constant inside a fused kernel
    # (here the product of a gathered value and 0); it once failed to compile (fuzz seed 26).
    def group(n, i):
        picked = n[i, [-1, -4]]
        return np.sum(picked * np.int64(0), axis=-1), picked.max(axis=None)

    n = np.arange(25, dtype=np.int64).reshape(5, 5) % 7
    i = np.array([2, 4], dtype=np.int32)
    f = tj.trace(group, tiered=False)
    with tj.mode("compiled"):
        got = f(n, i)
    assert got == group(n, i)


# ----------------------------------------------------------------------------- per row or matrix, host calls

def _per_slice_fn(a, b, x):
    """Every primitive made once per row or matrix of a batch (LAPACK through Numba's
    np.linalg, argsort), on a batch of two and on a single matrix."""
    return (ops.solve(a, b), *ops.slogdet(a), ops.cholesky(a @ a.transpose(0, 2, 1)), *ops.eigh(a[0]),
            *ops.svd(a), *ops.qr(b), ops.argsort(x), ops.argsort(a[0]))


def _per_slice_args(dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((2, 3, 3)) + 3 * np.eye(3)).astype(dtype)
    x = np.array([[2.0, np.nan, -1.0, 2.0, -0.0, 0.0], [1.0, 1.0, 1.0, -np.inf, 5.0, np.inf]], dtype)
    return a, rng.standard_normal((2, 3, 2)).astype(dtype), x


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.long)])
def test_lapack_and_argsort_run_per_row_or_matrix(dtype):
    program = check(_per_slice_fn, *_per_slice_args(dtype))
    assert "np.linalg.solve(" in program.source and "np.argsort(" in program.source


def _complex_fn(z):
    return (ops.real(z), ops.imag(z), ops.conj(z), ops.fft(z, inverse=False, norm="backward"),
            ops.fft(z, inverse=True, norm="ortho"), ops.fft(z[0], inverse=False, norm="forward"))


def _complex_arg(dtype):
    return (np.arange(12).reshape(3, 4) + 1j * np.arange(12).reshape(3, 4)[::-1]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_parts_and_the_fft_host_call(dtype):
    program = check(_complex_fn, _complex_arg(dtype))
    assert "with numba.objmode():" in program.source


def test_complex_values_are_ordered_as_numpy_orders_them():
    # Numba cannot compare complex numbers; NumPy orders them by real part, then imaginary part,
    # and a NaN in either part wins maxima and arg-maxima (the first one met) and stays in
    # running maxima. Ties in real parts and signed infinities included.
    rng = np.random.default_rng(0)
    z = np.empty((4, 6), np.complex128)
    z.real, z.imag = rng.integers(-1, 2, (4, 6)), rng.integers(-1, 2, (4, 6))
    with_nans = z.copy()
    with_nans[1, 2], with_nans[2, 4], with_nans[3, 0] = complex(np.nan, 1.0), complex(0.5, np.nan), complex(np.inf, -np.inf)

    def orders(z):
        return (z < z[::-1], z <= z[::-1], z > z[:, ::-1], z >= 0.5, np.max(z, axis=1), np.min(z, axis=0), np.max(z),
                np.argmax(z, axis=1), np.argmin(z, axis=0), np.argmax(z), np.ptp(z, axis=1),
                np.maximum.accumulate(z, axis=1), np.minimum.accumulate(z, axis=0), np.maximum(z, z[::-1]))

    f = tj.trace(orders)
    for data in (z, with_nans):
        with np.errstate(invalid="ignore"):  # NumPy warns of comparing NaNs
            assert_tree_close(run(f, "compiled", data), orders(data))


def test_llvm_passes_run_at_their_levels_only_while_a_program_compiles(monkeypatch):
    from numba.core.registry import cpu_target

    from tracejit.backend import compiler
    compiler._set_up_numba()  # Numba's own first compile (its runtime's functions) is not a program's
    codegen = cpu_target.target_context.codegen()
    levels = {"_function_pass_manager": [], "_module_pass_manager": []}

    def recording(name):
        make = getattr(type(codegen), name)

        def record(self, **options):
            levels[name].append(options.get("opt"))
            return make(self, **options)
        return record

    for name in levels:
        monkeypatch.setattr(type(codegen), name, recording(name))
    offset = float(np.random.default_rng().integers(1, 2**40))  # a program no cache holds
    f = tj.trace(lambda x: np.sin(x) * 3.0 + offset, mode="compiled", tiered=False)
    x = np.linspace(-2.0, 2.0, 7)
    np.testing.assert_allclose(f(x), np.sin(x) * 3.0 + offset, rtol=1e-15)
    assert levels["_function_pass_manager"] and set(levels["_function_pass_manager"]) == {compiler.FUNCTION_PASS_LEVEL}
    # the full pipeline at the module's level; Numba's cheap pass before it keeps the level it asks for
    assert compiler.MODULE_PASS_LEVEL in levels["_module_pass_manager"]
    assert set(levels["_module_pass_manager"]) == {compiler.MODULE_PASS_LEVEL, codegen._opt_level}
    assert not set(levels) & set(vars(codegen))  # Numba's own compiles are left as they were


def test_objects_older_than_a_compile_are_frozen_only_while_it_runs(monkeypatch):
    import gc

    from numba.core.registry import cpu_target

    from tracejit.backend import compiler
    codegen = cpu_target.target_context.codegen()
    make, frozen = type(codegen)._module_pass_manager, []

    def recording(self, **options):
        frozen.append(gc.get_freeze_count())
        return make(self, **options)

    monkeypatch.setattr(type(codegen), "_module_pass_manager", recording)
    assert gc.get_freeze_count() == 0
    offset = float(np.random.default_rng().integers(1, 2**40))  # a program no cache holds
    f = tj.trace(lambda x: np.cos(x) * 2.0 - offset, mode="compiled", tiered=False)
    x = np.linspace(-2.0, 2.0, 5)
    np.testing.assert_allclose(f(x), np.cos(x) * 2.0 - offset, rtol=1e-15)
    assert frozen and min(frozen) > 0  # while Numba compiled, the process's objects were frozen
    assert gc.get_freeze_count() == 0

    # a freeze made by someone else is neither extended nor undone
    gc.freeze()
    try:
        calls = []
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        g = tj.trace(lambda x: np.cos(x) * 3.0 - offset, mode="compiled", tiered=False)
        np.testing.assert_allclose(g(x), np.cos(x) * 3.0 - offset, rtol=1e-15)
        assert calls == [] and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()


def test_programs_compile_without_the_passes_that_find_nothing_in_generated_code():
    from numba.core.typed_passes import NopythonRewrites, PreLowerStripPhis
    from numba.core.untyped_passes import InlineClosureLikes, ReconstructSSA

    from tracejit.backend import compiler
    scale = float(np.random.default_rng().integers(1, 2**40))  # a program no cache holds: compiled here
    f = tj.trace(lambda x: np.exp(x).sum(axis=1) * scale, mode="compiled", tiered=False)
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    np.testing.assert_allclose(f(x), np.exp(x).sum(axis=1) * scale, rtol=1e-14)
    fn = next(iter(f._cache.values())).compiled.fn
    assert fn._compiler.pipeline_class is compiler._program_pipeline()
    (cres,) = fn.overloads.values()
    assert cres.metadata["pipeline_times"]  # Numba records each pass it ran, by pipeline
    ran = {name for times in cres.metadata["pipeline_times"].values() for name in times}
    skipped = (InlineClosureLikes, NopythonRewrites, ReconstructSSA, PreLowerStripPhis)
    assert not any(p._name in name for p in skipped for name in ran), ran
    assert any("nopython_type_inference" in name for name in ran)


def test_compile_parts_split_the_compile_time():
    scale = float(np.random.default_rng().integers(1, 2**40))  # a program no cache holds: compiled here
    f = tj.trace(lambda x: np.tanh(x) * scale, mode="compiled", tiered=False)
    x = np.linspace(-1.0, 1.0, 5)
    np.testing.assert_allclose(f(x), np.tanh(x) * scale, rtol=1e-14)
    parts = dict(f.stats["compile_parts"])
    parts.pop("backend import", None)  # reported by the process's first compile or load only
    assert set(parts) == {"source", "Numba set-up", "Numba front end", "lowering and LLVM", "other"}, parts
    assert all(seconds >= 0 for seconds in parts.values())
    assert parts["Numba front end"] > 0 and parts["lowering and LLVM"] > 0
    assert sum(parts.values()) == pytest.approx(f.stats["compile_seconds"], rel=0.05, abs=0.005)
    # the same program again, from the compiled-program cache in memory: only its source is made
    g = tj.trace(lambda x: np.tanh(x) * scale, mode="compiled", tiered=False)
    g(x)
    assert set(g.stats["compile_parts"]) - {"backend import"} == {"source"}
