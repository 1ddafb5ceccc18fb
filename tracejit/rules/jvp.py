"""Forward mode: one Jacobian-vector product rule per differentiable primitive.

Layer: transformation rules (see ``tracejit.rules``). In: nothing at import but the primitive
set and the front end. Out: ``jvp_rules``, read by ``forward.py``'s trace.

A rule ``rule(primals, tangents, out, **params)`` returns the tangent of the output (a tuple
of them for a primitive with several results) given the inputs' primal values, their
tangents and the primal output ``out``. A tangent is ``None`` where nothing flows in (a
symbolic zero: an input that does not depend on the differentiated arguments, or an index or
condition), so a product with a constant matrix costs one product, not two; at least one
float input has a tangent. Like the
reverse-mode rules, these are ordinary front-end code, so they work on arrays and on the
tracers of enclosing transformations, and forward mode nests with reverse mode either way.
Where a primitive's derivative is not unique (ties of ``maximum`` and ``reduce_max``), the
rule is the transpose of the reverse-mode rule, so the two modes agree.
"""
from __future__ import annotations

import math

import numpy as np

from .. import numpy as tnp
from .. import ops
from ..ops import broadcast_to, gather, matmul, reduce_sum, reshape, scatter_add
from ..primitives import Primitive
from .vjp import eigenvalue_gaps, extremum_starts, pow_by_base, pow_by_exponent, prod_of_others, shifted

__all__ = ["jvp_rules", "defjvp", "deflinear"]

jvp_rules: dict[Primitive, object] = {}


def defjvp(prim: Primitive, rule) -> None:
    """Register ``rule`` as ``prim``'s Jacobian-vector product (see the module docstring)."""
    if not prim.differentiable:
        raise ValueError(f"defjvp: {prim.name} is declared non-differentiable")
    jvp_rules[prim] = rule


def deflinear(prim: Primitive) -> None:
    """``prim`` is linear in its (float) inputs: its tangent is ``prim`` applied to the tangents."""
    defjvp(prim, lambda primals, tangents, out, **params: prim(*_filled(primals, tangents), **params))


def _filled(primals, tangents):
    """The tangents with zeros in place of ``None``, for rules that need every one."""
    return [tnp.zeros_like(p) if t is None else t for p, t in zip(primals, tangents)]


def _sum(*terms):
    """The sum of the terms that are not ``None`` (a symbolic zero), or ``None``."""
    present = [t for t in terms if t is not None]
    if not present:
        return None
    total = present[0]
    for t in present[1:]:
        total = total + t
    return total


def _times(t, factor):
    return None if t is None else t * factor


# --------------------------------------------------------------------------- elementwise


def _pow_jvp(primals, tangents, out):
    (x, y), (tx, ty) = primals, tangents
    by_x = None if tx is None else tx * pow_by_base(x, y)
    if ty is None:
        return by_x
    return _sum(by_x, ty * pow_by_exponent(x, out))


def _minmax_jvp(x_wins, x, y, tx, ty):
    """``tx`` where x is the result, ``ty`` where y is, their mean at ties: the transpose of
    the reverse rule, which splits a tie's cotangent evenly."""
    tx, ty = _filled((x, y), (tx, ty))
    return tnp.where(x_wins, tx, tnp.where(x == y, (tx + ty) * 0.5, ty))


defjvp(ops.add, lambda p, t, out: _sum(t[0], t[1]))
defjvp(ops.sub, lambda p, t, out: _sum(t[0], None if t[1] is None else -t[1]))
deflinear(ops.neg)
defjvp(ops.mul, lambda p, t, out: _sum(_times(t[0], p[1]), _times(t[1], p[0])))
defjvp(ops.div, lambda p, t, out: _sum(t[0], None if t[1] is None else -out * t[1]) / p[1])
defjvp(ops.mod, lambda p, t, out: _sum(t[0], None if t[1] is None else -t[1] * tnp.floor_divide(p[0], p[1])))
defjvp(ops.maximum, lambda p, t, out: _minmax_jvp(p[0] > p[1], *p, *t))
defjvp(ops.minimum, lambda p, t, out: _minmax_jvp(p[0] < p[1], *p, *t))
defjvp(ops.pow, _pow_jvp)

# d|z| = real(conj(z) dz) / |z|; d|x| = sign(x) dx
def _abs_jvp(primals, tangents, out):
    (x,), (t,) = primals, tangents
    if x.dtype.kind != "c":
        return t * tnp.sign(x)
    zero = out == 0
    return ops.real(t * tnp.where(zero, tnp.zeros_like(x), ops.conj(x) / tnp.where(zero, tnp.ones_like(out), out)))


defjvp(ops.abs, _abs_jvp)
defjvp(ops.exp, lambda p, t, out: t[0] * out)
defjvp(ops.log, lambda p, t, out: t[0] / p[0])
defjvp(ops.log1p, lambda p, t, out: t[0] / (p[0] + 1))
defjvp(ops.expm1, lambda p, t, out: t[0] * (out + 1))
defjvp(ops.sinh, lambda p, t, out: t[0] * tnp.cosh(p[0]))
defjvp(ops.cosh, lambda p, t, out: t[0] * tnp.sinh(p[0]))
defjvp(ops.log2, lambda p, t, out: t[0] / (p[0] * math.log(2.0)))
defjvp(ops.log10, lambda p, t, out: t[0] / (p[0] * math.log(10.0)))
defjvp(ops.exp2, lambda p, t, out: t[0] * out * math.log(2.0))
defjvp(ops.sqrt, lambda p, t, out: t[0] / (out * 2))
defjvp(ops.tanh, lambda p, t, out: t[0] * (1 - out * out))
defjvp(ops.sin, lambda p, t, out: t[0] * tnp.cos(p[0]))
defjvp(ops.cos, lambda p, t, out: -t[0] * tnp.sin(p[0]))

defjvp(ops.where, lambda p, t, out: tnp.where(p[0], *_filled(p[1:], t[1:])))
# a float result of a float input carries its tangent; an integer one carries none
defjvp(ops.cast, lambda p, t, out, *, dtype: None if t[0] is None or out.dtype.kind not in "fc"
       else ops.cast(t[0], dtype=dtype))

# --------------------------------------------------------------------------- shape

for _linear in (ops.broadcast_to, ops.reshape, ops.transpose, ops.slice, ops.pad, ops.concatenate,
                ops.windows, ops.windows_sum, ops.reduce_sum, ops.all_sum, ops.real, ops.imag, ops.conj, ops.fft):
    deflinear(_linear)
defjvp(ops.gather, lambda p, t, out, *, axis: gather(t[0], p[1], axis=axis))
defjvp(ops.scatter_add, lambda p, t, out, *, axis: t[0] if t[2] is None else
       scatter_add(_filled(p[:1], t[:1])[0], p[1], t[2], axis=axis))

# --------------------------------------------------------------------------- reductions


def _extremum_jvp(primals, tangents, out, *, axes):
    # The mean of the tangents at the extremum's positions: ties share, as in reverse mode.
    (x,), (tx,) = primals, tangents
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    hit = tnp.astype(x == broadcast_to(reshape(out, shape=kept), shape=x.shape), tx.dtype)
    return reduce_sum(hit * tx, axes=axes) / reduce_sum(hit, axes=axes)


defjvp(ops.reduce_max, _extremum_jvp)
defjvp(ops.reduce_min, _extremum_jvp)

# --------------------------------------------------------------------------- matmul

defjvp(ops.matmul, lambda p, t, out: _sum(None if t[0] is None else matmul(t[0], p[1]),
                                           None if t[1] is None else matmul(p[0], t[1])))

# --------------------------------------------------------------------------- LAPACK
# For complex matrices, the transposes of the real rules become conjugate transposes.


def _swap_last(x):
    return ops.transpose(x, perm=tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def _adjoint(x):
    """The conjugate transpose of each matrix (the transpose of real ones)."""
    return ops.conj(_swap_last(x)) if x.dtype.kind == "c" else _swap_last(x)


def _solve_jvp(primals, tangents, out):
    (a, _), (ta, tb) = primals, tangents
    return ops.solve(a, _sum(tb, None if ta is None else -matmul(ta, out)))


def _slogdet_jvp(primals, tangents, out):
    # t = tr(a^-1 da) is the change of log det: logabsdet moves by real(t), a complex sign by
    # 1j sign imag(t) (a real sign is piecewise constant)
    (a,), (ta,), (sign, _) = primals, tangents, out
    t = reduce_sum(_swap_last(tnp.linalg.inv(a)) * ta, axes=(a.ndim - 2, a.ndim - 1))
    if a.dtype.kind != "c":
        return None, t
    return sign * ops.imag(t) * tnp.literal(1j, a.dtype), ops.real(t)


def _cholesky_jvp(primals, tangents, out):
    # NumPy reads the lower triangle: the Hermitian matrix it factors moves by that triangle,
    # conjugate-mirrored. Then dL = L Phi(L^-1 dA L^-H), Phi the lower triangle with its diagonal halved.
    (a,), (ta,) = primals, tangents
    n = a.shape[-1]
    inner = ops.solve(out, _adjoint(ops.solve(out, _hermitian_from_lower(ta))))
    return matmul(out, inner * tnp.literal(np.tril(np.ones((n, n))) - 0.5 * np.eye(n), inner.dtype))


def _hermitian_from_lower(ta):
    """The change of the Hermitian (real: symmetric) matrix LAPACK reads from the lower
    triangle, the real part of the diagonal for a complex one."""
    n = ta.shape[-1]
    lower = tnp.literal(np.tril(np.ones((n, n))), ta.dtype)
    strictly_lower = tnp.literal(np.tril(np.ones((n, n)), -1), ta.dtype)
    if ta.dtype.kind == "c":
        diagonal = ops.real(_diagonal(ta)) * tnp.literal(np.eye(n), ta.dtype)
        return ta * strictly_lower + _adjoint(ta * strictly_lower) + diagonal
    return ta * lower + _swap_last(ta * strictly_lower)


def _diagonal(m):
    return reduce_sum(m * tnp.literal(np.eye(m.shape[-1]), m.dtype), axes=(m.ndim - 1,))


def _real_diagonal(m):
    """The diagonal of each matrix, its real part for a complex one."""
    d = _diagonal(m)
    return ops.real(d) if d.dtype.kind == "c" else d


def _eigh_jvp(primals, tangents, out):
    # dw = diag(V^H dA V), dV = V (F * (V^H dA V)), F_ij = 1 / (w_j - w_i) off the diagonal
    (ta,), (w, v) = tangents, out
    m = matmul(_adjoint(v), matmul(_hermitian_from_lower(ta), v))
    return _real_diagonal(m), matmul(v, eigenvalue_gaps(w) * m)


def _svd_jvp(primals, tangents, out):
    # With dP = U^H dA V: ds = real(diag(dP)); dU and dV from the off-diagonal part (the
    # forward rule of the same 2016 derivation), plus the parts of dA outside the spans of U
    # and V for a non-square matrix. A complex U also turns its columns' phases by
    # 1j imag(diag(dP)) / s (V's stay: the one choice of gauge that keeps U S V^H right).
    (a,), (ta,), (u, s, vh) = primals, tangents, out
    m, n = a.shape[-2:]
    k = min(m, n)
    v = _adjoint(vh)
    eye = tnp.literal(np.eye(k), s.dtype)
    s_row, s_col = tnp.expand_dims(s, -2), tnp.expand_dims(s, -1)
    f = 1 / (s_row * s_row - s_col * s_col + eye) - eye
    dp = matmul(_adjoint(u), matmul(ta, v))
    dp_s, s_dp = dp * s_row, s_col * dp
    du = matmul(u, f * (dp_s + _adjoint(dp_s)))
    dv = matmul(v, f * (s_dp + _adjoint(s_dp)))
    if a.dtype.kind == "c":
        du = du + u * tnp.expand_dims(ops.imag(_diagonal(dp)) / s * tnp.literal(1j, a.dtype), -2)
    if m > k:
        dav = matmul(ta, v)
        du = du + (dav - matmul(u, matmul(_adjoint(u), dav))) / s_row
    if n > k:
        datu = matmul(_adjoint(ta), u)
        dv = dv + (datu - matmul(v, matmul(vh, datu))) / s_row
    return du, _real_diagonal(dp), _adjoint(dv)


def _qr_jvp(primals, tangents, out):
    # For m >= n, with X = Q^H dA R^-1 and W the skew-Hermitian matrix of its strictly lower
    # triangle (plus 1j imag(X_ii) on the diagonal for complex matrices, whose R keeps a real
    # diagonal): dQ = Q (W - X) + dA R^-1, dR = (X - W) R (the forward rule behind the
    # reverse one).
    (a,), (ta,), (q, r) = primals, tangents, out
    m, n = a.shape[-2:]
    if m < n:
        raise NotImplementedError(f"the derivative of np.linalg.qr of a wide {m}x{n} matrix is not implemented; "
                                  "transpose the problem so that the matrix has at least as many rows as columns")
    da_rinv = _swap_last(ops.solve(_swap_last(r), _swap_last(ta)))
    x = matmul(_adjoint(q), da_rinv)
    strictly_lower = tnp.literal(np.tril(np.ones((n, n)), -1), np.finfo(a.dtype).dtype)
    w = x * strictly_lower - _adjoint(x * strictly_lower)
    if a.dtype.kind == "c":
        w = w + ops.imag(x) * tnp.literal(np.eye(n) * 1j, a.dtype)
    return matmul(q, w - x) + da_rinv, matmul(x - w, r)


defjvp(ops.eigh, _eigh_jvp)
defjvp(ops.svd, _svd_jvp)
defjvp(ops.qr, _qr_jvp)
defjvp(ops.solve, _solve_jvp)
defjvp(ops.slogdet, _slogdet_jvp)
defjvp(ops.cholesky, _cholesky_jvp)
# --------------------------------------------------------------------------- products and scans


def _cumprod_jvp(primals, tangents, out, *, axis, reverse):
    # the tangent's running sum, each term carried on by the later factors: a linear recurrence
    (x,), (t,) = primals, tangents
    return ops.linear_scan(x, shifted(out, axis, reverse, 1) * t, axis=axis, reverse=reverse)


def _linear_scan_jvp(primals, tangents, out, *, axis, reverse):
    (a, _), (ta, tb) = primals, tangents  # the tangent is linear in b: b itself is not needed
    terms = _sum(None if ta is None else ta * shifted(out, axis, reverse, 0), tb)
    return ops.linear_scan(a, terms, axis=axis, reverse=reverse)


def _running_extremum_jvp(maximum):
    def rule(primals, tangents, out, *, axis, reverse):
        # each place carries its holder's tangent: taken anew at each holder, kept in between
        (x,), (t,) = primals, tangents
        starts = extremum_starts(x, out, axis, reverse, maximum)
        return ops.linear_scan(tnp.logical_not(starts).astype(t.dtype), tnp.where(starts, t, 0), axis=axis,
                               reverse=reverse)
    return rule


defjvp(ops.reduce_prod, lambda p, t, out, *, axes: reduce_sum(t[0] * prod_of_others(p[0], axes), axes=axes))
deflinear(ops.cumsum)
defjvp(ops.cumprod, _cumprod_jvp)
defjvp(ops.cummax, _running_extremum_jvp(maximum=True))
defjvp(ops.cummin, _running_extremum_jvp(maximum=False))
defjvp(ops.linear_scan, _linear_scan_jvp)

# --------------------------------------------------------------------------- inverse trigonometric, copysign
# The derivatives of rules/vjp.py's block of the same name.


def _atan2_jvp(primals, tangents, out):
    (y, x), (ty, tx) = primals, tangents
    return _sum(_times(ty, x), _times(tx, -y)) / (x * x + y * y)


defjvp(ops.asin, lambda p, t, out: t[0] / tnp.sqrt((1 - p[0]) * (1 + p[0])))
defjvp(ops.acos, lambda p, t, out: -t[0] / tnp.sqrt((1 - p[0]) * (1 + p[0])))
defjvp(ops.atan, lambda p, t, out: t[0] / (1 + p[0] * p[0]))
defjvp(ops.atan2, _atan2_jvp)
defjvp(ops.asinh, lambda p, t, out: t[0] / tnp.sqrt(p[0] * p[0] + 1))
defjvp(ops.acosh, lambda p, t, out: t[0] / (tnp.sqrt(p[0] - 1) * tnp.sqrt(p[0] + 1)))  # see vjp.py
defjvp(ops.atanh, lambda p, t, out: t[0] / ((1 - p[0]) * (1 + p[0])))
# y only picks the sign: its tangent carries nothing (see rules/vjp.py)
defjvp(ops.copysign, lambda p, t, out: None if t[0] is None else t[0] * tnp.copysign(1.0, p[0]) * tnp.copysign(1.0, p[1]))
