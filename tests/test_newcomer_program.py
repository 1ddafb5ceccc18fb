"""A newcomer's NumPy program -- einsum, linalg.norm, cumsum, sort, boolean masks with np.where,
fancy indexing and broadcasting -- traces and compiles without change, with its gradient."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import run


def neighbourhood_score(X, W, labels):
    """Squared distances between all rows (einsum and broadcasting), clipped at zero (a mask
    and np.where), the three nearest per row (sort), the norms of a projection (linalg.norm),
    picked by label (fancy indexing) and accumulated (cumsum)."""
    squares = np.einsum("ij,ij->i", X, X)
    distances = squares[:, None] + squares[None, :] - 2 * np.einsum("ik,jk->ij", X, X)
    distances = np.where(distances > 0, distances, 0.0)
    nearest = np.sort(distances, axis=1)[:, 1:4]
    norms = np.linalg.norm(X @ W, axis=1)
    running = np.cumsum(norms[labels])
    return (nearest.mean(axis=1) * norms).sum() + running[-1] / len(labels)


def _problem():
    rng = np.random.default_rng(7)
    return rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.integers(0, 6, 5)


@pytest.mark.parametrize("mode", ["graph", "compiled"])
def test_the_program_runs_unchanged_and_matches_numpy(mode):
    X, W, labels = _problem()
    np.testing.assert_allclose(run(tj.trace(neighbourhood_score), mode, X, W, labels),
                               neighbourhood_score(X, W, labels), rtol=1e-12)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_its_gradient_matches_finite_differences(mode):
    X, W, labels = _problem()
    grads = run(tj.trace(tj.grad(neighbourhood_score, argnums=(0, 1))), mode, X, W, labels)
    eps = 1e-6
    for which, (value, grad) in enumerate(zip((X, W), grads)):
        expected = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            step = np.zeros_like(value)
            step[idx] = eps
            args = [X, W]
            args[which] = value + step
            up = neighbourhood_score(*args, labels)
            args[which] = value - step
            expected[idx] = (up - neighbourhood_score(*args, labels)) / (2 * eps)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7, err_msg=f"argument {which} ({mode})")
