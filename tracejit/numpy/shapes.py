"""Array construction and shape manipulation: reshape, transpose, concatenate, stack, tile, ...

Layer: front end, on ``promotion`` and ``views``. In: arrays, tracers, nested lists and
Python scalars, with NumPy's axis and shape arguments. Out: tracers made with the shape
primitives (``reshape``, ``transpose``, ``broadcast_to``, ``concatenate``), with no arithmetic;
plain arrays go to NumPy. Here: reshapes and transposes (``rollaxis`` too), broadcasting, the
joins (``concatenate``, ``stack``, ``hstack``/``vstack``/``dstack``/``column_stack``, ``append``,
``atleast_1d/2d/3d``), ``tile`` and ``meshgrid`` (broadcasts), ``asarray`` and the operand check
every function applies to lists (a list holding tracers is stacked), the ``*_like``
constructors, and the refusal of the functions whose output shape depends on the data
(``np.nonzero``, ``np.unique`` ...). Functions that pick elements by position are in ``indexing``.
"""
from __future__ import annotations

import builtins
import math
import operator

import numpy as np

from .. import ops as P
from ..errors import ShapeError, UnsupportedError, where as _where_msg
from ..primitives import Tracer, bind
from .promotion import (
    _PY_SCALARS, _any_tracer, _broadcast_shapes, _dtype_of, _is_tracer, _shape, _strong, _to, _weak_kind, astype,
    literal,
)
from .dispatch import implements, public_names
from .views import _mark_view


def _check_operand(x, fname):
    if isinstance(x, (Tracer, np.ndarray, np.generic) + _PY_SCALARS):
        if isinstance(x, np.ndarray) and x.dtype == object:
            raise TypeError(f"{fname}: object arrays are not supported by tracejit{_where_msg()}")
        return x
    if isinstance(x, (list, tuple)):
        x = asarray(x)
        return x if _is_tracer(x) else literal(x)  # a fresh array: nobody else can change it
    raise TypeError(f"{fname}: unsupported operand of type {type(x).__name__}{_where_msg()}")


def _norm_axis(axis, ndim, fname="axis"):
    if axis.__class__ is int and -ndim <= axis < ndim:  # the usual case, in range already
        return axis if axis >= 0 else axis + ndim
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{fname} must be an integer, got {type(axis).__name__}{_where_msg()}")
    if not -ndim <= axis < builtins.max(ndim, 1):
        raise np.exceptions.AxisError(f"axis {axis} is out of bounds for array of dimension {ndim}")
    return int(axis) % builtins.max(ndim, 1)


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(_norm_axis(a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"duplicate value in 'axis': {axis}")
        return axes
    return (_norm_axis(axis, ndim),)


@implements(np.reshape, returns_array="like input")
def reshape(a, newshape=None, order="C", *, shape=None):
    """``numpy.reshape`` (C order; one ``-1`` is inferred)."""
    newshape = shape if shape is not None else newshape
    if not _is_tracer(a):
        return np.reshape(a, newshape, order=order)
    if order != "C":
        raise UnsupportedError(f"reshape(order={order!r}): only order='C' is supported{_where_msg()}")
    if isinstance(newshape, (int, np.integer)):
        newshape = (newshape,)
    if newshape.__class__ is not tuple or not builtins.all(d.__class__ is int for d in newshape):
        newshape = tuple(int(d) for d in newshape)
    if newshape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    if -1 in newshape:
        known = math.prod([d for d in newshape if d != -1])
        if known == 0 or a.size % known:
            raise ShapeError(f"cannot reshape array of size {a.size} into shape {newshape}{_where_msg()}")
        newshape = tuple(a.size // known if d == -1 else d for d in newshape)
    return _reshape_to(a, newshape)


def _reshape_to(a, newshape):
    """A tracer ``a`` reshaped to ``newshape``, a tuple of Python ints (no -1)."""
    if math.prod(newshape) != a.size:
        raise ShapeError(f"cannot reshape array of size {a.size} into shape {newshape}{_where_msg()}")
    if newshape == a.shape:
        return a
    return _mark_view(bind(P.reshape, a, shape=newshape), a)


@implements(np.ravel)
def ravel(a, order="C"):
    """``numpy.ravel``."""
    return reshape(a, (-1,), order=order) if _is_tracer(a) else np.ravel(a, order=order)


@implements(np.transpose, returns_array="like input")
def transpose(a, axes=None):
    """``numpy.transpose``; ``axes=None`` reverses them."""
    if not _is_tracer(a):
        return np.transpose(a, axes)
    perm = tuple(reversed(range(a.ndim))) if axes is None else tuple(_norm_axis(x, a.ndim) for x in axes)
    if sorted(perm) != list(range(a.ndim)):
        raise ValueError(f"axes {axes} don't match array of dimension {a.ndim}")
    if perm == tuple(range(a.ndim)):
        return a
    return _mark_view(P.transpose(a, perm=perm), a)


@implements(np.swapaxes)
def swapaxes(a, axis1, axis2):
    """``numpy.swapaxes``."""
    if not _is_tracer(a):
        return np.swapaxes(a, axis1, axis2)
    perm = list(range(a.ndim))
    i, j = _norm_axis(axis1, a.ndim), _norm_axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


@implements(np.moveaxis)
def moveaxis(a, source, destination):
    """``numpy.moveaxis``."""
    if not _is_tracer(a):
        return np.moveaxis(a, source, destination)
    src = _norm_axes(source, a.ndim)
    dst = _norm_axes(destination, a.ndim)
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


@implements(np.expand_dims)
def expand_dims(a, axis):
    """``numpy.expand_dims``."""
    if not _is_tracer(a):
        return np.expand_dims(a, axis)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = a.ndim + len(axes)
    axes = {_norm_axis(x, ndim) for x in axes}
    it = iter(a.shape)
    return reshape(a, tuple(1 if i in axes else next(it) for i in range(ndim)))


@implements(np.squeeze, returns_array="like input")
def squeeze(a, axis=None):
    """``numpy.squeeze``."""
    if not _is_tracer(a):
        return np.squeeze(a, axis)
    axes = tuple(i for i, d in enumerate(a.shape) if d == 1) if axis is None else _norm_axes(axis, a.ndim)
    for i in axes:
        if a.shape[i] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


def _atleast(arys, ndim, numpy_fn, new_shape):
    """``numpy.atleast_{ndim}d``: each array with its shape padded by ``new_shape`` (shape -> shape
    of at least ``ndim`` axes); one array for one argument, a tuple for several, as NumPy returns."""
    if not _any_tracer(arys):
        return numpy_fn(*arys)
    out = tuple((reshape(a, new_shape(a.shape)) if a.ndim < ndim else a) if _is_tracer(a) else numpy_fn(a)
                for a in arys)
    return out[0] if len(out) == 1 else out


@implements(np.atleast_1d)
def atleast_1d(*arys):
    """``numpy.atleast_1d``: a 0-d array becomes shape (1,)."""
    return _atleast(arys, 1, np.atleast_1d, lambda shape: (1,))


@implements(np.atleast_2d)
def atleast_2d(*arys):
    """``numpy.atleast_2d``: (n,) becomes (1, n)."""
    return _atleast(arys, 2, np.atleast_2d, lambda shape: (1,) * (2 - len(shape)) + shape)


@implements(np.atleast_3d)
def atleast_3d(*arys):
    """``numpy.atleast_3d``: () becomes (1, 1, 1), (n,) becomes (1, n, 1), (m, n) becomes (m, n, 1)."""
    return _atleast(arys, 3, np.atleast_3d, lambda shape: {0: (1, 1, 1), 1: (1,) + shape + (1,)}.get(
        len(shape), shape + (1,)))


@implements(np.broadcast_to, returns_array=True)
def broadcast_to(array, shape):
    """``numpy.broadcast_to``."""
    if not _is_tracer(array):
        return np.broadcast_to(array, shape)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if _broadcast_shapes("np.broadcast_to", array.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast shape {array.shape} to {shape}{_where_msg()}")
    return array if array.shape == shape else P.broadcast_to(array, shape=shape)


@implements(np.broadcast_arrays)
def broadcast_arrays(*args):
    """``numpy.broadcast_arrays``."""
    if not _any_tracer(args):
        return np.broadcast_arrays(*args)
    shape = _broadcast_shapes("np.broadcast_arrays", *[_shape(a) for a in args])
    return [broadcast_to(a, shape) if _is_tracer(a) else np.broadcast_to(a, shape) for a in args]


@implements(np.concatenate)
def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """``numpy.concatenate``; ``axis=None`` flattens first."""
    arrays = list(arrays)
    if not _any_tracer(arrays):
        return np.concatenate(arrays, axis=axis, dtype=dtype, casting=casting)
    if out is not None:
        raise UnsupportedError("np.concatenate(..., out=) is not supported in traced code")
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    arrays = [_check_operand(a, "np.concatenate") for a in arrays]
    ndim = builtins.max(len(_shape(a)) for a in arrays)
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    axis = _norm_axis(axis, ndim)
    result_dtype = np.dtype(dtype) if dtype is not None else np.result_type(
        *[_weak_kind(a)(0) if _weak_kind(a) else _dtype_of(a) for a in arrays])
    for a in arrays:
        if not _weak_kind(a) and not np.can_cast(_dtype_of(a), result_dtype, casting):
            raise TypeError(f"np.concatenate: cannot cast array data from dtype('{_dtype_of(a)}') to "
                            f"dtype('{result_dtype}') according to the rule {casting!r}{_where_msg()}")
    parts = [_to(a, result_dtype, _shape(a)) for a in arrays]
    for p in parts:
        if len(p.shape) != ndim or builtins.any(d != e for i, (d, e) in enumerate(zip(p.shape, parts[0].shape)) if i != axis):
            raise ShapeError(f"np.concatenate: all input array dimensions except for the concatenation axis must "
                             f"match, got shapes {[tuple(_shape(a)) for a in arrays]}{_where_msg()}")
    parts = [p for p in parts if p.shape[axis] > 0] or parts[:1]
    if len(parts) == 1:
        return parts[0] if _is_tracer(parts[0]) else P.reshape(parts[0], shape=parts[0].shape)
    return P.concatenate(*parts, axis=axis)


@implements(np.stack)
def stack(arrays, axis=0, out=None, dtype=None):
    """``numpy.stack``: ``expand_dims`` + ``concatenate``."""
    arrays = list(arrays)
    if not _any_tracer(arrays):
        return np.stack(arrays, axis=axis, dtype=dtype)
    shapes = {tuple(_shape(a)) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f"np.stack: all input arrays must have the same shape, got {sorted(shapes)}{_where_msg()}")
    axis = _norm_axis(axis, len(next(iter(shapes))) + 1)
    return concatenate([expand_dims(asarray(a), axis) for a in arrays], axis=axis, dtype=dtype)


@implements(np.hstack)
def hstack(tup, *, dtype=None, casting="same_kind"):
    """``numpy.hstack``: along the first axis of 1-d arrays, the second otherwise."""
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1, dtype=dtype, casting=casting)


# np.row_stack is vstack's deprecated alias (NumPy 2.0 warns when it runs; later versions drop it)
@implements(np.vstack, *([np.row_stack] if hasattr(np, "row_stack") else []))
def vstack(tup, *, dtype=None, casting="same_kind"):
    """``numpy.vstack`` (and ``numpy.row_stack``): along the first axis of arrays made at least 2-d."""
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype, casting=casting)


row_stack = vstack


@implements(np.dstack)
def dstack(tup):
    """``numpy.dstack``: along the third axis of arrays made at least 3-d."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


@implements(np.column_stack)
def column_stack(tup):
    """``numpy.column_stack``: 0-d and 1-d arrays become columns, 2-d and higher are joined on axis 1."""
    arrays = list(tup)
    if not _any_tracer(arrays):
        return np.column_stack(arrays)
    columns = []
    for a in arrays:
        a = _check_operand(a, "np.column_stack")
        columns.append(_reshape_any(_strong(a), (-1, 1)) if len(_shape(a)) < 2 else a)
    return concatenate(columns, axis=1)


@implements(np.asarray, np.array)
def asarray(a, dtype=None, order=None, *, copy=None, like=None):
    """Tracers pass through (cast to ``dtype`` if given); anything else goes to ``numpy.asarray``.
    Nested lists holding tracers are stacked."""
    if _is_tracer(a):
        return a if dtype is None else astype(a, dtype)
    if isinstance(a, (list, tuple)) and _contains_tracer(a):
        # NumPy gives a list's Python numbers their default dtypes (float64, int64): in an
        # array they are no longer weak operands
        return stack([_strong(asarray(x, dtype)) for x in a]) if a else np.asarray(a, dtype)
    try:
        out = np.asarray(a, dtype=dtype)
    except ValueError as e:
        raise ValueError(f"cannot make an array from this value ({e}){_where_msg()}") from None
    if out.dtype == object:
        raise TypeError(f"object arrays are not supported by tracejit (ragged nested lists?){_where_msg()}")
    return out


array = asarray


def _contains_tracer(seq) -> bool:
    return builtins.any(_is_tracer(x) or (isinstance(x, (list, tuple)) and _contains_tracer(x)) for x in seq)


@implements(np.zeros_like)
def zeros_like(a, dtype=None, shape=None):
    """``numpy.zeros_like``: for a tracer, a broadcast zero constant (no data dependence)."""
    return full_like(a, 0, dtype, shape)


@implements(np.ones_like)
def ones_like(a, dtype=None, shape=None):
    """``numpy.ones_like``: for a tracer, a broadcast one constant."""
    return full_like(a, 1, dtype, shape)


@implements(np.full_like)
def full_like(a, fill_value, dtype=None, shape=None):
    """``numpy.full_like``; the fill value may be traced."""
    if not _any_tracer((a, fill_value)):
        return np.full_like(a, fill_value, dtype=dtype, shape=shape)
    dtype = np.dtype(dtype) if dtype is not None else _dtype_of(a)
    shape = tuple(shape) if shape is not None else _shape(a)
    return _to(fill_value, dtype, shape, (a, fill_value))


@implements(np.copy, returns_array=True)
def copy(a, order="K", subok=False):
    """``numpy.copy``: for a tracer, a new value (in-place updates of the copy leave ``a`` alone)."""
    if not _is_tracer(a):
        return np.copy(a, order=order, subok=subok)
    return P.reshape(a, shape=a.shape)


def _reshape_any(x, shape):
    return reshape(x, shape) if _is_tracer(x) else np.reshape(x, shape)


# ----------------------------------------------------------------------------- rearrangements
# Results NumPy returns as new arrays (tile, append, meshgrid's copies) are made with the
# primitives directly, not with ``reshape``, so they are not marked as views: in-place updates
# of them are allowed, as in NumPy.

@implements(np.rollaxis)
def rollaxis(a, axis, start=0):
    """``numpy.rollaxis``: ``axis`` moved to before position ``start`` (a transpose)."""
    if not _is_tracer(a):
        return np.rollaxis(a, axis, start)
    n = a.ndim
    axis = _norm_axis(axis, n)
    start = _int_argument(start, "start", "np.rollaxis")
    if start < 0:
        start += n
    if not 0 <= start < n + 1:
        raise np.exceptions.AxisError(f"'start' arg requires {-n} <= start < {n + 1}, got {start}")
    if axis < start:
        start -= 1
    order = [k for k in range(n) if k != axis]
    order.insert(start, axis)
    return transpose(a, order)


def _int_argument(value, name, fname):
    """``value`` as a Python int; a clear TypeError naming the argument otherwise."""
    if not _is_tracer(value):
        try:
            return operator.index(value)  # ints, NumPy integers and 0-d integer arrays
        except TypeError:
            pass
    else:
        raise UnsupportedError(f"{fname}: {name} must be a constant integer, got a traced value; pass it as a "
                               f"static argument (static_argnums){_where_msg()}")
    raise TypeError(f"{fname}: {name} must be an integer, got {type(value).__name__} {value!r}{_where_msg()}")


@implements(np.tile)
def tile(A, reps):
    """``numpy.tile``: ``A`` repeated ``reps`` times along each axis, as one broadcast of ``A``
    with a new axis before each of its own (gradient: a sum over the copies)."""
    if not _is_tracer(A):
        return np.tile(A, reps)
    try:
        reps = tuple(reps)
    except TypeError:  # one number (NumPy's test too)
        reps = (reps,)
    reps = tuple(_int_argument(r, "reps", "np.tile") for r in reps)
    if builtins.any(r < 0 for r in reps):
        raise ValueError(f"np.tile: reps must not be negative, got {reps}{_where_msg()}")
    shape = (1,) * (len(reps) - A.ndim) + A.shape
    reps = (1,) * (A.ndim - len(reps)) + reps
    out_shape = tuple(s * r for s, r in zip(shape, reps))
    if builtins.all(r == 1 for r in reps):
        return P.reshape(A, shape=out_shape)  # NumPy copies here too
    spread = P.reshape(A, shape=tuple(d for s in shape for d in (1, s)))
    tiled = P.broadcast_to(spread, shape=tuple(d for s, r in zip(shape, reps) for d in (r, s)))
    return P.reshape(tiled, shape=out_shape)


@implements(np.append)
def append(arr, values, axis=None):
    """``numpy.append``: ``concatenate``, with both flattened when ``axis`` is None."""
    if not _any_tracer((arr, values)):
        return np.append(arr, values, axis=axis)
    arr, values = (_strong(_check_operand(x, "np.append")) for x in (arr, values))
    if axis is None:
        arr, values, axis = _reshape_any(arr, (-1,)), _reshape_any(values, (-1,)), 0
    return concatenate((arr, values), axis=axis)


@implements(np.meshgrid)
def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """``numpy.meshgrid``: each 1-d input reshaped onto its own axis (the first two swapped for
    ``indexing='xy'``) and, unless ``sparse``, broadcast to the full grid."""
    if not _any_tracer(xi):
        return np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    if indexing not in ("xy", "ij"):
        raise ValueError(f"np.meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}{_where_msg()}")
    ndim = len(xi)
    axes = list(range(ndim))
    if indexing == "xy" and ndim > 1:
        axes[0], axes[1] = 1, 0
    grids = []
    for x, k in zip(xi, axes):
        x = _strong(_check_operand(x, "np.meshgrid"))
        shape = (1,) * k + (math.prod(_shape(x)),) + (1,) * (ndim - k - 1)
        grids.append(P.reshape(x, shape=shape) if _is_tracer(x) else np.reshape(x, shape))
    if not sparse:
        full = _broadcast_shapes("np.meshgrid", *[_shape(g) for g in grids])
        grids = [_to(g, _dtype_of(g), full, grids) for g in grids]
    return tuple(grids)



# ----------------------------------------------------------------------------- refusals

def _data_dependent(name):
    def fn(*args, **kwargs):
        if not _any_tracer(args):
            return getattr(np, name)(*args, **kwargs)
        raise UnsupportedError(
            f"np.{name} has an output shape that depends on the data, which a static graph cannot express."
            f"{_where_msg()}\nAlternatives: np.where(condition, x, y) keeps the shape; a mask multiply; "
            "or run this part eagerly (tj.mode('eager')).")
    fn.__name__ = name
    fn.__doc__ = f"Refused on traced values: ``numpy.{name}`` has a data-dependent output shape."
    return implements(getattr(np, name))(fn)


nonzero = _data_dependent("nonzero")
unique = _data_dependent("unique")
argwhere = _data_dependent("argwhere")
flatnonzero = _data_dependent("flatnonzero")
compress = _data_dependent("compress")
extract = _data_dependent("extract")


__all__ = public_names(globals())
