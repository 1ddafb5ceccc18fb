"""The NumPy face of a tracer: operators, ndarray methods and NumPy's dispatch protocols.

Layer: front end. Every method here forwards to the NumPy-named function in
``tracejit.numpy``, which composes primitives; nothing here builds IR itself. Anything that
needs a concrete value (``bool(t)``, ``float(t)``, ``t.item()``, ``np.asarray(t)``) raises
``ConcretizationError`` naming the user's line and the ways out.
"""
from __future__ import annotations

import numpy as np

from . import numpy as tnp
from .errors import ConcretizationError, UnsupportedError, argument_name, where
from .primitives import Tracer

__all__ = ["Tracer", "concretization_error"]


def _describe_argument(name, tracer) -> str:
    if not name:
        return ""
    if tracer.aval.weak:
        return f" (argument {name}: Python numbers passed as arguments are traced, not constants)"
    return f" (argument {name})"


def concretization_error(tracer, what: str, hints=()) -> ConcretizationError:
    name = argument_name(tracer)
    static = repr(name.partition("[")[0]) if name else "'name'"
    return ConcretizationError(
        f"{what} needs a concrete value, but this is a traced array {tracer.aval}"
        f"{_describe_argument(name, tracer)} "
        f"(its value is only known when the compiled function runs).{where()}\n"
        "Ways out:\n"
        + "".join(f"  - {h};\n" for h in hints) +
        "  - compute both branches and pick with np.where(condition, a, b);\n"
        f"  - mark the argument as static: @tj.trace(static_argnames=({static},)) (one compile per value);\n"
        "  - run this function eagerly: with tj.mode('eager'): ...")


def _binop(name, reverse=False):
    def method(self, other):
        op = tnp.operator
        return op(name, other, self) if reverse else op(name, self, other)
    method.__name__ = f"__{'r' if reverse else ''}{name}__"
    return method


def _inplace(name):
    def method(self, other):
        result = getattr(tnp, name)(self, other)
        if self.ndim == 0 and not getattr(self, "ndarray0d", False):
            return result  # a NumPy scalar or Python number is immutable: the name is rebound, in any dtype
        return tnp.inplace_update(self, result)
    method.__name__ = f"__i{name}__"
    return method


def _method(name):
    def method(self, *args, **kwargs):
        return getattr(tnp, name)(self, *args, **kwargs)
    method.__name__ = name
    method.__doc__ = f"Same as ``numpy.{name}(self, ...)``."
    return method


def _concrete(what):
    def method(self, *args, **kwargs):
        raise concretization_error(self, what)
    method.__name__ = what
    return method


class _TracerArrayMethods:
    """Mixin holding the ndarray surface; concrete tracers subclass ``Tracer`` and this."""

    __slots__ = ()

    # Arithmetic and comparison operators ------------------------------------------------
    __add__, __radd__ = _binop("add"), _binop("add", True)
    __sub__, __rsub__ = _binop("subtract"), _binop("subtract", True)
    __mul__, __rmul__ = _binop("multiply"), _binop("multiply", True)
    __truediv__, __rtruediv__ = _binop("true_divide"), _binop("true_divide", True)
    __floordiv__, __rfloordiv__ = _binop("floor_divide"), _binop("floor_divide", True)
    __mod__, __rmod__ = _binop("mod"), _binop("mod", True)
    __pow__, __rpow__ = _binop("power"), _binop("power", True)
    __matmul__, __rmatmul__ = _binop("matmul"), _binop("matmul", True)
    __and__, __rand__ = _binop("bitwise_and"), _binop("bitwise_and", True)
    __or__, __ror__ = _binop("bitwise_or"), _binop("bitwise_or", True)
    __xor__, __rxor__ = _binop("bitwise_xor"), _binop("bitwise_xor", True)
    __eq__, __ne__ = _binop("equal"), _binop("not_equal")
    __lt__, __le__ = _binop("less"), _binop("less_equal")
    __gt__, __ge__ = _binop("greater"), _binop("greater_equal")
    __iadd__, __isub__, __imul__ = _inplace("add"), _inplace("subtract"), _inplace("multiply")
    __itruediv__, __ifloordiv__ = _inplace("true_divide"), _inplace("floor_divide")
    __imod__, __ipow__ = _inplace("mod"), _inplace("power")
    __iand__, __ior__, __ixor__ = _inplace("bitwise_and"), _inplace("bitwise_or"), _inplace("bitwise_xor")
    __hash__ = None  # like ndarray: == is elementwise, so tracers are unhashable

    def __neg__(self):
        return tnp.operator("negative", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return tnp.operator("absolute", self)

    def __invert__(self):
        return tnp.invert(self)

    # Indexing -----------------------------------------------------------------------------
    def __getitem__(self, index):
        return tnp.getitem(self, index)

    def __setitem__(self, index, value):
        tnp.setitem(self, index, value)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object (a 0-d traced array)")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))

    # Values that would need the data -------------------------------------------------------
    __bool__ = _concrete("bool() of a traced array (an `if`, `while`, `and`/`or` on it?)")
    __float__ = _concrete("float() of a traced array")
    __int__ = _concrete("int() of a traced array")
    __index__ = _concrete("using a traced array as a Python index")
    __complex__ = _concrete("complex() of a traced array")
    item = _concrete(".item() of a traced array")
    tolist = _concrete(".tolist() of a traced array")

    def __array__(self, dtype=None, copy=None):
        raise concretization_error(
            self, "np.asarray()/np.array() of a traced array (or of a list holding traced values: build those "
                  "with np.stack, and pass list arguments as arrays)",
            hints=["a NumPy array indexed by a traced index (np.eye(10)[y]) is tj.numpy.take(array, y, axis=0) "
                   "(np.take and ndarray indexing do not dispatch on the index), or tj.nn.one_hot(y, 10)"])

    # NumPy protocols -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return tnp.apply_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return tnp.apply_function(func, args, kwargs)

    # Attributes and methods ---------------------------------------------------------------
    def _array_result(self, out):
        # An ndarray's methods return arrays, 0-d ones too; a NumPy scalar's return scalars.
        if self.ndim or getattr(self, "ndarray0d", False):
            return tnp._ndarray0d(out, self)
        return out

    @property
    def T(self):
        return self._array_result(tnp.transpose(self))

    @property
    def mT(self):
        return tnp.swapaxes(self, -1, -2)

    @property
    def real(self):
        return tnp.real(self)

    @property
    def imag(self):
        return tnp.imag(self)

    def conj(self):
        return tnp.conjugate(self)

    conjugate = conj

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._array_result(tnp.reshape(self, shape, order=order))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._array_result(tnp.transpose(self, axes or None))

    def squeeze(self, axis=None):
        return self._array_result(tnp.squeeze(self, axis))

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return self._array_result(tnp.astype(self, dtype))

    def copy(self, order="C"):
        return self._array_result(tnp.copy(self))

    def __copy__(self):
        return tnp.copy(self)

    def __deepcopy__(self, memo):
        return tnp.copy(self)

    sum = _method("sum")
    mean = _method("mean")
    var = _method("var")
    std = _method("std")
    max = _method("max")
    min = _method("min")
    argmax = _method("argmax")
    argmin = _method("argmin")
    any = _method("any")
    all = _method("all")
    clip = _method("clip")
    round = _method("round")
    dot = _method("dot")
    ravel = _method("ravel")
    swapaxes = _method("swapaxes")
    take = _method("take")
    repeat = _method("repeat")
    diagonal = _method("diagonal")
    trace = _method("trace")
    flatten = _method("ravel")
    prod = _method("prod")
    cumsum = _method("cumsum")
    cumprod = _method("cumprod")

    def __repr__(self):
        return f"Tracer<{self.aval}>"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if hasattr(np.ndarray, name):
            raise UnsupportedError(f"ndarray.{name} is not supported on traced arrays.{where()}\n"
                                   "Use a supported NumPy function, or run this code in eager mode.")
        raise AttributeError(f"traced array has no attribute {name!r}")
