"""einsum and tensordot on traced values: the errors a user sees for malformed calls (values,
gradients and modes are checked by the op specs), that a matmul-shaped einsum is one
matmul in the graph rather than a broadcast product, and boolean contractions."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj


def _graph_mode_call(fn, *args):
    with tj.mode("graph"):
        return tj.trace(fn)(*args)


@pytest.mark.parametrize("subscripts, shapes, error, message", [
    ("ij,jk->ik", [(2, 3), (4, 5)], tj.ShapeError, "subscript 'j' has size 3 in one operand and 4 in another"),
    ("ij,jk", [(2, 3)], ValueError, "gives subscripts for 2 operand\\(s\\), but 1 operand\\(s\\) were passed"),
    ("ijk->i", [(2, 3)], ValueError, "operand 0 has 2 dimension\\(s\\) \\(shape \\(2, 3\\)\\) but its subscripts 'ijk' name 3"),
    ("ij->ii", [(2, 2)], ValueError, "output subscript 'i' appears more than once"),
    ("ij->k", [(2, 2)], ValueError, "output subscript 'k' appears but in no operand"),
    ("i1->i", [(2, 2)], ValueError, "subscripts may hold letters and one '...' per operand"),
    ("...i->i", [(2, 3)], ValueError, "no '...' in the output"),
])
def test_einsum_errors_name_the_problem(subscripts, shapes, error, message):
    arrays = [np.ones(s) for s in shapes]
    with pytest.raises(error, match=message):
        _graph_mode_call(lambda *a: np.einsum(subscripts, *a), *arrays)
    with pytest.raises(Exception):  # NumPy refuses the same calls
        np.einsum(subscripts, *arrays)


def test_einsum_refuses_the_interleaved_form_clearly():
    with pytest.raises(TypeError, match="subscripts string"):
        _graph_mode_call(lambda a: np.einsum(a, [0, 1], [1, 0]), np.ones((2, 2)))


def test_tensordot_errors():
    a, b = np.ones((2, 3)), np.ones((4, 5))
    with pytest.raises(tj.ShapeError, match="axis 1 of a has size 3, axis 0 of b has size 4"):
        _graph_mode_call(lambda x, y: np.tensordot(x, y, 1), a, b)
    with pytest.raises(ValueError, match="pair 2 axes of a with 1 of b"):
        _graph_mode_call(lambda x, y: np.tensordot(x, y, ([0, 1], [0])), a, b)
    with pytest.raises(ValueError, match="axes=3 must be between 0"):
        _graph_mode_call(lambda x, y: np.tensordot(x, y, 3), a, b)


def test_a_matmul_shaped_einsum_is_one_matmul():
    f = tj.trace(lambda a, b: np.einsum("bij,bjk->bik", a, b))
    graph = f.graph(np.ones((2, 3, 4)), np.ones((2, 4, 5)))
    prims = [eqn.prim.name for eqn in graph.eqns]
    assert prims.count("matmul") == 1 and "reduce_sum" not in prims, prims


@pytest.mark.parametrize("mode", ["graph", "compiled"])
def test_boolean_contractions_are_an_or_of_ands_as_in_numpy(mode):
    rng = np.random.default_rng(0)
    a, b, c = rng.random((3, 4)) > 0.6, rng.random((4, 2)) > 0.5, rng.random(4) > 0.5
    calls = [lambda a, b, c: np.tensordot(a, b, axes=1), lambda a, b, c: np.einsum("ij,jk->ik", a, b),
             lambda a, b, c: np.einsum("ij,j", a, c), lambda a, b, c: np.einsum("i,i", c, c)]
    for call in calls:
        want, got = call(a, b, c), tj.trace(call, mode=mode, tiered=False)(a, b, c)
        assert np.asarray(got).dtype == np.bool_ and np.array_equal(got, want), (got, want)
