"""Contractions: matmul, dot, vdot, inner, outer, tensordot and einsum.

Layer: front end, on ``shapes``, ``ufuncs`` and ``reductions``. In: operands (arrays, tracers,
Python numbers where NumPy takes them). Out: the ``matmul`` primitive on operands promoted and
broadcast over their batch dimensions, with NumPy's treatment of 1-D operands, reshapes and
transposes around it; ``outer`` and products with a 0-d operand are elementwise ``multiply``.
``einsum`` (and ``tensordot``, written as one) becomes, per pair of operands in the order
NumPy's own ``einsum_path`` picks, transposes and one batched ``matmul`` (so a matmul-shaped
contraction reaches BLAS), with diagonals (a repeated index) as strided slices and indices
that only one operand has summed first. Plain operands go to NumPy.
"""
from __future__ import annotations

import builtins
import collections
import string

import numpy as np

from ..errors import ShapeError, UnsupportedError, where as _where_msg
from ..primitives import Tracer, bind, recording
from .. import ops as P
from .dispatch import _check_no_out, implements, public_names
from .promotion import (
    _ELEMENTWISE_PLANS, _Literal, _any_tracer, _argument_names, _broadcast_shapes, _elementwise_plan, _is_tracer,
    _ndarray0d,
    _is_weak, _operand_key, _shape, _strong, _to,
)
from .reductions import sum as _sum
from .shapes import _check_operand, _norm_axis, _reshape_any, _reshape_to, ravel, reshape, transpose
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
        # the last axis of a against the second-to-last of b (the only axis of a 1-d b)
        return tensordot(a, b, axes=([-1], [-2 if len(_shape(b)) > 1 else 0]))
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


# ----------------------------------------------------------------------------- einsum, tensordot

_LABELS = string.ascii_uppercase + string.ascii_lowercase  # NumPy's implicit output sorts in this order


def _einsum_labels(subscripts, shapes):
    """The operands' subscripts and the output's, as strings of letters, with ``...`` replaced
    by letters of their own; NumPy's rules and error messages for what is malformed."""
    text = subscripts.replace(" ", "")
    inputs_text, arrow, output = text.partition("->")
    inputs = inputs_text.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} gives subscripts for {len(inputs)} operand(s), but {len(shapes)} "
                         f"operand(s) were passed{_where_msg()}")
    for sub in inputs + [output]:
        bad = sub.replace("...", "")
        if "." in bad or not builtins.all(c in _LABELS for c in bad):
            raise ValueError(f"einsum: subscripts may hold letters and one '...' per operand, got {sub!r} in "
                             f"{subscripts!r}{_where_msg()}")
    spare = [c for c in _LABELS if c not in text]
    ellipsis_dims = [len(shape) - (len(sub) - 3) if "..." in sub else 0 for sub, shape in zip(inputs, shapes)]
    ellipsis = "".join(spare[:builtins.max(ellipsis_dims, default=0)])
    labels = []
    for k, (sub, shape, n) in enumerate(zip(inputs, shapes, ellipsis_dims)):
        sub = sub.replace("...", ellipsis[len(ellipsis) - n:]) if "..." in sub else sub
        if n < 0 or len(sub) != len(shape):
            raise ValueError(f"einsum: operand {k} has {len(shape)} dimension(s) (shape {tuple(shape)}) but its "
                             f"subscripts {inputs[k]!r} name {len(sub)}{_where_msg()}")
        labels.append(sub)
    if not arrow:
        counts = collections.Counter("".join(labels))
        output = ellipsis + "".join(sorted((c for c in counts if counts[c] == 1 and c not in ellipsis), key=_LABELS.index))
    elif "..." in output:
        output = output.replace("...", ellipsis)
    elif ellipsis:
        raise ValueError(f"einsum: output has more dimensions than subscripts given in {subscripts!r}, but no '...' "
                         f"in the output to broadcast the extra dimensions{_where_msg()}")
    for c in output:
        if output.count(c) > 1 or not builtins.any(c in sub for sub in labels):
            what = "more than once" if output.count(c) > 1 else "but in no operand"
            raise ValueError(f"einsum: output subscript {c!r} appears {what} in {subscripts!r}{_where_msg()}")
    return labels, output


def _einsum_sizes(labels, shapes, subscripts):
    """Each label's size; a size-1 axis broadcasts against a larger one, other mismatches raise."""
    sizes = {}
    for sub, shape in zip(labels, shapes):
        for c, n in zip(sub, shape):
            if sizes.get(c, 1) != n and n != 1:
                if sizes.get(c, 1) != 1:
                    raise ShapeError(f"einsum: subscript {c!r} has size {sizes[c]} in one operand and {n} in another "
                                     f"({subscripts!r} on shapes {', '.join(str(tuple(s)) for s in shapes)}){_where_msg()}")
            sizes[c] = builtins.max(sizes.get(c, 1), n)
    return sizes


def _diagonal(x, sub, label):
    """``x`` with the axes that repeat ``label`` replaced by one, their diagonal, at the end: the
    repeated axes moved last, merged by a reshape and read with a stride of one step per axis."""
    repeats = [i for i, c in enumerate(sub) if c == label]
    rest = [i for i, c in enumerate(sub) if c != label]
    x = transpose(x, rest + repeats) if rest + repeats != list(range(len(sub))) else x
    n = x.shape[-1]
    flat = reshape(x, tuple(x.shape[:len(rest)]) + (n ** len(repeats),))
    step = builtins.sum(n ** j for j in range(len(repeats)))
    starts, stops = (0,) * flat.ndim, tuple(flat.shape)
    diag = bind(P.slice, flat, starts=starts, stops=stops, steps=(1,) * len(rest) + (step,))
    return diag, "".join(sub[i] for i in rest) + label


def _einsum_single(x, sub, keep, sizes):
    """Everything one operand can do alone: size-1 axes that broadcast dropped, diagonals of
    repeated labels taken, labels that nothing else needs summed."""
    broadcast = [i for i, c in enumerate(sub) if x.shape[i] == 1 and sizes[c] != 1]
    if broadcast:
        x = reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in broadcast))
        sub = "".join(c for i, c in enumerate(sub) if i not in broadcast)
    for label in dict.fromkeys(c for c in sub if sub.count(c) > 1):
        x, sub = _diagonal(x, sub, label)
    summed = tuple(i for i, c in enumerate(sub) if c not in keep)
    if summed:
        x = _sum(x, axis=summed, dtype=x.dtype)
        sub = "".join(c for c in sub if c in keep)
    return x, sub


def _einsum_pair(a, sa, b, sb, keep, sizes):
    """Two operands contracted into one: labels of both that are kept are batch axes, labels of
    both that are not are summed by the product, and the rest are the matrix rows and columns
    of one batched ``matmul`` (an elementwise product when nothing is summed)."""
    batch = [c for c in sa if c in sb and c in keep]
    summed = [c for c in sa if c in sb and c not in keep]
    rows = [c for c in sa if c not in sb]
    cols = [c for c in sb if c not in sa]
    size = lambda labels: int(np.prod([sizes[c] for c in labels], dtype=np.int64))
    a = _in_order(a, sa, batch + rows + summed)
    b = _in_order(b, sb, batch + summed + cols)
    batch_shape = (size(batch),) if batch else ()
    if summed:
        out = matmul(reshape(a, batch_shape + (size(rows), size(summed))),
                     reshape(b, batch_shape + (size(summed), size(cols))))
    else:
        out = multiply(reshape(a, batch_shape + (size(rows), 1)), reshape(b, batch_shape + (1, size(cols))))
    labels = batch + rows + cols
    return reshape(out, tuple(sizes[c] for c in labels)), "".join(labels)


def _in_order(x, sub, labels):
    perm = [sub.index(c) for c in labels]
    return transpose(x, perm) if perm != list(range(len(perm))) else x


def _einsum_path(subscripts, shapes, optimize):
    """NumPy's own contraction order for these shapes (``einsum_path`` on stand-ins of zero
    strides, so nothing of their size is allocated): a list of operand positions per step."""
    standins = [np.lib.stride_tricks.as_strided(np.zeros(1), shape, (0,) * len(shape)) for shape in shapes]
    strategy = "greedy" if optimize in (False, True, None) else optimize
    path, _ = np.einsum_path(subscripts, *standins, optimize=strategy)
    return [step for step in path[1:]]


@implements(np.einsum)
def einsum(subscripts, *operands, out=None, dtype=None, order="K", casting="safe", optimize=False):
    """``numpy.einsum`` with string subscripts (implicit or explicit output, ``...``, repeated
    indices for diagonals, size-1 broadcasting). Operands are contracted a pair at a time in the
    order ``np.einsum_path`` picks (greedy unless ``optimize`` names 'optimal' or a path), each
    pair as transposes and one batched matmul, so the gradient and vmap follow from those."""
    if not _any_tracer((subscripts,) + operands):
        return np.einsum(subscripts, *operands, out=out, dtype=dtype, order=order, casting=casting, optimize=optimize)
    _check_no_out("einsum", out)
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: the first argument must be the subscripts string, such as 'ij,jk->ik', got "
                        f"{type(subscripts).__name__} (the interleaved form einsum(a, [0, 1], b, [1, 2]) is not "
                        f"supported on traced values){_where_msg()}")
    operands = [_strong(_check_operand(x, "np.einsum")) for x in operands]
    shapes = [tuple(_shape(x)) for x in operands]
    labels, output = _einsum_labels(subscripts, shapes)
    sizes = _einsum_sizes(labels, shapes, subscripts)
    result_dtype = np.result_type(*[x.dtype for x in operands]) if dtype is None else np.dtype(dtype)
    if result_dtype == np.bool_ and np.can_cast(np.result_type(*[x.dtype for x in operands]), result_dtype, casting):
        # NumPy's boolean sum of products is an OR of ANDs: whether the count of true products is nonzero
        counts = einsum(subscripts, *[_to(x, np.bool_, tuple(_shape(x)), operands) for x in operands],
                        dtype=np.int64, optimize=optimize)
        return counts != 0
    if result_dtype.kind not in "iufc":
        raise UnsupportedError(f"np.einsum of {result_dtype} operands is not supported on traced values (integers, "
                               f"floats and complex numbers are){_where_msg()}")
    if not np.can_cast(np.result_type(*[x.dtype for x in operands]), result_dtype, casting):
        raise TypeError(f"einsum: cannot cast the operands to dtype={result_dtype} under casting={casting!r}")
    terms = [(_to(x, result_dtype, shape, operands), sub) for x, shape, sub in zip(operands, shapes, labels)]
    steps = _einsum_path("".join(",".join(labels) + "->" + output), shapes, optimize) if len(terms) > 2 else \
        [tuple(range(len(terms)))]
    for step in steps:
        chosen = [terms[i] for i in step]
        terms = [t for i, t in enumerate(terms) if i not in step]
        needed = set(output).union(*[sub for _, sub in terms])
        x, sx = _einsum_single(*chosen[0], needed.union(*[sub for _, sub in chosen[1:]]), sizes)
        for k, (y, sy) in enumerate(chosen[1:], 1):
            later = needed.union(*[sub for _, sub in chosen[k + 1:]])
            y, sy = _einsum_single(y, sy, later | set(sx), sizes)
            x, sx = _einsum_pair(x, sx, y, sy, later, sizes)
        terms.append((x, sx))
    (x, sx), = terms
    x, sx = _einsum_single(x, sx, set(output), sizes)
    out = _in_order(x, sx, list(output))
    # NumPy's own loop returns a 0-d result as a scalar; its optimised path, as a 0-d array
    return _ndarray0d(out, *[o for o in operands if o is out][:1]) if optimize is not False else out


def _tensordot_axes(axes, na, nb):
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= builtins.min(na, nb):
            raise ValueError(f"tensordot: axes={axes} must be between 0 and the operands' dimensions ({na}, {nb})")
        return list(range(na - axes, na)), list(range(axes))
    try:
        axes_a, axes_b = axes
    except (TypeError, ValueError):
        raise TypeError(f"tensordot: axes must be an int or a pair of axis sequences, got {axes!r}") from None
    axes_a = [axes_a] if isinstance(axes_a, (int, np.integer)) else list(axes_a)
    axes_b = [axes_b] if isinstance(axes_b, (int, np.integer)) else list(axes_b)
    if len(axes_a) != len(axes_b):
        raise ValueError(f"tensordot: axes {axes!r} pair {len(axes_a)} axes of a with {len(axes_b)} of b")
    return [_norm_axis(ax, na, "axes") for ax in axes_a], [_norm_axis(ax, nb, "axes") for ax in axes_b]


@implements(np.tensordot, returns_array=True)
def tensordot(a, b, axes=2):
    """``numpy.tensordot``: the sum over ``axes`` of a against ``axes`` of b (an int N: the last
    N of a and the first N of b), written as an ``einsum`` of the same contraction."""
    if not _any_tracer((a, b)):
        return np.tensordot(a, b, axes)
    a, b = _strong(_check_operand(a, "np.tensordot")), _strong(_check_operand(b, "np.tensordot"))
    sa, sb = tuple(_shape(a)), tuple(_shape(b))
    axes_a, axes_b = _tensordot_axes(axes, len(sa), len(sb))
    for i, j in zip(axes_a, axes_b):
        if sa[i] != sb[j]:
            raise ShapeError(f"tensordot: shape mismatch for sum: axis {i} of a has size {sa[i]}, axis {j} of b has "
                             f"size {sb[j]} (shapes {sa} and {sb}){_argument_names((a, b))}{_where_msg()}")
    labels = iter(_LABELS)
    la = [next(labels) for _ in sa]
    lb = [next(labels) for _ in sb]
    for i, j in zip(axes_a, axes_b):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in axes_a] + [c for j, c in enumerate(lb) if j not in axes_b]
    return einsum(f"{''.join(la)},{''.join(lb)}->{''.join(out)}", a, b)


__all__ = public_names(globals())
