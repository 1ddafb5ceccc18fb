"""vmap: every op spec mapped over a batch equals a Python loop over the batch.

Each spec's array arguments get a batch of three examples (floats perturbed, integers and
booleans repeated), its other arguments are shared (``in_axes=None``); ``tj.vmap(spec.fn)`` in
eager and graph mode (compiled: with the long checks, one program per spec) must equal
``np.stack`` of the spec's function on each example. Then vmap composed with grad, jvp and
trace, in_axes/out_axes, and errors.
"""
import numpy as np
import pytest

import tracejit as tj
from conftest import assert_tree_close, run
from op_specs import SPECS
from tracejit import pytree
from tracejit.primitives import registry
from tracejit.rules.batching import batching_rules

BATCH = 3


def _examples(spec):
    """(the spec's arguments with a batch axis on each array, in_axes, one argument list per example)."""
    rng = np.random.default_rng(len(spec.name))
    batched, axes = [], []
    per_example = [list(spec.args) for _ in range(BATCH)]
    for i, a in enumerate(spec.args):
        if not isinstance(a, np.ndarray) or i in spec.static_argnums:
            batched.append(a)
            axes.append(None)
            continue
        if a.dtype.kind == "f":
            copies = [a * rng.uniform(0.9, 1.1, a.shape).astype(a.dtype) for _ in range(BATCH)]
        else:
            copies = [a.copy() for _ in range(BATCH)]
        for k in range(BATCH):
            per_example[k][i] = copies[k]
        batched.append(np.stack(copies))
        axes.append(0)
    return batched, tuple(axes), per_example


VMAP_SPECS = [s for s in SPECS if any(isinstance(a, np.ndarray) for i, a in enumerate(s.args)
                                       if i not in s.static_argnums)]


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
@pytest.mark.parametrize("spec", VMAP_SPECS, ids=[s.name for s in VMAP_SPECS])
def test_vmap_of_every_spec_equals_a_loop(spec, mode):
    batched, axes, per_example = _examples(spec)
    with np.errstate(all="ignore"):
        want_each = [spec.fn(*args) for args in per_example]
        want = pytree.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *want_each)
        got = run(tj.trace(tj.vmap(spec.fn, in_axes=axes), static_argnums=spec.static_argnums), mode, *batched)
    assert_tree_close(got, want, f"vmap {spec.name} ({mode})")


def test_every_primitive_has_a_batching_rule():
    assert sorted(name for name, p in registry.items() if p not in batching_rules and name != "fused") == []


# ----------------------------------------------------------------------------- compositions

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 3))
W = RNG.standard_normal((3, 4))
Y = np.array([0, 3, 1, 2, 2])


def _example_loss(w, x, y):
    return tj.nn.cross_entropy(x[None] @ w, y[None])


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_per_example_gradients_equal_a_loop_of_grads(mode):
    per_example = tj.trace(tj.vmap(tj.grad(_example_loss), in_axes=(None, 0, 0)))
    want = np.stack([tj.grad(_example_loss)(W, X[i], Y[i]) for i in range(len(X))])
    np.testing.assert_allclose(run(per_example, mode, W, X, Y), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_grad_of_vmap_and_vmap_of_jvp(mode):
    total = lambda w: tj.vmap(_example_loss, in_axes=(None, 0, 0))(w, X, Y).sum()
    want = sum(tj.grad(_example_loss)(W, X[i], Y[i]) for i in range(len(X)))
    np.testing.assert_allclose(run(tj.trace(tj.grad(total)), mode, W), want, rtol=1e-12)
    v = np.ones(3)
    f = lambda x: tj.jvp(lambda x: np.tanh(x) * x.sum(), (x,), (v,))[1]
    want = np.stack([f(x) for x in X])
    np.testing.assert_allclose(run(tj.trace(tj.vmap(f)), mode, X), want, rtol=1e-12)


def test_in_axes_out_axes_and_pytrees():
    f = lambda p, x: {"y": p["w"] * x, "s": x.sum()}
    out = tj.vmap(f, in_axes=(None, 1))({"w": np.arange(3.0)}, X.T)
    np.testing.assert_allclose(out["y"], np.arange(3.0) * X)
    np.testing.assert_allclose(out["s"], X.sum(axis=1))
    np.testing.assert_allclose(tj.vmap(lambda x: x * 2, in_axes=1, out_axes=1)(X.T), 2 * X.T)
    with pytest.raises(ValueError, match="axis 1 does not fit a result, which has 1 dimensions"):
        tj.vmap(lambda x: x.sum(), out_axes=1)(X)
    # a result no example changes is repeated for every example
    np.testing.assert_array_equal(tj.vmap(lambda x: np.ones(2))(X), np.ones((5, 2)))
    # nested: a batch of batches
    np.testing.assert_allclose(tj.vmap(tj.vmap(lambda a: a * a.sum()))(X[None].repeat(2, 0)),
                               np.stack([X * X.sum(axis=1, keepdims=True)] * 2))


def test_per_example_indexing_and_in_place_updates():
    idx = np.array([[0, 2], [1, 1], [2, 0], [0, 0], [1, 2]])

    def f(x, i):
        y = x * 1.0
        y[i] += 1.0
        return x[i], y

    got = tj.vmap(f)(X, idx)
    want = [f(x, i) for x, i in zip(X, idx)]
    np.testing.assert_allclose(got[0], np.stack([w[0] for w in want]))
    np.testing.assert_allclose(got[1], np.stack([w[1] for w in want]))


def test_vmap_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"args\[1\] has 4 examples along axis 0, but args\[0\] has 5"):
        tj.vmap(lambda a, b: a)(X, np.ones(4))
    with pytest.raises(ValueError, match="in_axes has 1 entries for a call with 2"):
        tj.vmap(lambda a, b: a, in_axes=(0,))(X, X)
    with pytest.raises(ValueError, match="no argument is batched"):
        tj.vmap(lambda a: a, in_axes=None)(X)
    with pytest.raises(ValueError, match=r"axis 2 does not fit args\[0\]"):
        tj.vmap(lambda a: a, in_axes=2)(X)


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_a_batched_argument_updated_in_place_is_updated_as_a_loop_would(mode):
    def f(x, s):
        x *= s
        x[0] = -1.0
        return x.sum()

    looped, mapped = X.T.copy(), X.T.copy()
    want = np.array([f(looped[:, i], 2.0) for i in range(looped.shape[1])])
    got = run(tj.trace(tj.vmap(f, in_axes=(1, None))), mode, mapped, 2.0)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(mapped, looped)


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_a_per_example_index_out_of_range_raises_as_numpy_does(mode):
    # Batched rows and batched indices are gathered from the rows laid end to end; an index
    # out of range must raise, not read (or, in the gradient, add into) the next example's row.
    x = np.arange(6.0).reshape(2, 3)
    pick = tj.trace(tj.vmap(lambda r, i: np.take(r, i)), mode=mode)
    grad = tj.trace(tj.vmap(lambda r, i: tj.grad(lambda r: np.take(r, i).sum())(r)), mode=mode)
    inside = np.array([[-1], [2]])  # negative indices count from the end of each row
    np.testing.assert_array_equal(pick(x, inside), [[2.0], [5.0]])
    np.testing.assert_array_equal(grad(x, inside), [[0, 0, 1], [0, 0, 1]])
    for outside in (np.array([[3], [0]]), np.array([[0], [-4]])):
        with pytest.raises(IndexError, match="out of bounds"):  # NumPy, example by example
            [np.take(row, i) for row, i in zip(x, outside)]
        with pytest.raises(IndexError, match="out of bounds"):
            pick(x, outside)
        with pytest.raises(IndexError, match="out of bounds"):
            grad(x, outside)
