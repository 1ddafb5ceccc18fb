"""What the backend computes for one element of a primitive: loop bodies and accumulators.

Layer: backend. In: an equation (and the ``Lowering`` writing it); out: source text of one
element's computation, used by the generic emitters (``emitters``) and the fused kernels
(``fused_kernels``) alike. The primitive's own facets (``scalar_src``, ``identity``,
``combine``) come from its ``defop``; what only this backend needs is kept here, in tables
keyed by the primitive object, each written once:

- ``SCALAR_SRC_OVERRIDES``: loop bodies replacing ``scalar_src`` for a dtype where Numba's
  scalar function differs from NumPy's ufunc;
- ``VECTOR_MATH``: the ``vecmath`` function family that replaces a float primitive's libm call;
- ``nonpositive_values``: which values of a fused kernel are known to be <= 0 (or NaN), so
  that their exp takes ``vecmath``'s cheaper ``exp_nonpositive``;
- ``FLOAT_COMBINE``: the LLVM operation that combines a float reduction's accumulator (so the
  loop vectorises); ``NAN_FLAGGED_COMBINE``: the cheaper one for a maximum or minimum with a
  scalar accumulator, which keeps a flag of NaNs seen beside it (``nan_flagged``);
  ``WIDE_ACCUMULATOR``: reductions that accumulate in a wider dtype.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..core import Const, Var
from .lowering import Lowering, dtype_src

__all__ = ["elementwise_src", "elementwise_check", "acc_dtype", "combine_src", "order_src", "scan_combine_src",
           "nan_flagged", "NanFlag", "nonpositive_values", "SCALAR_SRC_OVERRIDES", "COMPLEX_ORDER", "VECTOR_MATH",
           "FLOAT_COMBINE", "NAN_FLAGGED_COMBINE", "WIDE_ACCUMULATOR"]


# Loop bodies replacing a primitive's ``scalar_src`` for one dtype or dtype kind, where Numba's
# scalar function differs from NumPy's ufunc: (primitive, the first input's dtype name or kind)
# -> body; a dtype name wins over its kind.
SCALAR_SRC_OVERRIDES = {
    (ops.sign, "u"): "1 if {0} > 0 else 0",  # Numba's np.sign gives -1 for unsigned values >= 2**(bits-1)
    # NumPy's + and * on booleans are logical or/and; Numba's give integers (True + True == 2),
    # which a fused kernel would carry on to the next equation.
    (ops.add, "b"): "{0} or {1}",
    (ops.mul, "b"): "{0} and {1}",
    # The most negative integer // -1 overflows: NumPy wraps (it stays the most negative
    # integer), Numba's int64 division gives 0.
    (ops.floordiv, "i"): "-{0} if {1} == -1 else {0} // {1}",
    # Numba declares np.exp2 and np.log2 as the untyped intrinsics ``llvm.exp2``/``llvm.log2``:
    # a program calling them on float32 and on float64 declares one name twice and fails to
    # compile. float32 goes through float64 (one rounding; exact on the integer cases).
    (ops.exp2, "float32"): "np.float32(np.exp2(np.float64({0})))",
    (ops.log2, "float32"): "np.float32(np.log2(np.float64({0})))",
}

# Comparison primitives and their operators: Numba has no order of complex numbers, so complex
# operands go through ``order_src`` (NumPy's lexicographic order).
_COMPARISONS = {ops.lt: "<", ops.le: "<=", ops.gt: ">", ops.ge: ">="}

# The comparison operators in NumPy's order of complex numbers: the ``intrinsics`` function and
# whether it takes the operands swapped (a > b is b < a).
COMPLEX_ORDER = {"<": ("complex_less", False), "<=": ("complex_less_equal", False),
                 ">": ("complex_less", True), ">=": ("complex_less_equal", True)}


def order_src(L: Lowering, dtype, a: str, op: str, b: str) -> str:
    """``a op b`` for one of ``< <= > >=``, in NumPy's order for ``dtype`` (lexicographic for
    complex values, which Numba cannot compare)."""
    if np.dtype(dtype).kind != "c":
        return f"{a} {op} {b}"
    fn, swapped = COMPLEX_ORDER[op]
    L.require(f"from tracejit.backend.intrinsics import {fn}")
    return f"{fn}({b}, {a})" if swapped else f"{fn}({a}, {b})"


# Primitive -> the family of branch-free, vectorisable functions in ``vecmath`` that replaces
# its libm call (``vecmath.VECTOR_MATH`` says for which dtypes a family has a function).
VECTOR_MATH = {ops.exp: "exp", ops.log: "log", ops.tanh: "tanh", ops.log1p: "log1p", ops.expm1: "expm1",
               ops.sin: "sin", ops.cos: "cos", ops.pow: "pow"}

# Float reductions combine through LLVM operations that let loops vectorise: a reassociable
# add (the sum then differs from a sequential one only by rounding, as NumPy's pairwise sum
# does) and NaN-propagating maximum/minimum. The names are intrinsics of ``intrinsics``.
FLOAT_COMBINE = {ops.reduce_sum: "radd", ops.reduce_max: "fmaximum", ops.reduce_min: "fminimum"}

# A float maximum or minimum into a scalar accumulator: the combine of operands that are not
# NaN (one vmaxps / vminps per vector) and, beside it, an or-reduction of whether an element
# is NaN, which makes the result NaN at the end (see ``NanFlag``). The row maximum of a
# (4096, 1000) float32 softmax takes 0.56 ms so, against 0.76 ms through fmaximum with AVX2
# and 0.65 ms with AVX-512: as fast as a sum over the same rows, which memory bounds.
NAN_FLAGGED_COMBINE = {ops.reduce_max: "fmax_nonnan", ops.reduce_min: "fmin_nonnan"}

# Reductions whose accumulator is wider than their dtype (see ``acc_dtype``).
WIDE_ACCUMULATOR = {ops.reduce_sum}


def elementwise_check(L: Lowering, eqn, operands):
    """Checks NumPy makes that the bare scalar expression would not."""
    if eqn.prim is ops.pow and eqn.inputs[1].aval.dtype.kind == "i":
        exponent = eqn.inputs[1]
        if isinstance(exponent, Const) and np.all(np.asarray(exponent.value) >= 0):
            return
        with L.block(f"if {operands[1]} < 0:"):
            L.emit(f"raise ValueError({'Integers to negative integer powers are not allowed.' + L.where()!r})")


def _vector_math_name(prim, dtype, nonpositive_input=False):
    family = "exp_nonpositive" if prim is ops.exp and nonpositive_input else VECTOR_MATH.get(prim)
    if family is None:
        return None
    from .vecmath import vector_math_name
    return vector_math_name(family, dtype)


def elementwise_src(L: Lowering, eqn, nonpositive_input: bool = False) -> str:
    """The loop-body format string of an elementwise equation ({0}, {1}: its operands).
    ``nonpositive_input``: the first operand is known to be <= 0 or NaN (``nonpositive_values``)."""
    src = eqn.prim.scalar_src
    if callable(src):
        src = src(**eqn.params)
    kind = eqn.inputs[0].aval.dtype.kind if eqn.inputs else ""
    dtype = eqn.inputs[0].aval.dtype.name if eqn.inputs else ""
    if kind == "c" and eqn.prim in _COMPARISONS:
        return order_src(L, eqn.inputs[0].aval.dtype, "{0}", _COMPARISONS[eqn.prim], "{1}")
    src = SCALAR_SRC_OVERRIDES.get((eqn.prim, dtype), SCALAR_SRC_OVERRIDES.get((eqn.prim, kind), src))
    vector_fn = _vector_math_name(eqn.prim, eqn.outputs[0].aval.dtype, nonpositive_input)
    if vector_fn is not None:
        # branch-free float exp/log/tanh/... that LLVM inlines and vectorises (libm's do not)
        L.require("from tracejit.backend import vecmath as _vm")
        src = f"_vm.{vector_fn}(" + ", ".join(f"{{{k}}}" for k in range(len(eqn.inputs))) + ")"
    return src


_NONPOSITIVE, _NONNEGATIVE = -1, 1
_NONNEGATIVE_RESULTS = (ops.abs, ops.sqrt, ops.exp)
_SIGN_KEEPING = (ops.broadcast_to, ops.reshape, ops.reduce_max, ops.reduce_min, ops.reduce_sum)


def nonpositive_values(eqns) -> set[int]:
    """The ids of the float values of ``eqns`` (a fused kernel's members, in order) whose every
    element is <= 0 or NaN, as far as signs propagate through them (a NaN may stand anywhere,
    so inf - inf is no exception; a signed zero has either sign).

    What it knows: abs, sqrt and exp are >= 0; negation flips a sign, products and sums of
    known signs have one (``-x * x`` is <= 0); a value minus an upper bound of its own is
    <= 0. The upper bounds are the maximum of the value over some axes, kept as a
    broadcastable shape and broadcast back (``x - x.max(axis, keepdims=True)``, a softmax's
    shift), and the elementwise maximum of such a bound with anything else."""
    sign: dict[int, int] = {}
    bound: dict[int, tuple] = {}   # value -> (the value x it bounds, axes, "reduced"/"keepdims"/"full")
    negations: dict[int, object] = {}  # value -> the atom it is the negation of

    def sign_of(atom):
        if isinstance(atom, Const):
            v = np.asarray(atom.value)
            if v.dtype.kind not in "fiu":
                return 0
            v = v[~np.isnan(v)] if v.dtype.kind == "f" else v
            return _NONPOSITIVE if np.all(v <= 0) else _NONNEGATIVE if np.all(v >= 0) else 0
        return sign.get(atom.id, 0)

    def negated(a, b):
        """Whether ``a`` is ``-b``."""
        return isinstance(a, Var) and a.id in negations and negations[a.id] is b

    for e in eqns:
        out, ins, p = e.outputs[0], e.inputs, e.prim
        s = 0
        if p in _NONNEGATIVE_RESULTS:
            s = _NONNEGATIVE
        elif p is ops.neg:
            s = -sign_of(ins[0])
            negations[out.id] = ins[0]
        elif p in _SIGN_KEEPING or (p is ops.cast and out.aval.dtype.kind == "f" and ins[0].aval.dtype.kind == "f"):
            s = sign_of(ins[0])
        elif p is ops.mul:
            a, b = ins
            if a is b:
                s = _NONNEGATIVE
            elif negated(a, b) or negated(b, a):
                s = _NONPOSITIVE
            else:
                s = sign_of(a) * sign_of(b)
        elif p is ops.add:
            s = sign_of(ins[0]) if sign_of(ins[0]) == sign_of(ins[1]) else 0
        elif p is ops.sub:
            a, b = ins
            upper = bound.get(b.id) if isinstance(b, Var) else None
            if upper is not None and upper[0] is a and upper[2] == "full":
                s = _NONPOSITIVE
            elif sign_of(a) == -sign_of(b):
                s = sign_of(a)
        elif p is ops.where:
            s = sign_of(ins[1]) if sign_of(ins[1]) == sign_of(ins[2]) else 0
        elif p in (ops.maximum, ops.minimum):
            sa, sb = sign_of(ins[0]), sign_of(ins[1])
            strong = _NONNEGATIVE if p is ops.maximum else _NONPOSITIVE
            s = strong if strong in (sa, sb) else (sa if sa == sb else 0)
        if s and out.aval.dtype.kind == "f":  # integer products and sums wrap
            sign[out.id] = s
        _track_upper_bound(e, bound)
    return {v for v, s in sign.items() if s == _NONPOSITIVE}


def _track_upper_bound(e, bound):
    """Record ``e``'s output in ``bound`` if it is an upper bound of some value (see
    ``nonpositive_values``), with the shape it has on the way back to that value's."""
    out, p = e.outputs[0], e.prim
    x = e.inputs[0]
    if p is ops.reduce_max and isinstance(x, Var):
        bound[out.id] = (x, tuple(sorted(e.params["axes"])), "reduced")
        return
    if p is ops.maximum:
        for a in e.inputs:
            if isinstance(a, Var) and a.id in bound:
                bound[out.id] = bound[a.id]
                return
        return
    if not (isinstance(x, Var) and x.id in bound and p in (ops.reshape, ops.broadcast_to)):
        return
    source, axes, form = bound[x.id]
    full = source.aval.shape
    keepdims = tuple(1 if d in axes else n for d, n in enumerate(full))
    shape = tuple(out.aval.shape)
    if p is ops.reshape and form in ("reduced", "keepdims") and shape == keepdims:
        bound[out.id] = (source, axes, "keepdims")
    elif p is ops.broadcast_to and shape == tuple(full) and (
            form == "keepdims" or (form == "reduced" and axes == tuple(range(len(axes))))):
        # a reduced shape broadcasts back to the right place only if the leading axes went
        bound[out.id] = (source, axes, "full")


def acc_dtype(prim, dtype) -> np.dtype:
    """Accumulator dtype of a reduction. Sums accumulate float32 in float64 (the result is
    rounded once, so it stays as close to NumPy's pairwise sum as NumPy's own error) and
    integers/bools in the 64-bit integer (the stored result wraps exactly like NumPy's)."""
    dt = np.dtype(dtype)
    if prim not in WIDE_ACCUMULATOR:
        return dt
    if dt == np.float32:
        return np.dtype(np.float64)
    if dt == np.complex64:
        return np.dtype(np.complex128)
    if dt == np.bool_ or dt.kind == "i":
        return np.dtype(np.int64)
    if dt.kind == "u":
        return np.dtype(np.uint64)
    return dt


def combine_src(L: Lowering, prim, acc_dt, acc: str, x: str) -> str:
    """The reduction's combine of the accumulator ``acc`` (of dtype ``acc_dt``) with one element
    ``x`` (already of that dtype): ``FLOAT_COMBINE``'s operation for floats, else the
    primitive's own ``combine``."""
    fn = FLOAT_COMBINE.get(prim) if np.dtype(acc_dt).kind == "f" else None
    if fn is None:
        return prim.combine.format(acc=acc, x=x)
    L.require("from tracejit.backend.intrinsics import radd, fmaximum, fminimum")
    return f"{fn}({acc}, {x})"


def nan_flagged(prim, acc_dt) -> bool:
    """Whether a reduction into a scalar accumulator of ``acc_dt`` keeps a ``NanFlag``."""
    return prim in NAN_FLAGGED_COMBINE and np.dtype(acc_dt).kind == "f"


class NanFlag:
    """The flag of NaNs seen beside a float maximum's or minimum's scalar accumulator ``acc``:
    ``start`` before the loop, ``combine(x)`` per element, ``finish`` after it (a NaN result
    if any element was NaN, as ``np.max`` gives). The accumulator itself only ever combines
    through ``NAN_FLAGGED_COMBINE``; what it holds after a NaN does not matter."""

    def __init__(self, L: Lowering, prim, acc_dt, acc: str):
        self.fn = NAN_FLAGGED_COMBINE[prim]
        L.require(f"from tracejit.backend.intrinsics import {self.fn}")
        self.acc, self.acc_dt, self.flag = acc, np.dtype(acc_dt), L.fresh("nan_seen")

    @property
    def start(self) -> str:
        return f"{self.flag} = False"

    def combine(self, x: str) -> list[str]:
        return [f"{self.acc} = {self.fn}({self.acc}, {x})", f"{self.flag} = {self.flag} | ({x} != {x})"]

    @property
    def finish(self) -> str:
        return f"{self.acc} = {dtype_src(self.acc_dt)}(np.nan) if {self.flag} else {self.acc}"


def scan_combine_src(L: Lowering, prim, dtype) -> str:
    """A scan's combine format string ({acc}, {x}): the primitive's own, except the running
    extremes of complex values, which NumPy's complex maximum combines as it does: the value so
    far stays on ties (>=) and once it holds a NaN in either part."""
    if prim in (ops.cummax, ops.cummin) and np.dtype(dtype).kind == "c":
        keeps = order_src(L, dtype, "{acc}", ">=" if prim is ops.cummax else "<=", "{x}")
        return "{acc} if {acc} != {acc} or " + keeps + " else {x}"
    return prim.combine


def convert_src(x: str, x_dtype, acc_dt) -> str:
    """``x`` converted to the accumulator's dtype where the two differ."""
    return x if np.dtype(x_dtype) == np.dtype(acc_dt) else f"{dtype_src(acc_dt)}({x})"
