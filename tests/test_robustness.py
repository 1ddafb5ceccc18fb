"""Robustness: concurrent calls, NaN and infinities, empty arrays, a large array, and
``check=True`` catching a wrong optimisation pass.

Every check compares graph and compiled mode with eager NumPy (``conftest.assert_tree_close``:
float64 rtol 1e-12, float32 rtol 1e-5, exact for integers and booleans; NaN matches NaN and an
infinity the same infinity).
"""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import MODES, TRACED_MODES, assert_tree_close, run
from tracejit import ops
from tracejit.backend import cache_info
from tracejit.core import Eqn, Graph
from tracejit.transforms import DEFAULT_PASSES

# --------------------------------------------------------------------------- threads


def _run_in_threads(n, work):
    """Run ``work(i)`` in ``n`` threads that start together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    errors = []

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("mode", TRACED_MODES)
def test_two_threads_calling_one_function_trace_and_compile_it_once(mode):
    # A constant no other test uses, so the compiled program is new to this process.
    @tj.trace(mode=mode)
    def step(w, x, lr):
        g = x.T @ np.tanh(x @ w - 0.3141592653)
        return w - lr * g, np.sum(g * g)

    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((6, 3)), rng.standard_normal((8, 6)), 0.1 * (i + 1)) for i in range(2)]
    compiles_before = cache_info()["compiles"]
    calls = 25

    def work(i):
        w, x, lr = data[i]
        for k in range(calls):
            x_k = x + k  # different data on every call, and in each thread
            got = step(w, x_k, lr)
            want = step.fn(w, x_k, lr)  # plain NumPy (the mode= given to trace wins over tj.mode)
            assert_tree_close(got, want, f"thread {i} call {k}")

    _run_in_threads(2, work)
    assert step.stats["traces"] == 1
    assert step.stats["retraces"] == []
    # the other thread's first call waits for that trace (a miss that finds it, not a hit)
    assert 2 * calls - 2 <= step.stats["cache_hits"] <= 2 * calls - 1
    if mode == "compiled":
        assert cache_info()["compiles"] - compiles_before <= 1  # at most one compile (0 if cached on disk)


def test_each_thread_has_its_own_mode():
    @tj.trace
    def f(x):
        return np.exp(x) + 1

    x = np.linspace(-1, 1, 5)
    seen = {}

    def work(i):
        name = ("eager", "graph")[i]
        with tj.mode(name):
            for _ in range(20):
                assert tj.get_mode() == name
                assert_tree_close(f(x), np.exp(x) + 1)
        seen[i] = name

    _run_in_threads(2, work)
    assert seen == {0: "eager", 1: "graph"}
    assert f.stats["traces"] == 1  # only the graph-mode thread traced


# --------------------------------------------------------------------------- NaN and infinities

SPECIALS = np.array([[np.nan, 1.5, -np.inf, 0.0],
                     [-0.0, np.inf, -2.5, np.nan],
                     [3.0, -1.0, 0.5, 2.0]])

NAN_INF_PROGRAMS = {
    "exp": lambda x: np.exp(x),
    "log": lambda x: np.log(x),  # log(-1) is nan, log(0) is -inf
    "sqrt": lambda x: np.sqrt(x),
    "tanh": lambda x: np.tanh(x),
    "max": lambda x: (np.max(x), np.max(x, axis=0), np.max(x, axis=1, keepdims=True)),
    "min": lambda x: (np.min(x), np.min(x, axis=1)),
    "sum": lambda x: (np.sum(x), np.sum(x, axis=0), np.sum(x[2])),
    "mean": lambda x: (np.mean(x, axis=1), np.mean(x[2])),
    "softmax": lambda x: (tj.nn.softmax(x, axis=-1), tj.nn.softmax(x, axis=0)),
    "logsumexp": lambda x: tj.nn.logsumexp(x, axis=1),
    "comparisons": lambda x: (x > 0, x <= 1.5, x == x, x != x, x == np.inf, np.isnan(x), np.isinf(x),
                              np.isfinite(x)),
    "where": lambda x: (np.where(x > 0, x, -1.0), np.where(np.isnan(x), 0.0, x), tj.nn.relu(x)),
    "maximum": lambda x: (np.maximum(x, 0.0), np.minimum(x, 1.0), np.clip(x, -1, 1)),
    "arithmetic": lambda x: (x * 0, x - x, x / 0.0, 1.0 / x, x + np.inf, -x, abs(x)),
    "argmax": lambda x: (np.argmax(x, axis=1), np.argmin(x, axis=0)),
    "matmul": lambda x: x @ np.ones((4, 2)),
    "sigmoid": lambda x: tj.nn.sigmoid(x),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(NAN_INF_PROGRAMS))
def test_nan_and_inf_flow_through_as_in_numpy(name, dtype):
    fn = tj.trace(NAN_INF_PROGRAMS[name])
    x = SPECIALS.astype(dtype)
    with np.errstate(all="ignore"):
        want = NAN_INF_PROGRAMS[name](x.copy())
        for mode in MODES:
            assert_tree_close(run(fn, mode, x.copy()), want, f"{name} in {mode} mode")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_of_rows_with_infinities_as_the_plain_formula(dtype):
    """Rows of -inf, rows holding +inf and rows holding NaN give what log(sum(exp(x))) gives
    (the shift by the row's maximum is a fix-up only), in every mode, the compiled one
    with its exp of non-positive arguments; so does the gradient of every mode alike."""
    x = np.array([[-np.inf] * 5,
                  [np.inf, 1.0, -np.inf, 2.0, 0.0],
                  [np.nan, 1.0, 2.0, -np.inf, 3.0],
                  [-np.inf, -1.0, -2.0, -np.inf, -3.0],
                  [80.0, 81.0, -300.0, 79.0, 1.0],
                  [-200.0, -201.0, -150.0, -199.0, -202.0]], dtype)
    with np.errstate(all="ignore"):
        want = np.logaddexp.reduce(x.astype(np.float64), axis=1)
    assert np.isneginf(want[0]) and np.isposinf(want[1]) and np.isnan(want[2])
    labels = np.array([1, 2, 0, 1, 1, 2])
    lse = tj.trace(lambda x: tj.nn.logsumexp(x, axis=1))
    loss_grad = tj.trace(tj.grad(lambda x: tj.nn.logsumexp(x, axis=1).sum()))
    xent = tj.trace(lambda x, y: tj.nn.cross_entropy(x, y))
    with np.errstate(all="ignore"):
        eager_grad = tj.grad(lambda x: tj.nn.logsumexp(x, axis=1).sum())(x)
        for mode in MODES:
            got = run(lse, mode, x)
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=mode)
            np.testing.assert_allclose(run(xent, mode, x[3:], labels[3:]),
                                       np.mean(want[3:] - x[3:][np.arange(3), labels[3:]]), rtol=2e-5, err_msg=mode)
            assert_tree_close(run(loss_grad, mode, x), eager_grad, f"gradient in {mode} mode")
    finite = np.isfinite(want)
    softmax = np.exp(x[finite].astype(np.float64) - want[finite, None].astype(np.float64))
    np.testing.assert_allclose(eager_grad[finite], softmax, rtol=1e-5, atol=1e-30)


# --------------------------------------------------------------------------- empty arrays

EMPTY_PROGRAMS = {
    "elementwise": (lambda x: (np.exp(x) * 2 + 1, x > 0, np.where(x > 0, x, 0.0)), [(0,), (0, 3), (3, 0)]),
    "sum": (lambda x: (np.sum(x), np.sum(x, axis=0), np.sum(x, axis=-1, keepdims=True)), [(0,), (0, 3), (3, 0)]),
    "reduce_nonempty_axis": (lambda x: (np.max(x, axis=1), np.mean(x, axis=1), np.argmax(x, axis=1)), [(0, 3)]),
    "matmul": (lambda x: (x @ np.ones((3, 2)), x.T @ x), [(0, 3)]),
    "matmul_empty_inner": (lambda x: (x @ np.ones((0, 2)), np.ones((2, 0)) @ x.T), [(3, 0)]),
    "shapes": (lambda x: (x.reshape(-1, 3), x.T, np.concatenate([x, x], axis=0), x[1:1], x[::-1]), [(0, 3)]),
    "indexing": (lambda x: (np.take(x, np.zeros(0, np.int64), axis=1), x[:, [0, 2]]), [(0, 3)]),
    "grad": (lambda x: tj.grad(lambda v: np.sum(v * 2.0))(x), [(0,), (0, 3)]),
}


@pytest.mark.parametrize("name", sorted(EMPTY_PROGRAMS))
def test_empty_arrays_work_in_every_mode(name):
    fn, shapes = EMPTY_PROGRAMS[name]
    for shape in shapes:
        x = np.zeros(shape)
        want = fn(x)
        traced = tj.trace(fn)
        for mode in MODES:
            assert_tree_close(run(traced, mode, x), want, f"{name}{shape} in {mode} mode")


@pytest.mark.parametrize("mode", MODES)
def test_sum_over_nothing_is_zero(mode):
    f = tj.trace(lambda x: (np.sum(x), np.sum(x, axis=0)))
    total, columns = run(f, mode, np.zeros((0, 3), np.float32))
    assert total == 0 and type(total) is np.float32
    assert_tree_close(columns, np.zeros(3, np.float32))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axis, shape", [(None, (0,)), (0, (0, 3))])
def test_mean_over_nothing_is_nan_and_warns_like_numpy(mode, axis, shape):
    f = tj.trace(lambda x: np.mean(x, axis=axis))
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"), np.errstate(invalid="ignore"):
        got = run(f, mode, np.zeros(shape))
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore")
        want = np.mean(np.zeros(shape), axis=axis)
    assert_tree_close(got, want)
    assert np.all(np.isnan(got))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", ["max", "min", "argmax", "softmax"])
def test_max_over_nothing_raises_like_numpy(mode, reduction):
    fn = {"max": np.max, "min": np.min, "argmax": np.argmax, "softmax": lambda x: tj.nn.softmax(x, axis=0)}[reduction]
    x = np.zeros((0, 3))
    with pytest.raises(ValueError) as numpy_error:
        fn(x)
    with pytest.raises(ValueError) as error:
        run(tj.trace(fn), mode, x)
    # NumPy's own sentence ("zero-size array to reduction operation maximum which has no identity")
    assert str(numpy_error.value) in str(error.value)


# --------------------------------------------------------------------------- byte order


@pytest.mark.parametrize("mode", TRACED_MODES)
def test_arrays_in_the_other_byte_order_give_numpys_results(mode):
    # Big-endian data (from a file, say) is converted to the native order the program reads.
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    swapped = x.astype(x.dtype.newbyteorder(">" if x.dtype.byteorder != ">" else "<"))
    fn = tj.trace(lambda a, b: (np.tanh(a) * b, a.sum(axis=1)))
    want = (np.tanh(swapped) * x, swapped.sum(axis=1))
    assert_tree_close(run(fn, mode, swapped, x), want, f"{mode} mode")
    assert_tree_close(run(fn, mode, x, x), (np.tanh(x) * x, x.sum(axis=1)), f"{mode} mode, native")


def _other_order(x):
    return x.astype(x.dtype.newbyteorder(">" if x.dtype.byteorder != ">" else "<"))


FAST_PATH_PROGRAMS = {
    # name: (function, arguments): each is called three times, past the first call's slow path
    "add, int32": (lambda a: a + 1, lambda: (np.arange(6, dtype=np.int32),)),
    "sum, float64": (np.sum, lambda: (np.arange(6.0),)),
    "matmul, float32": (lambda a, b: a @ b, lambda: (np.arange(4, dtype=np.float32).reshape(2, 2),) * 2),
    "dict argument": (lambda p, s: p["w"] * s, lambda: ({"w": np.arange(6, dtype=np.int32)}, 2)),
    # traced in the other byte order: a scatter into the argument, an equation mixing it with a
    # native value (refused, or passed to Numba as an object, when the trace kept the byte order)
    "scatter into it": (lambda a, i, u: _scatter(a, i, u), lambda: (np.arange(5.0), np.array([0, 3]), np.ones(2))),
}


def _scatter(a, i, u):
    b = a.copy()
    b[i] += u
    return b, a == a[::-1]


@pytest.mark.parametrize("mode", TRACED_MODES)
@pytest.mark.parametrize("name", sorted(FAST_PATH_PROGRAMS))
def test_other_byte_order_stays_right_on_every_call(name, mode):
    # The calls after the first take the fast path, which passes arrays on unconverted.
    fn, make = FAST_PATH_PROGRAMS[name]
    args = tuple({k: _other_order(v) for k, v in a.items()} if isinstance(a, dict) else
                 _other_order(a) if isinstance(a, np.ndarray) else a for a in make())
    traced = tj.trace(fn)
    for call in range(3):  # results come in native byte order (NumPy keeps the argument's in a.copy())
        assert_tree_close(run(traced, mode, *args), _native(fn(*args)), f"{mode} mode, call {call}")
    # native arrays first (the shortest path for one layout), then the other byte order
    traced = tj.trace(fn)
    for call, a in enumerate([make(), make(), args, args, make()]):
        assert_tree_close(run(traced, mode, *a), _native(fn(*a)), f"{mode} mode, mixed call {call}")


def _native(tree):
    return tj.pytree.tree_map(lambda v: v.astype(v.dtype.newbyteorder("=")) if isinstance(v, np.ndarray) else v, tree)


# --------------------------------------------------------------------------- Python ints at the limits

PYTHON_INT_PROGRAMS = {
    "add": lambda a, s: a + s,
    "multiply": lambda a, s: s * a,
    "maximum": lambda a, s: np.maximum(a, s),
    "in place": lambda a, s: a.__iadd__(s) * 1,
    "less": lambda a, s: a < s,
    "equal": lambda a, s: s == a,
    "where": lambda a, s: np.where(a > 0, a, s),
}


def _numpy_or_error(fn, *args):
    try:
        return fn(*args)
    except OverflowError as e:
        return e


@pytest.mark.parametrize("mode", TRACED_MODES)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32])
@pytest.mark.parametrize("name", sorted(PYTHON_INT_PROGRAMS))
def test_python_int_arguments_beyond_the_dtype_raise_or_compare_like_numpy(name, dtype, mode):
    # NumPy 2 refuses a Python int its integer operand's dtype cannot hold (OverflowError),
    # except in comparisons, which it makes exactly. A traced int must not wrap instead.
    fn, info = PYTHON_INT_PROGRAMS[name], np.iinfo(dtype)
    traced = tj.trace(fn)
    for s in [1, info.max, info.min, info.max + 1, info.min - 1, 2 ** 40, 1, -(2 ** 40)]:
        a = np.array([0, 1, info.max], dtype)
        want = _numpy_or_error(fn, a.copy(), s)
        if isinstance(want, OverflowError):
            with pytest.raises(OverflowError, match=f"Python integer {s} out of bounds for {np.dtype(dtype)}"):
                run(traced, mode, a.copy(), s)
        else:
            assert_tree_close(run(traced, mode, a.copy(), s), want, f"{mode} mode, s = {s}")


@pytest.mark.parametrize("mode", TRACED_MODES)
def test_literal_ints_beyond_the_dtype_compare_like_numpy(mode):
    a = np.array([-100, 0, 120], np.int8)
    fn = tj.trace(lambda a: (a < 300, a >= -129, a == 1000, a != -(2 ** 40)))
    assert_tree_close(run(fn, mode, a), (a < 300, a >= -129, a == 1000, a != -(2 ** 40)), f"{mode} mode")


# --------------------------------------------------------------------------- complex sums


@pytest.mark.parametrize("mode", TRACED_MODES)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("reduction", ["sum", "mean", "sum axis 1", "fused"])
def test_complex_sums_compile_and_match_numpy(reduction, dtype, mode):
    fn = {"sum": np.sum, "mean": np.mean, "sum axis 1": lambda a: a.sum(axis=1),
          "fused": lambda a: (a * 2 + 1j).sum(axis=0)}[reduction]
    a = (np.arange(6) + 1j * np.arange(6)[::-1]).astype(dtype).reshape(2, 3)
    assert_tree_close(run(tj.trace(fn), mode, a), fn(a), f"{mode} mode")


# --------------------------------------------------------------------------- a large array


def test_large_float32_array_in_every_mode():
    """2**24 float32 elements (64 MB) through an elementwise chain and a sum, once per mode."""
    x = np.random.default_rng(1).random(2 ** 24, dtype=np.float32)

    def chain(x):
        y = np.tanh(x * 1.5 - 0.5) * np.exp(-x) + np.sqrt(x + 1)
        return y, np.sum(y)

    want = chain(x)
    fn = tj.trace(chain)
    for mode in TRACED_MODES:
        got = run(fn, mode, x)
        assert_tree_close(got, want, f"{mode} mode")
    assert fn.stats["traces"] == 1


# --------------------------------------------------------------------------- check=True


def exp_to_sin(graph: Graph) -> Graph:
    """A deliberately wrong pass: every exp becomes sin."""
    eqns = [Eqn(ops.sin, list(e.inputs), list(e.outputs), e.params, e.source) if e.prim is ops.exp else e
            for e in graph.eqns]
    return Graph(list(graph.inputs), eqns, list(graph.outputs), input_names=graph.input_names)


def model(params, x):
    hidden = np.tanh(x @ params["W"])
    return {"logits": hidden + params["b"], "scale": np.exp(hidden).sum(axis=1)}


PARAMS = {"W": np.linspace(-1, 1, 12).reshape(4, 3), "b": np.array([0.1, -0.2, 0.3])}
X = np.linspace(-2, 2, 8).reshape(2, 4)


@pytest.mark.parametrize("mode", TRACED_MODES)
def test_check_catches_a_wrong_pass_and_names_the_output(mode):
    wrong = tj.trace(model, passes=[exp_to_sin] + list(DEFAULT_PASSES))
    with tj.mode(mode):  # the pass really is wrong, silently without check
        logits_ok = wrong(PARAMS, X)["logits"]
        assert not np.allclose(wrong(PARAMS, X)["scale"], model(PARAMS, X)["scale"])
    assert_tree_close(logits_ok, model(PARAMS, X)["logits"])

    checked = tj.trace(model, passes=[exp_to_sin] + list(DEFAULT_PASSES), check=True)
    with pytest.raises(tj.MismatchError) as error:
        run(checked, mode, PARAMS, X)
    message = str(error.value)
    assert "result['scale']" in message, message
    assert "logits" not in message


@pytest.mark.parametrize("mode", TRACED_MODES)
def test_check_passes_a_correct_pipeline(mode):
    checked = tj.trace(model, check=True)
    assert_tree_close(run(checked, mode, PARAMS, X), model(PARAMS, X))
