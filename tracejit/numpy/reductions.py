"""Reductions and scans: sum, prod, mean, var, std, max, min, ptp, argmax, argmin, any, all,
average, the NaN-ignoring nansum, nanmean, nanmax, nanmin, and cumsum, cumprod, diff, and the
``accumulate`` methods of maximum, minimum, logical_and and logical_or.

Layer: front end, on ``shapes`` and ``ufuncs``. In: an array or tracer and NumPy's ``axis``,
``dtype``, ``keepdims`` (``out=``, ``where=``, ``initial=`` are refused on tracers). Out: the
reduction primitives (``reduce_sum``, ``reduce_prod``, ``reduce_max``, ``reduce_min``,
``argmax``, ``argmin``) and scans (``cumsum``, ``cumprod``, ``cummax``, ``cummin``) in the accumulation dtype NumPy
uses, and compositions of them (mean = sum / count, var in two passes as NumPy computes it,
the NaN-ignoring ones with NaNs replaced by the identity, diff as slices subtracted). Plain
arrays go to NumPy.
"""
from __future__ import annotations

import builtins
import functools
import math
import operator
import warnings

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind
from .dispatch import _check_no_out, implements, public_names
from .promotion import _any_tracer, _is_tracer, _scalar0d, astype, literal
from .shapes import (_norm_axes, _norm_axis, _reshape_to, asarray, broadcast_to, concatenate, copy, ravel, reshape,
                     transpose)
from .ufuncs import (add, greater, imag, isnan, logical_not, multiply, not_equal, real, sqrt, subtract, true_divide,
                     where)


# ----------------------------------------------------------------------------- reductions

@functools.lru_cache(maxsize=None)
def _sum_dtype(dtype):
    return np.sum(np.zeros(1, dtype)).dtype


@functools.lru_cache(maxsize=None)
def _mean_dtype(dtype):
    return np.mean(np.zeros(1, dtype)).dtype


def _keepdims_size(x_shape, axes) -> int:
    return math.prod([d for i, d in enumerate(x_shape) if i not in axes])


def _warn_at_user_line(message):
    """NumPy's RuntimeWarning for a reduction over nothing, raised when the shape is known (at
    trace time, so once per signature), attributed to the user's line."""
    from ..errors import user_frame
    info = user_frame()
    if info is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        warnings.warn_explicit(message, RuntimeWarning, info[0], info[1])


def _keepdims(out, x_shape, axes, keepdims):
    if not keepdims:
        return out
    return _reshape_to(out, tuple([1 if i in axes else d for i, d in enumerate(x_shape)]))


def _sum_or_prod(name, prim, np_fn, ufunc):
    """``numpy.sum`` or ``numpy.prod``: bools and small ints accumulate in NumPy's default
    integer (``_sum_dtype``), as both do."""
    def fn(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        if not _is_tracer(a):
            return np_fn(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                         **({} if initial is None else {"initial": initial}),
                         **({} if where is None else {"where": where}))
        if out is not None or initial is not None or where is not None:
            _check_no_out(name, out, initial=initial, where=where)
        axes = _norm_axes(axis, a.ndim)
        dtype = np.dtype(dtype) if dtype is not None else _sum_dtype(a.dtype)
        if dtype != a.dtype or a.weak:
            a = astype(a, dtype)
        result = bind(prim, a, axes=axes) if axes else _scalar0d(a)
        return _keepdims(result, a.shape, axes, keepdims)
    fn.__name__ = name
    fn.__doc__ = f"``numpy.{name}``; bools and small ints accumulate in NumPy's default integer."
    return implements(np_fn, reduces=ufunc)(fn)


sum = _sum_or_prod("sum", P.reduce_sum, np.sum, np.add)
prod = _sum_or_prod("prod", P.reduce_prod, np.prod, np.multiply)


@implements(np.mean)
def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """``numpy.mean`` as sum / count."""
    if not _is_tracer(a):
        return np.mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                       **({} if where is None else {"where": where}))
    if out is not None or where is not None:
        _check_no_out("mean", out, where=where)
    return _mean_of(a, axis, dtype, keepdims, warn=True)


def _mean_of(a, axis, dtype, keepdims, warn):
    axes = _norm_axes(axis, a.ndim)
    result_dtype = np.dtype(dtype) if dtype is not None else _mean_dtype(a.dtype)
    count = math.prod([a.shape[i] for i in axes])
    total = sum(astype(a, result_dtype), axis=axes, keepdims=keepdims)
    if warn and not count and total.size:
        _warn_at_user_line("Mean of empty slice")
    return true_divide(total, literal(count, result_dtype)) if count else true_divide(total, literal(np.nan, result_dtype))


@implements(np.var)
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None, correction=None):
    """``numpy.var``: mean of squared deviations from the mean (two passes, as NumPy)."""
    if not _is_tracer(a):
        kwargs = {k: v for k, v in dict(where=where, mean=mean, correction=correction).items() if v is not None}
        return np.var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    _check_no_out("var", out, where=where, mean=mean)
    ddof = correction if correction is not None else ddof
    axes = _norm_axes(axis, a.ndim)
    result_dtype = np.dtype(dtype) if dtype is not None else _mean_dtype(a.dtype)
    x = astype(a, result_dtype)
    centered = subtract(x, _mean(x, axes, keepdims=True))
    count = math.prod([a.shape[i] for i in axes]) - ddof
    if count <= 0 and _keepdims_size(a.shape, axes):
        _warn_at_user_line("Degrees of freedom <= 0 for slice")
    if centered.dtype.kind == "c":  # |d|^2 as NumPy computes it: re^2 + im^2, a real result
        re, im = real(centered), imag(centered)
        squares, result_dtype = add(multiply(re, re), multiply(im, im)), re.dtype
    else:
        squares = multiply(centered, centered)
    return true_divide(sum(squares, axis=axes, keepdims=keepdims), literal(builtins.max(count, 0), result_dtype))


_mean = lambda x, axes, keepdims: _mean_of(x, axes, None, keepdims, warn=False)  # noqa: E731  (var shadows mean)


@implements(np.std)
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None, correction=None):
    """``numpy.std``: ``sqrt(var)``."""
    if not _is_tracer(a):
        kwargs = {k: v for k, v in dict(where=where, mean=mean, correction=correction).items() if v is not None}
        return np.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    variance = var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where, mean=mean,
                   correction=correction)
    reduced = math.prod([a.shape[i] for i in _norm_axes(axis, a.ndim)])
    if reduced == 1 and (correction if correction is not None else ddof) == 0:
        # the spread of one value: var is exactly 0 (NaN for NaN or inf), and so is its sqrt,
        # whose derivative at 0 would turn var's zero gradient into NaN
        return variance
    return sqrt(variance)


def _extremum(name, prim, np_fn):
    ufunc_name = {"max": "maximum", "min": "minimum"}[name]  # NumPy's messages name the ufunc
    def fn(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        if not _is_tracer(a):
            kwargs = {k: v for k, v in dict(initial=initial, where=where).items() if v is not None}
            return np_fn(a, axis=axis, out=out, keepdims=keepdims, **kwargs)
        if out is not None or initial is not None or where is not None:
            _check_no_out(name, out, initial=initial, where=where)
        axes = _norm_axes(axis, a.ndim)
        if builtins.any(a.shape[i] == 0 for i in axes):
            raise ValueError(f"zero-size array to reduction operation {ufunc_name} which has no identity"
                             f"{_where_msg()}")
        out = bind(prim, a, axes=axes) if axes else _scalar0d(a)
        return _keepdims(out, a.shape, axes, keepdims)
    fn.__name__ = name
    fn.__doc__ = f"``numpy.{name}`` (NaN propagates)."
    return implements(np_fn, getattr(np, "a" + name), reduces=getattr(np, ufunc_name))(fn)


max = amax = _extremum("max", P.reduce_max, np.max)
min = amin = _extremum("min", P.reduce_min, np.min)


def _arg_extremum(name, prim, np_fn):
    def fn(a, axis=None, out=None, *, keepdims=False):
        if not _is_tracer(a):
            return np_fn(a, axis=axis, out=out, keepdims=keepdims)
        _check_no_out(name, out)
        if axis is None:
            flat = ravel(a)
            return _keepdims(prim(flat, axis=0), (1,) * a.ndim, tuple(range(a.ndim)), keepdims) if keepdims \
                else prim(flat, axis=0)
        axis = _norm_axis(axis, a.ndim)
        return _keepdims(prim(a, axis=axis), a.shape, (axis,), keepdims)
    fn.__name__ = name
    fn.__doc__ = f"``numpy.{name}``: index of the first extreme value."
    return implements(np_fn)(fn)


argmax = _arg_extremum("argmax", P.argmax, np.argmax)
argmin = _arg_extremum("argmin", P.argmin, np.argmin)


@implements(np.any)
def any(a, axis=None, out=None, keepdims=False, *, where=None):
    """``numpy.any``."""
    if not _is_tracer(a):
        return np.any(a, axis=axis, out=out, keepdims=keepdims)
    return greater(sum(astype(a, bool), axis=axis, keepdims=keepdims, out=out, where=where), 0)


@implements(np.all)
def all(a, axis=None, out=None, keepdims=False, *, where=None):
    """``numpy.all``."""
    if not _is_tracer(a):
        return np.all(a, axis=axis, out=out, keepdims=keepdims)
    return logical_not(any(logical_not(a), axis=axis, out=out, keepdims=keepdims, where=where))


# ----------------------------------------------------------------------------- scans and differences

def _scan(name, prim, np_fn, ufunc):
    def fn(a, axis=None, dtype=None, out=None):
        if not _is_tracer(a):
            return np_fn(a, axis=axis, dtype=dtype, out=out)
        _check_no_out(name, out)
        if axis is None or a.ndim == 0:  # NumPy scans a 0-d array as a 1-d one
            if axis is not None:
                _norm_axis(axis, 1)
            a, axis = ravel(a), 0
        else:
            axis = _norm_axis(axis, a.ndim)
        dtype = np.dtype(dtype) if dtype is not None else _sum_dtype(a.dtype)
        # bool running sums and products are logical: "any so far" and "all so far"
        work_dtype = np.dtype(np.int64) if dtype == np.bool_ else dtype
        if work_dtype != a.dtype or a.weak:
            a = astype(a, work_dtype)
        result = prim(a, axis=axis, reverse=False)
        return astype(result, dtype) if work_dtype != dtype else result
    fn.__name__ = name
    fn.__doc__ = (f"``numpy.{name}`` (and ``np.{ufunc.__name__}.accumulate``) along one axis, summed in order as "
                  "NumPy does; bools and small ints accumulate in NumPy's default integer.")
    return implements(np_fn, accumulates=ufunc)(fn)


cumsum = _scan("cumsum", P.cumsum, np.cumsum, np.add)
cumprod = _scan("cumprod", P.cumprod, np.cumprod, np.multiply)


def _running_extremum(prim, ufunc, truth_values=False):
    """``ufunc.accumulate`` for ``np.maximum`` and ``np.minimum`` (the running extremes, in the
    input's dtype; NaN, once reached, stays), and for ``np.logical_or`` and ``np.logical_and``
    (``truth_values``: "any so far" and "all so far", the running extremes of ``a != 0``). The
    gradient of each output goes to the element that holds the extreme there: the earliest
    among equal values."""
    def fn(a, axis=0, dtype=None):
        if a.ndim == 0:
            raise TypeError(f"np.{ufunc.__name__}.accumulate: cannot accumulate on a scalar{_where_msg()}")
        axis = _norm_axis(axis, a.ndim)
        if truth_values:
            if dtype is not None and np.dtype(dtype) != np.bool_:
                raise UnsupportedError(f"np.{ufunc.__name__}.accumulate(..., dtype={np.dtype(dtype)}) is not supported "
                                       f"in traced code; its result is bool{_where_msg()}")
            a = not_equal(a, 0)
        elif dtype is not None or a.weak:
            a = astype(a, a.dtype if dtype is None else dtype)
        if a.dtype == np.bool_:  # the scans take numbers: bools as 0 and 1
            return astype(bind(prim, astype(a, np.uint8), axis=axis, reverse=False), np.bool_)
        return bind(prim, a, axis=axis, reverse=False)
    fn.__name__ = f"{ufunc.__name__}_accumulate"
    fn.__doc__ = _running_extremum.__doc__
    return implements(accumulates=ufunc)(fn)


_running_extremum(P.cummax, np.maximum)
_running_extremum(P.cummin, np.minimum)
_running_extremum(P.cummax, np.logical_or, truth_values=True)
_running_extremum(P.cummin, np.logical_and, truth_values=True)


@implements(np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    """``numpy.diff``: ``n`` rounds of differences of neighbours along ``axis`` (``!=`` for
    bools), after joining ``prepend`` and ``append`` (a scalar is one slice)."""
    if not _any_tracer((a, prepend, append)):
        return np.diff(a, n=n, axis=axis, prepend=prepend, append=append)
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    a = asarray(a)
    if a.ndim == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    axis = _norm_axis(axis, a.ndim)
    if n == 0:
        return a
    parts = []
    for part in (prepend, a, append):
        if part is np._NoValue:
            continue
        part = asarray(part)
        if part.ndim == 0:
            part = broadcast_to(part, a.shape[:axis] + (1,) + a.shape[axis + 1:])
            if not _is_tracer(part):  # made here from a number: a constant of the graph
                part = literal(part)
        parts.append(part)
    if len(parts) > 1:
        a = concatenate(parts, axis=axis)
    head = (builtins.slice(None),) * axis
    later, earlier = head + (builtins.slice(1, None),), head + (builtins.slice(None, -1),)
    difference = not_equal if a.dtype == np.bool_ else subtract
    for _ in range(n):
        a = difference(a[later], a[earlier])
    return a


# ----------------------------------------------------------------------------- NaN-ignoring reductions
# NaNs replaced by the reduction's identity, then the plain reduction: the gradient reaches the
# entries that were not NaN. Integers and bools hold no NaN: the plain reduction itself.

def _nan_keywords(name, out, keepdims, initial=np._NoValue, where=np._NoValue) -> bool:
    _check_no_out(name, out, initial=initial, where=where)
    return False if keepdims is np._NoValue else keepdims


def _no_nan(a, fill):
    return where(isnan(a), fill, a) if a.dtype.kind in "fc" else a


@implements(np.nansum)
def nansum(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, initial=np._NoValue, where=np._NoValue):
    """``numpy.nansum``: NaNs count as zero."""
    if not _is_tracer(a):
        return np.nansum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, initial=initial, where=where)
    keepdims = _nan_keywords("nansum", out, keepdims, initial, where)
    return sum(_no_nan(a, 0), axis=axis, dtype=dtype, keepdims=keepdims)


@implements(np.nanmean)
def nanmean(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, *, where=np._NoValue):
    """``numpy.nanmean``: the sum of the entries that are not NaN over their count (NaN, where
    a slice has none; NumPy's warning for that is given where NumPy itself runs: eager mode,
    not under a transformation)."""
    if not _is_tracer(a):
        return np.nanmean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=where)
    keepdims = _nan_keywords("nanmean", out, keepdims, where=where)
    if a.dtype.kind not in "fc":
        return mean(a, axis=axis, dtype=dtype, keepdims=keepdims)
    if dtype is not None and np.dtype(dtype).kind not in "fc":
        raise TypeError("If a is inexact, then dtype must be inexact")
    total = sum(_no_nan(a, 0), axis=axis, dtype=dtype, keepdims=keepdims)
    count = sum(logical_not(isnan(a)), axis=axis, keepdims=keepdims)
    return _scalar0d(true_divide(total, astype(count, total.dtype)))  # in the sum's dtype, as NumPy's


def _nan_extremum(name, extremum, np_fn, fill):
    def fn(a, axis=None, out=None, keepdims=np._NoValue, initial=np._NoValue, where=np._NoValue):
        if not _is_tracer(a):
            return np_fn(a, axis=axis, out=out, keepdims=keepdims, initial=initial, where=where)
        keepdims = _nan_keywords(name, out, keepdims, initial, where)
        if a.dtype.kind not in "fc":
            return extremum(a, axis=axis, keepdims=keepdims)
        missing = isnan(a)
        result = extremum(_no_nan(a, fill), axis=axis, keepdims=keepdims)
        return _scalar0d(where_(all(missing, axis=axis, keepdims=keepdims), np.nan, result))
    fn.__name__ = name
    fn.__doc__ = (f"``numpy.{name}``: NaNs ignored; NaN for a slice of NaNs only (NumPy's warning for that is "
                  "given where NumPy itself runs: eager mode, not under a transformation). The gradient reaches the selected entries.")
    return implements(np_fn)(fn)


where_ = where  # (the nan functions' ``where=`` keyword shadows the ufunc)
nanmax = _nan_extremum("nanmax", max, np.nanmax, -np.inf)
nanmin = _nan_extremum("nanmin", min, np.nanmin, np.inf)


# ----------------------------------------------------------------------------- ranges and averages

@implements(np.ptp)
def ptp(a, axis=None, out=None, keepdims=np._NoValue):
    """``numpy.ptp``: maximum minus minimum."""
    if not _is_tracer(a):
        return np.ptp(a, axis=axis, out=out, keepdims=keepdims)
    keepdims = _nan_keywords("ptp", out, keepdims)
    return subtract(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


@implements(np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=np._NoValue):
    """``numpy.average``: the mean, or with ``weights`` sum(a * w) / sum(w). Weights that sum to
    zero raise ZeroDivisionError when they are known while tracing; traced weights cannot be
    checked, and give inf or NaN there."""
    if not _any_tracer((a, weights)):
        return np.average(a, axis=axis, weights=weights, returned=returned, keepdims=keepdims)
    a = asarray(a)
    axes = None if axis is None else _norm_axes(axis, a.ndim)
    keepdims = False if keepdims is np._NoValue else keepdims
    if weights is None:
        avg = mean(a, axis=axes, keepdims=keepdims)
        scale = avg.dtype.type(a.size / math.prod(avg.shape))
    else:
        w = asarray(weights)
        if w.shape != a.shape:
            if axes is None:
                raise TypeError("Axis must be specified when shapes of a and weights differ.")
            if w.shape != tuple(a.shape[i] for i in axes):
                raise ValueError("Shape of weights must be consistent with shape of a along specified axis.")
            w = reshape(transpose(w, tuple(np.argsort(axes).tolist())),
                        tuple(d if i in axes else 1 for i, d in enumerate(a.shape)))
        if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            result_dtype = np.result_type(a.dtype, w.dtype, "f8")
        else:
            result_dtype = np.result_type(a.dtype, w.dtype)
        scale = sum(w, axis=axes, dtype=result_dtype, keepdims=keepdims)
        if not _is_tracer(scale) and np.any(scale == 0.0):
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        weighted = multiply(astype(a, result_dtype), astype(w, result_dtype))
        avg = true_divide(sum(weighted, axis=axes, keepdims=keepdims), scale)
    if not returned:
        return avg
    if np.shape(scale) != avg.shape:
        scale = copy(broadcast_to(scale, avg.shape))
    return avg, scale


__all__ = public_names(globals())
