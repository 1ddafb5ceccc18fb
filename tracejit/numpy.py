"""``tj.numpy``: the NumPy-named front end that turns NumPy calls into primitives.

Layer: front end, between user code and ``ops``. Tracers route ``np.exp(t)``, ``t + 1``,
``np.mean(t, axis=0)`` ... here (through ``__array_ufunc__``/``__array_function__`` and
their operators). Each function works out NumPy 2's result dtype (NEP 50: Python scalars
are weak), inserts explicit ``cast`` and ``broadcast_to`` equations, and binds primitives.
Called with plain arrays (no tracer among the arguments) the functions simply call NumPy,
so eager code is NumPy itself.

Anything with a data-dependent output shape (``np.nonzero``, ``np.unique``, boolean masks
computed from traced values) and any NumPy function not listed here raises
``UnsupportedError``: tracejit never falls back silently.
"""
from __future__ import annotations

import builtins
import functools
import math
import numbers
import operator
import warnings

import numpy as np

from . import ops as P
from .errors import ShapeError, TracerError, UnsupportedError, where as _where_msg
from .primitives import Tracer, _innermost_recording_trace, bind, recording, top_trace
from .primitives import _state as _trace_state

__all__ = []  # filled in at the bottom with every NumPy-named function defined here


_PY_SCALARS = (bool, int, float, complex)


def _is_tracer(x) -> bool:
    return isinstance(x, Tracer)


def _any_tracer(args) -> bool:
    return builtins.any(isinstance(a, Tracer) for a in args)


class _Literal(np.ndarray):
    """Marks arrays the front end made itself (index tables, scalars in a known dtype), which
    a graph inlines as constants; all other arrays are captured by reference."""


def literal(value, dtype=None) -> np.ndarray:
    """A NumPy value that traced code should inline as a constant."""
    return np.asarray(value, dtype=dtype).view(_Literal)


def _dtype_of(x):
    return x.dtype if isinstance(x, (Tracer, np.ndarray, np.generic)) else np.asarray(x).dtype


def _weak_kind(x):
    """The Python type NumPy 2 treats as a weak operand, or None for a strongly typed one."""
    if isinstance(x, Tracer):
        return _PY_TYPE_OF_KIND[x.dtype.kind] if x.weak else None
    if type(x) in _PY_SCALARS:  # exact types: np.float64 subclasses float but is strongly typed
        return type(x)
    return None


_PY_TYPE_OF_KIND = {"b": bool, "i": int, "u": int, "f": float, "c": complex}


def _is_weak(x) -> bool:
    return _weak_kind(x) is not None


def _check_operand(x, fname):
    if isinstance(x, (Tracer, np.ndarray, np.generic) + _PY_SCALARS):
        if isinstance(x, np.ndarray) and x.dtype == object:
            raise TypeError(f"{fname}: object arrays are not supported by tracejit{_where_msg()}")
        return x
    if isinstance(x, (list, tuple)):
        x = asarray(x)
        return x if _is_tracer(x) else literal(x)  # a fresh array: nobody else can change it
    raise TypeError(f"{fname}: unsupported operand of type {type(x).__name__}{_where_msg()}")


def _shape(x):
    return x.shape if isinstance(x, (Tracer, np.ndarray, np.generic)) else ()


def _broadcast_shapes(fname, *shapes, operands=()):
    first = shapes[0]
    if first.__class__ is tuple and shapes.count(first) == len(shapes):
        return first
    try:
        return _broadcast_dims(shapes)
    except ValueError:
        shapes_text = " ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"{fname}: operands could not be broadcast together with shapes "
                         f"{shapes_text}{_argument_names(operands)}{_where_msg()}") from None


def _broadcast_dims(shapes) -> tuple:
    """``np.broadcast_shapes(*shapes)`` for shapes that are tuples of ints, in plain Python
    (NumPy's builds arrays to find out): each axis takes the one size other than 1, if any."""
    if len(shapes) == 2:
        a, b = shapes
        if len(a) < len(b):
            a, b = b, a
        if builtins.all(x == y or y == 1 for x, y in zip(a[len(a) - len(b):], b)) and \
                builtins.all(x >= 0 for x in a):
            return a  # b broadcasts into a (x - x.max(axis, keepdims=True), a row of biases ...)
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        size = 1
        for s in shapes:
            if len(s) >= -axis:
                d = s[axis]
                if d != 1:
                    if (size != 1 and size != d) or d < 0:
                        raise ValueError("shape mismatch")
                    size = d
        out.append(size)
    return tuple(out)


def _argument_names(operands) -> str:
    """`` (arguments x and params['b'])`` for operands that are the traced function's arguments."""
    from .tracer import argument_name
    names = [argument_name(a) for a in operands if _is_tracer(a)]
    names = [n for n in names if n]
    if not names:
        return ""
    return f" (argument{'s' if len(names) > 1 else ''} {' and '.join(names)})"


def _to(x, dtype, shape, ref=()):
    """``x`` as dtype ``dtype`` and shape ``shape``. Constants become literals; one that must be
    broadcast is first lifted into the trace of the tracers in ``ref``, so the broadcast is an
    equation and not a large constant. A NumPy array the user made (a closure, a global, or
    computed at trace time) is captured by reference instead, so in-place changes to it are
    seen by later calls, as in eager mode."""
    if isinstance(x, np.ndarray) and not isinstance(x, _Literal):
        trace = top_trace(ref) or _innermost_recording_trace()
        if trace is not None:
            x = trace.full_raise(x)
    if not _is_tracer(x):
        value = np.asarray(x, dtype=dtype) if isinstance(x, _PY_SCALARS) else np.asarray(x).astype(dtype, copy=False)
        if value.shape == tuple(shape):
            return literal(value)
        trace = top_trace(ref)
        if trace is None:
            return literal(np.broadcast_to(value, shape))
        x = trace.full_raise(literal(value))
    elif x.dtype != dtype:
        x = P.cast(x, dtype=np.dtype(dtype))
    if tuple(x.shape) != tuple(shape):
        x = P.broadcast_to(x, shape=tuple(shape))
    return x


@functools.lru_cache(maxsize=None)
def _resolve(ufunc, signature):
    try:
        return ufunc.resolve_dtypes(signature)
    except TypeError as e:
        raise TypeError(f"np.{ufunc.__name__} does not support operands of types "
                        f"{tuple(getattr(s, '__name__', str(s)) for s in signature if s is not None)}: {e}") from None


def _ufunc_dtypes(ufunc, args):
    # A Python bool promotes like np.bool_ (the lowest kind); resolve_dtypes takes only int, float
    # and complex as weak Python types.
    signature = tuple(_signature_entry(a) for a in args) + (None,) * ufunc.nout
    return _resolve(ufunc, signature)


def _signature_entry(x):
    kind = _weak_kind(x)
    return np.dtype(np.bool_) if kind is bool else kind or _dtype_of(x)


_COMPARISONS = frozenset([np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal])
_WIDE_INT = np.dtype(np.int64)


def _python_int_beyond(args, dtype) -> bool:
    """Whether a comparison of an integer array of ``dtype`` with a Python int must be made in
    int64: NumPy 2 compares the int's exact value (``int8_array < 300`` is all True), so a
    traced int, whose value may not fit ``dtype``, or a literal that does not, cannot be cast
    to ``dtype`` first. (uint64 against a negative int stays with the plain rule.)"""
    if dtype.kind not in "iu" or dtype.itemsize == 8:
        return False
    for a in args:
        if _is_tracer(a) and _weak_kind(a) is int:
            return True
        if type(a) is int and not np.iinfo(dtype).min <= a <= np.iinfo(dtype).max:
            return True
    return False


def _note_int_range(x, dtype):
    """NumPy 2 raises OverflowError when a Python int meets an integer dtype in a ufunc that
    cannot hold it (``int8_array + 300``); a traced int's value is known only when the program
    is called, so the recording trace notes the requirement and each call checks it."""
    ranges = getattr(x._trace, "int_ranges", None)
    if ranges is not None:
        ranges.append((x.atom, dtype))


def _elementwise(ufunc, prim, *args, python_op=False):
    """Apply ``prim`` with NumPy's promotion (as ``ufunc`` would) and explicit broadcasting.

    ``python_op``: this is a Python operator (``s * 2``), whose result on Python scalars is a
    Python scalar again, so weak; a NumPy function (``np.exp(s)``) returns a NumPy value."""
    # The operands' kinds (the promotion plan's key, as _operand_key) and the innermost trace.
    # The operands' kinds (the promotion plan's key, as _operand_key), their shapes and the
    # innermost trace, in one pass.
    key = [ufunc]
    shapes = []
    trace = None
    for a in args:
        cls = a.__class__
        if cls in _PY_SCALAR_SET:
            key.append(cls)
            shapes.append(())
            continue
        if isinstance(a, Tracer):
            t = a._trace
            if trace is None or t.level > trace.level:
                trace = t
            key.append((a.dtype, "weak") if a.weak else a.dtype)
        elif isinstance(a, (np.ndarray, np.generic)) and a.dtype != object:
            key.append(a.dtype)
        else:  # lists, object arrays, unsupported types: checked and converted first
            checked = [_check_operand(a, f"np.{ufunc.__name__}") for a in args]
            return _elementwise(ufunc, prim, *checked, python_op=python_op)
        shapes.append(a.shape)
    if trace is None:  # no tracer among the operands: this is NumPy
        return ufunc(*args)
    key = tuple(key)
    plan = _ELEMENTWISE_PLANS.get(key)
    if plan is None:
        plan = _elementwise_plan(ufunc, args, key)
    dtypes, weak_int_tracers, all_weak = plan
    if ufunc in _COMPARISONS and _python_int_beyond(args, dtypes[0]):
        dtypes = (_WIDE_INT, _WIDE_INT, dtypes[-1])
    shape = shapes[0]
    for other in shapes:
        if other != shape:
            shape = _broadcast_shapes(f"np.{ufunc.__name__}", *shapes, operands=args)
            break
    for position in weak_int_tracers:
        _note_int_range(args[position], dtypes[position])
    out = None
    if trace.broadcasts_elementwise and not _trace_state.recording:
        # This trace applies the primitive with NumPy's own broadcasting (eager autodiff):
        # operands only need the dtype, no broadcast_to values or equations; on operands that
        # need no gradient it records nothing.
        out = trace.elementwise(prim, [a if isinstance(a, Tracer) and a.dtype == dt else _in_dtype(a, dt)
                                       for a, dt in zip(args, dtypes)], shape)
    if out is None:
        out = bind(prim, *[_to(a, dt, shape, args) for a, dt in zip(args, dtypes)])
    if out.dtype != dtypes[-1]:  # e.g. a loop computed in float64 whose NumPy result is declared otherwise
        out = P.cast(out, dtype=dtypes[-1])
    if python_op and all_weak:
        if not out.weak:
            out = _as_weak(out)
    elif out.weak:
        out = P.cast(out, dtype=out.dtype)
    return out


_PY_SCALAR_SET = frozenset(_PY_SCALARS)
# (ufunc, operand kinds) -> (operand and result dtypes, positions of traced Python ints whose
# range the program must check): promotion is resolved once per combination of dtypes.
_ELEMENTWISE_PLANS: dict = {}


def _operand_key(ufunc, args):
    """``(ufunc, kind of each operand)``: a dtype, ``(dtype, "weak")`` for a weak tracer, or the
    Python type of a scalar. ``False`` when no operand is a tracer, ``None`` when an operand
    needs ``_check_operand`` (a list, an object array, another type)."""
    key = [ufunc]
    traced = False
    for a in args:
        cls = a.__class__
        if cls in _PY_SCALAR_SET:
            key.append(cls)
        elif isinstance(a, Tracer):
            traced = True
            key.append((a.dtype, "weak") if a.weak else a.dtype)
        elif isinstance(a, (np.ndarray, np.generic)) and a.dtype != object:
            key.append(a.dtype)
        else:
            return None
    return tuple(key) if traced else False


def _elementwise_plan(ufunc, args, key):
    dtypes = _ufunc_dtypes(ufunc, args)
    weak_int_tracers = tuple(i for i, (a, dt) in enumerate(zip(args, dtypes))
                             if dt.kind in "iu" and dt != _WIDE_INT and _is_tracer(a) and _weak_kind(a) is int)
    all_weak = builtins.all(_is_weak(a) for a in args)
    plan = (dtypes, weak_int_tracers, all_weak)
    if len(_ELEMENTWISE_PLANS) > 4096:  # dtype combinations are few; this only bounds a pathological run
        _ELEMENTWISE_PLANS.clear()
    _ELEMENTWISE_PLANS[key] = plan
    return plan


def _in_dtype(x, dtype):
    """``x`` as ``dtype``, keeping its shape: ``_to`` for a trace that broadcasts by itself."""
    if isinstance(x, Tracer):
        return x if x.dtype == dtype else P.cast(x, dtype=np.dtype(dtype))
    if x.__class__ in _PY_SCALAR_SET:
        return np.asarray(x, dtype=dtype)
    return np.asarray(x).astype(dtype, copy=False)


def operator(name, *args):
    """The Python operator ``name`` (``"add"`` for ``+`` ...) applied to traced values: as the
    NumPy function, except that on Python scalars alone the result stays weak."""
    if name == "power":
        return _power(*args, python_op=True)
    entry = _OPERATORS.get(name)
    if entry is None:
        return globals()[name](*args)
    return _elementwise(*entry, *args, python_op=True)


def _ndarray0d(out, source=None):
    """Mark a 0-d traced result as one NumPy returns as a 0-d *array* (``np.where``, a reshape
    of an array ...) rather than a scalar. ``source``: the operand, which is never re-marked."""
    if _is_tracer(out) and out.ndim == 0 and not getattr(out, "ndarray0d", False):
        if out is source:
            out = P.reshape(out, shape=())
        out.ndarray0d = True
    return out


def _scalar0d(out):
    """A 0-d traced result as a NumPy scalar (as ufuncs and reductions return), never an
    operand's 0-d array itself."""
    if _is_tracer(out) and out.ndim == 0 and getattr(out, "ndarray0d", False):
        out = P.reshape(out, shape=())
    return out


def _as_weak(t):
    # A result computed only from weak operands stays weak (NEP 50), e.g. lr * 0.5.
    from .core import Aval
    t.aval = Aval(t.aval.shape, t.aval.dtype, True)
    return t


# ----------------------------------------------------------------------------- ufuncs

def _ufunc_fn(ufunc, prim):
    def fn(*args):
        return _elementwise(ufunc, prim, *args)
    fn.__name__ = ufunc.__name__
    fn.__doc__ = f"``numpy.{ufunc.__name__}`` on arrays or traced values."
    return fn


add = _ufunc_fn(np.add, P.add)
subtract = _ufunc_fn(np.subtract, P.sub)
multiply = _ufunc_fn(np.multiply, P.mul)
true_divide = divide = _ufunc_fn(np.true_divide, P.div)
floor_divide = _ufunc_fn(np.floor_divide, P.floordiv)
mod = remainder = _ufunc_fn(np.remainder, P.mod)
def power(x1, x2):
    """``numpy.power`` on arrays or traced values."""
    return _power(x1, x2, python_op=False)


def _power(x, y, python_op):
    # NumPy computes a constant exponent of 0.5 as a square root (so (-inf) ** 0.5 is nan and
    # (-0.0) ** 0.5 is -0.0, where C's pow says inf and 0.0): do the same in every mode.
    if _is_tracer(x) and isinstance(y, (float, np.floating)) and y == 0.5:
        dtype = _ufunc_dtypes(np.power, [x, y])[-1]
        if dtype.kind == "f":
            return _elementwise(np.sqrt, P.sqrt, x if x.dtype == dtype else astype(x, dtype), python_op=python_op)
    return _elementwise(np.power, P.pow, x, y, python_op=python_op)


maximum = _ufunc_fn(np.maximum, P.maximum)
minimum = _ufunc_fn(np.minimum, P.minimum)
negative = _ufunc_fn(np.negative, P.neg)
absolute = abs = _ufunc_fn(np.absolute, P.abs)
sign = _ufunc_fn(np.sign, P.sign)
floor = _ufunc_fn(np.floor, P.floor)
exp = _ufunc_fn(np.exp, P.exp)
log = _ufunc_fn(np.log, P.log)
log1p = _ufunc_fn(np.log1p, P.log1p)
expm1 = _ufunc_fn(np.expm1, P.expm1)
exp2 = _ufunc_fn(np.exp2, P.exp2)
log2 = _ufunc_fn(np.log2, P.log2)
log10 = _ufunc_fn(np.log10, P.log10)
sinh = _ufunc_fn(np.sinh, P.sinh)
cosh = _ufunc_fn(np.cosh, P.cosh)
sqrt = _ufunc_fn(np.sqrt, P.sqrt)
tanh = _ufunc_fn(np.tanh, P.tanh)
sin = _ufunc_fn(np.sin, P.sin)
cos = _ufunc_fn(np.cos, P.cos)
equal = _ufunc_fn(np.equal, P.eq)
not_equal = _ufunc_fn(np.not_equal, P.ne)
less = _ufunc_fn(np.less, P.lt)
less_equal = _ufunc_fn(np.less_equal, P.le)
greater = _ufunc_fn(np.greater, P.gt)
greater_equal = _ufunc_fn(np.greater_equal, P.ge)
logical_and = _ufunc_fn(np.logical_and, P.logical_and)
logical_or = _ufunc_fn(np.logical_or, P.logical_or)
logical_not = _ufunc_fn(np.logical_not, P.logical_not)


_OPERATORS = {
    "add": (np.add, P.add), "subtract": (np.subtract, P.sub), "multiply": (np.multiply, P.mul),
    "true_divide": (np.true_divide, P.div), "floor_divide": (np.floor_divide, P.floordiv),
    "mod": (np.remainder, P.mod), "negative": (np.negative, P.neg),
    "absolute": (np.absolute, P.abs),
}


def _composite(ufunc, exact=True):
    """Decorator: a ufunc written with other front-end functions; plain arrays go to NumPy.
    ``exact``: the composition computes what the ufunc computes, bit for bit, so eager
    autodiff may call the ufunc on values that need no gradient (tan = sin / cos may not)."""
    def wrap(body):
        @functools.wraps(body)
        def fn(*args):
            key = _operand_key(ufunc, args)
            if key is None:
                args = [_check_operand(a, f"np.{ufunc.__name__}") for a in args]
                key = _operand_key(ufunc, args)
            if key is False:
                return ufunc(*args)
            trace = top_trace(args)
            if exact and trace.broadcasts_elementwise:  # see _elementwise
                out = trace.constant_result(ufunc, args)
                if out is not None:
                    return out
            dtypes = (_ELEMENTWISE_PLANS.get(key) or _elementwise_plan(ufunc, args, key))[0]
            out = body(*[astype(a, dt) if _is_tracer(a) else _to(a, dt, _shape(a)) for a, dt in zip(args, dtypes)])
            return _scalar0d(astype(out, dtypes[-1]))
        fn.__doc__ = f"``numpy.{ufunc.__name__}`` on arrays or traced values."
        return fn
    return wrap


@_composite(np.positive)
def positive(x):
    return x


@_composite(np.square)
def square(x):
    return multiply(x, x)


@_composite(np.reciprocal, exact=False)  # integer reciprocals differ
def reciprocal(x):
    return true_divide(np.ones((), x.dtype).view(_Literal), x)


@_composite(np.ceil)
def ceil(x):
    return negative(floor(negative(x)))


@_composite(np.trunc)
def trunc(x):
    return where(less(x, 0), ceil(x), floor(x))


@_composite(np.tan, exact=False)
def tan(x):
    return true_divide(sin(x), cos(x))


@_composite(np.logical_xor)
def logical_xor(x, y):
    return not_equal(astype(x, bool), astype(y, bool))


@_composite(np.isnan)
def isnan(x):
    return not_equal(x, x)


@_composite(np.isfinite)
def isfinite(x):
    if x.dtype.kind in "biu":
        return equal(x, x)
    return less(absolute(x), np.inf)  # False for NaN and both infinities, without inf - inf warnings


@_composite(np.isinf)
def isinf(x):
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


def _bool_only(name, logical):
    def fn(x, y=None):
        args = (x,) if y is None else (x, y)
        if not _any_tracer(args):
            return getattr(np, name)(*args)
        if builtins.any(_dtype_of(a) != np.bool_ for a in args):
            raise UnsupportedError(f"np.{name} (operator {'~&|^'[['invert','bitwise_and','bitwise_or','bitwise_xor'].index(name)]}) "
                                   f"is only supported on booleans by tracejit, got {[str(_dtype_of(a)) for a in args]}{_where_msg()}")
        return logical(*args)
    fn.__name__ = name
    fn.__doc__ = f"``numpy.{name}`` on boolean arrays or traced values."
    return fn


invert = bitwise_not = _bool_only("invert", logical_not)
bitwise_and = _bool_only("bitwise_and", logical_and)
bitwise_or = _bool_only("bitwise_or", logical_or)
bitwise_xor = _bool_only("bitwise_xor", logical_xor)


def where(condition, x=None, y=None):
    """``numpy.where(condition, x, y)``; the one-argument form is ``nonzero`` and is refused."""
    if x is None and y is None:
        return nonzero(condition)
    if not _any_tracer((condition, x, y)):
        return np.where(condition, x, y)
    condition, x, y = (_check_operand(a, "np.where") for a in (condition, x, y))
    trace = top_trace((condition, x, y))
    if trace.broadcasts_elementwise:  # see _elementwise
        out = trace.constant_result(np.where, (condition, x, y))
        if out is not None:
            return _ndarray0d(out)
    if _weak_kind(x) and _weak_kind(y):
        dtype = np.result_type(_weak_kind(x)(0), _weak_kind(y)(0))
    else:
        dtype = np.result_type(*[_weak_kind(a)(0) if _weak_kind(a) else _dtype_of(a) for a in (x, y)])
    shape = _broadcast_shapes("np.where", _shape(condition), _shape(x), _shape(y), operands=(condition, x, y))
    ref = (condition, x, y)
    out = None
    if trace.broadcasts_elementwise and not recording():  # see _elementwise
        out = trace.elementwise(P.where, [_in_dtype(condition, _BOOL), _in_dtype(x, dtype), _in_dtype(y, dtype)], shape)
    if out is None:
        out = P.where(_to(condition, np.bool_, shape, ref), _to(x, dtype, shape, ref), _to(y, dtype, shape, ref))
    return _ndarray0d(out)  # NumPy's where returns an array, also a 0-d one


_BOOL = np.dtype(np.bool_)


def clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """``numpy.clip`` as ``minimum(maximum(a, a_min), a_max)``."""
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if kwargs:
        raise UnsupportedError(f"np.clip(..., {', '.join(k + '=' for k in sorted(kwargs))}) is not supported in "
                               f"traced code{_where_msg()}")
    if not _any_tracer((a, a_min, a_max, out)):
        return np.clip(a, a_min, a_max, out=out)
    result = a
    if a_min is not None:
        result = maximum(result, a_min)
    if a_max is not None:
        result = minimum(result, a_max)
    if result is a:
        result = copy(a) if _is_tracer(a) else a
    return result if out is None else inplace_update(out, result)


def astype(x, dtype):
    """``x.astype(dtype)``: a ``cast`` equation when the dtype changes."""
    dtype = np.dtype(dtype)
    if not _is_tracer(x):
        return np.asarray(x).astype(dtype)
    if dtype == object or dtype.kind in "SUV":
        raise UnsupportedError(f"astype({dtype}): only numeric and bool dtypes can be traced{_where_msg()}")
    if x.dtype == dtype:
        return _strong(x)
    return P.cast(x, dtype=dtype)


# ----------------------------------------------------------------------------- creation

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


def _strong(x):
    """``x`` as a strongly typed value: a weak tracer (a Python scalar's) cast to its own dtype."""
    return P.cast(x, dtype=x.dtype) if _is_tracer(x) and x.weak else x


def _contains_tracer(seq) -> bool:
    return builtins.any(_is_tracer(x) or (isinstance(x, (list, tuple)) and _contains_tracer(x)) for x in seq)


def zeros_like(a, dtype=None, shape=None):
    """``numpy.zeros_like``: for a tracer, a broadcast zero constant (no data dependence)."""
    return full_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, shape=None):
    """``numpy.ones_like``: for a tracer, a broadcast one constant."""
    return full_like(a, 1, dtype, shape)


def full_like(a, fill_value, dtype=None, shape=None):
    """``numpy.full_like``; the fill value may be traced."""
    if not _any_tracer((a, fill_value)):
        return np.full_like(a, fill_value, dtype=dtype, shape=shape)
    dtype = np.dtype(dtype) if dtype is not None else _dtype_of(a)
    shape = tuple(shape) if shape is not None else _shape(a)
    return _to(fill_value, dtype, shape, (a, fill_value))


def copy(a, order="K", subok=False):
    """``numpy.copy``: for a tracer, a new value (in-place updates of the copy leave ``a`` alone)."""
    if not _is_tracer(a):
        return np.copy(a, order=order, subok=subok)
    return P.reshape(a, shape=a.shape)


# ----------------------------------------------------------------------------- shapes

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


def _mark_view(out, base, index=None):
    """Remember that ``out`` is a view of ``base``: a basic-indexing view (``index`` given)
    writes in-place updates through to ``base`` as NumPy does; other views refuse them."""
    if _is_tracer(out) and out is not base:
        out.view_of = base if index is None else _IndexView(base, index)
    return out


class _IndexView:
    """``view_of`` of ``base[index]``: an in-place update of the view becomes ``base[index] = new``.
    ``synced`` is the state of ``base`` the view's value agrees with."""

    __slots__ = ("base", "index", "synced")

    def __init__(self, base, index):
        self.base, self.index, self.synced = base, index, _state(base)


def _state(t):
    # What an in-place update changes in a tracer (graph tracers: atom; tape tracers: vid).
    return getattr(t, "atom", None), getattr(t, "vid", None)


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


def ravel(a, order="C"):
    """``numpy.ravel``."""
    return reshape(a, (-1,), order=order) if _is_tracer(a) else np.ravel(a, order=order)


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


def swapaxes(a, axis1, axis2):
    """``numpy.swapaxes``."""
    if not _is_tracer(a):
        return np.swapaxes(a, axis1, axis2)
    perm = list(range(a.ndim))
    i, j = _norm_axis(axis1, a.ndim), _norm_axis(axis2, a.ndim)
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(a, perm)


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


def expand_dims(a, axis):
    """``numpy.expand_dims``."""
    if not _is_tracer(a):
        return np.expand_dims(a, axis)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = a.ndim + len(axes)
    axes = {_norm_axis(x, ndim) for x in axes}
    it = iter(a.shape)
    return reshape(a, tuple(1 if i in axes else next(it) for i in range(ndim)))


def squeeze(a, axis=None):
    """``numpy.squeeze``."""
    if not _is_tracer(a):
        return np.squeeze(a, axis)
    axes = tuple(i for i, d in enumerate(a.shape) if d == 1) if axis is None else _norm_axes(axis, a.ndim)
    for i in axes:
        if a.shape[i] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


def atleast_1d(a):
    return reshape(a, (1,)) if _is_tracer(a) and a.ndim == 0 else (a if _is_tracer(a) else np.atleast_1d(a))


def atleast_2d(a):
    if not _is_tracer(a):
        return np.atleast_2d(a)
    return reshape(a, (1,) * (2 - a.ndim) + a.shape) if a.ndim < 2 else a


def broadcast_to(array, shape):
    """``numpy.broadcast_to``."""
    if not _is_tracer(array):
        return np.broadcast_to(array, shape)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if _broadcast_shapes("np.broadcast_to", array.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast shape {array.shape} to {shape}{_where_msg()}")
    return array if array.shape == shape else P.broadcast_to(array, shape=shape)


def broadcast_arrays(*args):
    """``numpy.broadcast_arrays``."""
    if not _any_tracer(args):
        return np.broadcast_arrays(*args)
    shape = _broadcast_shapes("np.broadcast_arrays", *[_shape(a) for a in args])
    return [broadcast_to(a, shape) if _is_tracer(a) else np.broadcast_to(a, shape) for a in args]


def concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    """``numpy.concatenate``; ``axis=None`` flattens first."""
    arrays = list(arrays)
    if not _any_tracer(arrays):
        return np.concatenate(arrays, axis=axis, dtype=dtype)
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
    parts = [_to(a, result_dtype, _shape(a)) for a in arrays]
    for p in parts:
        if len(p.shape) != ndim or builtins.any(d != e for i, (d, e) in enumerate(zip(p.shape, parts[0].shape)) if i != axis):
            raise ShapeError(f"np.concatenate: all input array dimensions except for the concatenation axis must "
                             f"match, got shapes {[tuple(_shape(a)) for a in arrays]}{_where_msg()}")
    parts = [p for p in parts if p.shape[axis] > 0] or parts[:1]
    if len(parts) == 1:
        return parts[0] if _is_tracer(parts[0]) else P.reshape(parts[0], shape=parts[0].shape)
    return P.concatenate(*parts, axis=axis)


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


def hstack(tup, dtype=None):
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if arrays[0].ndim == 1 else 1, dtype=dtype)


def vstack(tup, dtype=None):
    return concatenate([atleast_2d(a) for a in tup], axis=0, dtype=dtype)


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
    from .errors import user_frame
    info = user_frame()
    if info is None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    else:
        warnings.warn_explicit(message, RuntimeWarning, info[0], info[1])


def _keepdims(out, x_shape, axes, keepdims):
    if not keepdims:
        return out
    return _reshape_to(out, tuple([1 if i in axes else d for i, d in enumerate(x_shape)]))


def _check_no_out(fname, out, **unsupported):
    """Refuse ``out=`` and the other keywords given (not None) in ``unsupported``. Callers
    check ``out is None and ... is None`` first, so the common call costs no keyword dict."""
    if out is not None:
        raise UnsupportedError(f"np.{fname}(..., out=) is not supported in traced code{_where_msg()}")
    for k, v in unsupported.items():
        if v is not None and v is not np._NoValue:
            raise UnsupportedError(f"np.{fname}(..., {k}=) is not supported in traced code{_where_msg()}")


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


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None, correction=None):
    """``numpy.std``: ``sqrt(var)``."""
    if not _is_tracer(a):
        kwargs = {k: v for k, v in dict(where=where, mean=mean, correction=correction).items() if v is not None}
        return np.std(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, **kwargs)
    return sqrt(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=where,
                    mean=mean, correction=correction))


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
    return fn


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
    return fn


argmax = _arg_extremum("argmax", P.argmax, np.argmax)
argmin = _arg_extremum("argmin", P.argmin, np.argmin)


def any(a, axis=None, out=None, keepdims=False, *, where=None):
    """``numpy.any``."""
    if not _is_tracer(a):
        return np.any(a, axis=axis, out=out, keepdims=keepdims)
    return greater(sum(astype(a, bool), axis=axis, keepdims=keepdims, out=out, where=where), 0)


def all(a, axis=None, out=None, keepdims=False, *, where=None):
    """``numpy.all``."""
    if not _is_tracer(a):
        return np.all(a, axis=axis, out=out, keepdims=keepdims)
    return logical_not(any(logical_not(a), axis=axis, out=out, keepdims=keepdims, where=where))


# ----------------------------------------------------------------------------- linear algebra

def matmul(a, b, out=None):
    """``numpy.matmul`` / ``@``: 1-D operands are promoted as NumPy does; batch dims broadcast."""
    if not _any_tracer((a, b)):
        return np.matmul(a, b)
    if out is not None:
        _check_no_out("matmul", out)
    a, b = _check_operand(a, "np.matmul"), _check_operand(b, "np.matmul")
    if _is_weak(a) or _is_weak(b) or len(_shape(a)) == 0 or len(_shape(b)) == 0:
        raise ValueError(f"matmul: Input operand does not have enough dimensions (scalars are not allowed){_where_msg()}")
    key = _operand_key(np.matmul, (a, b))
    dtype = (_ELEMENTWISE_PLANS.get(key) or _elementwise_plan(np.matmul, (a, b), key))[0][-1]
    sa, sb = tuple(_shape(a)), tuple(_shape(b))
    a2 = sa if len(sa) > 1 else (1,) + sa
    b2 = sb if len(sb) > 1 else sb + (1,)
    if a2[-1] != b2[-2]:
        raise ShapeError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {b2[-2]} is "
                         f"different from {a2[-1]}): shapes {sa} @ {sb}{_argument_names((a, b))}{_where_msg()}")
    batch = _broadcast_shapes("np.matmul", a2[:-2], b2[:-2])
    # (a tracer of the right shape as it is; an array through np.reshape as before, a new view)
    if a2 == sa and not batch and _is_tracer(a) and a.dtype == dtype:
        a_full = a  # what _to would return
    else:
        a_full = _to(a if a2 == sa and _is_tracer(a) else _reshape_any(a, a2), dtype, batch + a2[-2:], (a, b))
    if b2 == sb and not batch and _is_tracer(b) and b.dtype == dtype:
        b_full = b
    else:
        b_full = _to(b if b2 == sb and _is_tracer(b) else _reshape_any(b, b2), dtype, batch + b2[-2:], (a, b))
    out = bind(P.matmul, a_full, b_full)
    out_shape = batch + (a2[-2],) * (len(sa) > 1) + (b2[-1],) * (len(sb) > 1)
    return _reshape_to(out, out_shape)


def _reshape_any(x, shape):
    return reshape(x, shape) if _is_tracer(x) else np.reshape(x, shape)


def _strong(x):
    """An operand of a function that converts its arguments with ``np.asarray`` (dot, inner,
    outer, vdot): there a Python number is a strongly typed array, not a weak scalar."""
    if _is_tracer(x):
        return P.cast(x, dtype=x.dtype) if x.weak else x
    if type(x) in _PY_SCALARS:
        return literal(np.asarray(x))
    return x


def dot(a, b, out=None):
    """``numpy.dot`` for 0-, 1- and 2-D operands (higher ranks: use ``matmul``)."""
    if not _any_tracer((a, b)):
        return np.dot(a, b)
    _check_no_out("dot", out)
    a, b = _strong(a), _strong(b)
    if len(_shape(a)) == 0 or len(_shape(b)) == 0:
        return multiply(a, b)
    if len(_shape(a)) > 2 or len(_shape(b)) > 2:
        raise UnsupportedError(f"np.dot on arrays of more than 2 dimensions is not supported; use np.matmul{_where_msg()}")
    return matmul(a, b)


def vdot(a, b):
    """``numpy.vdot`` for real arrays: the dot product of the flattened arrays."""
    if not _any_tracer((a, b)):
        return np.vdot(a, b)
    return dot(ravel(_strong(a)), ravel(_strong(b)))


def inner(a, b):
    """``numpy.inner``: sums over the *last* axis of both operands (for 2-D, ``a @ b.T``);
    the result has shape ``a.shape[:-1] + b.shape[:-1]``."""
    if not _any_tracer((a, b)):
        return np.inner(a, b)
    a, b = _strong(_check_operand(a, "np.inner")), _strong(_check_operand(b, "np.inner"))
    sa, sb = tuple(_shape(a)), tuple(_shape(b))
    if len(sa) == 0 or len(sb) == 0:
        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ShapeError(f"np.inner: shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
                         f"{sb[-1]} (dim {len(sb) - 1}){_argument_names((a, b))}{_where_msg()}")
    k = sa[-1]
    a2 = _reshape_any(a, (-1, k))
    b2 = _reshape_any(b, (-1, k))
    out = matmul(a2, transpose(b2) if _is_tracer(b2) else np.transpose(b2).view(_Literal))
    return reshape(out, sa[:-1] + sb[:-1])


def outer(a, b, out=None):
    """``numpy.outer``."""
    if not _any_tracer((a, b)):
        return np.outer(a, b)
    a, b = _strong(a), _strong(b)
    return multiply(reshape(ravel(a), (-1, 1)), reshape(ravel(b), (1, -1)))


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


def inplace_update(target, new_value):
    """Make ``target`` (a tracer) hold ``new_value``, as NumPy's in-place operators do.

    The trace turns a changed argument into a write-back into the caller's array.
    """
    if not _is_tracer(target):
        raise UnsupportedError(
            f"an in-place update of a NumPy array with a traced value cannot be recorded{_where_msg()}\n"
            "Return the new value instead, or pass the array as an argument of the traced function.")
    view = getattr(target, "view_of", None)
    if view is not None and not isinstance(view, _IndexView):
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
        setitem(view.base, view.index, new_value)
        view.synced = _state(view.base)
    target.become(new_value)
    return target


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
    return fn


nonzero = _data_dependent("nonzero")
unique = _data_dependent("unique")
argwhere = _data_dependent("argwhere")
flatnonzero = _data_dependent("flatnonzero")
compress = _data_dependent("compress")
extract = _data_dependent("extract")


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

# NumPy names re-exported unchanged: dtypes, constants and array creation from shapes.
from numpy import (  # noqa: E402
    arange, bool_, e, empty, eye, float16, float32, float64, full, identity, inf, int8, int16, int32, int64, linspace,
    nan, newaxis, ones, pi, uint8, zeros,
)

__all__ = sorted(name for name, value in list(globals().items())
                 if not name.startswith("_") and (callable(value) or isinstance(value, (float, type(None))))
                 and name not in {"annotations", "builtins", "functools", "numbers", "operator", "np", "P",
                                  "Tracer", "TracerError", "UnsupportedError", "ShapeError", "literal",
                                  "inplace_update", "apply_ufunc", "apply_function", "getitem", "setitem", "top_trace"})
