"""Reductions: sum, mean, var, std, max, min, argmax, argmin, any, all.

Layer: front end, on ``shapes`` and ``ufuncs``. In: an array or tracer and NumPy's ``axis``,
``dtype``, ``keepdims`` (``out=``, ``where=``, ``initial=`` are refused on tracers). Out: the
reduction primitives (``reduce_sum``, ``reduce_max``, ``reduce_min``, ``argmax``, ``argmin``)
in the accumulation dtype NumPy uses, and compositions of them (mean = sum / count, var in two
passes as NumPy computes it). Plain arrays go to NumPy.
"""
from __future__ import annotations

import builtins
import functools
import math
import warnings

import numpy as np

from .. import ops as P
from ..errors import where as _where_msg
from ..primitives import bind
from .dispatch import _check_no_out, implements, public_names
from .promotion import _is_tracer, _scalar0d, astype, literal
from .shapes import _norm_axes, _norm_axis, _reshape_to, ravel
from .ufuncs import greater, logical_not, multiply, sqrt, subtract, true_divide


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


@implements(np.sum, reduces=np.add)
def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """``numpy.sum``; bools and small ints accumulate in NumPy's default integer."""
    if not _is_tracer(a):
        return np.sum(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                      **({} if initial is None else {"initial": initial}), **({} if where is None else {"where": where}))
    if out is not None or initial is not None or where is not None:
        _check_no_out("sum", out, initial=initial, where=where)
    axes = _norm_axes(axis, a.ndim)
    dtype = np.dtype(dtype) if dtype is not None else _sum_dtype(a.dtype)
    if dtype != a.dtype or a.weak:
        a = astype(a, dtype)
    out = bind(P.reduce_sum, a, axes=axes) if axes else _scalar0d(a)
    return _keepdims(out, a.shape, axes, keepdims)


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
    return true_divide(sum(multiply(centered, centered), axis=axes, keepdims=keepdims),
                       literal(builtins.max(count, 0), result_dtype))


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


__all__ = public_names(globals())
