"""Sorting: sort, argsort and the order statistics built on them (median, percentile, quantile).

Layer: front end, on ``shapes``, ``reductions`` and ``indexing``. In: arrays or tracers and an
axis. Out: the ``argsort`` primitive, which orders the last axis (the axis asked for is moved there
and back), the elements it picks, and interpolation between sorted values. ``argsort`` keeps equal values
in their original order (``kind='stable'``) whatever ``kind`` says: NumPy's default quicksort may
order ties otherwise. Complex values sort as NumPy sorts them: by real part, then imaginary
part, NaNs last in the order R + Rj, R + nanj, nan + Rj, nan + nanj. Plain operands go to NumPy.
"""
from __future__ import annotations

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import bind
from .dispatch import _check_no_out, implements, public_names
from .indexing import take, take_along_axis
from .promotion import _any_tracer, _is_tracer, _shape, _strong, astype, literal
from .shapes import _check_operand, _norm_axis, moveaxis, ravel, reshape
from .ufuncs import add, isnan, multiply, subtract, where


def _sorted_along(order, a, axis, fname):
    """``order`` (a function of rows along the last axis) applied along ``axis`` of ``a``."""
    a = _strong(_check_operand(a, fname))
    if a.dtype.kind not in "biufc":
        raise UnsupportedError(f"{fname} of {a.dtype} values is not supported on traced values{_where_msg()}")
    if axis is None:
        a, axis = ravel(a), 0
    if len(_shape(a)) == 0:
        raise np.exceptions.AxisError(f"{fname}: axis {axis} is out of bounds for array of dimension 0")
    axis = _norm_axis(axis, len(_shape(a)))
    last = len(_shape(a)) - 1
    rows = moveaxis(a, axis, last) if axis != last else a
    out = order(rows)
    return moveaxis(out, last, axis) if axis != last else out


def _sorted_rows(rows):
    """Each row (last axis) in ascending order, NaN last: the elements its argsort picks, so
    each output's gradient goes back to the element it came from."""
    return take_along_axis(rows, bind(P.argsort, rows), axis=-1)


def _check_order(fname, order):
    if order is not None:
        raise UnsupportedError(f"{fname}(..., order=) sorts structured arrays, which traced code has not{_where_msg()}")


@implements(np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """``numpy.sort``: ascending along ``axis`` (``None``: the flattened array), NaN last. Its
    gradient sends each output's cotangent back to the element it came from."""
    if not _any_tracer((a,)):
        return np.sort(a, axis=axis, kind=kind, order=order, stable=stable)
    _check_order("np.sort", order)
    return _sorted_along(_sorted_rows, a, axis, "np.sort")


@implements(np.argsort)
def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """``numpy.argsort``: the positions that sort ``a`` along ``axis``, equal values in their
    original order (as ``kind='stable'``); integers, without a gradient."""
    if not _any_tracer((a,)):
        return np.argsort(a, axis=axis, kind=kind, order=order, stable=stable)
    _check_order("np.argsort", order)
    return _sorted_along(lambda rows: bind(P.argsort, rows), a, axis, "np.argsort")


@implements(np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """``numpy.partition``, answered by a full sort: every element before position ``kth``
    is no larger and every one after it no smaller, which is all NumPy promises (its order
    within the two parts is unspecified, and may differ from NumPy's)."""
    if not _any_tracer((a,)):
        return np.partition(a, kth, axis=axis, kind=kind, order=order)
    _check_order("np.partition", order)
    out = _sorted_along(_sorted_rows, a, axis, "np.partition")
    n = _shape(out)[_norm_axis(axis, len(_shape(out))) if axis is not None else 0]
    for k in np.atleast_1d(kth):
        if not -n <= int(k) < n:
            raise ValueError(f"np.partition: kth(={int(k)}) out of bounds ({n}){_where_msg()}")
    return out


# ----------------------------------------------------------------------------- order statistics

def _quantiles(a, q, axis, keepdims, fname, dtype=None):
    """NumPy's 'linear' quantiles ``q`` (fractions, a constant array; ``None``: the median) of
    ``a`` along ``axis``: the sorted values at ``q * (n - 1)``, interpolated between the two
    neighbours as NumPy's ``_lerp`` does (the median: the middle value or the mean of the two
    middle ones, as ``np.median``); a slice holding NaN gives NaN. ``q``'s axes come first."""
    a = _strong(_check_operand(a, fname))
    if a.dtype.kind == "c" and q is not None:
        raise TypeError(f"{fname}: a must be an array of real numbers{_where_msg()}")
    if a.dtype.kind not in "biufc":
        raise UnsupportedError(f"{fname} of {a.dtype} values is not supported on traced values{_where_msg()}")
    # NumPy subtracts the neighbours in the array's own float dtype, then interpolates in the
    # result's (float64 for an array of fractions)
    work = a.dtype if a.dtype.kind in "fc" else np.dtype(np.float64)
    dtype = dtype or work
    a = astype(a, work) if a.dtype != work else a
    shape = tuple(_shape(a))
    axes = tuple(range(len(shape))) if axis is None else \
        tuple(sorted(_norm_axis(ax, len(shape)) for ax in ((axis,) if np.ndim(axis) == 0 else axis)))
    kept = [ax for ax in range(len(shape)) if ax not in axes]
    n = int(np.prod([shape[ax] for ax in axes], dtype=np.int64))
    if n == 0:
        raise UnsupportedError(f"{fname} of an empty slice (NumPy warns and returns NaN) is not supported on traced "
                               f"values{_where_msg()}")
    rows = reshape(moveaxis(a, axes, tuple(range(len(shape) - len(axes), len(shape)))) if axes else a,
                   tuple(shape[ax] for ax in kept) + (n,))
    ordered = _sorted_rows(rows)
    at = lambda positions: take(ordered, literal(np.asarray(positions, dtype=np.int64)), axis=-1)
    median = q is None
    if median:
        q = np.asarray(0.5)
        value = at([n // 2]) if n % 2 else multiply(add(at([n // 2 - 1]), at([n // 2])), literal(0.5, work))
    else:
        q = np.asarray(q, dtype=np.float64)
        virtual = q.reshape(-1) * (n - 1)
        below = np.clip(np.floor(virtual), 0, n - 1).astype(np.int64)
        low, high = at(below), at(np.minimum(below + 1, n - 1))
        step = subtract(high, low)
        if work != dtype:
            low, high, step = astype(low, dtype), astype(high, dtype), astype(step, dtype)
        gamma = literal(virtual - below, dtype)
        value = where(gamma >= 0.5, subtract(high, multiply(step, literal(1 - (virtual - below), dtype))),
                      add(low, multiply(step, gamma)))
    # a slice holding NaN: NumPy's median gives its last sorted value (of complex numbers, the
    # one NaN that sorts last), its quantiles NaN
    last = at([n - 1])
    value = where(isnan(last), last if median else literal(np.nan, dtype), value)
    out = moveaxis(value, -1, 0)  # q's values first, then the kept axes
    if keepdims:
        out = reshape(out, (q.size,) + tuple(1 if ax in axes else shape[ax] for ax in range(len(shape))))
    return reshape(out, q.shape + tuple(_shape(out))[1:])


def _constant_fractions(q, fname, scale):
    if _is_tracer(q):
        raise UnsupportedError(f"{fname}: traced q is not supported; pass the quantiles as constants{_where_msg()}")
    fractions = np.asarray(q, dtype=np.float64) / scale
    if np.any((fractions < 0) | (fractions > 1)) or np.any(np.isnan(fractions)):
        raise ValueError(f"{fname}: quantiles must be in the range [0, {scale:g}], got {q!r}")
    return fractions


def _quantile_dtype(a, q):
    """NumPy's result dtype: a Python float ``q`` keeps a float32 ``a``'s precision."""
    a_dtype = np.asarray(a).dtype if not _is_tracer(a) else a.dtype
    a_dtype = a_dtype if a_dtype.kind == "f" else np.dtype(np.float64)
    return a_dtype if isinstance(q, (int, float)) else np.result_type(a_dtype, np.asarray(q).dtype)


def _method_and_out(fname, method, out, weights):
    _check_no_out(fname, out, weights=weights)
    if method != "linear":
        raise UnsupportedError(f"{fname}(..., method={method!r}) is not supported on traced values; only 'linear' "
                               f"is{_where_msg()}")


def _order_statistic(name, np_fn, scale):
    def fn(a, q, axis=None, out=None, overwrite_input=False, method="linear", keepdims=False, *, weights=None):
        if not _any_tracer((a, q)):
            return np_fn(a, q, axis=axis, out=out, overwrite_input=overwrite_input, method=method, keepdims=keepdims,
                         weights=weights)
        _method_and_out(f"np.{name}", method, out, weights)
        return _quantiles(a, _constant_fractions(q, f"np.{name}", scale), axis, keepdims, f"np.{name}",
                          _quantile_dtype(a, q))
    fn.__name__ = name
    fn.__doc__ = (f"``numpy.{name}`` with NumPy's default 'linear' method, ``q`` a constant"
                  f"{' (in percent)' if scale == 100 else ''}; its gradient reaches the (at most two) elements each "
                  "value interpolates.")
    return implements(np_fn)(fn)


quantile = _order_statistic("quantile", np.quantile, 1.0)
percentile = _order_statistic("percentile", np.percentile, 100.0)


@implements(np.median)
def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """``numpy.median``: the middle sorted value, or the mean of the two middle ones; for a
    slice holding NaN, its last sorted value (NaN; of complex values, NumPy's last NaN)."""
    if not _any_tracer((a,)):
        return np.median(a, axis=axis, out=out, overwrite_input=overwrite_input, keepdims=keepdims)
    _check_no_out("np.median", out)
    return _quantiles(a, None, axis, keepdims, "np.median")


__all__ = public_names(globals())
