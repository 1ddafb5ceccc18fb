"""Products, running sums and products, and the NaN-ignoring reductions, beyond the op specs:
derivatives at zeros against the product-of-the-others formula (first and second order), the
compiled scan's loop, NumPy's warnings for slices of NaNs, and the refusals.

The op specs (tests/op_specs.py) check values against NumPy in every mode and gradients
against finite differences; here the expected derivatives are written out, so that a rule that
divides by a factor (NaN or a wrong value at a zero) fails.
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import MODES, run
from tracejit.errors import UnsupportedError

# a line without zeros, one with one zero, one with two
ZEROS = np.array([[1.5, -2.0, 0.5, 1.25], [1.5, 0.0, -2.0, 0.5], [0.0, 1.25, 0.0, -0.75]])


def _prod_without(row, *skip):
    return math.prod(v for j, v in enumerate(row) if j not in skip)


def _cumprod_jacobian(row):
    """d cumprod(row)[i] / d row[k]: the product of row[:i+1] without row[k], for k <= i."""
    n = len(row)
    return np.array([[_prod_without(row[:i + 1], k) if k <= i else 0.0 for k in range(n)] for i in range(n)])


@pytest.mark.parametrize("mode", MODES)
def test_prod_gradient_at_zeros_is_the_product_of_the_others(mode):
    grad = run(tj.trace(tj.grad(lambda x: np.prod(x, axis=1).sum())), mode, ZEROS)
    want = np.array([[_prod_without(row, k) for k in range(len(row))] for row in ZEROS])
    np.testing.assert_allclose(grad, want, rtol=1e-15)
    assert want[1, 1] == 1.5 * -2.0 * 0.5 and not want[2].any()  # one zero: the others; two: 0
    tangent = run(tj.trace(lambda x, v: tj.jvp(lambda x: np.prod(x, axis=1), (x,), (v,))[1]), mode, ZEROS,
                  np.ones_like(ZEROS))
    np.testing.assert_allclose(tangent, want.sum(axis=1), rtol=1e-15)


@pytest.mark.parametrize("mode", MODES)
def test_prod_hessian_at_zeros(mode):
    row = ZEROS[1]  # one zero: the second derivatives through it are the products of the rest
    hessian = run(tj.trace(tj.hessian(np.prod)), mode, row)
    n = len(row)
    want = np.array([[_prod_without(row, j, k) if j != k else 0.0 for k in range(n)] for j in range(n)])
    np.testing.assert_allclose(hessian, want, rtol=1e-15)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reversed"])
def test_cumprod_jacobians_at_zeros(mode, reverse):
    def fn(x):
        return np.cumprod(x[::-1])[::-1] if reverse else np.cumprod(x)

    for row in ZEROS:
        want = _cumprod_jacobian(row[::-1])[::-1, ::-1] if reverse else _cumprod_jacobian(row)
        np.testing.assert_allclose(run(tj.trace(tj.jacrev(fn)), mode, row), want, rtol=1e-15, err_msg=str(row))
        np.testing.assert_allclose(run(tj.trace(tj.jacfwd(fn)), mode, row), want, rtol=1e-15, err_msg=str(row))


@pytest.mark.parametrize("mode", MODES)
def test_cumprod_second_derivatives_at_zeros(mode):
    weights = np.array([0.5, -1.0, 2.0, 0.75])
    row = ZEROS[1]
    hessian = run(tj.trace(tj.hessian(lambda x: np.cumprod(x) @ weights)), mode, row)
    n = len(row)
    want = np.zeros((n, n))
    for j, k in itertools.product(range(n), repeat=2):
        if j != k:
            want[j, k] = sum(weights[i] * _prod_without(row[:i + 1], j, k) for i in range(max(j, k), n))
    np.testing.assert_allclose(hessian, want, rtol=1e-15)


def test_the_compiled_scan_is_one_sequential_loop_along_the_axis():
    f = tj.trace(lambda t: np.cumsum(t, axis=1))
    t = np.arange(24.0).reshape(2, 3, 4)
    with tj.mode("compiled"):
        np.testing.assert_array_equal(f(t), np.cumsum(t, axis=1))
    source = f.source(t)
    assert "cumsum[axis=1 reverse=False]" in source
    # along a middle axis: each row of the last axis from the previous one, in memory order
    assert "for k0 in range(1, 3):" in source and "b[i0, k0, i2] = b[i0, k0 - 1, i2] + a[i0, k0, i2]" in source
    g = tj.trace(lambda t: np.cumprod(t, axis=-1))
    with tj.mode("compiled"):
        np.testing.assert_array_equal(g(t), np.cumprod(t, axis=-1))
    assert "acc0 = acc0 * a[i0, i1, k0]" in g.source(t)


def test_a_float32_running_sum_rounds_as_numpy_s_sequential_one():
    x = np.random.default_rng(1).uniform(-1, 1, (3, 1000)).astype(np.float32)
    with tj.mode("compiled"):
        np.testing.assert_array_equal(tj.trace(lambda x: np.cumsum(x, axis=1))(x), np.cumsum(x, axis=1))


@pytest.mark.parametrize("mode", MODES)
def test_slices_of_nans_give_nan_and_eager_mode_warns_as_numpy(mode):
    s = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    f = tj.trace(lambda s: (np.nanmax(s, axis=1), np.nanmin(s, axis=1), np.nanmean(s, axis=1)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(invalid="ignore"):
            result = run(f, mode, s)
    for got, want in zip(result, ([3.0, np.nan], [1.0, np.nan], [2.0, np.nan])):
        np.testing.assert_array_equal(got, want)
    messages = sorted(str(w.message) for w in caught if w.category is RuntimeWarning)
    if mode == "eager":
        assert messages == ["All-NaN slice encountered", "All-NaN slice encountered", "Mean of empty slice"]


@pytest.mark.parametrize("mode", MODES)
def test_nan_reductions_send_gradients_only_to_entries_that_are_not_nan(mode):
    s = np.array([[np.nan, 1.0, 3.0], [2.0, np.nan, -1.0]])
    grad = run(tj.trace(tj.grad(lambda s: np.nanmax(s, axis=1).sum() + np.nansum(s) + np.nanmean(s, axis=0).sum())),
               mode, s)
    # (row maximum) + (nansum) + (column mean over the entries that are not NaN)
    want = np.array([[0.0, 0.0 + 1.0 + 1.0, 1.0 + 1.0 + 0.5], [1.0 + 1.0 + 1.0, 0.0, 0.0 + 1.0 + 0.5]])
    np.testing.assert_array_equal(grad, want)


def test_refusals_name_the_keyword():
    f = tj.trace(lambda x: np.add.accumulate(x, axis=None))
    with pytest.raises(UnsupportedError, match=r"np.add.accumulate\(\.\.\., axis=None\)"):
        f(np.ones(3))
    with pytest.raises(UnsupportedError, match=r"np.cumsum\(\.\.\., out=\)"):
        tj.trace(lambda x: np.cumsum(x, out=x))(np.ones(3))
    with pytest.raises(UnsupportedError, match=r"np.nanmax\(\.\.\., where=\)"):
        tj.trace(lambda x: np.nanmax(x, where=x > 0))(np.ones(3))


def test_average_checks_weights_it_knows_while_tracing():
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
        tj.trace(lambda x: np.average(x, axis=0, weights=np.array([1.0, -1.0])))(np.ones((2, 3)))
    with pytest.raises(TypeError, match="Axis must be specified"):
        tj.trace(lambda x: np.average(x, weights=np.ones(3)))(np.ones((2, 3)))
    with pytest.raises(ValueError, match="diff requires input that is at least one dimensional"):
        tj.trace(lambda x: np.diff(x))(np.float64(1.0) + np.zeros(()))


# ----------------------------------------------------------------------------- running extremes

@pytest.mark.parametrize("mode", MODES)
def test_running_extremes_send_gradients_to_the_earliest_holder(mode):
    # equal values: the earliest element holding the running extreme gets the gradient of every
    # output it holds (as argmax picks the first); the later equal ones get none
    weights = 10.0 ** np.arange(7)
    held = [1.0, 10 + 100 + 1e3, 0.0, 0.0, 1e4 + 1e5 + 1e6, 0.0, 0.0]
    for ufunc, x in ((np.maximum, [1.0, 3.0, 2.0, 3.0, 5.0, 5.0, 0.0]), (np.minimum, [2.0, 1.0, 1.5, 1.0, -1.0, -1.0, 4.0])):
        x = np.array(x)
        fn = lambda x: ufunc.accumulate(x) @ weights
        np.testing.assert_array_equal(run(tj.trace(tj.grad(fn)), mode, x), held, err_msg=ufunc.__name__)
        # forward mode agrees: the Jacobian's rows are one-hot at each output's holder
        jacobian = run(tj.trace(tj.jacfwd(lambda x: ufunc.accumulate(x))), mode, x)
        np.testing.assert_array_equal(weights @ jacobian, held, err_msg=ufunc.__name__)


@pytest.mark.parametrize("mode", MODES)
def test_running_extremes_after_nan_send_gradients_to_the_first_nan(mode):
    x = np.array([1.0, np.nan, 3.0, np.nan, 0.5])
    grad = run(tj.trace(tj.grad(lambda x: np.maximum.accumulate(x) @ np.arange(1.0, 6.0))), mode, x)
    np.testing.assert_array_equal(grad, [1.0, 2 + 3 + 4 + 5, 0.0, 0.0, 0.0])
    grad = run(tj.trace(tj.grad(lambda x: np.minimum.accumulate(x).sum())), mode, x)
    np.testing.assert_array_equal(grad, [1.0, 4.0, 0.0, 0.0, 0.0])


def test_running_extremes_refuse_a_scalar_and_a_dtype_for_truth_values():
    with pytest.raises(TypeError, match="cannot accumulate on a scalar"):
        tj.trace(lambda x: np.maximum.accumulate(x))(np.float64(1.0) + np.zeros(()))
    with pytest.raises(UnsupportedError, match=r"np.logical_and.accumulate\(\.\.\., dtype=int64\)"):
        tj.trace(lambda x: np.logical_and.accumulate(x, dtype=np.int64))(np.ones(3))
