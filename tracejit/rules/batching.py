"""Batching (vmap): one rule per primitive, for a batch of values along a leading axis.

Layer: transformation rules (see ``tracejit.rules``). In: nothing at import but the primitive
set. Out: ``batching_rules``, read by ``vectorize.py``'s trace.

A rule ``rule(values, batched, size, **params)`` gets the primitive's operands, each either
batched (its first axis runs over the ``size`` examples) or not (the same for every example,
``batched[i]`` False), and returns ``(result, result_batched)`` (tuples of both for a primitive
with several results): the primitive applied to every example at once. Rules bind primitives,
so a batched computation is one graph of ordinary equations: it fuses and compiles like any
other, and the batch never becomes a Python loop.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..primitives import Primitive

__all__ = ["batching_rules", "defbatch", "broadcast_batch"]

batching_rules: dict[Primitive, object] = {}


def defbatch(prim: Primitive, rule) -> None:
    """Register ``rule`` as ``prim``'s batching rule (see the module docstring)."""
    batching_rules[prim] = rule


def _shape(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def broadcast_batch(x, size):
    """``x`` (the same for every example) as a batched value: repeated along a new first axis."""
    return ops.broadcast_to(x, shape=(size,) + _shape(x))


def _all_batched(values, batched, size):
    return [v if b else broadcast_batch(v, size) for v, b in zip(values, batched)]


# --------------------------------------------------------------------------- elementwise

def _elementwise_rule(prim):
    def rule(values, batched, size, **params):
        return prim(*_all_batched(values, batched, size), **params), True
    return rule


for _prim in ops.__dict__.values():
    if isinstance(_prim, Primitive) and _prim.kind == "elementwise":
        defbatch(_prim, _elementwise_rule(_prim))

# --------------------------------------------------------------------------- shape


def _broadcast_to_rule(values, batched, size, *, shape):
    (x,) = values
    inner = _shape(x)[1:]
    lead = len(shape) - len(inner)
    x = ops.reshape(x, shape=(size,) + (1,) * lead + inner)
    return ops.broadcast_to(x, shape=(size,) + tuple(shape)), True


def _concatenate_rule(values, batched, size, *, axis):
    return ops.concatenate(*_all_batched(values, batched, size), axis=axis + 1), True


defbatch(ops.broadcast_to, _broadcast_to_rule)
defbatch(ops.reshape, lambda v, b, size, *, shape: (ops.reshape(v[0], shape=(size,) + tuple(shape)), True))
defbatch(ops.transpose, lambda v, b, size, *, perm: (
    ops.transpose(v[0], perm=(0,) + tuple(p + 1 for p in perm)), True))
defbatch(ops.slice, lambda v, b, size, *, starts, stops, steps: (
    ops.slice(v[0], starts=(0,) + tuple(starts), stops=(size,) + tuple(stops), steps=(1,) + tuple(steps)), True))
defbatch(ops.pad, lambda v, b, size, *, config: (ops.pad(v[0], config=((0, 0, 0),) + tuple(config)), True))
defbatch(ops.concatenate, _concatenate_rule)

# --------------------------------------------------------------------------- indexing
# With a batched index, each example picks from its own rows: the examples' rows are laid
# end to end (the indexed axis moved next to the batch axis, the two merged) and each
# example's indices offset by its first row there.


def _offset_indices(idx, n, size):
    """Per-example indices into the merged (batch x n) axis; negative ones counted from the end.
    One outside [-n, n) becomes ``size * n``, past the merged axis, so that the gather or
    scatter raises IndexError as NumPy does for that example: offset, it would read (or add
    into) another example's row."""
    idx_shape = _shape(idx)
    dtype = idx.dtype
    zero = np.zeros(idx_shape, dtype)
    wrapped = ops.where(ops.lt(idx, zero), ops.add(idx, np.full(idx_shape, n, dtype)), idx)
    inside = ops.logical_and(ops.ge(wrapped, zero), ops.lt(wrapped, np.full(idx_shape, n, dtype)))
    offsets = np.broadcast_to((np.arange(size) * n).reshape((size,) + (1,) * (len(idx_shape) - 1)), idx_shape)
    return ops.where(inside, ops.add(wrapped, np.ascontiguousarray(offsets, dtype=dtype)),
                     np.full(idx_shape, size * n, dtype))


def _axis_first(x, axis):
    """Batched ``x`` with its (per-example) ``axis`` moved next to the batch axis, and the two
    merged: (size * n, the other axes...)."""
    shape = _shape(x)
    ndim = len(shape)
    perm = (0, axis + 1) + tuple(i for i in range(1, ndim) if i != axis + 1)
    moved = ops.transpose(x, perm=perm)
    return ops.reshape(moved, shape=(shape[0] * shape[axis + 1],) + tuple(shape[i] for i in perm[2:]))


def _gather_rule(values, batched, size, *, axis):
    x, idx = values
    x_batched, idx_batched = batched
    if not idx_batched:
        return ops.gather(x, idx, axis=axis + 1), True
    if not x_batched:
        out = ops.gather(x, idx, axis=axis)  # the batch axis lands at position ``axis``
        ndim = len(_shape(out))
        return ops.transpose(out, perm=(axis,) + tuple(i for i in range(ndim) if i != axis)), True
    shape = _shape(x)
    n, pre, n_idx = shape[axis + 1], len(shape[1:axis + 1]), len(_shape(idx)) - 1
    out = ops.gather(_axis_first(x, axis), _offset_indices(idx, n, size), axis=0)  # (size, *idx, *pre, *post)
    ndim = len(_shape(out))
    perm = (0,) + tuple(1 + n_idx + i for i in range(pre)) + tuple(1 + i for i in range(n_idx)) + \
        tuple(range(1 + n_idx + pre, ndim))
    return ops.transpose(out, perm=perm), True


def _scatter_add_rule(values, batched, size, *, axis):
    x, idx, updates = values
    x, updates = _all_batched([x, updates], [batched[0], batched[2]], size)
    if not batched[1]:
        return ops.scatter_add(x, idx, updates, axis=axis + 1), True
    shape = _shape(x)
    n, pre, n_idx = shape[axis + 1], len(shape[1:axis + 1]), len(_shape(idx)) - 1
    u_ndim = len(_shape(updates))
    # updates (size, *pre, *idx, *post) -> (size, *idx, *pre, *post), as the merged axis wants them
    perm = (0,) + tuple(1 + pre + i for i in range(n_idx)) + tuple(1 + i for i in range(pre)) + \
        tuple(range(1 + pre + n_idx, u_ndim))
    summed = ops.scatter_add(_axis_first(x, axis), _offset_indices(idx, n, size), ops.transpose(updates, perm=perm),
                             axis=0)
    ndim = len(shape)
    moved_shape = (size, n) + tuple(shape[i] for i in range(1, ndim) if i != axis + 1)
    back = ops.reshape(summed, shape=moved_shape)
    order = (0, axis + 1) + tuple(i for i in range(1, ndim) if i != axis + 1)
    return ops.transpose(back, perm=tuple(int(k) for k in np.argsort(order))), True


defbatch(ops.gather, _gather_rule)
defbatch(ops.scatter_add, _scatter_add_rule)

# --------------------------------------------------------------------------- reductions

for _reduction in (ops.reduce_sum, ops.reduce_max, ops.reduce_min):
    defbatch(_reduction, (lambda prim: lambda v, b, size, *, axes: (
        prim(v[0], axes=tuple(a + 1 for a in axes)), True))(_reduction))
for _search in (ops.argmax, ops.argmin):
    defbatch(_search, (lambda prim: lambda v, b, size, *, axis: (prim(v[0], axis=axis + 1), True))(_search))

# --------------------------------------------------------------------------- matmul


def _matmul_rule(values, batched, size):
    a, b = values
    a_batched, b_batched = batched
    a_shape, b_shape = _shape(a), _shape(b)
    if a_batched and not b_batched and len(b_shape) == 2:
        # every example's rows times one matrix: one product over all rows
        m, k = a_shape[-2:]
        rows = ops.reshape(a, shape=(int(np.prod(a_shape[:-1], dtype=np.int64)), k))
        return ops.reshape(ops.matmul(rows, b), shape=a_shape[:-1] + (b_shape[-1],)), True
    if b_batched and not a_batched and len(a_shape) == 2:
        # one matrix times every example's columns: the examples' columns side by side
        k, n = b_shape[-2:]
        cols = ops.reshape(ops.transpose(b, perm=(1, 0, 2)), shape=(k, size * n))
        out = ops.reshape(ops.matmul(a, cols), shape=(a_shape[0], size, n))
        return ops.transpose(out, perm=(1, 0, 2)), True
    return ops.matmul(*_all_batched(values, batched, size)), True


defbatch(ops.matmul, _matmul_rule)

# --------------------------------------------------------------------------- sorting, LAPACK
# They already work on every row or matrix of the leading axes: the examples are one more of those.


def _per_slice_rule(prim):
    def rule(values, batched, size, **params):
        out = prim(*_all_batched(values, batched, size), **params)
        return (out, (True,) * len(out)) if prim.multiple_results else (out, True)
    return rule


for _per_slice in (ops.fft, ops.argsort, ops.solve, ops.slogdet, ops.cholesky, ops.eigh, ops.svd, ops.qr):
    defbatch(_per_slice, _per_slice_rule(_per_slice))

# --------------------------------------------------------------------------- windows, collectives
# An image batch is already a batch: the examples' images are laid end to end along it.


def _windows_rule(values, batched, size, *, window, strides):
    shape = _shape(values[0])
    out = ops.windows(ops.reshape(values[0], shape=(shape[0] * shape[1],) + shape[2:]), window=window, strides=strides)
    return ops.reshape(out, shape=shape[:2] + _shape(out)[1:]), True


def _windows_sum_rule(values, batched, size, *, window, strides, image):
    shape = _shape(values[0])
    out = ops.windows_sum(ops.reshape(values[0], shape=(shape[0] * shape[1],) + shape[2:]),
                          window=window, strides=strides, image=image)
    return ops.reshape(out, shape=shape[:2] + _shape(out)[1:]), True


def _all_sum_rule(values, batched, size):
    outs = ops.all_sum(*_all_batched(values, batched, size))
    return outs, (True,) * len(outs)


defbatch(ops.windows, _windows_rule)
defbatch(ops.windows_sum, _windows_sum_rule)
defbatch(ops.all_sum, _all_sum_rule)

# --------------------------------------------------------------------------- products and scans

defbatch(ops.reduce_prod, lambda v, b, size, *, axes: (ops.reduce_prod(v[0], axes=tuple(a + 1 for a in axes)), True))
defbatch(ops.cumsum, lambda v, b, size, *, axis, reverse: (ops.cumsum(v[0], axis=axis + 1, reverse=reverse), True))
defbatch(ops.cumprod, lambda v, b, size, *, axis, reverse: (ops.cumprod(v[0], axis=axis + 1, reverse=reverse), True))
defbatch(ops.cummax, lambda v, b, size, *, axis, reverse: (ops.cummax(v[0], axis=axis + 1, reverse=reverse), True))
defbatch(ops.cummin, lambda v, b, size, *, axis, reverse: (ops.cummin(v[0], axis=axis + 1, reverse=reverse), True))
defbatch(ops.linear_scan, lambda v, b, size, *, axis, reverse: (
    ops.linear_scan(*_all_batched(v, b, size), axis=axis + 1, reverse=reverse), True))
