"""np.linalg on traced values, beyond the op specs (values, gradients, vmap in every mode):
gradients where the input is not symmetric (NumPy's cholesky reads one triangle), LAPACK's
errors raised the same way in every mode, and refusals that name what is missing."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from conftest import run
from test_autodiff import complex_numeric_grad, numeric_grad

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


# ----------------------------------------------------------------------------- complex matrices
# Gradients of real losses of complex matrices, in the convention of tj.grad (JAX's and
# autograd's; see test_autodiff), against central differences in the real and imaginary
# direction of every element. Decompositions whose complex factors are fixed only up to a
# phase (eigh's eigenvectors, svd's singular vectors) are checked through losses that do not
# depend on it: |entries|^2, projectors, reconstructions. Inputs that are not Hermitian check
# that gradients follow the triangle (and the real diagonal) that LAPACK reads.

_rng = np.random.default_rng(7)


def _complex(*shape):
    return _rng.standard_normal(shape) + 1j * _rng.standard_normal(shape)


def _weights(*shape):
    return _rng.uniform(0.5, 1.5, shape)


def _near_hermitian(n, spread):
    """A Hermitian positive definite matrix with eigenvalues apart, plus a perturbation that
    is not Hermitian (above the diagonal, and on its imaginary part)."""
    m = _complex(n, n) * 0.3
    h = m @ m.conj().T + np.diag(np.arange(1.0, n + 1) * spread)
    return h + 0.2 * np.triu(_complex(n, n), 1) + 0.3j * np.diag(_rng.standard_normal(n))


W3, W34, W43, W44 = _weights(3, 3), _weights(3, 4), _weights(4, 3), _weights(4, 4)
C3, C32 = _complex(3, 3), _complex(3, 2)


def _squared(x):
    return (x * np.conj(x)).real


def _solve_inv_det(z):
    a, b = z[:, :3] + 3 * np.eye(3), z[:, 3:]
    sign, logabsdet = np.linalg.slogdet(a)
    return (np.real(np.linalg.solve(a, b) * C32).sum() + (_squared(np.linalg.inv(a)) * W3).sum()
            + np.imag(np.linalg.solve(a, b[:, 0])).sum() + np.abs(np.linalg.det(a)) + np.real(np.linalg.det(a) * C3[0, 0])
            + logabsdet + np.imag(sign) + np.real(sign * C3[0, 1]))


def _batched_det(z):
    sign, logabsdet = np.linalg.slogdet(z + 3 * np.eye(3))
    return (np.real(np.linalg.det(z + 3 * np.eye(3)) * C3[:2, 0]).sum() + (logabsdet * W3[:2, 0]).sum()
            + np.real(sign * C3[:2, 1]).sum() + np.real(np.linalg.inv(z + 3 * np.eye(3)) * C3).sum())


def _cholesky(z):
    return (np.real(np.linalg.cholesky(z) * C3).sum() + (np.imag(np.linalg.cholesky(z, upper=True)) * W3).sum()
            + _squared(np.linalg.cholesky(z @ z.conj().T)).sum())


def _eigh(z):
    w, v = np.linalg.eigh(z)
    projector = v[:, :2] @ v[:, :2].conj().T
    return ((w * W3[0]).sum() + (_squared(v) * W3).sum() + (np.abs(projector) * W3).sum()
            + (np.linalg.eigvalsh(z, UPLO="U") * W3[1]).sum() + (np.linalg.eigvalsh(z @ z.conj().T) * W3[2]).sum())


def _svd(z):
    u, s, vh = np.linalg.svd(z, full_matrices=False)
    uw, sw, vhw = np.linalg.svd(z.T, full_matrices=False)  # a wide matrix
    return ((s * W3[0]).sum() + (_squared(u) * W43).sum() + (_squared(vh) * W3).sum()
            + np.real((u * s @ vh) * C3[0, 0]).sum() + (np.abs(u @ u.conj().T) * W44).sum()
            + (sw * W3[1]).sum() + (_squared(uw) * W3).sum() + (_squared(vhw) * W34).sum()
            + np.imag(uw[:, :2] * sw[:2] @ vhw[:2] * C3[1, 1]).sum())


def _qr_pinv(z):
    q, r = np.linalg.qr(z)
    return (np.real(q * C3[0, 0]).sum() + (np.imag(r) * W3).sum() + (_squared(q) * W43).sum()
            + (np.abs(np.linalg.qr(z, mode="r")) * W3).sum() + np.real(np.linalg.pinv(z) * C3[1, 1]).sum()
            + (np.abs(np.linalg.pinv(z.T)) * W43).sum())


def _norms(z):
    matrix = [np.linalg.norm(z, ord) for ord in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf)]
    vector = [np.linalg.norm(z[0], ord) for ord in (None, 1, 2, np.inf, -np.inf, 0, 3, -1.5)]
    return (sum(matrix) + sum(vector) + (np.linalg.norm(z, axis=0) * W3[0]).sum()
            + (np.linalg.norm(z, 1, axis=1, keepdims=True) * W3[:, :1]).sum()
            + (np.linalg.norm(z[None], axis=(2, 1)) * W3[0, 0]).sum())


COMPLEX_LINALG = {
    "solve_inv_det": (_solve_inv_det, _complex(3, 5)),
    "batched_det": (_batched_det, _complex(2, 3, 3)),
    "cholesky": (_cholesky, _near_hermitian(3, 1.0)),
    "eigh": (_eigh, _near_hermitian(3, 2.0)),
    "svd": (_svd, _complex(4, 3)),
    "qr_pinv": (_qr_pinv, _complex(4, 3)),
    "norms": (_norms, _complex(3, 3)),
}
_complex_grads = {}


def _traced_complex_grad(name):
    if name not in _complex_grads:
        _complex_grads[name] = tj.trace(tj.grad(COMPLEX_LINALG[name][0]))
    return _complex_grads[name]


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
@pytest.mark.parametrize("name", list(COMPLEX_LINALG))
def test_complex_gradients_match_finite_differences(name, mode):
    loss, z = COMPLEX_LINALG[name]
    grad = run(_traced_complex_grad(name), mode, z.copy())
    assert grad.dtype == np.complex128 and grad.shape == z.shape
    np.testing.assert_allclose(grad, complex_numeric_grad(loss, z), rtol=1e-6, atol=1e-7, err_msg=f"{name} ({mode})")


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("compiled", marks=pytest.mark.long)])
@pytest.mark.parametrize("name", list(COMPLEX_LINALG))
def test_complex_forward_mode_matches_finite_differences_and_reverse_mode(name, mode):
    # The forward rules: the directional derivative along a complex direction v, which
    # reverse mode gives as real(sum(grad * v)).
    loss, z = COMPLEX_LINALG[name]
    v = np.random.default_rng(3).standard_normal(z.shape) * (1 + 0.5j)
    _, tangent = run(tj.trace(lambda z, v: tj.jvp(loss, (z,), (v,))), mode, z.copy(), v)
    eps = 1e-6
    np.testing.assert_allclose(tangent, (loss(z + eps * v) - loss(z - eps * v)) / (2 * eps), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tangent, np.real(np.sum(tj.grad(loss)(z) * v)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["eager", pytest.param("graph", marks=pytest.mark.long)])
@pytest.mark.parametrize("name", list(COMPLEX_LINALG))
def test_complex_second_order_matches_finite_differences_of_the_gradient(name, mode):
    # The gradient of real(sum(grad L * v)), the derivative of L along v, is the change of
    # grad L along v (the Hessian of L as a function of real and imaginary parts, times v).
    loss, z = COMPLEX_LINALG[name]
    v = np.random.default_rng(5).standard_normal(z.shape) * (0.6 - 0.8j)
    first = tj.grad(loss)
    with tj.mode(mode):
        hv = tj.trace(tj.grad(lambda z: np.real(np.sum(first(z) * v))))(z.copy())
    eps = 1e-5
    np.testing.assert_allclose(hv, (first(z + eps * v) - first(z - eps * v)) / (2 * eps), rtol=1e-5, atol=1e-6)


def test_complex_linalg_gradients_of_a_complex64_matrix_stay_complex64():
    z = _complex(3, 3).astype(np.complex64) + 3 * np.eye(3, dtype=np.complex64)
    grad = tj.grad(lambda z: np.abs(np.linalg.det(z)) + np.linalg.norm(np.linalg.inv(z)) + np.linalg.svd(z)[1].sum())(z)
    assert grad.dtype == np.complex64
    want = tj.grad(lambda z: np.abs(np.linalg.det(z)) + np.linalg.norm(np.linalg.inv(z)) + np.linalg.svd(z)[1].sum())(
        z.astype(np.complex128))
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_hermitian_svd_and_pinv_read_the_lower_triangle_as_numpy_does(dtype):
    # hermitian=True goes through eigh of the lower triangle: on a matrix that is not Hermitian
    # NumPy's result is that of the mirrored lower triangle, not of the matrix
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 4, 4)).astype(dtype)
    if a.dtype.kind == "c":
        a = a + 1j * rng.standard_normal(a.shape)
    f = tj.trace(lambda a: (np.linalg.svd(a, hermitian=True), np.linalg.svd(a, hermitian=True, compute_uv=False),
                            np.linalg.pinv(a, hermitian=True)))
    want = (np.linalg.svd(a, hermitian=True), np.linalg.svd(a, hermitian=True, compute_uv=False),
            np.linalg.pinv(a, hermitian=True))
    assert not np.allclose(want[2], np.linalg.pinv(a))
    for mode in ("graph", "compiled"):
        (u, s, vh), values, inverse = run(f, mode, a)
        for got, expected in zip((u, s, vh, values, inverse), (*want[0], want[1], want[2])):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=mode)


def test_the_gradient_of_a_hermitian_pinv_matches_finite_differences():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 3))
    weights = rng.uniform(0.5, 1.5, (3, 3))

    def loss(a):
        return (np.linalg.pinv(a, hermitian=True) * weights).sum() + np.linalg.svd(a, hermitian=True)[1].sum()

    grad = tj.trace(tj.grad(loss))
    for mode in ("eager", "graph"):
        np.testing.assert_allclose(run(grad, mode, a), numeric_grad(loss, a), rtol=1e-6, atol=1e-8, err_msg=mode)


def test_extended_precision_is_refused_as_numpy_refuses_it():
    with pytest.raises(TypeError, match="unsupported in linalg"):
        np.linalg.inv(np.eye(2, dtype=np.longdouble))
    with pytest.raises(TypeError, match="unsupported in linalg"):
        tj.trace(np.linalg.inv, mode="graph")(np.eye(2, dtype=np.longdouble))


def test_float32_matrices_are_solved_in_double_precision_as_numpy_solves_them():
    # NumPy's linalg computes single-precision input in double and rounds the result; LAPACK in
    # float32 (what the compiled program called before) was 2e-3 off for this matrix (cond 9e5).
    a = np.vander(np.linspace(1, 2, 6), increasing=True).astype(np.float32)
    b = np.ones((6, 2), np.float32)

    def solutions(a, b):
        return np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.pinv(a), np.linalg.svd(a)[1], np.linalg.qr(a)[1]

    f = tj.trace(solutions)
    for mode in ("graph", "compiled"):
        for got, want in zip(run(f, mode, a, b), solutions(a, b)):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, err_msg=mode)
