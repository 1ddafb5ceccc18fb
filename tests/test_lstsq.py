"""np.linalg.lstsq on traced values, beyond its op specs: the rule for residuals where the
rank is only known when the program runs, rcond, the gradient of x against finite differences,
forward mode and vmap, and NumPy's errors."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import assert_tree_close, run
from test_autodiff import complex_numeric_grad, numeric_grad

MODES = ["eager", "graph", "compiled"]
rng = np.random.default_rng(7)
TALL, WIDE, B = rng.standard_normal((5, 3)), rng.standard_normal((3, 5)), rng.standard_normal((5, 2))
RANK_TWO = TALL.copy()
RANK_TWO[:, 2] = RANK_TWO[:, 0] - RANK_TWO[:, 1]


@pytest.mark.parametrize("mode", ["graph", "compiled"])
def test_residuals_of_a_matrix_found_rank_deficient_when_run_are_nan(mode):
    # NumPy gives an empty array there; a traced program keeps the full-rank shape and says NaN
    # rather than a number that is not NumPy's. Everything else is NumPy's.
    f = tj.trace(lambda a, b: np.linalg.lstsq(a, b))
    x, residuals, rank, s = run(f, mode, RANK_TWO, B)
    want_x, want_residuals, want_rank, want_s = np.linalg.lstsq(RANK_TWO, B)
    assert want_residuals.shape == (0,) and want_rank == 2
    assert residuals.shape == (2,) and np.all(np.isnan(residuals))
    assert rank == want_rank and isinstance(rank, np.int32)
    np.testing.assert_allclose(x, want_x, rtol=1e-10)
    np.testing.assert_allclose(s, want_s, rtol=1e-12, atol=1e-14)
    # the same program on a full-rank matrix: NumPy's residuals
    assert_tree_close(run(f, mode, TALL, B), np.linalg.lstsq(TALL, B))


@pytest.mark.parametrize("rcond", [None, -1, 0.3])
def test_rcond_decides_the_rank_as_numpy_does(rcond):
    # 0.3 drops the smallest singular value of this matrix, -1 is LAPACK's machine epsilon
    a = TALL * np.array([1.0, 1.0, 1e-1])
    f = tj.trace(lambda a, b: np.linalg.lstsq(a, b, rcond=rcond)[::2])
    want = np.linalg.lstsq(a, B[:, 0], rcond=rcond)[::2]
    for mode in ("graph", "compiled"):
        x, rank = run(f, mode, a, B[:, 0])
        assert rank == want[1], (mode, rcond)
        np.testing.assert_allclose(x, want[0], rtol=1e-10, err_msg=f"{mode}, rcond={rcond}")


@pytest.mark.parametrize("a", [pytest.param(TALL, id="tall"), pytest.param(WIDE, id="wide", marks=pytest.mark.long)])
def test_the_gradient_of_x_matches_finite_differences(a):
    weights = rng.uniform(0.5, 1.5, (a.shape[1], 2))
    b = B[:a.shape[0]]

    def loss(a, b):
        return (np.linalg.lstsq(a, b)[0] * weights).sum()

    want = numeric_grad(lambda a: loss(a, b), a), numeric_grad(lambda b: loss(a, b), b)
    grad = tj.trace(tj.grad(loss, argnums=(0, 1)))
    for mode in MODES:
        for got, expected in zip(run(grad, mode, a, b), want):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8, err_msg=mode)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_problems_give_numpys_results(dtype):
    # x complex, residuals and singular values real, in the inputs' precision, as NumPy gives
    a = (TALL + 1j * rng.standard_normal(TALL.shape)).astype(dtype)
    b = (B + 1j * rng.standard_normal(B.shape)).astype(dtype)
    f = tj.trace(lambda a, b: np.linalg.lstsq(a, b))
    want = np.linalg.lstsq(a, b)
    for mode in ("graph", "compiled"):
        got = run(f, mode, a, b)
        for g, w in zip(got, want):
            assert (np.asarray(g).dtype, np.shape(g)) == (np.asarray(w).dtype, np.shape(w)), mode
            np.testing.assert_allclose(g, w, rtol=1e-4 if dtype == np.complex64 else 1e-10, atol=1e-6, err_msg=mode)


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
def test_the_gradient_of_a_complex_problem_matches_finite_differences(mode):
    a = TALL + 1j * rng.standard_normal(TALL.shape)
    weights = rng.uniform(0.5, 1.5, (3, 2))

    def loss(a):
        x, residuals, _, _ = np.linalg.lstsq(a, B)
        return (np.abs(x) ** 2 * weights).sum() + residuals.sum()

    grad = tj.trace(tj.grad(loss))
    np.testing.assert_allclose(run(grad, mode, a), complex_numeric_grad(loss, a), rtol=1e-6, atol=1e-8, err_msg=mode)


def test_forward_mode_matches_finite_differences():
    direction = rng.standard_normal(TALL.shape)
    solution = lambda a: np.linalg.lstsq(a, B)[0]
    _, tangent = tj.jvp(solution, (TALL,), (direction,))
    eps = 1e-6
    want = (solution(TALL + eps * direction) - solution(TALL - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(tangent, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["graph", "compiled"])
def test_vmap_solves_each_problem_as_numpy_does(mode):
    # NumPy's lstsq takes one matrix; vmap maps it over a batch, the second one rank-deficient
    a = np.stack([TALL, RANK_TWO, TALL[::-1]])
    f = tj.trace(tj.vmap(lambda a, b: np.linalg.lstsq(a, b), in_axes=(0, None)))
    x, residuals, rank, s = run(f, mode, a, B)
    for i in range(3):
        want_x, want_residuals, want_rank, want_s = np.linalg.lstsq(a[i], B)
        np.testing.assert_allclose(x[i], want_x, rtol=1e-10)
        np.testing.assert_allclose(s[i], want_s, rtol=1e-12, atol=1e-14)
        assert rank[i] == want_rank
        if want_residuals.size:
            np.testing.assert_allclose(residuals[i], want_residuals, rtol=1e-10)
        else:
            assert np.all(np.isnan(residuals[i]))


def test_malformed_calls_are_refused_with_numpys_errors():
    f = tj.trace(lambda a, b: np.linalg.lstsq(a, b))
    with tj.mode("graph"):
        with pytest.raises(np.linalg.LinAlgError, match="3-dimensional array given"):
            f(np.ones((2, 5, 3)), B)
        with pytest.raises(np.linalg.LinAlgError, match="need the same number of rows"):
            f(TALL, B[:4])
        with pytest.raises(tj.UnsupportedError, match="traced rcond"):
            tj.trace(lambda a, b, r: np.linalg.lstsq(a, b, rcond=r))(TALL, B, 0.5)
