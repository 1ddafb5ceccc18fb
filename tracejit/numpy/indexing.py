"""Indexing and in-place assignment: ``x[index]``, ``x[index] = v``, take, take_along_axis, pad.

Layer: front end, on ``views``, ``shapes``, ``ufuncs`` and ``reductions``. In: a tracer and an
index (integers, slices, ``None``, ``...``, integer arrays, concrete boolean masks; traced
integer indices; a traced boolean mask for assignment only). Out: ``slice`` and ``gather``
equations for reads -- a basic-indexing result is marked as a view of its base -- and, for
assignment, ``scatter_add`` and ``where`` equations whose result the base tracer is rebound
to (``views.inplace_update``). ``pad`` writes its border the same way, by position.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind, top_trace
from .dispatch import _check_no_out, implements, public_names
from .promotion import _any_tracer, _broadcast_shapes, _is_tracer, _shape, _to, astype, literal
from .reductions import any
from .shapes import _check_operand, _norm_axis, ravel, reshape, transpose, zeros_like
from .ufuncs import add, equal, greater, greater_equal, less, logical_and, logical_not, multiply, where
from .views import _IndexView, _mark_view, _state, inplace_update


# ----------------------------------------------------------------------------- indexing

def _static_int_array(idx):
    arr = np.asarray(idx)
    if arr.dtype == np.bool_:
        return None
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return arr.astype(np.int64)
        raise IndexError(f"arrays used as indices must be of integer (or boolean) type, got {arr.dtype}{_where_msg()}")
    return arr


def _normalize_int_index(idx, n, axis):
    """Traced or constant integer indices wrapped into [0, n); constants are bounds-checked now."""
    if _is_tracer(idx):
        if idx.dtype.kind not in "iu":
            raise IndexError(f"arrays used as indices must be of integer type, got {idx.dtype}{_where_msg()}")
        idx = astype(idx, np.int64)
        return where(less(idx, 0), add(idx, n), idx)
    arr = np.asarray(idx, dtype=np.int64)
    if arr.size:
        highest, lowest = arr.max(), arr.min()
        if highest >= n or lowest < -n:
            bad = highest if highest >= n else lowest
            raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}{_where_msg()}")
        if lowest >= 0:
            return literal(arr)
    return literal(np.where(arr < 0, arr + n, arr))


def _expand_index(index, ndim):
    if not isinstance(index, tuple):
        index = (index,)
    index = tuple(_bool_mask_to_ints(i) for i in index)
    n_ellipsis = builtins.sum(1 for i in index if i is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = builtins.sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {used} were indexed")
    if n_ellipsis:
        k = index.index(Ellipsis)
        index = index[:k] + (builtins.slice(None),) * (ndim - used) + index[k + 1:]
    else:
        index = index + (builtins.slice(None),) * (ndim - used)
    return index


def _bool_mask_to_ints(i):
    if isinstance(i, range):
        return np.arange(i.start, i.stop, i.step)
    if _is_tracer(i) and i.dtype == np.bool_:
        raise UnsupportedError(
            f"boolean-mask indexing with a traced mask has a data-dependent shape, which a static graph cannot "
            f"express.{_where_msg()}\nUse np.where(mask, x, 0) (or a weighted sum) instead, or run eagerly.")
    if isinstance(i, (np.ndarray, list)) and np.asarray(i).dtype == np.bool_:
        if np.asarray(i).ndim != 1:
            raise UnsupportedError(f"multi-dimensional boolean masks are not supported in traced code{_where_msg()}")
        return np.flatnonzero(i)  # a concrete mask is fine: its positions are known at trace time
    return i


def _is_advanced(i):
    return _is_tracer(i) or isinstance(i, (np.ndarray, list))


def getitem(x, index):
    """``x[index]`` for tracers: basic slicing (steps, negative steps, ``None``, ``...``) and
    integer-array indexing (NumPy's rules for where the indexed axes go)."""
    if not _is_tracer(x):
        return x[index]
    index = _expand_index(index, x.ndim)
    has_advanced = builtins.any(_is_advanced(i) for i in index)
    if has_advanced and builtins.any(i is None for i in index):
        raise UnsupportedError(f"mixing None/np.newaxis with integer-array indices is not supported{_where_msg()}")
    starts, stops, steps, reversed_axes, out_index = [], [], [], [], []
    axis = 0
    for i in index:
        if i is None:
            out_index.append(None)
            continue
        n = x.shape[axis]
        if isinstance(i, builtins.slice):
            start, stop, step = i.indices(n)
            count = len(range(start, stop, step))
            if step > 0:
                starts.append(start); stops.append(start + (count - 1) * step + 1 if count else start); steps.append(step)
            else:
                first = start + (count - 1) * step if count else 0
                starts.append(first); stops.append(first + (count - 1) * -step + 1 if count else first); steps.append(-step)
                reversed_axes.append(axis)
            out_index.append("keep")
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            k = int(i)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}{_where_msg()}")
            k %= n
            if has_advanced:
                starts.append(0); stops.append(n); steps.append(1)
                out_index.append(np.int64(k))
            else:
                starts.append(k); stops.append(k + 1); steps.append(1)
                out_index.append("drop")
        elif _is_advanced(i):
            starts.append(0); stops.append(n); steps.append(1)
            out_index.append(i)
        else:
            raise IndexError(f"only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer or "
                             f"boolean arrays are valid indices, got {type(i).__name__}{_where_msg()}")
        axis += 1
    out = x
    if (tuple(starts), tuple(stops), tuple(steps)) != ((0,) * x.ndim, x.shape, (1,) * x.ndim):
        out = P.slice(out, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    for ax in reversed_axes:
        n = out.shape[ax]
        out = P.gather(out, literal(np.arange(n - 1, -1, -1, dtype=np.int64)), axis=ax)
    if has_advanced:
        positions = [k for k, i in enumerate(out_index)]
        return _advanced_index(out, [out_index[k] if not isinstance(out_index[k], str) else builtins.slice(None)
                                     for k in positions])
    shape, it = [], iter(out.shape)
    for i in out_index:
        if i is None:
            shape.append(1)
        elif i == "drop":
            next(it)
        else:
            shape.append(next(it))
    out = reshape(out, tuple(shape)) if tuple(shape) != out.shape else out
    return _mark_view(out, x, index)


def _advanced_index(x, index):
    """NumPy's integer-array indexing: the indexed axes are flattened into one and gathered."""
    adv_axes = [k for k, i in enumerate(index) if not isinstance(i, builtins.slice)]
    idx_values = [index[k] for k in adv_axes]
    idx_values = [i if _is_tracer(i) else _static_int_array(i) for i in idx_values]
    idx_shape = _broadcast_shapes("indexing", *[_shape(i) for i in idx_values])
    # Flat position within the indexed axes: sum(i_k * stride_k), as ravel_multi_index.
    flat = None
    stride = 1
    in_range = None  # traced indices are checked when the program runs
    for k, i in reversed(list(zip(adv_axes, idx_values))):
        n = x.shape[k]
        term = _normalize_int_index(i, n, k)
        if _is_tracer(term):
            ok = logical_and(greater_equal(term, 0), less(term, n))
            in_range = ok if in_range is None else logical_and(in_range, ok)
        term = multiply(term, stride) if stride != 1 else term
        flat = term if flat is None else add(flat, term)
        stride *= n
    if in_range is not None:
        # An index outside [-n, n) on any axis must fail, not land on another element: point
        # it past the end, where gather's bounds check raises IndexError.
        flat = where(in_range, flat, stride)
    flat = _to(flat, np.int64, idx_shape, (x,))
    contiguous = adv_axes == list(range(adv_axes[0], adv_axes[0] + len(adv_axes)))
    rest = [k for k in range(x.ndim) if k not in adv_axes]
    moved = transpose(x, adv_axes + rest)
    merged = reshape(moved, (stride,) + tuple(x.shape[k] for k in rest))
    out = P.gather(merged, flat, axis=0)
    if contiguous and adv_axes[0] != 0:
        nd = len(idx_shape)
        lead = list(range(nd, nd + adv_axes[0]))
        perm = lead + list(range(nd)) + list(range(nd + adv_axes[0], out.ndim))
        # the primitive, not np.transpose: a gather's result is a new array (NumPy's integer-array
        # indexing copies), so in-place updates of it (t[:, idx] += w) must not be refused as views
        out = P.transpose(out, perm=tuple(perm))
    return out


@implements(np.take)
def take(a, indices, axis=None, out=None, mode="raise"):
    """``numpy.take`` (mode='raise': out-of-range constant indices fail at trace time)."""
    if not _any_tracer((a, indices)):
        return np.take(a, indices, axis=axis, out=out, mode=mode)
    _check_no_out("take", out)
    if mode != "raise":
        raise UnsupportedError(f"np.take(mode={mode!r}) is not supported{_where_msg()}")
    if axis is None:
        a, axis = ravel(a), 0
    axis = _norm_axis(axis, a.ndim)
    indices = _normalize_int_index(indices, a.shape[axis], axis)
    return P.gather(a, _to(indices, np.int64, _shape(indices)), axis=axis)


@implements(np.take_along_axis)
def take_along_axis(arr, indices, axis):
    """``numpy.take_along_axis``, as integer-array indexing with broadcast index grids."""
    if not _any_tracer((arr, indices)):
        return np.take_along_axis(arr, indices, axis)
    axis = _norm_axis(axis, arr.ndim)
    if _is_tracer(arr) and not _is_tracer(indices):
        out = _take_along_constant(arr, indices, axis)
        if out is not None:
            return out
    index = []
    for k in range(arr.ndim):
        if k == axis:
            index.append(indices)
        else:
            shape = [1] * arr.ndim
            shape[k] = arr.shape[k]
            index.append(np.arange(arr.shape[k]).reshape(shape))
    return _advanced_index(arr, index)


def _take_along_constant(arr, indices, axis):
    """``take_along_axis`` with constant integer indices (labels in eager mode): what
    ``_advanced_index`` does with the index grids -- the same flat positions, checks and
    equations (a reshape and a gather) -- with the positions computed in one NumPy expression."""
    idx = _static_int_array(indices)
    if idx is None or idx.ndim != arr.ndim:
        return None  # a boolean mask, or the general path's errors
    shape = arr.shape
    grids = [(1,) * k + (shape[k],) + (1,) * (arr.ndim - k - 1) for k in range(arr.ndim)]
    idx_shape = _broadcast_shapes("indexing", *[idx.shape if k == axis else g for k, g in enumerate(grids)])
    flat = _normalize_int_index(idx, shape[axis], axis) * math.prod(shape[axis + 1:])
    for k in range(arr.ndim):
        if k != axis:
            flat = flat + np.arange(shape[k], dtype=np.int64).reshape(grids[k]) * math.prod(shape[k + 1:])
    flat = _to(literal(flat), np.int64, idx_shape, (arr,))  # a literal: inlined, as the general path's
    return bind(P.gather, reshape(arr, (arr.size,)), flat, axis=0)


def setitem(x, index, value):
    """``x[index] = value`` on a tracer: rebinds ``x`` to an updated copy, as NumPy updates it
    in place. Repeated positions keep the last value written, as in NumPy. Traced indices work
    too: integer arrays (up to ``_MAX_TRACED_POSITIONS`` positions), and a traced boolean mask of
    ``x``'s shape with a single value (``x[x < 0] = 0``)."""
    view = getattr(value, "view_of", None)
    if isinstance(view, _IndexView) and view.base is x and view.index is index and view.synced == _state(x):
        return  # x[index] = x[index] (the store half of ``x[index] += v``): nothing to write
    value = _check_operand(value, "setitem")
    if _index_is_traced(index):
        return _setitem_traced(x, index, value)
    positions = np.asarray(getitem(np.arange(x.size).reshape(x.shape), index))
    value = _to(value, x.dtype, positions.shape, (x,))
    if positions.shape == x.shape and np.array_equal(positions.ravel(), np.arange(x.size)):
        return inplace_update(x, value)  # x[...] = v, x[:] = v: every element, in order
    flat_positions = positions.ravel()
    # the last write to each position wins: keep the last occurrence of each
    last = flat_positions.size - 1 - np.unique(flat_positions[::-1], return_index=True)[1]
    keep = np.sort(last)
    flat_value = reshape(value, (-1,)) if _is_tracer(value) else literal(np.ravel(value))
    if keep.size != flat_positions.size:
        flat_value = P.gather(flat_value, literal(keep.astype(np.int64)), axis=0)
    mask = np.zeros(x.size, bool)
    mask[flat_positions] = True
    scattered = P.scatter_add(literal(np.zeros(x.size, x.dtype)), literal(flat_positions[keep].astype(np.int64)),
                              flat_value, axis=0)
    inplace_update(x, reshape(where(literal(mask), scattered, reshape(x, (-1,))), x.shape))


_MAX_TRACED_POSITIONS = 2048


def _setitem_traced(x, index, value):
    if _is_tracer(index) and index.dtype == np.bool_:
        if index.shape != x.shape or _shape(value) != ():
            raise UnsupportedError(
                f"x[mask] = value with a traced mask works for a mask of x's shape {x.shape} and a single value; "
                f"got a mask of shape {index.shape} and a value of shape {tuple(_shape(value))}{_where_msg()}\n"
                "Use x[...] = np.where(mask, new_values, x) instead.")
        return inplace_update(x, where(index, _to(value, x.dtype, (), (x,)), x))
    # Positions through the same indexing rules as x[index], on a table of flat positions.
    table = top_trace((x,)).full_raise(literal(np.arange(x.size, dtype=np.int64).reshape(x.shape)))
    positions = reshape(getitem(table, index), (-1,))
    m = positions.shape[0]
    if m > _MAX_TRACED_POSITIONS:
        raise UnsupportedError(f"assignment through traced indices is supported for up to {_MAX_TRACED_POSITIONS} "
                               f"positions, got {m}{_where_msg()}\nUse np.where with a mask instead.")
    value = reshape(_to(value, x.dtype, getitem(table, index).shape, (x,)), (-1,))
    # NumPy keeps the last write to a repeated position: drop updates a later one overwrites.
    later = literal(np.triu(np.ones((m, m), bool), 1))
    overwritten = any(logical_and(equal(reshape(positions, (m, 1)), reshape(positions, (1, m))), later), axis=1)
    keep = logical_not(overwritten)
    zeros = literal(np.zeros(x.size, x.dtype))
    scattered = P.scatter_add(zeros, positions, where(keep, value, zeros_like(value)), axis=0)
    hits = P.scatter_add(literal(np.zeros(x.size, np.int64)), positions, astype(keep, np.int64), axis=0)
    inplace_update(x, reshape(where(greater(hits, 0), scattered, reshape(x, (-1,))), x.shape))


def _index_is_traced(index):
    return _is_tracer(index) or (isinstance(index, tuple) and builtins.any(_is_tracer(i) for i in index))


@implements(np.pad)
def pad(array, pad_width, mode="constant", **kwargs):
    """``numpy.pad`` in ``mode="constant"``: a ``pad`` equation, then the fill value where it is not 0."""
    if not _is_tracer(array):
        return np.pad(array, pad_width, mode=mode, **kwargs)
    constant_values = kwargs.pop("constant_values", 0)
    if mode != "constant" or kwargs:
        raise UnsupportedError(f"np.pad(mode={mode!r}{''.join(', ' + k + '=' for k in sorted(kwargs))}) is not "
                               f"supported in traced code; only mode='constant'{_where_msg()}")
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (array.ndim, 2))
    except ValueError:
        raise ValueError(f"np.pad: pad_width {pad_width!r} does not fit an array of shape {array.shape}") from None
    if (widths < 0).any():
        raise ValueError(f"np.pad: negative pad_width {pad_width!r}{_where_msg()}")
    out = P.pad(array, config=tuple((int(lo), int(hi), 0) for lo, hi in widths))
    if _is_tracer(constant_values):
        if constant_values.ndim:
            raise UnsupportedError(f"np.pad: a traced constant_values must be a single value{_where_msg()}")
        fills = [[constant_values] * 2 for _ in range(array.ndim)]
    else:
        fills = np.broadcast_to(np.asarray(constant_values), (array.ndim, 2))
        if (fills == 0).all():
            return out
    for k in range(array.ndim):  # axis by axis, as NumPy fills (later axes overwrite corners)
        lo, hi = (int(w) for w in widths[k])
        position = np.arange(out.shape[k]).reshape([-1 if i == k else 1 for i in range(out.ndim)])
        if lo:
            out = where(literal(position < lo), _to(fills[k][0], out.dtype, (), (out,)), out)
        if hi:
            out = where(literal(position >= out.shape[k] - hi), _to(fills[k][1], out.dtype, (), (out,)), out)
    return out


__all__ = public_names(globals())
