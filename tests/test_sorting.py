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
