"""Contractions: matmul, dot, vdot, inner, outer.

Layer: front end, on ``shapes`` and ``ufuncs``. In: two operands (arrays, tracers, Python
numbers where NumPy takes them). Out: the ``matmul`` primitive on operands promoted and
broadcast over their batch dimensions, with NumPy's treatment of 1-D operands, reshapes and
transposes around it; ``outer`` and products with a 0-d operand are elementwise ``multiply``.
Plain operands go to NumPy.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, UnsupportedError, where as _where_msg
from ..primitives import Tracer, bind, recording
from .. import ops as P
from .dispatch import _check_no_out, implements, public_names
from .promotion import (
    _ELEMENTWISE_PLANS, _Literal, _any_tracer, _argument_names, _broadcast_shapes, _elementwise_plan, _is_tracer,
    _is_weak, _operand_key, _shape, _strong, _to,
)
from .shapes import _check_operand, _reshape_any, _reshape_to, ravel, reshape, transpose
from .ufuncs import multiply


# ----------------------------------------------------------------------------- linear algebra

def _eager_matrix(x) -> bool:
    """A 2-d float array or (strongly typed) tracer."""
    if x.__class__ is np.ndarray:
        return x.ndim == 2 and x.dtype.kind == "f"
    return isinstance(x, Tracer) and len(x.shape) == 2 and x.dtype.kind == "f" and not x.weak


@implements(np.matmul)
def matmul(a, b, out=None):
    """``numpy.matmul`` / ``@``: 1-D operands are promoted as NumPy does; batch dims broadcast."""
    if not _any_tracer((a, b)):
        return np.matmul(a, b)
    if out is None and _eager_matrix(a) and _eager_matrix(b) and a.dtype == b.dtype and a.shape[1] == b.shape[0] \
            and not recording():
        # The common case of eager autodiff, first: a layer's ``x @ W``, two matrices of one
        # float dtype that fit; what the general path below would bind, without working it out.
        return bind(P.matmul, a, b)
    if out is not None:
        _check_no_out("matmul", out)
    a, b = _check_operand(a, "np.matmul"), _check_operand(b, "np.matmul")
    if _is_weak(a) or _is_weak(b) or len(_shape(a)) == 0 or len(_shape(b)) == 0:
        raise ValueError(f"matmul: Input operand does not have enough dimensions (scalars are not allowed){_where_msg()}")
    key = _operand_key(np.matmul, (a, b))
    dtype = (_ELEMENTWISE_PLANS.get(key) or _elementwise_plan(np.matmul, (a, b), key))[0][-1]
    sa, sb = tuple(_shape(a)), tuple(_shape(b))
    a2 = sa if len(sa) > 1 else (1,) + sa
    b2 = sb if len(sb) > 1 else sb + (1,)
    if a2[-1] != b2[-2]:
        raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {b2[-2]} is "
                         f"different from {a2[-1]}): shapes {sa} @ {sb}{_argument_names((a, b))}{_where_msg()}")
    batch = _broadcast_shapes("np.matmul", a2[:-2], b2[:-2])
    # (a tracer of the right shape as it is; an array through np.reshape as before, a new view)
    if a2 == sa and not batch and _is_tracer(a) and a.dtype == dtype:
        a_full = a  # what _to would return
    else:
        a_full = _to(a if a2 == sa and _is_tracer(a) else _reshape_any(a, a2), dtype, batch + a2[-2:], (a, b))
    if b2 == sb and not batch and _is_tracer(b) and b.dtype == dtype:
        b_full = b
    else:
        b_full = _to(b if b2 == sb and _is_tracer(b) else _reshape_any(b, b2), dtype, batch + b2[-2:], (a, b))
    out = bind(P.matmul, a_full, b_full)
    out_shape = batch + (a2[-2],) * (len(sa) > 1) + (b2[-1],) * (len(sb) > 1)
    return _reshape_to(out, out_shape)


@implements(np.dot)
def dot(a, b, out=None):
    """``numpy.dot`` for 0-, 1- and 2-D operands (higher ranks: use ``matmul``)."""
    if not _any_tracer((a, b)):
        return np.dot(a, b)
    _check_no_out("dot", out)
    a, b = _strong(a), _strong(b)
    if len(_shape(a)) == 0 or len(_shape(b)) == 0:
        return multiply(a, b)
    if len(_shape(a)) > 2 or len(_shape(b)) > 2:
        raise UnsupportedError(f"np.dot on arrays of more than 2 dimensions is not supported; use np.matmul{_where_msg()}")
    return matmul(a, b)


@implements(np.vdot)
def vdot(a, b):
    """``numpy.vdot`` for real arrays: the dot product of the flattened arrays."""
    if not _any_tracer((a, b)):
        return np.vdot(a, b)
    return dot(ravel(_strong(a)), ravel(_strong(b)))


@implements(np.inner)
def inner(a, b):
    """``numpy.inner``: sums over the *last* axis of both operands (for 2-D, ``a @ b.T``);
    the result has shape ``a.shape[:-1] + b.shape[:-1]``."""
    if not _any_tracer((a, b)):
        return np.inner(a, b)
    a, b = _strong(_check_operand(a, "np.inner")), _strong(_check_operand(b, "np.inner"))
    sa, sb = tuple(_shape(a)), tuple(_shape(b))
    if len(sa) == 0 or len(sb) == 0:
        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ShapeError(f"np.inner: shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
                         f"{sb[-1]} (dim {len(sb) - 1}){_argument_names((a, b))}{_where_msg()}")
    k = sa[-1]
    a2 = _reshape_any(a, (-1, k))
    b2 = _reshape_any(b, (-1, k))
    out = matmul(a2, transpose(b2) if _is_tracer(b2) else np.transpose(b2).view(_Literal))
    return reshape(out, sa[:-1] + sb[:-1])


@implements(np.outer)
def outer(a, b, out=None):
    """``numpy.outer``."""
    if not _any_tracer((a, b)):
        return np.outer(a, b)
    a, b = _strong(a), _strong(b)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


__all__ = public_names(globals())
