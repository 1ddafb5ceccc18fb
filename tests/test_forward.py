"""Forward mode and the transformations built on it: jvp, linearize, jacfwd, jacrev, hessian,
hvp, elementwise_grad.

Every differentiable op spec (``op_specs.SPECS`` with ``grad=True``) is checked in eager, graph
and compiled mode: its ``jvp`` against central differences along a random direction (complex
for complex arguments), and against reverse mode through the transpose identity
<jvp(v), u> = <v, vjp(u)> (real parts, for complex values). (Compiling one
program per spec takes minutes, so the compiled mode of those runs with the long checks.)
"""
import numpy as np
import pytest

import tracejit as tj
from conftest import run
from tracejit import pytree
from tracejit.primitives import registry
from tracejit.rules.jvp import jvp_rules
from tracejit.rules.vjp import vjp_rules

from test_grad_ops import EPS, GRAD_SPECS, _float_positions, _random_like


def _float_outputs(spec):
    """``spec.fn`` as a function of its float64 and complex128 array arguments, returning its
    float and complex outputs."""
    positions = _float_positions(spec)

    def f(*diff_args):
        args = list(spec.args)
        for i, a in zip(positions, diff_args):
            args[i] = a
        outs = pytree.flatten(spec.fn(*args))[0]
        return [o for o in outs if np.issubdtype(o.dtype if hasattr(o, "dtype") else np.asarray(o).dtype, np.inexact)]

    return f, [spec.args[i].copy() for i in positions]


@pytest.fixture(scope="module")
def traced_jvps():
    return {}


@pytest.mark.parametrize("spec", GRAD_SPECS, ids=[s.name for s in GRAD_SPECS])
@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
def test_jvp_matches_finite_differences_and_the_transpose_of_vjp(spec, mode, traced_jvps):
    f, primals = _float_outputs(spec)
    rng = np.random.default_rng(1)
    tangents = [_random_like(rng, p) for p in primals]
    if spec.name not in traced_jvps:
        traced_jvps[spec.name] = tj.trace(lambda ps, ts: tj.jvp(f, ps, ts))
    outs, out_tangents = run(traced_jvps[spec.name], mode, primals, tangents)
    with np.errstate(all="ignore"):
        plus = f(*[p + EPS * t for p, t in zip(primals, tangents)])
        minus = f(*[p - EPS * t for p, t in zip(primals, tangents)])
        for k, (t, a, b) in enumerate(zip(out_tangents, plus, minus)):
            np.testing.assert_allclose(t, (np.asarray(a) - np.asarray(b)) / (2 * EPS), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{spec.name}: output {k} ({mode})")
        # <jvp(v), u> = <v, vjp(u)>, with reverse mode run eagerly; with complex values the
        # real part of each side (vjp(u) is the gradient of Re <u, f> in JAX's convention)
        cotangents = [_random_like(rng, np.asarray(o)) for o in outs]
        _, backward = tj.vjp(f, *primals)
        in_cotangents = backward(cotangents)
        forward_side = sum(float(np.real(np.sum(t * u))) for t, u in zip(out_tangents, cotangents))
        reverse_side = sum(float(np.real(np.sum(v * c))) for v, c in zip(tangents, in_cotangents))
        np.testing.assert_allclose(forward_side, reverse_side, rtol=1e-10, atol=1e-12, err_msg=spec.name)


def test_every_differentiable_primitive_has_a_forward_rule():
    differentiable = {name for name, p in registry.items() if p.differentiable}
    assert sorted(n for n in differentiable if registry[n] not in jvp_rules) == []
    assert {p.name for p in jvp_rules} == {p.name for p in vjp_rules} == differentiable


# ----------------------------------------------------------------------------- the transformations

X = np.array([0.3, -0.7, 1.2])
V = np.array([1.0, 0.5, -2.0])


def _elementwise_mix(x):
    return np.sin(x) * x ** 2 + np.exp(x).sum()


def _scalar(w):
    return np.sum(np.tanh(w) ** 2) + (w[0] * w[1]) ** 2 + np.max(w) * 0.5


def _numeric_jacobian(f, x):
    columns = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e.flat[j] = EPS
        columns.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * EPS))
    return np.stack(columns, axis=-1).reshape(np.shape(f(x)) + x.shape)


def test_jvp_of_a_pytree_function_and_its_errors():
    params = {"w": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": np.array([0.5, -0.5])}
    dirs = {"w": np.ones((2, 2)), "b": np.array([1.0, 0.0])}

    def f(p, x):
        return {"y": np.tanh(x @ p["w"] + p["b"]), "n": 3}

    out, tangent = tj.jvp(f, (params, np.array([0.1, 0.2])), (dirs, np.zeros(2)))
    y = lambda eps: f({k: params[k] + eps * dirs[k] for k in params}, np.array([0.1, 0.2]))["y"]
    np.testing.assert_allclose(tangent["y"], (y(EPS) - y(-EPS)) / (2 * EPS), rtol=1e-7)
    assert out["n"] == 3 and tangent["n"] == 0
    with pytest.raises(ValueError, match=r"tangent of primals\[0\]\['w'\] must have the primal's shape and dtype "
                                          r"float64\[2, 2\], got float32\[2, 2\]"):
        tj.jvp(f, (params, np.zeros(2)), ({"w": np.ones((2, 2), np.float32), "b": np.ones(2)}, np.zeros(2)))
    with pytest.raises(ValueError, match="same structure"):
        tj.jvp(f, (params, np.zeros(2)), (dirs,))
    with pytest.raises(TypeError, match="float inputs only"):
        tj.jvp(lambda i: i * 2, (np.arange(3),), (np.arange(3),))
    with pytest.raises(TypeError, match="tuples"):
        tj.jvp(np.sin, X, V)


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_jacfwd_and_jacrev_agree_with_finite_differences(mode):
    for f in (_elementwise_mix, lambda x: np.outer(x, x)[:, 1:] @ x[:2]):
        want = _numeric_jacobian(f, X)
        for jac in (tj.jacfwd, tj.jacrev):
            np.testing.assert_allclose(run(tj.trace(jac(f)), mode, X), want, rtol=1e-6, atol=1e-8)


def test_jacobians_of_pytrees_with_argnums_and_aux():
    def f(a, p):
        return {"s": np.sum(a * p["u"]), "v": a * 2}, "aux"

    a, p = np.array([1.0, 2.0]), {"u": np.array([3.0, 4.0])}
    for jac in (tj.jacfwd, tj.jacrev):
        (j, aux) = jac(f, argnums=(0, 1), has_aux=True)(a, p)
        assert aux == "aux"
        np.testing.assert_allclose(j["s"][0], [3.0, 4.0])
        np.testing.assert_allclose(j["s"][1]["u"], [1.0, 2.0])
        np.testing.assert_allclose(j["v"][0], 2 * np.eye(2))
        np.testing.assert_allclose(j["v"][1]["u"], np.zeros((2, 2)))
    assert tj.jacobian is tj.jacrev


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_hessian_and_hvp_agree_with_second_differences(mode):
    want = _numeric_jacobian(tj.grad(_scalar), X)
    hessian = run(tj.trace(tj.hessian(_scalar)), mode, X)
    np.testing.assert_allclose(hessian, want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(run(tj.trace(lambda x, v: tj.hvp(_scalar, (x,), (v,))), mode, X, V), hessian @ V,
                               rtol=1e-10)
    # reverse over forward gives the same product
    reverse_over_forward = tj.grad(lambda x: tj.jvp(_scalar, (x,), (V,))[1])
    np.testing.assert_allclose(run(tj.trace(reverse_over_forward), mode, X), hessian @ V, rtol=1e-10)


def test_hessian_of_softmax_regression_is_the_analytic_one():
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((6, 4)), np.array([0, 2, 1, 2, 0, 1])
    w = rng.standard_normal((4, 3)) * 0.1

    def loss(w):
        return tj.nn.cross_entropy(x @ w, labels)

    hessian = run(tj.trace(tj.hessian(loss)), "graph", w)  # compiled: see the test above
    # d2L / dW[a,i] dW[b,j] = mean over samples of x_a x_b (p_i [i == j] - p_i p_j)
    logits = x @ w
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    curvature = np.einsum("ni,ij->nij", p, np.eye(3)) - np.einsum("ni,nj->nij", p, p)
    want = np.einsum("na,nb,nij->aibj", x, x, curvature) / len(x)
    np.testing.assert_allclose(hessian, want, rtol=1e-10, atol=1e-14)


def test_linearize_and_elementwise_grad():
    out, f_jvp = tj.linearize(_elementwise_mix, X)
    np.testing.assert_allclose(out, _elementwise_mix(X))
    np.testing.assert_allclose(f_jvp(V), tj.jvp(_elementwise_mix, (X,), (V,))[1])
    with pytest.raises(TypeError, match="takes 1 tangents"):
        f_jvp(V, V)
    np.testing.assert_allclose(tj.elementwise_grad(np.tanh)(X), 1 - np.tanh(X) ** 2)


def test_stop_gradient_stops_tangents_and_integers_carry_none():
    f = lambda x: tj.stop_gradient(x) * x + np.floor(x) + np.argmax(x)
    _, t = tj.jvp(f, (X,), (V,))
    np.testing.assert_allclose(t, X * V)


def test_in_place_updates_carry_their_tangents():
    def f(x):
        y = x * 1.0
        y[1] = x[0] ** 2
        y += x
        return y

    _, t = tj.jvp(f, (X,), (V,))
    np.testing.assert_allclose(t, np.array([V[0], 2 * X[0] * V[0], V[2]]) + V)


def test_float32_tangents_stay_float32():
    x = X.astype(np.float32)
    out, t = tj.jvp(lambda x: np.log2(x * x + 1) * 3.0, (x,), (V.astype(np.float32),))
    assert out.dtype == t.dtype == np.float32
