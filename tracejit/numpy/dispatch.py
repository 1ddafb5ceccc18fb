"""The tables that map NumPy's functions and ufuncs to the front end's definitions, and the
entry points of a tracer's NumPy protocols (``__array_ufunc__``, ``__array_function__``).

Layer: front end, on ``promotion`` and ``views``; the modules after it register their
definitions here as they are defined (``@implements(np.cumsum)``), so every table is built from
the definitions and no function is named twice. In: the ufunc or NumPy function a tracer was
handed to, with its arguments. Out: the call of the definition registered for it, with the
keywords NumPy passes (``out=``, ``dtype=``, ufunc ``reduce``) handled or refused. Anything not
registered raises ``UnsupportedError``: tracejit never falls back silently.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import UnsupportedError, where as _where_msg
from .promotion import _dtype_of, _is_tracer, _ndarray0d, _weak_kind, astype
from .views import inplace_update

_UFUNCS: dict = {}  # ufunc -> its definition (Tracer.__array_ufunc__)
_FUNCTIONS: dict = {}  # NumPy function -> its definition (Tracer.__array_function__)
_UFUNC_REDUCE: dict = {}  # ufunc -> the reduction its ``reduce`` method is (np.add -> sum)
_UFUNC_ACCUMULATE: dict = {}  # ufunc -> the scan its ``accumulate`` method is (np.add -> cumsum)
_DEFINITIONS: dict = {}  # definition -> the NumPy callables it implements, in registration order


def implements(*numpy_callables, returns_array=False, reduces=None, accumulates=None):
    """Decorator: register a definition as the front end's implementation of NumPy's
    ``numpy_callables`` (ufuncs and functions alike; aliases such as ``np.max``/``np.amax``).

    ``returns_array``: NumPy's function returns a 0-d *array* where the definition returns a
    scalar (``True``), or does so only for an array argument, as the method it calls does
    (``"like input"``: ``np.reshape``, ``np.squeeze``, ``np.transpose``). ``reduces``: the ufunc
    whose ``reduce`` method this reduction is; ``accumulates``: the ufunc whose ``accumulate``
    method this scan is."""
    def register(fn):
        entry = fn if not returns_array else _returns_array(fn, like_input=returns_array == "like input")
        for func in numpy_callables:
            table = _UFUNCS if isinstance(func, np.ufunc) else _FUNCTIONS
            if func in table:
                raise ValueError(f"{_qualified_name(func)} is implemented twice: by {table[func].__name__} "
                                 f"and {fn.__name__}")
            table[func] = entry
        if reduces is not None:
            _UFUNC_REDUCE[reduces] = fn
        if accumulates is not None:
            _UFUNC_ACCUMULATE[accumulates] = fn
        if numpy_callables:  # a ufunc method alone (np.maximum.accumulate) is no function of its own
            _DEFINITIONS.setdefault(fn, []).extend(numpy_callables)
        return fn
    return register


def public_names(namespace) -> list:
    """A module's ``__all__``: the names its namespace binds to definitions made there."""
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and callable(value) and value in _DEFINITIONS
                  and value.__module__ == namespace["__name__"])


def _returns_array(fn, like_input=False):
    """``fn`` as NumPy's function of that name: its 0-d results are arrays, not scalars (with
    ``like_input``: only when ``a`` is an array, not a scalar)."""
    @functools.wraps(fn)
    def wrapper(a, *args, **kwargs):
        out = fn(a, *args, **kwargs)
        if like_input and _is_tracer(a) and not (a.ndim or getattr(a, "ndarray0d", False)):
            return out
        return _ndarray0d(out, a)
    return wrapper


def _check_no_out(fname, out, **unsupported):
    """Refuse ``out=`` and the other keywords given (not None) in ``unsupported``. Callers
    check ``out is None and ... is None`` first, so the common call costs no keyword dict."""
    if out is not None:
        raise UnsupportedError(f"np.{fname}(..., out=) is not supported in traced code{_where_msg()}")
    for k, v in unsupported.items():
        if v is not None and v is not np._NoValue:
            raise UnsupportedError(f"np.{fname}(..., {k}=) is not supported in traced code{_where_msg()}")


def apply_ufunc(ufunc, method, inputs, kwargs):
    """Entry point of ``Tracer.__array_ufunc__``."""
    if not kwargs and method == "__call__":  # the usual call: no keywords to look at
        fn = _UFUNCS.get(ufunc)
        if fn is not None:
            return fn(*inputs)
    out = kwargs.pop("out", None)
    kwargs.pop("casting", None) if kwargs.get("casting") == "same_kind" else None
    if method == "reduce" and ufunc in _UFUNC_REDUCE:
        (a,) = inputs
        axis, dtype, keepdims = kwargs.pop("axis", 0), kwargs.pop("dtype", None), kwargs.pop("keepdims", False)
        if out is not None or kwargs:
            extra = (["out"] if out is not None else []) + sorted(kwargs)
            raise UnsupportedError(f"np.{ufunc.__name__}.reduce(..., {', '.join(e + '=' for e in extra)}) is not "
                                   f"supported in traced code{_where_msg()}")
        if ufunc in (np.add, np.multiply):  # sum and prod take the accumulation dtype themselves
            return _UFUNC_REDUCE[ufunc](a, axis=axis, dtype=dtype, keepdims=keepdims)
        return _UFUNC_REDUCE[ufunc](a if dtype is None else astype(a, dtype), axis=axis, keepdims=keepdims)
    if method == "accumulate" and ufunc in _UFUNC_ACCUMULATE:
        (a,) = inputs
        axis, dtype = kwargs.pop("axis", 0), kwargs.pop("dtype", None)
        if out is not None or kwargs or axis is None:
            extra = (["out"] if out is not None else []) + sorted(kwargs) + (["axis=None"] if axis is None else [])
            raise UnsupportedError(f"np.{ufunc.__name__}.accumulate(..., {', '.join(e if '=' in e else e + '=' for e in extra)})"
                                   f" is not supported in traced code{_where_msg()}")
        return _UFUNC_ACCUMULATE[ufunc](a, axis=axis, dtype=dtype)
    if method != "__call__":
        raise UnsupportedError(f"np.{ufunc.__name__}.{method} is not supported in traced code{_where_msg()}")
    fn = _UFUNCS.get(ufunc)
    if fn is None:
        raise UnsupportedError(f"np.{ufunc.__name__} is not supported by tracejit{_where_msg()}\n"
                               f"Supported ufuncs: {', '.join(sorted(u.__name__ for u in _UFUNCS))}.")
    dtype = kwargs.pop("dtype", None)
    where_arg = kwargs.pop("where", True)
    if kwargs or where_arg is not True:
        extra = sorted(kwargs) + (["where"] if where_arg is not True else [])
        raise UnsupportedError(f"np.{ufunc.__name__}(..., {', '.join(e + '=' for e in extra)}) is not supported "
                               f"in traced code{_where_msg()}")
    result = fn(*inputs)
    if dtype is not None:
        result = astype(result, dtype)
    if out is not None:
        (target,) = out
        return inplace_update(target, result)
    return result


def apply_function(func, args, kwargs):
    """Entry point of ``Tracer.__array_function__``."""
    impl = _FUNCTIONS.get(func)
    if impl is None:
        raise UnsupportedError(
            f"{_qualified_name(func)} is not supported by tracejit{_where_msg()}\n"
            f"tracejit refuses rather than silently run NumPy on a traced value. Supported functions are listed "
            f"in tj.numpy.__all__; or run this code eagerly with tj.mode('eager').")
    return impl(*args, **kwargs)


def _qualified_name(func):
    """``np.linalg.inv`` rather than ``np.inv``: the spelling users wrote."""
    parts = [p for p in (getattr(func, "__module__", None) or "numpy").split(".") if not p.startswith("_")]
    return ".".join(["np"] + parts[1:] + [func.__name__])



# Questions answered from the operands' shapes and dtypes: no equations.

@implements(np.shape)
def _shape_query(a):
    return a.shape


@implements(np.ndim)
def _ndim_query(a):
    return a.ndim


@implements(np.size)
def _size_query(a, axis=None):
    return a.size if axis is None else a.shape[axis]


@implements(np.result_type)
def _result_type_query(*args):
    return np.result_type(*[_weak_kind(a)(0) if _weak_kind(a) else _dtype_of(a) for a in args])
