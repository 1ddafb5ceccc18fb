"""Linear algebra: ``np.linalg``'s inv, solve, det, slogdet, cholesky, eigh, eigvalsh, svd, qr,
pinv and norm.

Layer: front end, on ``contractions``, ``reductions``, ``ufuncs`` and ``shapes``. In: arrays
or tracers with the matrices on their last two axes, float or complex (integers become float64,
as NumPy's ``linalg`` converts them). Out: the LAPACK primitives (``solve``, ``slogdet``,
``cholesky``, ``eigh``, ``svd``, ``qr``), applied to every matrix of a batch, and norms composed of reductions. Their
gradients are the matrix-calculus rules in ``tracejit/rules`` (for complex inputs, under the
convention of the rest of tracejit: a rule is the transpose of the derivative, not its adjoint). Plain operands go to NumPy.
Reached as ``np.linalg.inv(t)`` on a tracer, or as ``tj.numpy.linalg.inv``.
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind
from .dispatch import implements, public_names
from .contractions import matmul
from .promotion import _any_tracer, _broadcast_shapes, _is_tracer, _shape, _strong, _to, astype, literal
from .reductions import max as _max, min as _min, sum as _sum
from .shapes import _check_operand, _norm_axis, expand_dims, moveaxis, reshape, squeeze, transpose
from .indexing import flip, take_along_axis
from .sorting import argsort
from .ufuncs import absolute, conj, exp, imag, multiply, not_equal, power, real, sign, sqrt, where

LinAlgError = np.linalg.LinAlgError


def _float_dtype(*dtypes):
    """The dtype NumPy's ``linalg`` computes in: float32 and complex64 stay single precision
    when every operand is, other reals become float64 and other complex values complex128."""
    kinds = {np.dtype(d).kind for d in dtypes}
    if not kinds <= set("biufc"):
        raise TypeError(f"np.linalg: unsupported dtype(s) {[str(d) for d in dtypes]}")
    for d in dtypes:  # LAPACK has no extended precision: NumPy refuses it rather than round
        if np.dtype(d).char in "gG":
            raise TypeError(f"array type {np.dtype(d)} is unsupported in linalg{_where_msg()}")
    single = builtins.all(np.dtype(d) in (np.float32, np.complex64) for d in dtypes)
    if "c" in kinds:
        return np.dtype(np.complex64 if single else np.complex128)
    return np.dtype(np.float32 if single else np.float64)


def _float_matrices(a, fname):
    """``a`` as float or complex matrices (its last two axes), with NumPy's error for fewer axes."""
    a = _strong(_check_operand(a, fname))
    shape = tuple(_shape(a))
    if len(shape) < 2:
        raise LinAlgError(f"{fname}: {len(shape)}-dimensional array given. Array must be at least two-dimensional"
                          f"{_where_msg()}")
    return _to(a, _float_dtype(a.dtype), shape, (a,))


def _square_matrices(a, fname):
    """``a`` as float or complex square matrices, with NumPy's errors for what is not."""
    a = _float_matrices(a, fname)
    shape = tuple(_shape(a))
    if shape[-1] != shape[-2]:
        raise LinAlgError(f"{fname}: last 2 dimensions of the array must be square, got shape {shape}{_where_msg()}")
    return a


_DOUBLE = {np.dtype(np.float32): np.dtype(np.float64), np.dtype(np.complex64): np.dtype(np.complex128)}
_SINGLE = {np.dtype(np.float64): np.dtype(np.float32), np.dtype(np.complex128): np.dtype(np.complex64)}


def _lapack(prim, *operands):
    """``prim`` applied as NumPy's ``linalg`` applies LAPACK: single-precision operands are
    computed on in double precision and the results rounded back, so an ill-conditioned
    float32 matrix loses no more than NumPy's answer does."""
    work = _DOUBLE.get(np.dtype(operands[0].dtype))
    if work is None:
        return bind(prim, *operands)
    results = bind(prim, *[astype(x, work) for x in operands])
    rounded = [astype(r, _SINGLE.get(np.dtype(r.dtype), r.dtype)) for r in
               (results if isinstance(results, (tuple, list)) else (results,))]
    return tuple(rounded) if isinstance(results, (tuple, list)) else rounded[0]


def _swap_last(x):
    n = len(_shape(x))
    return transpose(x, tuple(range(n - 2)) + (n - 1, n - 2))


def _adjoint(x):
    """The conjugate transpose of each matrix (the transpose of real ones)."""
    return conj(_swap_last(x)) if x.dtype.kind == "c" else _swap_last(x)


@implements(np.linalg.inv)
def inv(a):
    """``numpy.linalg.inv`` of each matrix of ``a``, as ``solve(a, I)``: what NumPy computes,
    bit for bit; a singular matrix raises ``LinAlgError``. Its gradient follows from solve's."""
    if not _any_tracer((a,)):
        return np.linalg.inv(a)
    a = _square_matrices(a, "np.linalg.inv")
    shape = tuple(_shape(a))
    return _lapack(P.solve, a, _to(literal(np.eye(shape[-1], dtype=a.dtype)), a.dtype, shape, (a,)))


@implements(np.linalg.solve)
def solve(a, b):
    """``numpy.linalg.solve``: ``x`` with ``a @ x == b``. As in NumPy 2, ``b`` is one vector
    only when it is 1-d; otherwise its last two axes are (n, k) and batch axes broadcast."""
    if not _any_tracer((a, b)):
        return np.linalg.solve(a, b)
    a = _square_matrices(a, "np.linalg.solve")
    b = _strong(_check_operand(b, "np.linalg.solve"))
    n, vector = _shape(a)[-1], len(_shape(b)) == 1
    b_shape = (n, 1) if vector else tuple(_shape(b))
    if len(b_shape) < 2 or b_shape[-2] != n:
        raise ValueError(f"np.linalg.solve: b of shape {tuple(_shape(b))} does not fit a of shape {tuple(_shape(a))}: "
                         f"its {'only' if vector else 'second-to-last'} axis must have {n} elements{_where_msg()}")
    dtype = _float_dtype(a.dtype, b.dtype)
    batch = _broadcast_shapes("np.linalg.solve", tuple(_shape(a))[:-2], b_shape[:-2], operands=(a, b))
    a_full = _to(a, dtype, batch + (n, n), (a, b))
    b_full = _to(reshape(b, b_shape) if vector else b, dtype, batch + b_shape[-2:], (a, b))
    x = _lapack(P.solve, a_full, b_full)
    return reshape(x, batch + (n,)) if vector else x


@implements(np.linalg.slogdet)
def slogdet(a):
    """``numpy.linalg.slogdet``: ``(sign, logabsdet)`` of each matrix; a singular one gives
    ``(0, -inf)``. For complex matrices ``sign`` is complex, of modulus 1, and ``logabsdet``
    real; a real matrix's ``sign`` is piecewise constant and carries no gradient."""
    if not _any_tracer((a,)):
        return np.linalg.slogdet(a)
    return SlogdetResult(_lapack(P.slogdet, _square_matrices(a, "np.linalg.slogdet")))


def _result_type(name, fields):
    """A tuple whose items NumPy's names also read (``np.linalg.eigh(a).eigenvalues``). It is
    not a namedtuple, so a traced function may return it: it comes back as a plain tuple."""
    attributes = {field: property(operator.itemgetter(i)) for i, field in enumerate(fields)}
    attributes["__doc__"] = f"``({', '.join(fields)})``, also readable by name as NumPy's {name} is."
    return type(name, (tuple,), attributes)


SlogdetResult = _result_type("SlogdetResult", ("sign", "logabsdet"))
EighResult = _result_type("EighResult", ("eigenvalues", "eigenvectors"))
SVDResult = _result_type("SVDResult", ("U", "S", "Vh"))


@implements(np.linalg.det)
def det(a):
    """``numpy.linalg.det``, as ``sign * exp(logabsdet)`` of ``slogdet``, whose gradient is
    ``det(a) * inv(a).T``."""
    if not _any_tracer((a,)):
        return np.linalg.det(a)
    sign, logabsdet = slogdet(a)
    return multiply(sign, exp(logabsdet))


@implements(np.linalg.cholesky)
def cholesky(a, /, *, upper=False):
    """``numpy.linalg.cholesky``: the lower factor ``L`` with ``a == L @ L.conj().T``, from the
    lower triangle of each matrix (``upper=True``: the upper factor ``L.conj().T``, from the
    upper triangle); raises ``LinAlgError`` for a matrix that is not positive definite. As in
    LAPACK, a complex matrix's other triangle is the conjugate mirror of the one read, and the
    imaginary parts of its diagonal are not read."""
    if not _any_tracer((a,)):
        return np.linalg.cholesky(a, upper=upper)
    a = _square_matrices(a, "np.linalg.cholesky")
    if upper:  # the upper triangle of a, conjugated, is the lower triangle of its adjoint
        return _adjoint(_lapack(P.cholesky, _adjoint(a)))
    return _lapack(P.cholesky, a)


def _symmetric_input(a, UPLO, fname):
    """``a`` as square matrices whose lower triangle holds the symmetric (or Hermitian) matrix:
    for ``UPLO='U'`` the adjoint, whose lower triangle is ``a``'s upper one conjugated."""
    if UPLO not in ("L", "U"):
        raise ValueError(f"{fname}: UPLO must be 'L' or 'U', got {UPLO!r}")
    a = _square_matrices(a, fname)
    return _adjoint(a) if UPLO == "U" else a


@implements(np.linalg.eigh)
def eigh(a, UPLO="L"):
    """``numpy.linalg.eigh``: ``(eigenvalues, eigenvectors)`` of each symmetric or Hermitian
    matrix, read from its lower triangle (``UPLO='U'`` is refused: see below); eigenvalues
    real and ascending, eigenvectors as columns. Gradients are infinite where two eigenvalues
    coincide, as in every framework. A complex eigenvector is fixed only up to a phase, so
    only functions that do not depend on that phase have a meaningful gradient."""
    if not _any_tracer((a,)):
        return np.linalg.eigh(a, UPLO=UPLO)
    if UPLO == "U":
        # The compiled program's LAPACK call reads the lower triangle; reading the upper one
        # instead gives the same eigenvalues but eigenvectors whose signs differ from NumPy's.
        raise UnsupportedError(f"np.linalg.eigh(..., UPLO='U') is not supported on traced values: its eigenvectors' "
                               f"signs would differ from NumPy's. Pass the transposed matrix with UPLO='L' (the "
                               f"default), or use np.linalg.eigvalsh(..., UPLO='U') for the eigenvalues{_where_msg()}")
    return EighResult(_lapack(P.eigh, _symmetric_input(a, UPLO, "np.linalg.eigh")))


@implements(np.linalg.eigvalsh)
def eigvalsh(a, UPLO="L"):
    """``numpy.linalg.eigvalsh``: the (real) eigenvalues of each symmetric or Hermitian matrix,
    ascending."""
    if not _any_tracer((a,)):
        return np.linalg.eigvalsh(a, UPLO=UPLO)
    return _lapack(P.eigh, _symmetric_input(a, UPLO, "np.linalg.eigvalsh"))[0]


@implements(np.linalg.svd)
def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """``numpy.linalg.svd``: ``(U, S, Vh)`` with ``a == U * S @ Vh``, or ``S`` alone
    (``compute_uv=False``). Traced code computes the reduced decomposition: for a matrix that
    is not square, pass ``full_matrices=False`` (the extra columns of a full ``U`` or ``Vh`` are
    not unique, and have no gradient). ``S`` is real; complex singular vectors are fixed only up
    to a phase shared by a column of ``U`` and the row of ``Vh``, so only functions that do not
    depend on it (``U * S @ Vh``, ``abs(U)`` ...) have a meaningful gradient."""
    if not _any_tracer((a,)):
        return np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian)
    if hermitian:
        return _hermitian_svd(_square_matrices(a, "np.linalg.svd"), compute_uv)
    a = _float_matrices(a, "np.linalg.svd")
    m, n = _shape(a)[-2:]
    if compute_uv and full_matrices and m != n:
        raise UnsupportedError(f"np.linalg.svd(..., full_matrices=True) of a {m}x{n} matrix is not supported on traced "
                               f"values; pass full_matrices=False for the reduced decomposition{_where_msg()}")
    u, s, vh = _lapack(P.svd, a)
    return SVDResult((u, s, vh)) if compute_uv else s


def _hermitian_svd(a, compute_uv):
    """NumPy's ``svd(a, hermitian=True)``: from ``eigh`` of the lower triangle, the singular
    values are the eigenvalues' magnitudes in descending order, and each eigenvalue's sign
    moves into its row of ``Vh``."""
    w, v = _lapack(P.eigh, a)
    magnitudes = absolute(w)
    order = flip(argsort(magnitudes, axis=-1), axis=-1)
    s = take_along_axis(magnitudes, order, -1)
    if not compute_uv:
        return s
    u = take_along_axis(v, expand_dims(order, -2), -1)
    return SVDResult((u, s, _adjoint(multiply(u, expand_dims(take_along_axis(sign(w), order, -1), -2)))))


QRResult = _result_type("QRResult", ("Q", "R"))


@implements(np.linalg.qr)
def qr(a, mode="reduced"):
    """``numpy.linalg.qr`` in its default ``mode='reduced'`` (``'r'``: ``R`` alone): ``(Q, R)``
    with orthonormal columns in ``Q`` and ``R`` upper triangular with a real diagonal, as LAPACK
    gives. Gradients need at least as many rows as columns."""
    if not _any_tracer((a,)):
        return np.linalg.qr(a, mode=mode)
    if mode not in ("reduced", "r"):
        raise UnsupportedError(f"np.linalg.qr(..., mode={mode!r}) is not supported on traced values; 'reduced' "
                               f"(the default) and 'r' are{_where_msg()}")
    q, r = _lapack(P.qr, _float_matrices(a, "np.linalg.qr"))
    return QRResult((q, r)) if mode == "reduced" else r


@implements(np.linalg.pinv)
def pinv(a, rcond=None, hermitian=False, *, rtol=np._NoValue):
    """``numpy.linalg.pinv`` from the reduced SVD, as NumPy computes it: singular values at
    most ``rcond`` (default ``max(m, n) * eps``) times the largest are dropped."""
    if not _any_tracer((a,)):
        kwargs = {} if rtol is np._NoValue else {"rtol": rtol}
        return np.linalg.pinv(a, rcond=rcond, hermitian=hermitian, **kwargs)
    a = _float_matrices(a, "np.linalg.pinv")
    m, n = _shape(a)[-2:]
    if rtol is not np._NoValue and rtol is not None:
        rcond = rtol
    u, s, vh = _hermitian_svd(_square_matrices(a, "np.linalg.pinv"), True) if hermitian else _lapack(P.svd, a)
    if rcond is None:
        rcond = max(m, n) * np.finfo(s.dtype).eps
    if _is_tracer(rcond):
        raise UnsupportedError(f"np.linalg.pinv: a traced rcond is not supported{_where_msg()}")
    cutoff = multiply(_max(s, axis=-1, keepdims=True), np.asarray(rcond, dtype=s.dtype))
    large = s > cutoff
    s_inv = where(large, 1 / where(large, s, 1), 0)
    return matmul(_adjoint(vh), multiply(expand_dims(s_inv, -1), _adjoint(u)))


# ----------------------------------------------------------------------------- norm

def _squared_modulus(x):
    """``|x|**2`` of each element, without the square root of ``absolute`` (whose derivative is
    not finite at 0); real for complex ``x``, as NumPy's norms compute it."""
    if x.dtype.kind == "c":
        re, im = real(x), imag(x)
        return multiply(re, re) + multiply(im, im)
    return multiply(x, x)


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return sqrt(_sum(_squared_modulus(x), axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return _max(absolute(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return _min(absolute(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return _sum(not_equal(x, 0), axis=axis, keepdims=keepdims, dtype=np.finfo(x.dtype).dtype)
    if ord == 1:
        return _sum(absolute(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for vectors{_where_msg()}")
    return power(_sum(power(absolute(x), ord), axis=axis, keepdims=keepdims), 1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    rows, cols = axes
    if ord is None or ord == "fro":
        out = sqrt(_sum(_squared_modulus(x), axis=axes, keepdims=keepdims))
    elif ord in (1, -1, np.inf, -np.inf):
        # 1: the largest column sum of |x| (summed over the rows); inf: the largest row sum
        summed, over = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = _sum(absolute(x), axis=summed, keepdims=True)
        out = (_max if ord > 0 else _min)(sums, axis=over, keepdims=True)
        if not keepdims:
            out = squeeze(out, axis=axes)
    elif ord in ("nuc", 2, -2):
        # the sum, the largest or the smallest singular value of the matrices on the two axes
        ndim = len(_shape(x))
        values = _lapack(P.svd, moveaxis(x, axes, (ndim - 2, ndim - 1)))[1]
        out = (_sum if ord == "nuc" else _max if ord == 2 else _min)(values, axis=-1)
        if keepdims:
            out = expand_dims(out, tuple(sorted(axes)))
    else:
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for matrices{_where_msg()}")
    return out


@implements(np.linalg.norm)
def norm(x, ord=None, axis=None, keepdims=False):
    """``numpy.linalg.norm``: vector norms (``ord`` None/2, 1, inf, -inf, 0 or any p) over one
    axis or a whole 1-d array, and matrix norms (None/'fro', 1, -1, inf, -inf) over two axes
    or a whole 2-d array, and the norms of singular values (2, -2, 'nuc'); real for complex
    ``x``, as in NumPy."""
    if not _any_tracer((x,)):
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    x = _strong(_check_operand(x, "np.linalg.norm"))
    if x.dtype.kind not in "fc":
        x = _to(x, _float_dtype(x.dtype), tuple(_shape(x)), (x,))
    ndim = len(_shape(x))
    if axis is None:
        if ord is None:  # the 2-norm of every element, whatever the rank
            out = sqrt(_sum(_squared_modulus(x)))
            return reshape(out, (1,) * ndim) if keepdims else out
        if ndim not in (1, 2):
            raise ValueError(f"np.linalg.norm: improper number of dimensions to norm ({ndim}) with ord={ord!r} and "
                             f"no axis{_where_msg()}")
        axis = tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    axes = tuple(_norm_axis(a, ndim, "axis") for a in axes)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError(f"np.linalg.norm: duplicate axes given: {axis}{_where_msg()}")
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"np.linalg.norm: improper number of dimensions to norm: axis={axis}{_where_msg()}")



# ----------------------------------------------------------------------------- lstsq

def _lstsq_operands(a, b):
    """``a`` as one float64 (or complex128) matrix and ``b`` as its columns, with NumPy's errors: NumPy 2's
    lstsq takes one 2-d ``a`` and a 1-d or 2-d ``b`` (no batch axes)."""
    a = _strong(_check_operand(a, "np.linalg.lstsq"))
    b = _strong(_check_operand(b, "np.linalg.lstsq"))
    result_dtype = _float_dtype(a.dtype, b.dtype)
    for operand, allowed in ((a, (2,)), (b, (1, 2))):
        if len(_shape(operand)) not in allowed:
            raise LinAlgError(f"np.linalg.lstsq: {len(_shape(operand))}-dimensional array given. Array must be "
                              f"two-dimensional{_where_msg()}")
    (m, n), vector = _shape(a), len(_shape(b)) == 1
    if _shape(b)[0] != m:
        raise LinAlgError(f"np.linalg.lstsq: incompatible dimensions: a of shape {tuple(_shape(a))} and b of shape "
                          f"{tuple(_shape(b))} need the same number of rows{_where_msg()}")
    columns = (m, 1) if vector else tuple(_shape(b))
    # NumPy's lstsq computes in double precision whatever the inputs
    work = np.dtype(np.complex128 if result_dtype.kind == "c" else np.float64)
    return (_to(a, work, (m, n), (a, b)), _to(reshape(b, columns) if vector else b, work, columns, (a, b)),
            vector, result_dtype)


@implements(np.linalg.lstsq)
def lstsq(a, b, rcond=None):
    """``numpy.linalg.lstsq``: ``(x, residuals, rank, s)``, the least-squares solution of
    ``a @ x == b`` of least norm, from the reduced SVD as NumPy's LAPACK call computes it (in
    double precision; singular values at most ``rcond`` times the largest count as zero, the
    default ``rcond`` being ``max(M, N) * eps`` and a negative one LAPACK's ``eps / 2``).
    ``rank`` is an int32 scalar, as NumPy's.

    NumPy's residuals have a shape that depends on the values (empty when the rank is below
    N), which a traced program cannot have, so traced code follows one rule: for M > N they
    have NumPy's full-rank shape (``(K,)``, or ``(1,)`` for a 1-d ``b``), the squared norms of
    the columns of ``b - a @ x``, and are NaN where the matrix turns out rank-deficient when the
    program runs (NumPy would give an empty array there); for M <= N they are empty, as in NumPy.
    Gradients reach ``x``, ``residuals`` and ``s`` (infinite where singular values coincide)."""
    if not _any_tracer((a, b)):
        return np.linalg.lstsq(a, b, rcond=rcond)
    if _is_tracer(rcond):
        raise UnsupportedError(f"np.linalg.lstsq: a traced rcond is not supported{_where_msg()}")
    a, b, vector, dtype = _lstsq_operands(a, b)
    (m, n), k = _shape(a), _shape(b)[1]
    real_work = np.dtype(np.float64)
    eps = np.finfo(real_work).eps
    rcond = max(m, n) * eps if rcond is None else eps / 2 if rcond < 0 else float(rcond)
    if min(m, n) == 0:  # no singular values: x is zero, and so is the rank
        x = _to(literal(0.0), a.dtype, (n, k), (a, b))
        s = _to(literal(np.zeros(0)), real_work, (0,), (a, b))
        rank = _sum(_to(literal(np.int32(0)), np.int32, (0,), (a, b)), dtype=np.int32)
    else:
        u, s, vh = _lapack(P.svd, a)
        large = s > multiply(_max(s), literal(rcond, real_work))
        rank = _sum(large, dtype=np.int32)
        s_inv = where(large, 1 / where(large, s, 1), 0)
        x = matmul(_adjoint(vh), multiply(expand_dims(s_inv, -1), matmul(_adjoint(u), b)))
    if m > n:
        residuals = where(rank == n, _sum(_squared_modulus(b - matmul(a, x)), axis=0), np.nan)
    else:
        residuals = _to(literal(np.zeros(0)), real_work, (0,), (a, b))
    x = reshape(x, (n,)) if vector else x
    real_dtype = np.empty(0, dtype).real.dtype  # residuals and singular values are real, as NumPy's
    return (_to(x, dtype, tuple(_shape(x)), (a, b)), _to(residuals, real_dtype, tuple(_shape(residuals)), (a, b)),
            rank, _to(s, real_dtype, tuple(_shape(s)), (a, b)))


__all__ = public_names(globals())
