"""The shape functions (flip ... meshgrid) beyond what the op specs check: their errors for bad
arguments against NumPy's, in-place updates of their results (views of the argument where
NumPy's are, new arrays otherwise), and second derivatives through all of them.

The op specs (tests/op_specs.py: flip_rot90 ... stacks_mixed_dtypes) check values in every
mode, first-order gradients, forward mode and vmap.
"""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import assert_tree_close, run
from tracejit.errors import UnsupportedError

X = np.arange(6.0).reshape(2, 3) - 2.5
AxisError = np.exceptions.AxisError

# (id, call on a float (2, 3) array, the exception tracejit raises and its message, the
# exception NumPy raises on the same call)
ERRORS = [
    ("flip_axis", lambda x: np.flip(x, 2), AxisError, "axis 2 is out of bounds", AxisError),
    ("flip_repeated_axis", lambda x: np.flip(x, (0, -2)), ValueError, "duplicate value in 'axis'", ValueError),
    ("fliplr_1d", lambda x: np.fliplr(x[0]), ValueError, r"np.fliplr: input must be >= 2-d, got shape \(3,\)",
     ValueError),
    ("flipud_0d", lambda x: np.flipud(x[0, 0]), ValueError, "np.flipud: input must be >= 1-d", ValueError),
    ("rot90_same_axes", lambda x: np.rot90(x, axes=(1, 1)), ValueError, "axes must be different", ValueError),
    ("rot90_axes_range", lambda x: np.rot90(x, axes=(0, 3)), ValueError, r"axes=\(0, 3\) out of range", ValueError),
    ("rot90_three_axes", lambda x: np.rot90(x, axes=(0, 1, 0)), ValueError, "axes must be two axes", ValueError),
    ("roll_axis", lambda x: np.roll(x, 1, axis=-3), AxisError, "axis -3 is out of bounds", AxisError),
    ("roll_mismatch", lambda x: np.roll(x, (1, 2, 3), axis=(0, 1)), ValueError, "do not broadcast together",
     ValueError),
    ("rollaxis_start", lambda x: np.rollaxis(x, 0, 4), AxisError, "'start' arg requires -2 <= start < 3, got 4",
     AxisError),
    ("tile_negative", lambda x: np.tile(x, (2, -1)), ValueError, r"reps must not be negative, got \(2, -1\)",
     ValueError),
    ("tile_float", lambda x: np.tile(x, 1.5), TypeError, "np.tile: reps must be an integer, got float", TypeError),
    ("repeat_negative", lambda x: np.repeat(x, -1), ValueError, "negative dimensions", ValueError),
    ("repeat_negative_entry", lambda x: np.repeat(x, [1, -1], axis=0), ValueError, "may not contain negative",
     ValueError),
    ("repeat_length", lambda x: np.repeat(x, [1, 2], axis=1), ValueError, "could not be broadcast", ValueError),
    ("split_unequal", lambda x: np.split(x, 2, axis=1), ValueError,
     "does not result in an equal division: an axis of length 3 into 2 sections", ValueError),
    ("split_zero", lambda x: np.split(x, 0), ValueError, "number of sections must be larger than 0, got 0",
     ZeroDivisionError),
    ("array_split_negative", lambda x: np.array_split(x, -1), ValueError, "must be larger than 0", ValueError),
    ("split_axis", lambda x: np.split(x, 1, axis=2), AxisError, "axis 2 is out of bounds", IndexError),
    ("hsplit_0d", lambda x: np.hsplit(x[0, 0], 1), ValueError, "np.hsplit only works on arrays of 1 or more", ValueError),
    ("vsplit_1d", lambda x: np.vsplit(x[0], 1), ValueError, "np.vsplit only works on arrays of 2 or more", ValueError),
    ("dsplit_2d", lambda x: np.dsplit(x, 1), ValueError, r"np.dsplit only works on arrays of 3 or more dimensions, "
     r"got shape \(2, 3\)", ValueError),
    ("diagonal_1d", lambda x: np.diagonal(x[0]), ValueError, "at least two dimensions", ValueError),
    ("diagonal_same_axes", lambda x: np.diagonal(x, 0, 1, -1), ValueError, "axis1 and axis2 cannot be the same",
     ValueError),
    ("diagonal_offset_float", lambda x: np.diagonal(x, 0.5), TypeError, "offset must be an integer, got float",
     TypeError),
    ("diag_3d", lambda x: np.diag(x[None]), ValueError, r"input must be 1- or 2-d, got shape \(1, 2, 3\)", ValueError),
    ("diag_k_float", lambda x: np.diag(x, 1.5), TypeError, "k must be an integer", TypeError),
    ("trace_1d", lambda x: np.trace(x[0]), ValueError, "at least two dimensions", ValueError),
    ("tril_0d", lambda x: np.tril(x[0, 0]), ValueError, "np.tril: input must be at least 1-d", TypeError),
    ("select_lengths", lambda x: np.select([x > 0], [x, x]), ValueError, "2 choices and 1 conditions", ValueError),
    ("select_empty", lambda x: np.select([], [], x), ValueError, "empty condition list", ValueError),
    ("select_condition_dtype", lambda x: np.select([x], [x]), TypeError, "invalid entry 0 in condlist: should be "
     "boolean, got float64", TypeError),
    ("meshgrid_indexing", lambda x: np.meshgrid(x[0], x[1], indexing="yx"), ValueError,
     "indexing must be 'xy' or 'ij', got 'yx'", ValueError),
    ("concatenate_casting", lambda x: np.concatenate([x, x.astype(np.int64)], casting="no"), TypeError,
     r"cannot cast array data from dtype\('int64'\) to dtype\('float64'\) according to the rule 'no'", TypeError),
    ("vstack_casting", lambda x: np.vstack([x, x], dtype=np.int32), TypeError, "according to the rule 'same_kind'",
     TypeError),
]


@pytest.mark.parametrize("call, error, message, numpy_error", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_arguments_raise_as_numpy_does(call, error, message, numpy_error):
    with pytest.raises(numpy_error):
        call(X.copy())
    with pytest.raises(error, match=message):
        run(tj.trace(call), "graph", X.copy())


def test_traced_counts_shifts_and_offsets_are_refused():
    x, counts = X.copy(), np.array([1, 2])
    with pytest.raises(UnsupportedError, match="np.repeat: traced repeats give a data-dependent shape"):
        run(tj.trace(lambda x, n: np.repeat(x, n, axis=0)), "graph", x, counts)
    with pytest.raises(UnsupportedError, match="np.roll: a traced shift is not supported"):
        run(tj.trace(lambda x, n: np.roll(x, n)), "graph", x, 1)
    with pytest.raises(UnsupportedError, match="np.array_split: traced split points"):
        run(tj.trace(lambda x, n: np.array_split(x, n)), "graph", x, counts)
    with pytest.raises(UnsupportedError, match="np.diag: k must be a constant integer, got a traced value"):
        run(tj.trace(lambda x, k: np.diag(x, k)), "graph", x, 1)
    np.testing.assert_array_equal(run(tj.trace(lambda x, k: np.diag(x, k), static_argnums=1), "graph", x, 1),
                                  np.diag(x, 1))


def _updates(x):
    y = x * 1.0
    flipped = np.flip(y, 1)
    flipped[0, 0] = 10.0  # a view: lands in y[0, -1]
    flipped = flipped * 1.0  # (read now: a traced view does not see later updates of y)
    _, rest = np.split(y, [1])
    rest += 1.0  # a view: lands in y[1:]
    middle = np.hsplit(y, 3)[1]
    middle *= 2.0  # a view: lands in y[:, 1:2]
    tiled = np.tile(y, 2)
    tiled[0] = 0.0  # a new array: y keeps its values
    repeated = np.repeat(y, 2)
    repeated += 1.0
    return y, flipped, tiled, repeated, np.triu(y) * 1.0


@pytest.mark.parametrize("mode", ["eager", "graph", "compiled"])
def test_in_place_updates_of_results_follow_numpy(mode):
    assert_tree_close(run(tj.trace(_updates), mode, X.copy()), _updates(X.copy()), f"updates ({mode})")


def test_in_place_update_of_a_diagonal_is_refused():
    def bump_diagonal(x):
        d = np.diagonal(x * 1.0)
        d += 1.0  # NumPy's diagonal is a read-only view
        return d

    with pytest.raises(ValueError, match="read-only"):
        bump_diagonal(X.copy())
    with pytest.raises(UnsupportedError, match="in-place update of a view"):
        run(tj.trace(bump_diagonal), "graph", X.copy())


def _through_every_function(x):
    """A scalar of x (3, 4) through each shape function, squared or more, so its second
    derivatives are not zero."""
    parts = [np.flip(x, 1), np.fliplr(x), np.flipud(x), np.rot90(x[:, :3]), np.roll(x, 2, axis=1),
             np.rollaxis(x[None], 2), np.tril(x, 1), np.triu(x), np.diag(np.diag(x[:, :3])), np.diag(x[0], -1),
             np.diagonal(x, 1), np.trace(x), np.repeat(x, [1, 2, 0], axis=0), np.tile(x[0], 2),
             *np.array_split(x, 3, axis=1), *np.split(x, 2, axis=1), *np.hsplit(x, 4), *np.vsplit(x, 3),
             *np.dsplit(x[None], 2), np.column_stack([x[0], x[1]]), np.vstack([x, x[0]]), np.dstack([x, x]),
             np.atleast_3d(x), np.append(x, x[0]), np.kron(x[:2, :2], x[1:, 2:]), np.select([x > 0], [x], 1.0),
             *np.meshgrid(x[0], x[1])]
    return sum(np.sum(np.tanh(p) * p * (k + 1)) for k, p in enumerate(parts))


# compiled: two minutes of compiling on two cores, so among the long checks
@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
def test_second_derivatives_agree_with_differences_of_the_gradient(mode):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.2, 1.5, (3, 4)) * np.where(rng.random((3, 4)) < 0.5, -1, 1)
    gradient = tj.grad(_through_every_function)
    eps = 1e-6
    numeric = np.zeros((x.size, x.size))
    for k in range(x.size):
        step = np.zeros(x.size)
        step[k] = eps
        step = step.reshape(x.shape)
        numeric[:, k] = ((gradient(x + step) - gradient(x - step)) / (2 * eps)).ravel()
    hessian = run(tj.trace(tj.hessian(_through_every_function)), mode, x).reshape(x.size, x.size)
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-7)
