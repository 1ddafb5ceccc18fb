"""Operands and NumPy 2's dtype rules: the ground floor of the NumPy-named front end.

Layer: front end (first module of ``tracejit.numpy``; imports only the primitives below it).
In: the operands of a NumPy call -- tracers, arrays, NumPy scalars, Python scalars. Out: what
every other module of the front end asks of them: whether any is traced, its dtype and whether
it is weak (NEP 50: Python scalars are), the result dtypes a ufunc resolves to (cached per
combination in ``_ELEMENTWISE_PLANS``), the broadcast shape, and operands converted to a dtype
and shape with explicit ``cast``/``broadcast_to`` equations (``_to``), ``astype``, and the
marks that tell a 0-d array from a NumPy scalar (``_ndarray0d``, ``_scalar0d``).
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from .. import ops as P
from ..errors import ShapeError, UnsupportedError, argument_name, where as _where_msg
from ..primitives import Tracer, _innermost_recording_trace, top_trace


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
    from ..core import Aval
    t.aval = Aval(t.aval.shape, t.aval.dtype, True)
    return t


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


def _strong(x):
    """An operand of a function that converts its arguments with ``np.asarray`` (dot, inner,
    outer, vdot): there a Python number is a strongly typed array, not a weak scalar."""
    if _is_tracer(x):
        return P.cast(x, dtype=x.dtype) if x.weak else x
    if type(x) in _PY_SCALARS:
        return literal(np.asarray(x))
    return x
