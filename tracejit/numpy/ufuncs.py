"""The ufuncs: elementwise primitives applied with NumPy's promotion and broadcasting.

Layer: front end, on ``promotion``, ``views`` and ``shapes``. In: a ufunc's operands.
Out: one elementwise primitive bound on operands of the dtype NumPy 2 resolves and of the
broadcast shape (``_elementwise``), or, for ufuncs without a primitive of their own
(``square``, ``tan``, ``isinf`` ...), a composition of those (``_composite``). Plain operands
go to the ufunc itself. Eager autodiff's trace broadcasts by itself
(``Trace.broadcasts_elementwise``): there operands are only cast, and operands that need no
gradient are handed to NumPy (``Trace.constant_result``). ``where`` and ``clip`` are here too.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from .. import ops as P
from ..errors import UnsupportedError, where as _where_msg
from ..primitives import Tracer, bind, recording, top_trace
from ..primitives import _state as _trace_state
from .promotion import (
    _COMPARISONS, _ELEMENTWISE_PLANS, _PY_SCALAR_SET, _WIDE_INT, _Literal, _any_tracer, _as_weak,
    _broadcast_shapes, _dtype_of, _elementwise_plan, _in_dtype, _is_tracer, _ndarray0d, _note_int_range,
    _operand_key, _python_int_beyond, _scalar0d, _shape, _to, _ufunc_dtypes, _weak_kind, astype, literal,
)
from .dispatch import _UFUNCS, implements, public_names
from .shapes import _check_operand, copy, nonzero
from .shapes import copy as copy_array  # nan_to_num's argument copy shadows the function
from .views import inplace_update


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
            if a.view_of is not None:  # (eager autodiff's fast path below does not go through bind)
                a.view_of.check_fresh()
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


# ----------------------------------------------------------------------------- ufuncs

def _ufunc_fn(ufunc, prim):
    def fn(*args):
        return _elementwise(ufunc, prim, *args)
    fn.__name__ = ufunc.__name__
    fn.__doc__ = f"``numpy.{ufunc.__name__}`` on arrays or traced values."
    return implements(ufunc)(fn)


add = _ufunc_fn(np.add, P.add)
subtract = _ufunc_fn(np.subtract, P.sub)
multiply = _ufunc_fn(np.multiply, P.mul)
true_divide = divide = _ufunc_fn(np.true_divide, P.div)
floor_divide = _ufunc_fn(np.floor_divide, P.floordiv)
mod = remainder = _ufunc_fn(np.remainder, P.mod)
@implements(np.power)
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
arcsin = _ufunc_fn(np.arcsin, P.asin)
arccos = _ufunc_fn(np.arccos, P.acos)
arctan = _ufunc_fn(np.arctan, P.atan)
arctan2 = _ufunc_fn(np.arctan2, P.atan2)
arcsinh = _ufunc_fn(np.arcsinh, P.asinh)
arccosh = _ufunc_fn(np.arccosh, P.acosh)
arctanh = _ufunc_fn(np.arctanh, P.atanh)
copysign = _ufunc_fn(np.copysign, P.copysign)
rint = _ufunc_fn(np.rint, P.rint)
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


def operator(name, *args):
    """The Python operator ``name`` (``"add"`` for ``+`` ...) applied to traced values: as the
    NumPy function, except that on Python scalars alone the result stays weak."""
    if name == "power":
        return _power(*args, python_op=True)
    entry = _OPERATORS.get(name)
    if entry is None:
        return _UFUNCS[getattr(np, name)](*args)  # matmul, comparisons, bitwise operators
    return _elementwise(*entry, *args, python_op=True)


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
        return implements(ufunc)(fn)
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



@_composite(np.fabs)
def fabs(x):
    return absolute(x)


def _times_constant(x, value):
    # NumPy's deg2rad, rad2deg ...: x times a double constant rounded to x's dtype
    return multiply(x, literal(value, x.dtype))


@_composite(np.deg2rad, exact=False)
def deg2rad(x):
    return _times_constant(x, np.pi / 180.0)


@_composite(np.radians, exact=False)
def radians(x):
    return _times_constant(x, np.pi / 180.0)


@_composite(np.rad2deg, exact=False)
def rad2deg(x):
    return _times_constant(x, 180.0 / np.pi)


@_composite(np.degrees, exact=False)
def degrees(x):
    return _times_constant(x, 180.0 / np.pi)


@_composite(np.hypot, exact=False)
def hypot(x, y):
    # scaled by the larger magnitude, so that squares of large values do not overflow
    ax, ay = absolute(x), absolute(y)
    big, small = maximum(ax, ay), minimum(ax, ay)
    ratio = true_divide(small, where(equal(big, 0), literal(1, big.dtype), big))
    scaled = multiply(big, sqrt(add(literal(1, big.dtype), multiply(ratio, ratio))))
    return where(logical_or(isinf(x), isinf(y)), literal(np.inf, big.dtype), scaled)


def _log_add(x, y, log1p_of_exp):
    # max(x, y) + log(1 + exp(-|x - y|)); x - y is NaN for equal infinities (their sum is the
    # answer) and for a NaN operand (the sum is NaN too)
    delta = subtract(x, y)
    smooth = add(maximum(x, y), log1p_of_exp(negative(absolute(delta))))
    return where(isnan(delta), add(x, y), smooth)


@_composite(np.logaddexp, exact=False)
def logaddexp(x, y):
    return _log_add(x, y, lambda t: log1p(exp(t)))


@_composite(np.logaddexp2, exact=False)
def logaddexp2(x, y):
    return _log_add(x, y, lambda t: _times_constant(log1p(exp2(t)), 1.0 / np.log(2.0)))


@_composite(np.fmax, exact=False)  # which zero fmax(-0.0, 0.0) gives is the C library's choice
def fmax(x, y):
    # maximum where neither is NaN (ties share the gradient, as there), else the other operand
    return where(isnan(y), x, where(isnan(x), y, maximum(x, y)))


@_composite(np.fmin, exact=False)
def fmin(x, y):
    return where(isnan(y), x, where(isnan(x), y, minimum(x, y)))


@_composite(np.heaviside)
def heaviside(x, h0):
    zero, one = literal(0, x.dtype), literal(1, x.dtype)
    return where(less(x, 0), zero, where(greater(x, 0), one, where(isnan(x), x, h0)))


@_composite(np.fmod)
def fmod(x, y):
    """C's remainder, with the sign of ``x`` (``np.mod``'s has the sign of ``y``)."""
    if x.dtype.kind == "f":
        # For operands of one sign NumPy's mod *is* C's fmod (it only corrects a remainder whose
        # sign differs from the divisor's), so this is NumPy's fmod bit for bit, signed zeros
        # included. copysign(v, 1) rather than absolute(v): its derivative at +-0 is +-1, so
        # d/dx = 1 everywhere, and d/dy = -trunc(x / y).
        one = literal(1, x.dtype)
        return copysign(remainder(copysign(x, one), copysign(y, one)), x)
    # integers: the floored remainder, moved by one divisor where the operands' signs differ
    # (no absolute value, which the most negative integer does not have)
    floored = remainder(x, y)
    differs = logical_and(not_equal(floored, 0), not_equal(less(x, 0), less(y, 0)))
    return where(differs, subtract(floored, y), floored)


def _power_of_ten(n):
    # 10.0 ** n as NumPy's round computes it: exact up to 1e8, then repeated products (from
    # 1e23 on, 10.0 ** n is sometimes the neighbouring float)
    if n < 9:
        return 10.0 ** n
    scale = 1e9
    for _ in builtins.range(n - 9):
        scale *= 10.0
    return scale


@implements(np.round, np.around)
def round(a, decimals=0, out=None):
    """``numpy.round``: halves to even, ``decimals`` places after the point (before it when
    negative), by NumPy's own algorithm: ``rint(a * 10**decimals) / 10**decimals``. Integers
    are unchanged for ``decimals >= 0``."""
    if not _any_tracer((a, decimals, out)):
        return np.round(a, decimals, out=out)
    if _is_tracer(decimals) or not isinstance(decimals, (int, np.integer)):
        got = "a traced value (make it a static argument)" if _is_tracer(decimals) else type(decimals).__name__
        raise UnsupportedError(f"np.round(..., decimals=): decimals must be an integer known while tracing, got "
                               f"{got}{_where_msg()}")
    a = _check_operand(a, "np.round")
    kind = _dtype_of(a).kind
    if kind in "iu" and decimals >= 0:
        result = copy(a)
    elif decimals == 0:
        result = rint(a)
    else:
        scale = _power_of_ten(builtins.abs(int(decimals)))
        if decimals > 0:
            result = true_divide(rint(multiply(a, scale)), scale)
        else:
            result = multiply(rint(true_divide(a, scale)), scale)
        if kind in "iu":
            result = astype(result, _dtype_of(a))
    return _scalar0d(result) if out is None else inplace_update(out, result)


around = round


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
    return implements(getattr(np, name))(fn)


invert = bitwise_not = _bool_only("invert", logical_not)
bitwise_and = _bool_only("bitwise_and", logical_and)
bitwise_or = _bool_only("bitwise_or", logical_or)
bitwise_xor = _bool_only("bitwise_xor", logical_xor)


@implements(np.where)
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


@implements(np.clip)
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


@implements(np.sinc)
def sinc(x):
    """``numpy.sinc``: ``sin(pi x) / (pi x)``, computed as NumPy does (1e-20 standing in for 0)."""
    if not _is_tracer(x):
        return np.sinc(x)
    if x.dtype.kind not in "fc":
        x = astype(x, np.float64)  # np.where(x == 0, 1e-20, x) of integers is float64
    y = multiply(np.pi, where(equal(x, 0), literal(1.0e-20, x.dtype), x))
    return _scalar0d(true_divide(sin(y), y))


@implements(np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """``numpy.nan_to_num``: NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf``
    (by default 0 and the dtype's largest and smallest finite values), in ``x``'s dtype;
    ``copy=False`` updates ``x`` in place, as NumPy does."""
    if not _is_tracer(x):
        return np.nan_to_num(x, copy=copy, nan=nan, posinf=posinf, neginf=neginf)
    if x.dtype.kind not in "fc":
        return copy_array(x) if copy else x
    if x.dtype.kind == "c":  # each part on its own, as NumPy does; finite values pass untouched
        re, im = (nan_to_num(bind(prim, x), nan=nan, posinf=posinf, neginf=neginf) for prim in (P.real, P.imag))
        parts = add(astype(re, x.dtype), multiply(astype(im, x.dtype), literal(1j, x.dtype)))
        out = where(isfinite(x), x, parts)
    else:
        info = np.finfo(x.dtype)
        out = x
        for replaced, fill in ((isnan(x), nan), (equal(x, np.inf), info.max if posinf is None else posinf),
                               (equal(x, -np.inf), info.min if neginf is None else neginf)):
            out = where(replaced, _to(fill, x.dtype, (), (x,)), out)
    return out if copy else inplace_update(x, out)


# ----------------------------------------------------------------------------- complex parts

conjugate = conj = _ufunc_fn(np.conjugate, P.conj)


def _complex_part(name, prim, np_fn):
    def fn(val):
        if not _is_tracer(val):
            return np_fn(val)
        return bind(prim, val)  # 0-d results: arrays or scalars, as the input (returns_array below)
    fn.__name__ = name
    fn.__doc__ = (f"``numpy.{name}``: the {name} part of complex values, in the matching real dtype (of real "
                  f"values: {'themselves' if name == 'real' else 'zeros'}).")
    return implements(np_fn, returns_array="like input")(fn)


real = _complex_part("real", P.real, np.real)
imag = _complex_part("imag", P.imag, np.imag)


@implements(np.angle)
def angle(z, deg=False):
    """``numpy.angle``: ``arctan2(imag(z), real(z))``, in degrees with ``deg=True`` (0 or pi
    for reals, as NumPy gives)."""
    if not _is_tracer(z):
        return np.angle(z, deg=deg)
    out = arctan2(imag(z), real(z))
    return multiply(out, 180 / np.pi) if deg else out


__all__ = public_names(globals())
