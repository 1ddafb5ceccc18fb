"""Reverse mode: one vector-Jacobian product rule per differentiable primitive.

Layer: transformation rules (see ``tracejit.rules``). In: nothing at import but the primitive
set and the front end. Out: ``vjp_rules``, read by the tape in ``autodiff.py``.

A rule ``rule(ct, *inputs, out, **params)`` returns one cotangent per input (``None`` for an
input that gets no gradient), given the output's cotangent ``ct`` (for a primitive with
several results, a list of them, ``None`` where none reached that result, and ``out`` the
list of results). The inputs and ``out`` are the primal values, whatever they
are (arrays, graph tracers, tape tracers of an enclosing ``grad``), so a rule is ordinary
front-end code: gradient graphs print, fuse, compile and differentiate again. Primitives
declared ``differentiable=False`` (comparisons, ``floor``, ``argmax`` ...) have no rule: no
gradient flows through them.
"""
from __future__ import annotations

import builtins
import inspect
import math

import numpy as np

from .. import numpy as tnp
from .. import ops
from ..ops import broadcast_to, gather, matmul, pad, reduce_sum, reshape, scatter_add, slice, transpose
from ..primitives import Primitive

__all__ = ["vjp_rules", "defvjp", "takes_needed", "prod_of_others", "shifted", "extremum_starts"]

vjp_rules: dict[Primitive, object] = {}
# the primitives whose rule takes ``needed`` (one flag per input: whether the caller uses that
# cotangent) and skips the others, e.g. a matrix product's gradient for the data when only the
# weights train
takes_needed: set[Primitive] = set()


def defvjp(prim: Primitive, rule) -> None:
    """Register ``rule`` as ``prim``'s vector-Jacobian product (see the module docstring)."""
    if not prim.differentiable:
        raise ValueError(f"defvjp: {prim.name} is declared non-differentiable")
    vjp_rules[prim] = rule
    if "needed" in inspect.signature(rule).parameters:
        takes_needed.add(prim)
    else:
        takes_needed.discard(prim)


# --------------------------------------------------------------------------- elementwise


def pow_by_base(x, y):
    """d/dx x**y = y x**(y-1), and 0 where y == 0: x**0 is constant, and y x**(y-1) would be
    0 * inf at x = 0 (the exponent used there is 1, so nothing overflows or warns)."""
    return y * x ** tnp.where(y == 0, tnp.ones_like(y), y - 1)


def pow_by_exponent(x, out):
    """d/dy x**y = x**y log x: for real x defined where x > 0, for complex x wherever x != 0;
    elsewhere the (measure-zero) derivative is 0."""
    defined = x != 0 if x.dtype.kind == "c" else x > 0
    safe_log = tnp.log(tnp.where(defined, x, tnp.ones_like(x)))
    return tnp.where(defined, out * safe_log, tnp.zeros_like(out))


def _pow_vjp(ct, x, y, out):
    return ct * pow_by_base(x, y), ct * pow_by_exponent(x, out)


def _minmax_vjp(ct, a, b):
    """(the part of ``ct`` where ``a > b``, the rest): maximum(x, y) passes (x, y), minimum(x, y)
    passes (y, x) since x is the minimum where y > x. Ties split the gradient evenly, so
    max(x, x) still has gradient 1 with respect to x."""
    half = ct * 0.5
    first = tnp.where(a > b, ct, tnp.where(a == b, half, tnp.zeros_like(ct)))
    return first, ct - first


defvjp(ops.add, lambda ct, x, y, out: (ct, ct))
defvjp(ops.sub, lambda ct, x, y, out: (ct, -ct))
# ``needed``: which inputs' cotangents the caller uses; the others may be left uncomputed (None)
defvjp(ops.mul, lambda ct, x, y, out, needed=(True, True): (
    ct * y if needed[0] else None, ct * x if needed[1] else None))
defvjp(ops.div, lambda ct, x, y, out, needed=(True, True): (
    ct / y if needed[0] else None, -ct * out / y if needed[1] else None))
defvjp(ops.mod, lambda ct, x, y, out: (ct, -ct * tnp.floor_divide(x, y)))
defvjp(ops.maximum, lambda ct, x, y, out: _minmax_vjp(ct, x, y))
defvjp(ops.minimum, lambda ct, x, y, out: _minmax_vjp(ct, y, x))
defvjp(ops.pow, _pow_vjp)

defvjp(ops.neg, lambda ct, x, out: (-ct,))
def _abs_vjp(ct, x, out):
    # a real x: ct sign(x) (piecewise constant). A complex z: ct conj(z) / |z|, written out
    # rather than as sign(conj(z)) so that second derivatives see how it varies; 0 at z = 0
    # (the inner where keeps that branch's gradient finite).
    if x.dtype.kind != "c":
        return (ct * tnp.sign(x),)
    zero = out == 0
    return (ct * tnp.where(zero, tnp.zeros_like(x), ops.conj(x) / tnp.where(zero, tnp.ones_like(out), out)),)


defvjp(ops.abs, _abs_vjp)
defvjp(ops.exp, lambda ct, x, out: (ct * out,))
defvjp(ops.log, lambda ct, x, out: (ct / x,))
defvjp(ops.log1p, lambda ct, x, out: (ct / (x + 1),))
defvjp(ops.expm1, lambda ct, x, out: (ct * (out + 1),))
defvjp(ops.sinh, lambda ct, x, out: (ct * tnp.cosh(x),))
defvjp(ops.cosh, lambda ct, x, out: (ct * tnp.sinh(x),))
defvjp(ops.log2, lambda ct, x, out: (ct / (x * np.log(2.0)),))
defvjp(ops.log10, lambda ct, x, out: (ct / (x * np.log(10.0)),))
defvjp(ops.exp2, lambda ct, x, out: (ct * out * np.log(2.0),))
defvjp(ops.sqrt, lambda ct, x, out: (ct / (out * 2),))
defvjp(ops.tanh, lambda ct, x, out: (ct * (1 - out * out),))
defvjp(ops.sin, lambda ct, x, out: (ct * tnp.cos(x),))
defvjp(ops.cos, lambda ct, x, out: (-ct * tnp.sin(x),))


def _where_vjp(ct, cond, x, y, out):
    zeros = tnp.zeros_like(ct)
    return None, tnp.where(cond, ct, zeros), tnp.where(cond, zeros, ct)


def _cast_vjp(ct, x, out, *, dtype):
    if x.dtype.kind not in "fc" or np.dtype(dtype).kind not in "fc":
        return (None,)
    if x.dtype.kind == "f" and ct.dtype.kind == "c":  # a real input's cotangent is the real part
        ct = ops.real(ct)
    return (tnp.astype(ct, x.dtype),)


# Complex numbers follow autograd's and JAX's convention: rules are those of holomorphic
# functions (no conjugation: mul's is ct * y), and grad of a real function of z is the
# conjugate of its direction of steepest ascent (d|z|/dz at 3+4j is 0.6-0.8j).

def _to_input_dtype(ct, x):
    return tnp.astype(ct, x.dtype) if ct.dtype != x.dtype else ct


def _imag_vjp(ct, x, out):
    # the transpose of t -> imag(t) is c -> -1j c; a real input's imaginary part is constant
    if x.dtype.kind != "c":
        return (None,)
    return (_to_input_dtype(ct, x) * tnp.literal(-1j, x.dtype),)


defvjp(ops.real, lambda ct, x, out: (_to_input_dtype(ct, x),))
defvjp(ops.imag, _imag_vjp)
defvjp(ops.conj, lambda ct, x, out: (ops.conj(ct),))


defvjp(ops.where, _where_vjp)
defvjp(ops.cast, _cast_vjp)

# --------------------------------------------------------------------------- shape


def _broadcast_vjp(ct, x, out, *, shape):
    lead = len(shape) - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(x.shape) if d == 1 and shape[lead + i] != 1)
    summed = reduce_sum(ct, axes=axes) if axes else ct
    return (reshape(summed, shape=x.shape),)


def _slice_vjp(ct, x, out, *, starts, stops, steps):
    config = tuple((a, n - (a + (m - 1) * s + 1) if m else n - a, s - 1)
                   for n, a, s, m in zip(x.shape, starts, steps, out.shape))
    return (pad(ct, config=config),)


def _pad_vjp(ct, x, out, *, config):
    starts = tuple(lo for lo, _, _ in config)
    steps = tuple(i + 1 for _, _, i in config)
    stops = tuple(lo + (n - 1) * s + 1 if n else lo for n, (lo, _, _), s in zip(x.shape, config, steps))
    return (slice(ct, starts=starts, stops=stops, steps=steps),)


def _concatenate_vjp(ct, *xs, out, axis):
    cts, offset = [], 0
    for x in xs:
        starts = tuple(offset if i == axis else 0 for i in range(x.ndim))
        stops = tuple(offset + x.shape[axis] if i == axis else d for i, d in enumerate(ct.shape))
        cts.append(slice(ct, starts=starts, stops=stops, steps=(1,) * x.ndim))
        offset += x.shape[axis]
    return tuple(cts)


defvjp(ops.broadcast_to, _broadcast_vjp)
defvjp(ops.reshape, lambda ct, x, out, *, shape: (reshape(ct, shape=x.shape),))
defvjp(ops.transpose, lambda ct, x, out, *, perm: (transpose(ct, perm=tuple(np.argsort(perm).tolist())),))
defvjp(ops.slice, _slice_vjp)
defvjp(ops.pad, _pad_vjp)
defvjp(ops.concatenate, _concatenate_vjp)
defvjp(ops.gather, lambda ct, x, idx, out, *, axis: (scatter_add(tnp.zeros_like(x), idx, ct, axis=axis), None))
defvjp(ops.scatter_add, lambda ct, x, idx, updates, out, *, axis: (ct, None, gather(ct, idx, axis=axis)))

# --------------------------------------------------------------------------- reductions


def _keep_dims_shape(x_shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(x_shape))


def _sum_vjp(ct, x, out, *, axes):
    return (broadcast_to(reshape(ct, shape=_keep_dims_shape(x.shape, axes)), shape=x.shape),)


def _extremum_vjp(ct, x, out, *, axes):
    kept = _keep_dims_shape(x.shape, axes)
    hit = tnp.astype(x == broadcast_to(reshape(out, shape=kept), shape=x.shape), ct.dtype)
    count = broadcast_to(reshape(reduce_sum(hit, axes=axes), shape=kept), shape=x.shape)
    return (hit / count * broadcast_to(reshape(ct, shape=kept), shape=x.shape),)


defvjp(ops.reduce_sum, _sum_vjp)
defvjp(ops.reduce_max, _extremum_vjp)
defvjp(ops.reduce_min, _extremum_vjp)

# --------------------------------------------------------------------------- matmul, windows


def _swap_last(x):
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, perm=perm)


defvjp(ops.matmul, lambda ct, a, b, out, needed=(True, True): (
    matmul(ct, _swap_last(b)) if needed[0] else None, matmul(_swap_last(a), ct) if needed[1] else None))
# windows (im2col) and windows_sum (col2im) are linear and each other's transpose
defvjp(ops.windows, lambda ct, x, out, *, window, strides: (
    ops.windows_sum(ct, window=window, strides=strides, image=x.shape[2:]),))
defvjp(ops.windows_sum, lambda ct, cols, out, *, window, strides, image: (
    ops.windows(ct, window=window, strides=strides),))

# --------------------------------------------------------------------------- FFT
# The DFT matrix is symmetric: each transform is its own transpose.

defvjp(ops.fft, lambda ct, x, out, *, inverse, norm: (ops.fft(ct, inverse=inverse, norm=norm),))

# --------------------------------------------------------------------------- LAPACK
# The matrix-calculus rules (those of autograd's and JAX's linalg), batched over leading axes.
# For complex matrices each rule is the transpose of the derivative (see the complex block
# above): where the real rule has a transpose, the derivative has a conjugate transpose of a
# primal or a tangent, and its transpose conjugates the primal factors it passes through.


def conj_if_complex(x):
    """``conj(x)`` for complex ``x``; a real ``x`` itself (no equation)."""
    return ops.conj(x) if x.dtype.kind == "c" else x


def adjoint(x):
    """The conjugate transpose of each matrix (the transpose of real ones)."""
    return conj_if_complex(_swap_last(x))


def _solve_vjp(ct, a, b, out):
    ct_b = ops.solve(_swap_last(a), ct)
    return -matmul(ct_b, _swap_last(out)), ct_b


def _slogdet_vjp(ct, a, out):
    # With t = tr(a^-1 da), the change of log det: d logabsdet = real(t) and, for a complex
    # matrix, d sign = 1j sign imag(t) (a real matrix's sign is piecewise constant).
    (ct_sign, ct_logdet), (sign, _) = ct, out
    ct_t = ct_logdet
    if a.dtype.kind == "c" and ct_sign is not None:
        along_imag = ops.real(ct_sign * sign * tnp.literal(1j, a.dtype)) * tnp.literal(-1j, a.dtype)
        ct_t = along_imag if ct_t is None else ct_t + along_imag
    if ct_t is None:
        return (None,)
    return (tnp.expand_dims(ct_t, (-2, -1)) * _swap_last(tnp.linalg.inv(a)),)


def lower_triangle_read(g):
    """The transpose of reading a Hermitian (real: symmetric) matrix from the lower triangle of
    ``a``, as LAPACK does, applied to the cotangent ``g`` of that matrix: an entry below the
    diagonal gets ``g_ij + conj(g_ji)``, one on it the real part of ``g_ii`` (LAPACK does not
    read the imaginary part of the diagonal), one above it nothing."""
    lower, diagonal = _triangle_masks(g)
    return (g + adjoint(g)) * (lower - 0.5 * diagonal)


def _cholesky_vjp(ct, a, out):
    # L = out. With Phi(X) the lower triangle of X with its diagonal halved, a Hermitian
    # input's cotangent is G = L^-T Phi(L^T ct) conj(L)^-1 (Murray, 2016, for real L; the
    # transpose of dL = L Phi(L^-1 dA L^-H)), which reaches ``a`` through the triangle read.
    lower, diagonal = _triangle_masks(a)
    lt = _swap_last(out)
    inner = _swap_last(ops.solve(lt, matmul(lt, ct) * (lower - 0.5 * diagonal)))
    return (lower_triangle_read(_swap_last(ops.solve(conj_if_complex(lt), inner))),)


def _triangle_masks(a):
    """The lower triangle (diagonal included) and the diagonal of an (n, n) matrix, as 0/1
    constants of the real dtype of ``a``."""
    n, dtype = a.shape[-1], np.finfo(a.dtype).dtype
    return tnp.literal(np.tril(np.ones((n, n))), dtype), tnp.literal(np.eye(n), dtype)


def eigenvalue_gaps(w):
    """F with F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it (the first-order change of
    eigenvectors; infinite where two eigenvalues coincide, as in every framework)."""
    eye = tnp.literal(np.eye(w.shape[-1]), w.dtype)
    return 1 / (tnp.expand_dims(w, -2) - tnp.expand_dims(w, -1) + eye) - eye


def _eigh_vjp(ct, a, out):
    # The transpose of dw = real(diag(V^H dA V)), dV = V (F * (V^H dA V)) for a Hermitian
    # input: G = conj(V) (diag(ct_w) + F * (V^T ct_V)) V^T, which reaches ``a`` through the
    # triangle read.
    (ct_w, ct_v), (w, v) = ct, out
    inner = 0
    if ct_w is not None:
        inner = inner + tnp.expand_dims(ct_w, -1) * tnp.literal(np.eye(w.shape[-1]), w.dtype)
    if ct_v is not None:
        inner = inner + eigenvalue_gaps(w) * matmul(_swap_last(v), ct_v)
    inner = _to_input_dtype(inner, a)  # real when only the eigenvalues have a cotangent
    return (lower_triangle_read(matmul(conj_if_complex(v), matmul(inner, _swap_last(v)))),)


def _svd_vjp(ct, a, out):
    # a = U diag(s) V^H (V = vh^H, k = min(m, n)). For real matrices, with F_ij = 1 / (s_j^2 - s_i^2)
    # off the diagonal, J = F * (U^T cU - cU^T U), K = F * (V^T cV - cV^T V):
    #   ca = U (J S + diag(cs) + S K) V^T + (I - U U^T) cU S^-1 V^T + U S^-1 cV^T (I - V V^T)
    # (Townsend, "Differentiating the singular value decomposition", 2016); the last two terms
    # vanish for square matrices. For complex ones it is the transpose of the forward rule
    # (rules/jvp.py): the skew parts take conjugate transposes, the outer factors are conj(U)
    # and V^T = conj(vh), and the phase of U's columns adds diag(1j imag(U^T cU) / s).
    (ct_u, ct_s, ct_vh), (u, s, vh) = ct, out
    m, n = a.shape[-2:]
    k = min(m, n)
    eye = tnp.literal(np.eye(k), s.dtype)
    s_row, s_col = tnp.expand_dims(s, -2), tnp.expand_dims(s, -1)
    f = 1 / (s_row * s_row - s_col * s_col + eye) - eye
    u_conj, v_t = conj_if_complex(u), conj_if_complex(vh)
    inner = 0
    if ct_s is not None:
        inner = inner + tnp.expand_dims(ct_s, -1) * eye
    if ct_u is not None:
        ut_cu = matmul(_swap_last(u), ct_u)
        inner = inner + f * (ut_cu - adjoint(ut_cu)) * s_row
        if a.dtype.kind == "c":
            inner = inner + tnp.literal(1j, a.dtype) * ops.imag(ut_cu) * eye / s_row
    if ct_vh is not None:
        ct_v = adjoint(ct_vh)
        vt_cv = matmul(v_t, ct_v)
        inner = inner + s_col * (f * (vt_cv - adjoint(vt_cv)))
    grad = matmul(u_conj, matmul(_to_input_dtype(inner, a), v_t))
    if ct_u is not None and m > k:
        projected = ct_u - matmul(u_conj, ut_cu)
        grad = grad + matmul(projected / s_row, v_t)
    if ct_vh is not None and n > k:
        projected = ct_v - matmul(_swap_last(vh), vt_cv)
        grad = grad + matmul(u_conj / s_row, adjoint(projected))
    return (grad,)


def _qr_vjp(ct, a, out):
    # For m >= n, the transpose of the forward rule (rules/jvp.py): with
    # C = Q^T cQ - cR R^T and X its Hermitian part read from the upper triangle (C_ij and
    # conj(C_ij) for i < j, real(C_ii) on the diagonal), ca = (cQ - conj(Q) X) R^-T. For real
    # matrices this is Liao et al.'s rule ("Differentiable programming tensor networks", 2019).
    # A wide matrix's Q and R do not determine each other's change this way; its gradient is
    # refused.
    (ct_q, ct_r), (q, r) = ct, out
    m, n = a.shape[-2:]
    if m < n:
        raise NotImplementedError(f"the gradient of np.linalg.qr of a wide {m}x{n} matrix is not implemented; "
                                  "transpose the problem so that the matrix has at least as many rows as columns")
    ct_q = tnp.zeros_like(q) if ct_q is None else ct_q
    c = matmul(_swap_last(q), ct_q)
    if ct_r is not None:
        c = c - matmul(ct_r, _swap_last(r))
    lower, diagonal = _triangle_masks(r)
    upper_half = c * (1 - lower + 0.5 * diagonal)
    hermitian = upper_half + adjoint(upper_half)
    return (_swap_last(ops.solve(r, _swap_last(ct_q - matmul(conj_if_complex(q), hermitian)))),)


defvjp(ops.eigh, _eigh_vjp)
defvjp(ops.svd, _svd_vjp)
defvjp(ops.qr, _qr_vjp)
defvjp(ops.solve, _solve_vjp)
defvjp(ops.slogdet, _slogdet_vjp)
defvjp(ops.cholesky, _cholesky_vjp)

# --------------------------------------------------------------------------- collectives


def _all_sum_vjp(ct, *xs, out):
    # The transpose of a sum over processes is a sum over processes: every process's value
    # reaches every output, so every output's cotangent reaches every input.
    cts = ct if len(xs) > 1 else [ct]
    return ops.all_sum(*[tnp.zeros_like(x) if c is None else c for c, x in zip(cts, xs)])


defvjp(ops.all_sum, _all_sum_vjp)

# --------------------------------------------------------------------------- products and scans
# Products' derivatives are products of the other factors, taken without dividing by the
# factor, which may be zero (JAX's gradients, not prod / x with a NaN).


def shifted(x, axis, reverse, fill):
    """``x`` moved one place along ``axis`` in a scan's direction (towards the end, or towards
    the start with ``reverse``), ``fill`` in the place left at the scan's start."""
    if x.shape[axis] == 0:
        return x
    head = (builtins.slice(None),) * axis
    edge = tnp.full_like(x, fill, shape=x.shape[:axis] + (1,) + x.shape[axis + 1:])
    if reverse:
        return tnp.concatenate([x[head + (builtins.slice(1, None),)], edge], axis=axis)
    return tnp.concatenate([edge, x[head + (builtins.slice(None, -1),)]], axis=axis)


def prod_of_others(x, axes):
    """For each element of ``x``, the product of the other elements of its slice over ``axes``:
    the running product before it times the one after it, along the reduced axes laid out as
    one. One zero in a slice gives the others' product at its place, two or more give 0."""
    kept = [i for i in range(x.ndim) if i not in axes]
    perm = tuple(kept + sorted(axes))
    moved = transpose(x, perm=perm) if perm != tuple(range(x.ndim)) else x
    lead = tuple(x.shape[i] for i in kept)
    k = len(lead)
    lines = reshape(moved, shape=lead + (math.prod(x.shape[i] for i in axes),))
    before = shifted(ops.cumprod(lines, axis=k, reverse=False), k, False, 1)
    after = shifted(ops.cumprod(lines, axis=k, reverse=True), k, True, 1)
    others = reshape(before * after, shape=moved.shape)
    return transpose(others, perm=tuple(np.argsort(perm).tolist())) if moved is not x else others


def _prod_vjp(ct, x, out, *, axes):
    spread = broadcast_to(reshape(ct, shape=_keep_dims_shape(x.shape, axes)), shape=x.shape)
    return (spread * prod_of_others(x, axes),)


def _cumprod_vjp(ct, x, out, *, axis, reverse):
    # d out[i] / d x[k] = (product before k) * x[k+1] * ... * x[i] for i >= k: the later
    # cotangents gathered back through the factors between, times the product before k
    gathered = ops.linear_scan(shifted(x, axis, not reverse, 0), ct, axis=axis, reverse=not reverse)
    return (shifted(out, axis, reverse, 1) * gathered,)


def _linear_scan_vjp(ct, a, b, out, *, axis, reverse):
    # the transposed recurrence (cotangents flow back through the next coefficient) gives b's
    # cotangent; a's is that times the value a multiplied
    gathered = ops.linear_scan(shifted(a, axis, not reverse, 0), ct, axis=axis, reverse=not reverse)
    return gathered * shifted(out, axis, reverse, 0), gathered


def extremum_starts(x, out, axis, reverse, maximum):
    """Where a running maximum (or minimum) ``out`` of ``x`` takes a new holder: the scan's
    first place, and each place whose element is strictly beyond the value so far, or is the
    first NaN. Among equal values the earliest holds the extreme, as ``argmax`` picks the first."""
    before = shifted(out, axis, reverse, 0)
    kept = before >= x if maximum else before <= x
    first = shifted(tnp.zeros_like(x, dtype=bool), axis, reverse, True)
    return first | (~kept & (before == before))


def _running_extremum_vjp(maximum):
    def rule(ct, x, out, *, axis, reverse):
        # each holder gathers the cotangents of the places it holds the extreme for: its own and
        # the later ones up to the next holder, a linear recurrence cut at each holder
        starts = extremum_starts(x, out, axis, reverse, maximum)
        carried = tnp.logical_not(shifted(starts, axis, not reverse, True)).astype(ct.dtype)
        gathered = ops.linear_scan(carried, ct, axis=axis, reverse=not reverse)
        return (tnp.where(starts, gathered, 0),)
    return rule


defvjp(ops.reduce_prod, _prod_vjp)
defvjp(ops.cumsum, lambda ct, x, out, *, axis, reverse: (ops.cumsum(ct, axis=axis, reverse=not reverse),))
defvjp(ops.cumprod, _cumprod_vjp)
defvjp(ops.cummax, _running_extremum_vjp(maximum=True))
defvjp(ops.cummin, _running_extremum_vjp(maximum=False))
defvjp(ops.linear_scan, _linear_scan_vjp)

# --------------------------------------------------------------------------- inverse trigonometric, copysign
# (1 - x) * (1 + x) rather than 1 - x * x: near |x| = 1, where these derivatives grow without
# bound, one factor is an exact difference.


def _atan2_vjp(ct, y, x, out):
    scale = ct / (x * x + y * y)
    return scale * x, -scale * y


def _copysign_vjp(ct, x, y, out):
    # +1 where the sign bits of x and y agree, else -1: |x| with y's sign, differentiated on the
    # side of 0 that a signed zero x stands for. y only picks the sign: no gradient reaches it.
    return ct * tnp.copysign(1.0, x) * tnp.copysign(1.0, y), None


defvjp(ops.asin, lambda ct, x, out: (ct / tnp.sqrt((1 - x) * (1 + x)),))
defvjp(ops.acos, lambda ct, x, out: (-ct / tnp.sqrt((1 - x) * (1 + x)),))
defvjp(ops.atan, lambda ct, x, out: (ct / (1 + x * x),))
defvjp(ops.atan2, _atan2_vjp)
defvjp(ops.asinh, lambda ct, x, out: (ct / tnp.sqrt(x * x + 1),))
# sqrt(x - 1) sqrt(x + 1), not sqrt(x*x - 1): the two differ in sign for complex x left of the
# imaginary axis, and only the first has arccosh's branch cut
defvjp(ops.acosh, lambda ct, x, out: (ct / (tnp.sqrt(x - 1) * tnp.sqrt(x + 1)),))
defvjp(ops.atanh, lambda ct, x, out: (ct / ((1 - x) * (1 + x)),))
defvjp(ops.copysign, _copysign_vjp)
