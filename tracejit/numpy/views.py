"""Views and in-place updates of traced values.

Layer: front end, on ``promotion``. In: a tracer and the value an in-place operation gives it
(``x += 1``, ``x[i] = v``, ``out=``). Out: the tracer rebound to the new value (the trace turns a
changed argument into a write-back into the caller's array). A result of basic indexing is
marked as a view of its base (``_mark_view``, ``_IndexView``), so that an update of the view
is written through to the base as NumPy does; updates of other views are refused.
"""
from __future__ import annotations

import numpy as np

from .. import ops as P
from ..errors import ShapeError, UnsupportedError, where as _where_msg
from .promotion import _dtype_of, _is_tracer, _shape, _to, astype


def _mark_view(out, base, index=None):
    """Remember that ``out`` is a view of ``base``: a basic-indexing view (``index`` given)
    writes in-place updates through to ``base`` as NumPy does; other views refuse them."""
    if _is_tracer(out) and out is not base:
        out.view_of = _IndexView(base, index)
    return out


class _IndexView:
    """``view_of`` of ``base[index]`` (``index`` None: a view that is not basic indexing, a
    reshape or a transpose, through which updates are refused): an in-place update of the view
    becomes ``base[index] = new``. ``synced`` is the state of ``base`` the view's value agrees
    with; a view read after ``base`` changed would hold old values, so reading it raises
    (``check_fresh``, called where values are used: ``bind`` and the ufuncs)."""

    __slots__ = ("base", "index", "synced")

    def __init__(self, base, index):
        self.base, self.index, self.synced = base, index, _state(base)

    def check_fresh(self):
        if self.synced != _state(self.base):
            raise UnsupportedError(
                f"a view is read after its array was changed in place{_where_msg()}\nIn NumPy the view would "
                "see that change; traced, it holds the older values. Take the view again after changing the "
                "array (v = x[0:2] after x[0] = 5), or copy it first if the older values are meant.")


def _state(t):
    # What an in-place update changes in a tracer (graph tracers: atom; tape tracers: vid).
    return getattr(t, "atom", None), getattr(t, "vid", None)


def inplace_update(target, new_value):
    """Make ``target`` (a tracer) hold ``new_value``, as NumPy's in-place operators do.

    The trace turns a changed argument into a write-back into the caller's array.
    """
    if not _is_tracer(target):
        raise UnsupportedError(
            f"an in-place update of a NumPy array with a traced value cannot be recorded{_where_msg()}\n"
            "Return the new value instead, or pass the array as an argument of the traced function.")
    view = getattr(target, "view_of", None)
    if view is not None and view.index is None:
        raise UnsupportedError(
            f"in-place update of a view (a reshape, ravel or transpose of another array) is not supported in "
            f"traced code{_where_msg()}\nUpdate the original array (x[index] = value, x += ...) or a copy instead.")
    if _shape(new_value) != target.shape:
        raise ShapeError(f"non-broadcastable output operand with shape {target.shape} doesn't match the broadcast "
                         f"shape {tuple(_shape(new_value))}{_where_msg()}")
    if not np.can_cast(_dtype_of(new_value), target.dtype, "same_kind"):
        raise TypeError(f"Cannot cast ufunc output from dtype('{_dtype_of(new_value)}') to dtype('{target.dtype}') "
                        f"with casting rule 'same_kind'{_where_msg()}")
    new_value = astype(new_value, target.dtype) if _is_tracer(new_value) else _to(new_value, target.dtype, target.shape, (target,))
    if not _is_tracer(new_value):
        new_value = P.reshape(new_value, shape=target.shape)
    if view is not None:  # x[index] is a view: NumPy's update lands in x
        if view.synced != _state(view.base):
            raise UnsupportedError(
                f"in-place update of a view whose array was changed after the view was taken{_where_msg()}\n"
                "In NumPy the view would see that change; traced, it holds the older values. Take the view "
                "again after changing the array, or update the array itself (x[index] += ...).")
        view.base[view.index] = new_value  # indexing.setitem, through the tracer's __setitem__
        view.synced = _state(view.base)
    target.become(new_value)
    return target
