"""Indexing and in-place assignment, and the functions that pick elements by position.

Layer: front end, on ``views``, ``shapes``, ``ufuncs`` and ``reductions``. In: a tracer and an
index (integers, slices, ``None``, ``...``, integer arrays, concrete boolean masks; traced
integer indices; a traced boolean mask for assignment only). Out: ``slice`` and ``gather``
equations for reads -- a basic-indexing result is marked as a view of its base -- and, for
assignment, ``scatter_add`` and ``where`` equations whose result the base tracer is rebound
to (``views.inplace_update``). ``pad`` writes its border the same way, by position. Also here,
as compositions of those primitives (so every transformation has their rules already): take,
take_along_axis; flip, fliplr, flipud, rot90, roll and the splits (basic indexing: views, as
NumPy's are); repeat; tril, triu (a constant mask); diag, diagonal, trace (a strided slice, and
an interior pad); select (wheres); kron (a product of two broadcasts).
"""
from __future__ import annotations

import builtins
import math
import warnings

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind, top_trace
from .dispatch import _check_no_out, implements, public_names
from .promotion import (
    _any_tracer, _broadcast_shapes, _dtype_of, _is_tracer, _shape, _strong, _to, _weak_kind, astype, literal,
)
from .reductions import any, sum as _sum
from .shapes import (
    _check_operand, _int_argument, _norm_axes, _norm_axis, _reshape_any, concatenate, copy, expand_dims, moveaxis, ravel,
    reshape, stack, transpose, zeros_like,
)
from .ufuncs import (add, equal, greater, greater_equal, less, logical_and, logical_not, multiply, negative, subtract,
                     true_divide, where)
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
    # an integer for every axis: NumPy gives a scalar, a copy rather than a view
    scalar = builtins.all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))
                          for i in (index if isinstance(index, tuple) else (index,))) and \
        len(index if isinstance(index, tuple) else (index,)) == x.ndim
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
    return out if scalar else _mark_view(out, x, index)


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
    if _is_tracer(indices) and indices.dtype.kind in "iu":
        # gather counts negative indices from the end and raises on others out of range, as
        # np.take does, in every mode and under every transformation: no wrapping here
        indices = astype(indices, np.int64)
    else:
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




# ----------------------------------------------------------------------------- positions
# Functions that pick elements by position: flips and rolls (basic indexing, so their results
# are views of the argument as NumPy's are), splits (basic-indexing views), repeats (a gather
# or a broadcast), triangles (a constant mask), diagonals (a strided slice of the flattened
# matrix, and its transpose, an interior pad), select (a chain of wheres) and kron (a product
# of two broadcasts laid out in blocks).

@implements(np.flip)
def flip(m, axis=None):
    """``numpy.flip``: ``m[::-1]`` along each axis in ``axis`` (all of them for None)."""
    if not _is_tracer(m):
        return np.flip(m, axis)
    axes = _norm_axes(axis, m.ndim)
    return getitem(m, tuple(builtins.slice(None, None, -1) if k in axes else builtins.slice(None)
                            for k in range(m.ndim)))


@implements(np.fliplr)
def fliplr(m):
    """``numpy.fliplr``: ``m[:, ::-1]``."""
    return _flip_axis(m, 1, "fliplr")


@implements(np.flipud)
def flipud(m):
    """``numpy.flipud``: ``m[::-1]``."""
    return _flip_axis(m, 0, "flipud")


def _flip_axis(m, axis, fname):
    if not _is_tracer(m):
        return getattr(np, fname)(m)
    if m.ndim <= axis:
        raise ValueError(f"np.{fname}: input must be >= {axis + 1}-d, got shape {m.shape}{_where_msg()}")
    return flip(m, axis)


@implements(np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    """``numpy.rot90``: a flip and a transpose of the two axes (two flips for k = 2)."""
    if not _is_tracer(m):
        return np.rot90(m, k, axes)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError(f"np.rot90: axes must be two axes, got {axes}{_where_msg()}")
    if axes[0] == axes[1] or abs(axes[0] - axes[1]) == m.ndim:
        raise ValueError(f"np.rot90: axes must be different, got {axes}{_where_msg()}")
    if not builtins.all(-m.ndim <= a < m.ndim for a in axes):
        raise ValueError(f"np.rot90: axes={axes} out of range for array of ndim={m.ndim}{_where_msg()}")
    k = _int_argument(k, "k", "np.rot90") % 4
    if k == 0:
        return getitem(m, builtins.slice(None))
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    order = list(range(m.ndim))
    order[axes[0]], order[axes[1]] = order[axes[1]], order[axes[0]]
    return transpose(flip(m, axes[1]), order) if k == 1 else flip(transpose(m, order), axes[1])


@implements(np.roll)
def roll(a, shift, axis=None):
    """``numpy.roll``: per axis, the last ``shift`` elements concatenated before the others."""
    if not _is_tracer(a):
        return np.roll(a, shift, axis)
    if _is_tracer(shift):
        raise UnsupportedError(f"np.roll: a traced shift is not supported; pass it as a Python int "
                               f"(static_argnums){_where_msg()}")
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    try:
        pairs = np.broadcast(shift, axis)
    except ValueError:
        raise ValueError(f"np.roll: shift {shift!r} and axis {axis!r} do not broadcast together{_where_msg()}") from None
    if pairs.ndim > 1:
        raise ValueError(f"np.roll: shift and axis should be scalars or 1-d sequences, got shift {shift!r} and "
                         f"axis {axis!r}{_where_msg()}")
    shifts = dict.fromkeys(range(a.ndim), 0)
    for s, ax in pairs:
        shifts[_norm_axis(ax, a.ndim)] += int(s)  # NumPy truncates a float shift too
    out = a
    for ax, s in shifts.items():
        s %= a.shape[ax] or 1
        if s:
            before = (builtins.slice(None),) * ax
            out = concatenate([getitem(out, before + (builtins.slice(-s, None),)),
                               getitem(out, before + (builtins.slice(None, -s),))], axis=ax)
    return copy(a) if out is a else out


@implements(np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """``numpy.array_split``: basic-indexing views between the split points; ``n`` sections of
    sizes differing by at most one, the longer first."""
    if not _is_tracer(ary):
        return np.array_split(ary, indices_or_sections, axis)
    return _split(ary, indices_or_sections, axis, "np.array_split", equal=False)


@implements(np.split)
def split(ary, indices_or_sections, axis=0):
    """``numpy.split``: ``array_split`` whose number of sections must divide the axis."""
    if not _is_tracer(ary):
        return np.split(ary, indices_or_sections, axis)
    return _split(ary, indices_or_sections, axis, "np.split", equal=True)


def _split(ary, indices_or_sections, axis, fname, equal):
    if _is_tracer(indices_or_sections):
        raise UnsupportedError(f"{fname}: traced split points give data-dependent shapes; pass them as "
                               f"constants{_where_msg()}")
    axis = _norm_axis(axis, ary.ndim)
    n = ary.shape[axis]
    if np.ndim(indices_or_sections) == 0:  # a number of sections, which NumPy takes as int(...)
        try:
            sections = int(indices_or_sections)
        except (TypeError, ValueError):
            raise TypeError(f"{fname}: indices_or_sections must be an integer or a sequence of integers, got "
                            f"{indices_or_sections!r}{_where_msg()}") from None
        if sections <= 0:
            raise ValueError(f"{fname}: the number of sections must be larger than 0, got {sections}{_where_msg()}")
        if equal and n % sections:
            raise ValueError(f"{fname}: array split does not result in an equal division: an axis of length {n} "
                             f"into {sections} sections{_where_msg()}")
        size, extra = divmod(n, sections)
        points = np.cumsum([0] + [size + 1] * extra + [size] * (sections - extra)).tolist()
    else:
        points = [0] + [_int_argument(i, "indices_or_sections", fname) for i in indices_or_sections] + [n]
    before = (builtins.slice(None),) * axis
    return [getitem(ary, before + (builtins.slice(start, stop),)) for start, stop in zip(points, points[1:])]


def _split_along(ary, indices_or_sections, axis, fname, min_ndim):
    if not _is_tracer(ary):
        return getattr(np, fname)(ary, indices_or_sections)
    if ary.ndim < min_ndim:
        raise ValueError(f"np.{fname} only works on arrays of {min_ndim} or more dimensions, got shape "
                         f"{ary.shape}{_where_msg()}")
    return _split(ary, indices_or_sections, axis, f"np.{fname}", equal=True)


@implements(np.hsplit)
def hsplit(ary, indices_or_sections):
    """``numpy.hsplit``: ``split`` along axis 1 (axis 0 of a 1-d array)."""
    return _split_along(ary, indices_or_sections, 1 if np.ndim(ary) > 1 else 0, "hsplit", 1)


@implements(np.vsplit)
def vsplit(ary, indices_or_sections):
    """``numpy.vsplit``: ``split`` along axis 0 of an array of 2 or more dimensions."""
    return _split_along(ary, indices_or_sections, 0, "vsplit", 2)


@implements(np.dsplit)
def dsplit(ary, indices_or_sections):
    """``numpy.dsplit``: ``split`` along axis 2 of an array of 3 or more dimensions."""
    return _split_along(ary, indices_or_sections, 2, "dsplit", 3)


@implements(np.repeat)
def repeat(a, repeats, axis=None):
    """``numpy.repeat``: one count for every element is a broadcast along a new axis after
    ``axis``; counts per element are a gather of the positions ``np.repeat`` gives."""
    if _is_tracer(repeats):
        raise UnsupportedError(f"np.repeat: traced repeats give a data-dependent shape; pass them as "
                               f"constants{_where_msg()}")
    if not _is_tracer(a):
        return np.repeat(a, repeats, axis)
    if axis is None:
        a, axis = ravel(a), 0
    axis = _norm_axis(axis, a.ndim)
    n = a.shape[axis]
    positions = np.repeat(np.arange(n), repeats)  # NumPy's own checks of the counts
    counts = np.asarray(repeats)
    if counts.size != 1:
        return P.gather(a, literal(positions.astype(np.int64)), axis=axis)
    count = positions.size // n if n else int(counts.reshape(()))
    before, after = a.shape[:axis + 1], a.shape[axis + 1:]
    spread = P.broadcast_to(P.reshape(a, shape=before + (1,) + after), shape=before + (count,) + after)
    return P.reshape(spread, shape=a.shape[:axis] + (n * count,) + after)


def _triangle(m, k, fname, keep):
    """``m`` with the elements outside the triangle ``keep(rows, cols, k)`` set to 0 (a 1-d
    ``m`` is taken as every row of a square matrix, as NumPy does)."""
    if not _is_tracer(m):
        return getattr(np, fname)(m, k)
    if m.ndim == 0:
        raise ValueError(f"np.{fname}: input must be at least 1-d, got a 0-d array{_where_msg()}")
    rows, cols = m.shape[-2:] if m.ndim > 1 else (m.shape[0], m.shape[0])
    mask = keep(rows, cols, _int_argument(k, "k", f"np.{fname}"))
    return where(literal(mask), m, literal(np.zeros((), m.dtype)))


@implements(np.tril)
def tril(m, k=0):
    """``numpy.tril``: the lower triangle (on and below diagonal ``k``) of the last two axes."""
    return _triangle(m, k, "tril", lambda rows, cols, k: np.tri(rows, cols, k, dtype=bool))


@implements(np.triu)
def triu(m, k=0):
    """``numpy.triu``: the upper triangle (on and above diagonal ``k``) of the last two axes."""
    return _triangle(m, k, "triu", lambda rows, cols, k: ~np.tri(rows, cols, k - 1, dtype=bool))


@implements(np.diagonal)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal``: ``axis1`` and ``axis2`` moved last and flattened into one, whose
    diagonal is a slice with step ``columns + 1``; the diagonal is the last axis of the result.
    A view of ``a`` (NumPy's is read-only: in-place updates of it are refused)."""
    if not _is_tracer(a):
        return np.diagonal(a, offset, axis1, axis2)
    if a.ndim < 2:
        raise ValueError(f"np.diagonal: diag requires an array of at least two dimensions, got shape "
                         f"{a.shape}{_where_msg()}")
    i, j = _norm_axis(axis1, a.ndim), _norm_axis(axis2, a.ndim)
    if i == j:
        raise ValueError(f"np.diagonal: axis1 and axis2 cannot be the same, got {axis1} and {axis2}{_where_msg()}")
    offset = _int_argument(offset, "offset", "np.diagonal")
    rest = [k for k in range(a.ndim) if k not in (i, j)]
    lead = tuple(a.shape[k] for k in rest)
    rows, cols = a.shape[i], a.shape[j]
    moved = P.transpose(a, perm=tuple(rest + [i, j])) if rest + [i, j] != list(range(a.ndim)) else a
    flat = P.reshape(moved, shape=lead + (rows * cols,))
    if offset >= 0:
        count, start = builtins.max(0, builtins.min(rows, cols - offset)), offset
    else:
        count, start = builtins.max(0, builtins.min(rows + offset, cols)), -offset * cols
    start, stop = (start, start + (count - 1) * (cols + 1) + 1) if count else (0, 0)
    out = P.slice(flat, starts=(0,) * len(lead) + (start,), stops=lead + (stop,),
                  steps=(1,) * len(lead) + (cols + 1,))
    return _mark_view(out, a)


@implements(np.diag)
def diag(v, k=0):
    """``numpy.diag``: the ``k``-th diagonal of a matrix, or a square matrix with ``v`` on its
    ``k``-th diagonal -- an interior pad of ``v`` (a stride of ``size + 1`` through the flat
    matrix), reshaped."""
    if not _is_tracer(v):
        return np.diag(v, k)
    k = _int_argument(k, "k", "np.diag")
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError(f"np.diag: input must be 1- or 2-d, got shape {v.shape}{_where_msg()}")
    n = v.shape[0]
    size = n + abs(k)
    start = k if k >= 0 else -k * size
    after = size * size - start - n - builtins.max(n - 1, 0) * size
    return P.reshape(P.pad(v, config=((start, after, size),)), shape=(size, size))


@implements(np.trace)
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``numpy.trace``: the sum of ``diagonal`` (in NumPy's accumulation dtype)."""
    if not _is_tracer(a):
        return np.trace(a, offset, axis1, axis2, dtype, out)
    _check_no_out("trace", out)
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)


@implements(np.select)
def select(condlist, choicelist, default=0):
    """``numpy.select``: ``where(cond_0, choice_0, where(cond_1, choice_1, ... default))`` in the
    dtype NumPy resolves for the choices and ``default``."""
    condlist, choicelist = list(condlist), list(choicelist)
    if not _any_tracer(condlist + choicelist + [default]):
        return np.select(condlist, choicelist, default)
    if len(condlist) != len(choicelist):
        raise ValueError(f"np.select: list of cases must be same length as list of conditions, got "
                         f"{len(choicelist)} choices and {len(condlist)} conditions{_where_msg()}")
    if not condlist:
        raise ValueError(f"np.select with an empty condition list is not possible{_where_msg()}")
    for n, cond in enumerate(condlist):
        if _dtype_of(cond) != np.bool_:
            raise TypeError(f"np.select: invalid entry {n} in condlist: should be boolean, got "
                            f"{_dtype_of(cond)}{_where_msg()}")
    operands = [_check_operand(c, "np.select") for c in choicelist + [default]]
    dtype = np.result_type(*[_weak_kind(c)(0) if _weak_kind(c) else _dtype_of(c) for c in operands])
    shape = _broadcast_shapes("np.select", *[_shape(x) for x in condlist + operands])
    out = _to(operands[-1], dtype, _shape(operands[-1]), operands)
    for cond, choice in reversed(list(zip(condlist, operands))):
        out = where(_check_operand(cond, "np.select"), _to(choice, dtype, _shape(choice), operands), out)
    return _to(out, dtype, shape, operands)


@implements(np.kron)
def kron(a, b):
    """``numpy.kron``: ``a`` with an axis of 1 after each of its axes times ``b`` with one before
    each of its own; the product, shape ``(a0, b0, a1, b1, ...)``, read as ``(a0*b0, a1*b1, ...)``."""
    if not _any_tracer((a, b)):
        return np.kron(a, b)
    a, b = (_strong(_check_operand(x, "np.kron")) for x in (a, b))
    a, b = (x if _is_tracer(x) else np.asarray(x) for x in (a, b))
    ndim = builtins.max(a.ndim, b.ndim)
    a_shape, b_shape = (1,) * (ndim - a.ndim) + a.shape, (1,) * (ndim - b.ndim) + b.shape
    product = multiply(_reshape_any(a, tuple(d for s in a_shape for d in (s, 1))),
                       _reshape_any(b, tuple(d for s in b_shape for d in (1, s))))
    return P.reshape(product, shape=tuple(s * t for s, t in zip(a_shape, b_shape)))


@implements(np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``numpy.cross``: the cross product of the 3-vectors (or 2-vectors, deprecated by NumPy
    2, whose missing third component is 0) along ``axisa`` of ``a`` and ``axisb`` of ``b``,
    broadcast over the other axes, with the result's components along ``axisc`` (2-vectors on
    both sides give the third component alone). Each component is NumPy's difference of two
    products, in NumPy's order, so the values are NumPy's to the bit."""
    if not _any_tracer((a, b)):
        return np.cross(a, b, axisa, axisb, axisc, axis)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = (_strong(_check_operand(x, "np.cross")) for x in (a, b))
    a, b = (x if _is_tracer(x) else np.asarray(x) for x in (a, b))
    a = moveaxis(a, _norm_axis(axisa, a.ndim, "np.cross: axisa"), -1)
    b = moveaxis(b, _norm_axis(axisb, b.ndim, "np.cross: axisb"), -1)
    n, m = _shape(a)[-1], _shape(b)[-1]
    if n not in (2, 3) or m not in (2, 3):
        raise ValueError(f"incompatible dimensions for cross product (dimension must be 2 or 3), got vectors of "
                         f"{n} and {m} components{_where_msg()}")
    if n == 2 or m == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of 3-dimensional vectors instead. "
                      "(deprecated in NumPy 2.0)", DeprecationWarning, stacklevel=3)
    dtype = np.promote_types(_dtype_of(a), _dtype_of(b))
    a, b = (x if _dtype_of(x) == dtype else (astype(x, dtype) if _is_tracer(x) else x.astype(dtype)) for x in (a, b))
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    third = subtract(multiply(a0, b1), multiply(a1, b0))
    if n == 2 and m == 2:
        return third
    if n == 2:  # a2 = 0
        first, second = multiply(a1, b[..., 2]), negative(multiply(a0, b[..., 2]))
    elif m == 2:  # b2 = 0
        first, second = negative(multiply(a[..., 2], b1)), multiply(a[..., 2], b0)
    else:
        a2, b2 = a[..., 2], b[..., 2]
        first, second = subtract(multiply(a1, b2), multiply(a2, b1)), subtract(multiply(a2, b0), multiply(a0, b2))
    result = stack([first, second, third], axis=-1)  # each broadcasts both operands' other axes
    return moveaxis(result, -1, _norm_axis(axisc, result.ndim, "np.cross: axisc"))


@implements(np.linspace)
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, *, device=None):
    """``numpy.linspace`` with traced ``start`` or ``stop`` (``num`` is a constant): as NumPy
    computes it, ``start + arange(num) * step``, the last value ``stop`` itself when
    ``endpoint``; the values' gradients reach both ends."""
    if not _any_tracer((start, stop)):
        return np.linspace(start, stop, num=num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis,
                           device=device)
    if _is_tracer(num):
        raise UnsupportedError(f"np.linspace: a traced num is not supported (it is the result's length){_where_msg()}")
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    start, stop = (_strong(_check_operand(x, "np.linspace")) for x in (start, stop))
    div = (num - 1) if endpoint else num
    work = np.result_type(_dtype_of(start), _dtype_of(stop), float)
    start, stop = (astype(x, work) if _is_tracer(x) else np.asarray(x, work) for x in (start, stop))
    delta = subtract(stop, start)
    shape = _broadcast_shapes("np.linspace", _shape(start), _shape(stop))
    steps = literal(np.arange(num, dtype=work).reshape((num,) + (1,) * len(shape)))
    step = true_divide(delta, div) if div > 0 else multiply(delta, np.nan)
    y = add(multiply(steps, step) if div > 0 else multiply(steps, delta), start)
    if endpoint and num > 1:
        y = concatenate([y[:-1], expand_dims(_to(stop, work, shape, (y,)), 0)], axis=0)
    y = _to(y, work, (num,) + tuple(shape), (y,))
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None:
        y = astype(y, np.dtype(dtype))
    return (y, step) if retstep else y


@implements(np.lib.stride_tricks.sliding_window_view)
def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """``numpy.lib.stride_tricks.sliding_window_view``: every window of ``window_shape`` along
    ``axis`` (default: all axes), the window's axes last. NumPy's result is a read-only view;
    traced, it is one gather of the windows' elements (its gradient adds each window's
    cotangent back where the elements came from), and an in-place update of it is refused as
    NumPy refuses writing to a read-only view."""
    if not _any_tracer((x,)):
        return np.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis, subok=subok, writeable=writeable)
    if writeable:
        raise UnsupportedError(f"sliding_window_view(..., writeable=True) is not supported in traced code{_where_msg()}")
    x = _check_operand(x, "sliding_window_view")
    shape = tuple(_shape(x))
    # NumPy's own function on an array of positions: its checks and errors, and the positions
    # each window reads
    positions = np.lib.stride_tricks.sliding_window_view(np.arange(math.prod(shape)).reshape(shape), window_shape,
                                                         axis=axis)
    flat = P.reshape(x, shape=(math.prod(shape),)) if _is_tracer(x) else np.reshape(x, -1)
    windows = bind(P.gather, flat, literal(np.ascontiguousarray(positions).astype(np.int64)), axis=0)
    return _mark_view(windows, x)


__all__ = public_names(globals())
