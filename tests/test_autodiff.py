"""Autodiff: grad / value_and_grad / vjp in every mode, second order, and the MNIST step.

Per-primitive finite-difference checks live with the op-spec table (test_grad_ops.py); this
file covers the API, nesting, the vjp_graph transform and the classic training step.
"""
import inspect
import os
import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import run
from tracejit.transforms import DEFAULT_PASSES, run_passes, vjp_graph

MODES = ["eager", "graph", "compiled"]


def run_in(mode, fn, *args):
    with tj.mode(mode):
        return fn(*args)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of scalar ``f`` at float64 ``x``."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        g[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return g


def complex_numeric_grad(f, z, eps=1e-6):
    """Central differences of real scalar ``f`` at complex128 ``z``, in the convention of
    ``tj.grad`` (JAX's and autograd's): dL/dx - 1j dL/dy for each element z = x + 1j y."""
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        for unit, sign in ((1.0, 1.0), (1j, -1.0)):
            step = np.zeros_like(z)
            step[i] = eps * unit
            g[i] += sign * unit * (f(z + step) - f(z - step)) / (2 * eps)
    return g


def mlp_loss(params, x, y):
    h = np.tanh(x @ params["W1"] + params["b1"])
    return tj.nn.cross_entropy(h @ params["W2"] + params["b2"], y)


@pytest.fixture(scope="module")
def mlp():
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(5, 4)) * 0.5, "b1": rng.normal(size=4) * 0.1,
              "W2": rng.normal(size=(4, 3)) * 0.5, "b2": np.zeros(3)}
    x = rng.normal(size=(6, 5))
    y = rng.integers(0, 3, size=6)
    return params, x, y


# ----------------------------------------------------------------------------- API


def test_grad_matches_finite_differences_in_every_mode(mlp):
    params, x, y = mlp
    step = tj.trace(tj.grad(mlp_loss))
    expected = {k: numeric_grad(lambda v: mlp_loss({**params, k: v}, x, y), params[k]) for k in params}
    for mode in MODES:
        got = run_in(mode, step, params, x, y)
        assert set(got) == set(params)
        for k in params:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-9, err_msg=f"{mode} {k}")


def test_value_and_grad_argnums_tuple_and_has_aux():
    def f(a, b, scale):
        value = np.sum(np.sin(a) * b) * scale
        return value, {"double": value * 2}

    a, b = np.linspace(0, 1, 4), np.linspace(1, 2, 4)
    (value, aux), (ga, gb) = tj.value_and_grad(f, argnums=(0, 1), has_aux=True)(a, b, 3.0)
    np.testing.assert_allclose(value, 3 * np.sum(np.sin(a) * b), rtol=1e-12)
    np.testing.assert_allclose(aux["double"], 2 * value, rtol=1e-12)
    np.testing.assert_allclose(ga, 3 * np.cos(a) * b, rtol=1e-12)
    np.testing.assert_allclose(gb, 3 * np.sin(a), rtol=1e-12)
    g, aux = tj.grad(f, argnums=1, has_aux=True)(a, b, 3.0)
    np.testing.assert_allclose(g, 3 * np.sin(a), rtol=1e-12)


def test_vjp_of_non_scalar_function():
    x = np.linspace(-1, 1, 5)
    out, vjp_fn = tj.vjp(lambda v: np.exp(v) * 2, x)
    np.testing.assert_allclose(out, np.exp(x) * 2)
    (ct,) = vjp_fn(np.arange(5.0))
    np.testing.assert_allclose(ct, np.arange(5.0) * np.exp(x) * 2, rtol=1e-12)


def test_unused_input_gets_zero_gradient_and_integer_input_is_refused():
    g = tj.grad(lambda a, b: np.sum(a * 2), argnums=(0, 1))(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(g[1], np.zeros(2))
    with pytest.raises(TypeError, match="int64.*only defined for float inputs"):
        tj.grad(lambda a: np.sum(a * 2.0))(np.arange(3))


def test_non_scalar_output_is_refused_with_advice():
    with pytest.raises(TypeError, match="one float scalar.*tj.vjp"):
        tj.grad(lambda a: a * 2)(np.ones(3))


def _per_sample_loss(w):
    return w * 2


def test_non_scalar_output_error_names_the_function_and_the_calling_line():
    call_line = inspect.currentframe().f_lineno + 3
    for mode in ("eager", "compiled"):
        with pytest.raises(TypeError) as info, tj.mode(mode):
            tj.trace(lambda w: tj.grad(_per_sample_loss)(w))(np.ones(3))
        message = str(info.value)
        assert f"from _per_sample_loss ({__file__}, line {_per_sample_loss.__code__.co_firstlineno})" in message
        assert f'File "{__file__}", line {call_line}' in message, message


def test_non_differentiable_ops_give_zero_gradient():
    x = np.array([0.3, -1.2, 2.5])
    g = tj.grad(lambda v: np.sum(np.floor(v) * v) + np.sum(np.argmax(v) * 1.0))(x)
    np.testing.assert_allclose(g, np.floor(x))


@pytest.mark.parametrize("mode", MODES)
def test_cast_gradient_is_cast_back(mode):
    x = np.linspace(-1, 1, 6)
    w = np.linspace(0.5, 1.5, 6).astype(np.float32)
    g = run_in(mode, tj.trace(tj.grad(lambda v: np.sum(v.astype(np.float32) * w).astype(np.float64))), x)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, w.astype(np.float64))
    gi = run_in(mode, tj.trace(tj.grad(lambda v: np.sum(v.astype(np.int32) * 1.0 + v))), x)
    np.testing.assert_array_equal(gi, np.ones(6))  # no gradient through an integer cast


def test_stop_gradient():
    x = np.array([1.0, 2.0])
    g = tj.grad(lambda v: np.sum(v * tj.stop_gradient(v)))(x)
    np.testing.assert_allclose(g, x)


def test_python_float_argument_gradient():
    g = tj.grad(lambda s: s * s * 3.0)(2.0)
    np.testing.assert_allclose(g, 12.0)


# ----------------------------------------------------------------------------- second order


@pytest.mark.parametrize("fn, second", [
    (np.sin, lambda x: -np.sin(x)),
    (np.exp, np.exp),
    (np.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    (np.log, lambda x: -1 / x ** 2),
    (lambda x: x ** 3, lambda x: 6 * x),
    (lambda x: np.sqrt(x), lambda x: -0.25 * x ** -1.5),
    (lambda x: 1 / x, lambda x: 2 / x ** 3),
    (lambda x: np.arcsin(x / 3), lambda x: x / 27 / (1 - x ** 2 / 9) ** 1.5),
    (lambda x: np.arccos(x / 3), lambda x: -x / 27 / (1 - x ** 2 / 9) ** 1.5),
    (np.arctan, lambda x: -2 * x / (1 + x ** 2) ** 2),
    (lambda x: np.arctan2(x, 1.5), lambda x: -3 * x / (2.25 + x ** 2) ** 2),
    (lambda x: np.arctan2(1.5, x), lambda x: 3 * x / (2.25 + x ** 2) ** 2),
    (np.arcsinh, lambda x: -x / (1 + x ** 2) ** 1.5),
    (lambda x: np.arccosh(x + 1), lambda x: -(x + 1) / ((x + 1) ** 2 - 1) ** 1.5),
    (lambda x: np.arctanh(x / 3), lambda x: 2 * x / 27 / (1 - x ** 2 / 9) ** 2),
    (lambda x: np.copysign(x, -1.0) ** 3, lambda x: -6 * x),
    (lambda x: np.fmod(x ** 2, -1.5), lambda x: np.full_like(x, 2.0)),
    (lambda x: np.fmod(1.7, x) * x, lambda x: -2 * np.trunc(1.7 / x)),
    (lambda x: np.round(x ** 2, 1) * x, lambda x: np.zeros_like(x)),
])
@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_grad_of_grad_elementwise(fn, second, mode):
    x = np.array([0.5, 1.3, 2.0])
    first = tj.grad(lambda v: np.sum(fn(v)))
    hess_diag = tj.trace(tj.grad(lambda v: np.sum(first(v))))
    np.testing.assert_allclose(run_in(mode, hess_diag, x), second(x), rtol=1e-10)


def test_hessian_vector_product_of_mlp_loss(mlp):
    params, x, y = mlp
    flat_keys = sorted(params)
    v = {k: np.random.default_rng(1).normal(size=params[k].shape) for k in flat_keys}

    def hvp(p, x, y, v):
        # d/dt grad(p + t v) at t = 0, as grad of <grad, v>.
        def inner(p):
            g = tj.grad(mlp_loss)(p, x, y)
            return sum(np.sum(g[k] * v[k]) for k in g)
        return tj.grad(inner)(p)

    eps = 1e-5
    plus = tj.grad(mlp_loss)({k: params[k] + eps * v[k] for k in params}, x, y)
    minus = tj.grad(mlp_loss)({k: params[k] - eps * v[k] for k in params}, x, y)
    expected = {k: (plus[k] - minus[k]) / (2 * eps) for k in params}
    for mode in ["eager", "compiled"]:
        got = run_in(mode, tj.trace(hvp), params, x, y, v)
        for k in params:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-8, err_msg=f"{mode} {k}")


# ----------------------------------------------------------------------------- graph transform


def test_vjp_graph_appends_backward_pass():
    f = tj.trace(lambda x, w: np.tanh(x @ w).sum(axis=1), mode="graph")
    x, w = np.linspace(0, 1, 12).reshape(4, 3), np.linspace(-1, 1, 6).reshape(3, 2)
    g = vjp_graph(f.graph(x, w))
    tj.verify(g)
    optimised = run_passes(g, DEFAULT_PASSES, check=True)
    ct = np.linspace(1, 2, 4)
    for graph in (g, optimised):
        out, gx, gw = tj.interpret(graph, [x, w, ct])
        np.testing.assert_allclose(out, np.tanh(x @ w).sum(axis=1), rtol=1e-12)
        d = (1 - np.tanh(x @ w) ** 2) * ct[:, None]
        np.testing.assert_allclose(gx, d @ w.T, rtol=1e-12)
        np.testing.assert_allclose(gw, x.T @ d, rtol=1e-12)
    assert len(g.inputs) == 3 and len(g.outputs) == 3


def test_gradient_graph_is_ordinary_ir_that_prints():
    step = tj.trace(tj.grad(lambda w, x: np.sum(np.tanh(x @ w))))
    text = str(step.graph(np.ones((3, 2)), np.ones((4, 3))))
    assert "matmul" in text and "tanh" in text and "transpose" in text


# ----------------------------------------------------------------------------- MNIST step


def softmax_regression_loss(params, x, y):
    logits = x @ params["W"] + params["b"]
    return tj.nn.cross_entropy(logits, y)


def hand_written_gradient(params, x, y):
    """The classic tutorial's gradient of mean softmax cross-entropy."""
    z = x @ params["W"] + params["b"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    d = p / len(y)
    return {"W": x.T @ d, "b": d.sum(axis=0)}


@tj.trace
def sgd_step(params, x, y, lr):
    loss, g = tj.value_and_grad(softmax_regression_loss)(params, x, y)
    return {k: params[k] - lr * g[k] for k in params}, loss


def _mnist_like(n, seed=0):
    """Real MNIST when it is on disk ($TRACEJIT_DATA or ../shared/data; never downloaded),
    else well-separated digit-like random data."""
    root = os.environ.get("TRACEJIT_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    try:
        x, y, _, _ = tj.datasets.mnist(os.path.join(root, "mnist"), download=False, progress=False)
        return x[:n], y[:n]
    except tj.datasets.DatasetError:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 10, size=n)
        centres = rng.random((10, 784)).astype(np.float32)
        x = np.clip(centres[y] + 0.1 * rng.standard_normal((n, 784)).astype(np.float32), 0, 1)
        return x.astype(np.float32), y.astype(np.int64)


def test_mnist_gradient_matches_hand_written():
    x, y = _mnist_like(128)
    rng = np.random.default_rng(0)
    params = {"W": (rng.standard_normal((784, 10)) * 0.01).astype(np.float32), "b": np.zeros(10, np.float32)}
    expected = hand_written_gradient(params, x, y)
    grad_fn = tj.trace(tj.grad(softmax_regression_loss))
    for mode in MODES:
        got = run_in(mode, grad_fn, params, x, y)
        for k in params:
            assert got[k].dtype == np.float32
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-7, err_msg=f"{mode} {k}")


def test_mnist_200_steps_same_losses_eager_and_compiled_and_one_trace():
    x_all, y_all = _mnist_like(128 * 200)
    batches = [(x_all[i * 128:(i + 1) * 128], y_all[i * 128:(i + 1) * 128]) for i in range(200)]
    init = {"W": np.zeros((784, 10), np.float32), "b": np.zeros(10, np.float32)}
    losses = {}
    for mode in ["eager", "compiled"]:
        params, seq = dict(init), []
        with tj.mode(mode):
            for step in range(200):
                xb, yb = batches[step]
                params, loss = sgd_step(params, xb, yb, 0.5)
                seq.append(float(loss))
        losses[mode] = np.array(seq)
    np.testing.assert_allclose(losses["compiled"], losses["eager"], rtol=1e-3)
    assert losses["eager"][-1] < losses["eager"][0] * 0.5  # it actually learns
    assert sgd_step.stats["traces"] == 1 and sgd_step.stats["retraces"] == []
    assert sgd_step.stats["cache_hits"] >= 199


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_gradients_of_sinh_cosh_log2_log10_exp2_are_exact_where_numpy_is(mode):
    """The gradients use the primitives too: cosh' = sinh keeps full precision at tiny x (where
    (exp(x) - exp(-x)) / 2 loses it), sinh' = cosh reaches the float32 overflow threshold."""
    tiny = np.array([1e-8, 1e-300, -5e-324, 3e-12])
    with tj.mode(mode):
        np.testing.assert_allclose(tj.trace(tj.grad(lambda x: np.cosh(x).sum()))(tiny), np.sinh(tiny), rtol=1e-15,
                                   atol=0)
        big = np.float32([89.0, -88.5])
        np.testing.assert_allclose(tj.trace(tj.grad(lambda x: np.sinh(x).sum()))(big), np.cosh(big), rtol=1e-6)
        powers = np.array([0.001, 1.0, 1024.0])
        np.testing.assert_allclose(tj.trace(tj.grad(lambda x: (np.log2(x) + np.log10(x)).sum()))(powers),
                                   1 / (powers * np.log(2)) + 1 / (powers * np.log(10)), rtol=1e-14)
        k = np.array([-3.0, 0.0, 10.0])
        np.testing.assert_allclose(tj.trace(tj.grad(lambda x: np.exp2(x).sum()))(k), np.exp2(k) * np.log(2),
                                   rtol=1e-15)


EAGER_FAST_PATH_CASES = {
    # broadcast operands (a bias row, a column, a scalar), a value used twice, and values that
    # need no gradient (stop_gradient, np.isfinite, np.where on constants)
    "bias_and_column": lambda a, b, c: ((a * b + c) ** 2 / (1.5 + np.abs(b))).sum(),
    "where_max": lambda a, b, c: np.where(a > c, np.maximum(a, b), np.minimum(c, 0.3) * a).mean(),
    "reuse": lambda a, b, c: (a * a + a * c + c * c + (a - c) * b).sum(),
    "constants": lambda a, b, c: (a * np.where(np.isfinite(tj.stop_gradient(c)), tj.stop_gradient(c), 0)
                                  + np.square(tj.stop_gradient(a)) * b).sum(),
    "softmax_xent": lambda a, b, c: tj.nn.cross_entropy(a * b + c, np.array([0, 2, 1, 4])),
}


@pytest.mark.parametrize("name", sorted(EAGER_FAST_PATH_CASES))
def test_eager_fast_paths_match_the_traced_graph_bit_for_bit(name):
    """Eager autodiff broadcasts with NumPy and runs NumPy on values that need no gradient,
    where a traced graph has explicit broadcast_to equations and records every operation: the
    values and gradients are the same bits (the graph as traced, run by the NumPy interpreter)."""
    fn = EAGER_FAST_PATH_CASES[name]
    rng = np.random.default_rng(3)
    args = (rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32),
            rng.standard_normal((4, 1)).astype(np.float32))
    step = tj.value_and_grad(fn, argnums=(0, 1, 2))
    eager_value, eager_grads = tj.trace(step, mode="eager")(*args)
    graph_value, graph_grads = tj.trace(step, mode="graph", passes=[])(*args)
    assert np.asarray(eager_value).tobytes() == np.asarray(graph_value).tobytes()
    for e, g, a in zip(eager_grads, graph_grads, args):
        assert e.shape == a.shape and e.dtype == a.dtype
        assert e.tobytes() == g.tobytes()


def _count_calls(monkeypatch, gradient):
    calls = []
    backward = gradient.backward
    monkeypatch.setattr(gradient, "backward", lambda *a: calls.append(1) or backward(*a))
    return calls


@pytest.mark.parametrize("shape,dtype", [((6, 5), np.float32), ((6, 5), np.float64), ((2, 3, 4), np.float64)])
def test_eager_cross_entropy_is_one_node_with_the_compositions_bits(monkeypatch, shape, dtype):
    """Eager grad records the cross-entropy of integer labels as one node with its gradient
    written out in NumPy (``EagerGradient``); it gives the bits of the composition's rules,
    which traced code uses, and matches finite differences. Logits of +-1000 and a row of
    -inf (whose gradient is nan, as NumPy's composition gives) are included."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal(shape).astype(dtype)
    logits.reshape(-1, shape[-1])[0, :2] = [1000, -1000]
    labels = rng.integers(-shape[-1], shape[-1], shape[:-1])  # negative labels count from the end
    calls = _count_calls(monkeypatch, tj.nn._labels_cross_entropy)
    step = tj.value_and_grad(lambda z: tj.nn.cross_entropy(z * 2.0, labels))
    for case in (logits, np.where(np.arange(shape[-1]) < 6, logits, -np.inf).astype(dtype)):
        eager = tj.trace(step, mode="eager")(case)
        assert len(calls) == 1
        graph = tj.trace(step, mode="graph", passes=[])(case)
        assert len(calls) == 1  # traced code runs the composition
        assert np.asarray(eager[0]).tobytes() == np.asarray(graph[0]).tobytes()
        np.testing.assert_array_equal(eager[1], graph[1])
        assert eager[1].dtype == dtype
        calls.clear()
    if dtype == np.float64:
        loss = lambda z: float(tj.nn.cross_entropy(z * 2.0, labels))  # noqa: E731
        # (the loss is ~330 from the +-1000 row: central differences lose ~1e-8 to rounding)
        np.testing.assert_allclose(step(logits)[1], numeric_grad(loss, logits), rtol=1e-6, atol=1e-7)


def test_eager_cross_entropy_backward_scales_traces_and_nests():
    """The one-node gradient with a cotangent other than 1, called from traced code (the
    cotangent is then a tracer and the rule runs as NumPy code on it), and under grad of grad
    (where the composition runs): the same values as the graph in each case."""
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    out, vjp_fn = tj.vjp(lambda z: tj.nn.cross_entropy(z, labels), logits)
    (eager,) = vjp_fn(np.array(2.5))
    (traced,) = tj.trace(vjp_fn, mode="graph")(np.array(2.5))
    (compiled,) = tj.trace(lambda z, c: tj.vjp(lambda z: tj.nn.cross_entropy(z, labels), z)[1](c))(logits, 2.5)
    np.testing.assert_allclose(traced, eager, rtol=1e-14)
    np.testing.assert_allclose(compiled, eager, rtol=1e-12)
    direction = rng.standard_normal((4, 3))
    hvp = lambda z: tj.grad(lambda z: np.sum(tj.grad(lambda z: tj.nn.cross_entropy(z, labels))(z) * direction))(z)  # noqa: E731,E501
    np.testing.assert_allclose(hvp(logits), tj.trace(hvp, mode="graph")(logits), rtol=1e-13)


def test_matmul_gradient_skips_the_unneeded_cotangent():
    """Only the weights need a gradient: the traced backward pass has one matrix product for
    them, none for the data (matmul's rule takes ``needed``)."""
    x = np.ones((3, 4), np.float32)
    w = np.ones((4, 2), np.float32)
    f = tj.trace(lambda w, x: tj.grad(lambda w: (x @ w).sum())(w), mode="graph")
    graph = f.graph(w, x, optimize=False)
    assert sum(e.prim.name == "matmul" for e in graph.eqns) == 2  # forward, and the weights' gradient
    np.testing.assert_array_equal(f(w, x), np.full((4, 2), 3, np.float32))


# ----------------------------------------------------------------------------- small semantics

@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_grad_takes_an_output_of_one_element_of_any_rank(mode):
    x = np.array([[1.0, 2.0, 3.0]])
    f = tj.trace(tj.grad(lambda x: x @ x.T))  # shape (1, 1), as autograd accepts
    np.testing.assert_array_equal(run(f, mode, x), 2 * x)
    with pytest.raises(TypeError, match="must return one float scalar, got float64\\[2\\]"):
        tj.grad(lambda x: x[0, :2])(x)


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_the_std_of_one_value_and_x_to_the_zero_have_zero_gradients(mode):
    # Both are constant; the general rules would give 0 * inf = NaN, and warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(tj.trace(tj.grad(lambda x: np.std(x))), mode, np.array(2.0)) == 0
        np.testing.assert_array_equal(run(tj.trace(tj.grad(lambda x: np.std(x, axis=0).sum())), mode, np.ones((1, 3))), 0)
        np.testing.assert_array_equal(run(tj.trace(tj.grad(lambda x: (x ** 0).sum())), mode, np.zeros(2)), 0)
        np.testing.assert_array_equal(run(tj.trace(tj.grad(lambda x: (x ** 3.0).sum())), mode, np.full(2, 2.0)), 12)
    assert tj.jvp(lambda x: x ** 0, (np.zeros(2),), (np.ones(2),))[1].tolist() == [0, 0]


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_an_in_place_update_of_a_differentiated_argument_is_refused(mode):
    # It used to give a silently wrong gradient (zeros); updating a copy is right.
    def updated(a):
        a[1] = 5.0
        return (a * a).sum()

    def updated_copy(a):
        a = a.copy()
        a[1] = 5.0
        a[0:2] += a[2]
        return (a * a).sum()

    x = np.array([1.0, 2.0, 3.0])
    with pytest.raises(tj.UnsupportedError, match="in-place update of an array being differentiated"):
        run(tj.trace(tj.grad(updated)), mode, x.copy())
    with pytest.raises(tj.UnsupportedError, match="in-place update of an array being differentiated"):
        tj.vjp(lambda a: updated(a), x.copy())
    np.testing.assert_allclose(run(tj.trace(tj.grad(updated_copy)), mode, x), [8.0, 0.0, 30.0])


# ----------------------------------------------------------------------------- complex numbers

COMPLEX_LOSSES = {
    "abs": lambda z, w: np.abs(z).sum(),
    "squared modulus": lambda z, w: (z * np.conj(z)).real.sum(),
    "real and imag": lambda z, w: (np.real(z * w) + 2 * np.imag(z) ** 2).sum(),
    "holomorphic inside": lambda z, w: np.abs(np.exp(z) * z + (w @ z.T) @ z).sum(),
    "var": lambda z, w: np.var(z) + np.std(z, axis=1).sum(),
    "angle": lambda z, w: (np.angle(z * w) * np.abs(z)).sum(),
}


@pytest.mark.parametrize("name", list(COMPLEX_LOSSES))
@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_complex_gradients_follow_jax_and_autograd(name, mode):
    # For a real L(z), grad is dL/dx - i dL/dy (the conjugate of the direction of steepest
    # ascent): d|z|/dz at 3+4j is 0.6-0.8j, as JAX and autograd give.
    loss = COMPLEX_LOSSES[name]
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    grad = run(tj.trace(tj.grad(loss)), mode, z, w)
    np.testing.assert_allclose(grad, complex_numeric_grad(lambda z: loss(z, w), z), rtol=1e-6, atol=1e-8)
    assert tj.grad(lambda z: np.abs(z))(np.complex128(3 + 4j)) == pytest.approx(0.6 - 0.8j, rel=1e-15)


def test_a_real_input_gets_the_real_part_and_a_complex_output_is_refused():
    assert tj.grad(lambda x: np.abs(x + 2j))(np.float64(1.0)) == pytest.approx(1 / np.sqrt(5))
    assert tj.grad(lambda x: np.abs(x + 2j))(np.float64(1.0)).dtype == np.float64
    with pytest.raises(TypeError, match="returns a complex complex128 value"):
        tj.grad(lambda z: z * z)(np.complex128(1 + 1j))
