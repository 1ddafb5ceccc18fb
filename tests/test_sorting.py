"""Sorting on traced values, beyond the op specs: partition's contract (its order within
the two parts may differ from NumPy's), ties in argsort, and refusals that say why."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import run

MODES = ["eager", "graph", "compiled"]


@pytest.mark.parametrize("mode", MODES)
def test_partition_keeps_numpys_promise(mode):
    x = np.random.default_rng(3).standard_normal((4, 9))
    out = run(tj.trace(lambda x: np.partition(x, 4, axis=1)), mode, x)
    kth = np.sort(x, axis=1)[:, 4:5]
    assert np.array_equal(out[:, 4:5], kth)
    assert np.all(out[:, :4] <= kth) and np.all(out[:, 5:] >= kth)
    assert np.array_equal(np.sort(out, axis=1), np.sort(x, axis=1))


@pytest.mark.parametrize("mode", MODES)
def test_argsort_keeps_ties_in_their_original_order(mode):
    # kind="stable" agrees in every mode; traced code is stable whatever the kind (NumPy's
    # default may order ties otherwise, so eager mode is left out of the second check)
    x = np.array([[2, 1, 2, 1, 0, 2, 1, 0, 0, 2, 1, 2, 0, 1, 2, 1, 0, 2]] * 2, dtype=np.int64)
    want = np.argsort(x, kind="stable")
    assert np.array_equal(run(tj.trace(lambda x: np.argsort(x, kind="stable")), mode, x), want)
    if mode != "eager":
        assert np.array_equal(run(tj.trace(lambda x: np.argsort(x)), mode, x), want)


def test_refusals_name_what_is_missing():
    with tj.mode("graph"):
        with pytest.raises(tj.UnsupportedError, match="method='nearest'"):
            tj.trace(lambda x: np.quantile(x, 0.5, method="nearest"))(np.ones(4))
        with pytest.raises(tj.UnsupportedError, match="traced q"):
            tj.trace(lambda x, q: np.quantile(x, q))(np.ones(4), np.float64(0.5) * np.ones(()))
        with pytest.raises(ValueError, match="quantiles must be in the range \\[0, 100\\]"):
            tj.trace(lambda x: np.percentile(x, 150.0))(np.ones(4))
        with pytest.raises(ValueError, match="kth\\(=9\\) out of bounds \\(9\\)"):
            tj.trace(lambda x: np.partition(x, 9))(np.ones(9))


def _complex_with_nans(shape, seed):
    # every class of NumPy's complex order: R + Rj, R + nanj, nan + Rj, nan + nanj, with ties
    rng = np.random.default_rng(seed)
    z = np.empty(shape, np.complex128)
    z.real = rng.choice([-1.0, 0.0, 0.5, 2.0, np.nan], shape)
    z.imag = rng.choice([-1.0, 0.0, 0.5, 2.0, np.nan], shape)
    return z


@pytest.mark.parametrize("mode", MODES)
def test_complex_values_sort_as_numpy_orders_them_nans_included(mode):
    # compared part by part: NaN in either part makes a complex number NaN to assert_allclose,
    # which would not see nan + 1j where NumPy has nan + 2j
    z = _complex_with_nans((3, 40), seed=5)
    f = tj.trace(lambda z: (np.sort(z, axis=1), np.sort(z, axis=0), np.argsort(z, axis=1, kind="stable"),
                            np.median(z, axis=1), np.median(z[:, :39], axis=1), np.median(z, axis=0)))
    with np.errstate(invalid="ignore"):
        got = run(f, mode, z)
        want = (np.sort(z, axis=1), np.sort(z, axis=0), np.argsort(z, axis=1, kind="stable"), np.median(z, axis=1),
                np.median(z[:, :39], axis=1), np.median(z, axis=0))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, k
        for part in (np.real, np.imag):
            np.testing.assert_array_equal(part(g), part(w), err_msg=f"result {k}, {part.__name__} part ({mode})")


@pytest.mark.parametrize("mode", MODES)
def test_complex_partition_keeps_numpys_promise(mode):
    z = _complex_with_nans((2, 9), seed=6)
    out = run(tj.trace(lambda z: np.partition(z, 4, axis=1)), mode, z)
    want = np.partition(z, 4, axis=1)
    for part in (np.real, np.imag):  # the kth element is NumPy's, and the rest are the others, sorted
        np.testing.assert_array_equal(part(out[:, 4]), part(want[:, 4]))
        np.testing.assert_array_equal(part(np.sort(out, axis=1)), part(np.sort(z, axis=1)))


def test_quantiles_of_complex_values_are_refused_as_numpy_refuses_them():
    z = _complex_with_nans((4,), seed=7)
    for fn in (lambda z: np.quantile(z, 0.5), lambda z: np.percentile(z, 50.0)):
        with pytest.raises(TypeError, match="a must be an array of real numbers"):
            fn(z)
        with pytest.raises(TypeError, match="a must be an array of real numbers"):
            tj.trace(fn)(z)
