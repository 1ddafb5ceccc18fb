"""Gradients of every differentiable op in the op-spec table, against finite differences (first
and second order).

For each spec marked ``grad=True`` the scalar test function is ``L = sum_k <w_k, out_k>`` over
its float outputs (fixed random weights ``w_k``; a complex output contributes both its real and
its imaginary part, each with its own weights), differentiated with respect to all of its
float64 and complex128 array arguments. A complex argument's gradient is ``dL/dx - 1j dL/dy``
(JAX's and autograd's convention), so a step ``d`` changes ``L`` by ``Re(sum(grad * d))``. ``tj.grad`` of it, in eager, graph and compiled mode, must match:

- a random-direction check: ``<grad, v>`` against the central difference of ``L`` along ``v``;
- full central differences, element by element (the spec arguments are tiny);
- second order: the gradient of ``<grad L, v>`` (reverse over reverse) against the central
  difference of ``grad L`` along ``v`` (eager in the default suite, graph mode among the long
  checks).
"""
import numpy as np
import pytest

import tracejit as tj
from tracejit import pytree
from tracejit.rules.vjp import vjp_rules

from op_specs import SPECS

GRAD_SPECS = [s for s in SPECS if s.grad]
EPS = 1e-6


def _float_positions(spec):
    return [i for i, a in enumerate(spec.args)
            if isinstance(a, np.ndarray) and a.dtype in (np.float64, np.complex128) and i not in spec.static_argnums]


def _scalar_loss(spec):
    positions = _float_positions(spec)
    weights = {}

    def loss(*diff_args):
        args = list(spec.args)
        for i, a in zip(positions, diff_args):
            args[i] = a
        outs = pytree.flatten(spec.fn(*args))[0]
        total = 0.0
        for k, out in enumerate(outs):
            dtype = np.asarray(out).dtype if not hasattr(out, "dtype") else out.dtype
            if np.issubdtype(dtype, np.inexact):
                if k not in weights:
                    weights[k] = np.random.default_rng(k).uniform(0.5, 1.5, (2,) + np.shape(out))
                if np.issubdtype(dtype, np.complexfloating):  # L stays real: weigh both parts
                    total = total + np.sum(np.real(out) * weights[k][0]) + np.sum(np.imag(out) * weights[k][1])
                else:
                    total = total + np.sum(out * weights[k][0])
        return total

    return loss, positions


def _random_like(rng, p):
    """A random direction of ``p``'s shape and kind (complex for a complex argument)."""
    d = rng.standard_normal(p.shape)
    return d + 1j * rng.standard_normal(p.shape) if p.dtype.kind == "c" else d


@pytest.fixture(scope="module")
def traced_grads():
    return {}


def _spec_and_mode_params():
    """Every gradient spec in eager, graph and compiled mode; the compiled gradients of large
    programs (tagged "slow_compile" or "slow_gradient": several seconds of compiling each) run
    among the long checks."""
    slow = {"slow_compile", "slow_gradient"}
    return [pytest.param(s, mode, id=f"{mode}-{s.name}",
                         marks=pytest.mark.long if mode == "compiled" and slow & set(s.tags) else ())
            for s in GRAD_SPECS for mode in ("eager", "graph", "compiled")]


@pytest.mark.parametrize("spec, mode", _spec_and_mode_params())
def test_gradient_matches_finite_differences(spec, mode, traced_grads):
    loss, positions = _scalar_loss(spec)
    assert positions, f"{spec.name} is marked grad=True but has no float64 or complex128 array argument"
    primals = [spec.args[i].copy() for i in positions]
    argnums = tuple(range(len(positions)))
    key = spec.name
    if key not in traced_grads:
        traced_grads[key] = tj.trace(tj.grad(loss, argnums=argnums))
    with tj.mode(mode):
        grads = traced_grads[key](*primals)

    with np.errstate(all="ignore"):
        # Random direction over all arguments at once.
        rng = np.random.default_rng(0)
        direction = [_random_like(rng, p) for p in primals]
        plus = loss(*[p + EPS * d for p, d in zip(primals, direction)])
        minus = loss(*[p - EPS * d for p, d in zip(primals, direction)])
        numeric = (plus - minus) / (2 * EPS)
        analytic = sum(float(np.real(np.sum(g * d))) for g, d in zip(grads, direction))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=f"{spec.name}: direction")

        # Full central differences, element by element.
        for which, (p, g) in enumerate(zip(primals, grads)):
            assert g.shape == p.shape and g.dtype == p.dtype
            expected = np.zeros_like(p)
            units = (1.0, 1j) if p.dtype.kind == "c" else (1.0,)
            for idx in np.ndindex(p.shape):
                for unit in units:  # dL/dx - 1j dL/dy: the step 1j contributes conj(1j) = -1j
                    shifted = [q.copy() for q in primals]
                    shifted[which][idx] += EPS * unit
                    up = loss(*shifted)
                    shifted[which][idx] -= 2 * EPS * unit
                    expected[idx] += np.conj(unit) * (up - loss(*shifted)) / (2 * EPS)
            np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{spec.name}: d/d argument {positions[which]} ({mode})")


def test_every_differentiable_primitive_has_a_gradient_spec():
    covered = set()
    for spec in GRAD_SPECS:
        loss, positions = _scalar_loss(spec)
        graph = tj.trace(loss, passes=[]).graph(*[spec.args[i] for i in positions])
        covered.update(e.prim.name for e in graph.eqns)
    differentiable = {name for name, p in tj.primitives.items() if p.differentiable and p in vjp_rules}
    # A float32 round trip is too coarse for differences at 1e-6: test_autodiff checks cast exactly.
    missing = sorted(differentiable - covered - {"cast"})
    assert not missing, f"differentiable primitives with no grad=True spec: {missing}"


@pytest.mark.parametrize("spec", GRAD_SPECS, ids=[s.name for s in GRAD_SPECS])
@pytest.mark.parametrize("mode", ["eager", pytest.param("graph", marks=pytest.mark.long)])
def test_second_order_matches_finite_differences_of_the_gradient(spec, mode):
    # Reverse over reverse: the gradient of <grad L, v> is the Hessian times v, which must
    # match the central difference of grad L along v. This differentiates every rule once more.
    loss, positions = _scalar_loss(spec)
    primals = [spec.args[i].copy() for i in positions]
    argnums = tuple(range(len(positions)))
    rng = np.random.default_rng(1)
    direction = [_random_like(rng, p) for p in primals]
    first = tj.grad(loss, argnums=argnums)

    def along(*ps):
        return sum(np.real(np.sum(g * d)) for g, d in zip(first(*ps), direction))

    with tj.mode(mode):
        hv = tj.trace(tj.grad(along, argnums=argnums))(*primals)
    eps = 1e-5
    with np.errstate(all="ignore"):
        plus = first(*[p + eps * d for p, d in zip(primals, direction)])
        minus = first(*[p - eps * d for p, d in zip(primals, direction)])
    for k, (h, up, down) in enumerate(zip(hv, plus, minus)):
        np.testing.assert_allclose(h, (up - down) / (2 * eps), rtol=1e-4, atol=1e-6,
                                   err_msg=f"{spec.name}: Hessian-vector product, argument {positions[k]} ({mode})")
