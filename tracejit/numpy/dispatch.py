"""NumPy's dispatch into the front end: ``__array_ufunc__``, ``__array_function__`` and operators.

Layer: front end, the last module of ``tracejit.numpy`` (it imports all the others). In: the
ufunc or NumPy function a tracer was handed to, with its arguments, or a Python operator's
name. Out: the call of the definition that implements it (``_UFUNCS``, ``_FUNCTIONS``), with
the keywords NumPy passes (``out=``, ``dtype=``, ufunc ``reduce``) handled or refused.
Anything not in the tables raises ``UnsupportedError``: tracejit never falls back silently.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import UnsupportedError, where as _where_msg
from .contractions import dot, inner, matmul, outer, vdot
from .indexing import pad, take, take_along_axis
from .promotion import _dtype_of, _is_tracer, _ndarray0d, _weak_kind, astype
from .reductions import all, amax, amin, any, argmax, argmin, max, mean, min, std, sum, var
from .shapes import (
    argwhere, array, asarray, atleast_1d, atleast_2d, broadcast_arrays, broadcast_to, compress, concatenate, copy,
    expand_dims, extract, flatnonzero, full_like, hstack, moveaxis, nonzero, ones_like, ravel, reshape, squeeze,
    stack, swapaxes, transpose, unique, vstack, zeros_like,
)
from .ufuncs import (
    _OPERATORS, _elementwise, _power, absolute, add, bitwise_and, bitwise_or, bitwise_xor, ceil, clip, cos, cosh,
    equal, exp, exp2, expm1, floor, floor_divide, greater, greater_equal, invert, isfinite, isinf, isnan, less,
    less_equal, log, log1p, log2, log10, logical_and, logical_not, logical_or, logical_xor, maximum, minimum,
    multiply, negative, not_equal, positive, power, reciprocal, remainder, sign, sin, sinh, sqrt, square, subtract,
    tan, tanh, true_divide, trunc, where,
)
from .views import inplace_update


def operator(name, *args):
    """The Python operator ``name`` (``"add"`` for ``+`` ...) applied to traced values: as the
    NumPy function, except that on Python scalars alone the result stays weak."""
    if name == "power":
        return _power(*args, python_op=True)
    entry = _OPERATORS.get(name)
    if entry is None:
        return globals()[name](*args)
    return _elementwise(*entry, *args, python_op=True)


# ----------------------------------------------------------------------------- NumPy dispatch

_UFUNCS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: true_divide,
    np.floor_divide: floor_divide, np.remainder: remainder, np.power: power, np.maximum: maximum,
    np.minimum: minimum, np.negative: negative, np.positive: positive, np.absolute: absolute,
    np.sign: sign, np.floor: floor, np.ceil: ceil, np.trunc: trunc, np.exp: exp, np.exp2: exp2, np.log: log,
    np.log2: log2, np.log10: log10, np.log1p: log1p, np.expm1: expm1, np.sqrt: sqrt, np.square: square,
    np.reciprocal: reciprocal, np.tanh: tanh, np.sinh: sinh, np.cosh: cosh, np.sin: sin, np.cos: cos,
    np.tan: tan, np.equal: equal, np.not_equal: not_equal, np.less: less, np.less_equal: less_equal,
    np.greater: greater, np.greater_equal: greater_equal, np.logical_and: logical_and,
    np.logical_or: logical_or, np.logical_not: logical_not, np.logical_xor: logical_xor,
    np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite, np.invert: invert,
    np.bitwise_and: bitwise_and, np.bitwise_or: bitwise_or, np.bitwise_xor: bitwise_xor,
    np.matmul: matmul,
}
_UFUNC_REDUCE = {np.add: sum, np.maximum: max, np.minimum: min}


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
        if ufunc is np.add:
            return sum(a, axis=axis, dtype=dtype, keepdims=keepdims)
        return _UFUNC_REDUCE[ufunc](a if dtype is None else astype(a, dtype), axis=axis, keepdims=keepdims)
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


_FUNCTIONS = {}


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


def _register_functions():
    names = [
        "sum", "mean", "var", "std", "max", "amax", "min", "amin", "argmax", "argmin", "any", "all",
        "reshape", "ravel", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "atleast_1d",
        "atleast_2d", "broadcast_to", "broadcast_arrays", "concatenate", "stack", "hstack", "vstack", "where",
        "clip", "dot", "vdot", "inner", "outer", "take", "take_along_axis", "zeros_like", "ones_like", "full_like",
        "pad",
        "nonzero", "unique", "argwhere", "flatnonzero", "compress", "extract", "asarray", "array",
    ]
    for name in names:
        if hasattr(np, name):
            _FUNCTIONS[getattr(np, name)] = globals()[name]
    _FUNCTIONS[np.copy] = copy
    for name in ("copy", "broadcast_to"):
        _FUNCTIONS[getattr(np, name)] = _returns_array(globals()[name])
    for name in ("reshape", "squeeze", "transpose"):  # these call the method: scalars stay scalars
        _FUNCTIONS[getattr(np, name)] = _returns_array(globals()[name], like_input=True)
    _FUNCTIONS[np.shape] = lambda a: a.shape
    _FUNCTIONS[np.ndim] = lambda a: a.ndim
    _FUNCTIONS[np.size] = lambda a, axis=None: a.size if axis is None else a.shape[axis]
    _FUNCTIONS[np.result_type] = lambda *args: np.result_type(
        *[_weak_kind(a)(0) if _weak_kind(a) else _dtype_of(a) for a in args])


_register_functions()
