"""np.linalg on traced values, beyond the op specs (values, gradients, vmap in every mode):
gradients where the input is not symmetric (NumPy's cholesky reads one triangle), LAPACK's
errors raised the same way in every mode, and refusals that name what is missing."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import run
from test_autodiff import numeric_grad

MODES = ["eager", "graph", "compiled"]


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_gradient_follows_the_triangle_numpy_reads(upper):
    # Perturbing the unread triangle changes nothing, so its gradient is zero; finite
    # differences of np.linalg.cholesky itself are the reference.
    rng = np.random.default_rng(1)
    m = rng.standard_normal((3, 3))
    a = m @ m.T + 3 * np.eye(3)
    a[0, 2] += 0.25  # not symmetric: the two triangles differ
    weights = rng.uniform(0.5, 1.5, (3, 3))

    def loss(a):
        return (np.linalg.cholesky(a, upper=upper) * weights).sum()

    want = numeric_grad(loss, a)
    unread = np.triu(np.ones((3, 3)), 1) if not upper else np.tril(np.ones((3, 3)), -1)
    assert np.all(want[unread == 1] == 0)
    grad = tj.trace(tj.grad(loss))
    for mode in MODES:
        np.testing.assert_allclose(run(grad, mode, a), want, rtol=1e-6, atol=1e-8, err_msg=mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_singular_matrix_raises_numpys_linalg_error_in_every_mode(mode):
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError):
        run(tj.trace(lambda a: np.linalg.inv(a) + 1), mode, singular)
    with pytest.raises(np.linalg.LinAlgError):
        run(tj.trace(lambda a: np.linalg.cholesky(-a)), mode, np.eye(2))
    sign, logdet = run(tj.trace(lambda a: np.linalg.slogdet(a)), mode, singular)
    assert sign == 0 and logdet == -np.inf


def test_malformed_calls_are_refused_with_numpys_errors():
    f = tj.trace(lambda a: np.linalg.inv(a))
    with tj.mode("graph"):
        with pytest.raises(np.linalg.LinAlgError, match="must be square, got shape \\(2, 3\\)"):
            f(np.ones((2, 3)))
        with pytest.raises(np.linalg.LinAlgError, match="1-dimensional array given"):
            f(np.ones(3))
        with pytest.raises(ValueError, match="its second-to-last axis must have 3 elements"):
            tj.trace(lambda a, b: np.linalg.solve(a, b))(np.eye(3), np.ones((2, 2)))
        with pytest.raises(tj.UnsupportedError, match="pass full_matrices=False"):
            tj.trace(lambda a: np.linalg.svd(a))(np.ones((3, 2)))
        with pytest.raises(ValueError, match="UPLO must be 'L' or 'U'"):
            tj.trace(lambda a: np.linalg.eigvalsh(a, "X"))(np.eye(2))
        with pytest.raises(tj.UnsupportedError, match="signs would differ from NumPy's"):
            tj.trace(lambda a: np.linalg.eigh(a, "U"))(np.eye(2))
        with pytest.raises(ValueError, match="invalid norm order 'fro' for vectors"):
            tj.trace(lambda a: np.linalg.norm(a, "fro"))(np.ones(3))


def test_solve_broadcasts_batches_and_takes_a_vector_only_when_one_dimensional():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 3, 3)) + 3 * np.eye(3)
    b = rng.standard_normal((3, 2))
    v = rng.standard_normal(3)
    f = tj.trace(lambda a, b, v: (np.linalg.solve(a, b), np.linalg.solve(a[0], v), np.linalg.solve(a, v[:, None])))
    want = (np.linalg.solve(a, b), np.linalg.solve(a[0], v), np.linalg.solve(a, v[:, None]))
    for mode in MODES:
        for got, expected in zip(run(f, mode, a, b, v), want):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=mode)


def test_the_compiled_program_calls_lapack_per_matrix():
    f = tj.trace(lambda a: np.linalg.inv(a))
    source = f.source(np.eye(3)[None].repeat(2, 0))
    assert "np.linalg.inv(" in source and "for b0 in range(2)" in source


def test_the_gradient_of_a_wide_qr_is_refused_by_name():
    with pytest.raises(NotImplementedError, match="wide 2x3 matrix"):
        tj.grad(lambda a: np.linalg.qr(a)[1].sum())(np.arange(6.0).reshape(2, 3) + np.eye(2, 3))
