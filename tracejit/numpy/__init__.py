"""``tj.numpy``: the NumPy-named front end that turns NumPy calls into primitives.

Layer: front end, between user code and ``ops``. Tracers route ``np.exp(t)``, ``t + 1``,
``np.mean(t, axis=0)`` ... here (through ``__array_ufunc__``/``__array_function__`` and
their operators, ``tracer.py``). Each function works out NumPy 2's result dtype (NEP 50:
Python scalars are weak), inserts explicit ``cast`` and ``broadcast_to`` equations, and binds
primitives. Called with plain arrays (no tracer among the arguments) the functions simply call
NumPy, so eager code is NumPy itself.

Anything with a data-dependent output shape (``np.nonzero``, ``np.unique``, boolean masks
computed from traced values) and any NumPy function not listed here raises
``UnsupportedError``: tracejit never falls back silently.

The modules, each importing only those before it:

- ``promotion`` -- operands, NEP 50 dtypes, broadcasting, conversion (``_to``, ``astype``);
- ``views`` -- which tracers are views of which, and in-place updates;
- ``shapes`` -- ``asarray``, reshapes, transposes, concatenation, ``*_like``, refusals of
  data-dependent shapes;
- ``ufuncs`` -- elementwise primitives with promotion and broadcasting, ``where``, ``clip``;
- ``reductions`` -- sum, mean, var, std, max, min, argmax, argmin, any, all;
- ``contractions`` -- matmul, dot, vdot, inner, outer;
- ``indexing`` -- ``x[index]``, ``x[index] = v``, take, take_along_axis, pad;
- ``dispatch`` -- NumPy's functions and ufuncs mapped to the definitions above, and the
  entry points of the tracers' NumPy protocols and operators.
"""
from __future__ import annotations

# NumPy names re-exported unchanged: dtypes, constants and array creation from shapes.
from numpy import (
    arange, bool_, e, empty, eye, float16, float32, float64, full, identity, inf, int8, int16, int32, int64, linspace,
    nan, newaxis, ones, pi, uint8, zeros,
)

from ..errors import ShapeError, TracerError, UnsupportedError
from .contractions import dot, inner, matmul, outer, vdot
from .dispatch import _FUNCTIONS, _UFUNCS, _qualified_name, apply_function, apply_ufunc, operator
from .indexing import getitem, pad, setitem, take, take_along_axis
from .promotion import _ELEMENTWISE_PLANS, _Literal, _ndarray0d, _scalar0d, astype, literal
from .reductions import all, amax, amin, any, argmax, argmin, max, mean, min, std, sum, var
from .shapes import (
    argwhere, array, asarray, atleast_1d, atleast_2d, broadcast_arrays, broadcast_to, compress, concatenate, copy,
    expand_dims, extract, flatnonzero, full_like, hstack, moveaxis, nonzero, ones_like, ravel, reshape, squeeze,
    stack, swapaxes, transpose, unique, vstack, zeros_like,
)
from .ufuncs import (
    abs, absolute, add, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, ceil, clip, cos, cosh, divide, equal, exp,
    exp2, expm1, floor, floor_divide, greater, greater_equal, invert, isfinite, isinf, isnan, less, less_equal, log,
    log1p, log2, log10, logical_and, logical_not, logical_or, logical_xor, maximum, minimum, mod, multiply, negative,
    not_equal, positive, power, reciprocal, remainder, sign, sin, sinh, sqrt, square, subtract, tan, tanh,
    true_divide, trunc, where,
)
from .views import inplace_update

# The machinery other layers call (not NumPy names a user would look for).
_MACHINERY = {"annotations", "ShapeError", "TracerError", "UnsupportedError", "apply_function", "apply_ufunc",
              "getitem", "inplace_update", "literal", "operator", "setitem"}
__all__ = sorted(name for name, value in list(globals().items())
                 if not name.startswith("_") and name not in _MACHINERY
                 and (callable(value) or isinstance(value, (float, type(None)))))
