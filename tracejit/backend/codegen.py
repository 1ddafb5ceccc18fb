"""Lowering a ``Graph`` to the source text of a Python function for ``numba.njit``.

Layer: backend, below the transforms. ``lower(graph)`` walks the equations in order and
writes, for each, a comment with its SSA text (and the user's line) followed by the code
that computes it:

- elementwise equations become one loop nest over the output shape whose body is the
  primitive's ``scalar_src`` (float exp/log/tanh/... call the branch-free, vectorisable
  functions of ``vecmath`` instead of libm);
- reductions (``identity`` + ``combine``) become a loop nest with an accumulator;
- every other primitive is written by an emitter in ``emitters.EMITTERS`` (matmul goes to
  NumPy's BLAS through ``blas.gemm``, or ``np.dot``, narrow products to loops; ``broadcast_to``, ``transpose`` and
  ``slice`` are *views*: they emit no loop, later loops index their input through the view's
  index map).

Shapes are static: every loop bound is a literal. Values are named after their SSA names
(``c``, ``d`` ...), so the code reads like ``str(graph)``. 0-d constants are inlined with
their dtype (``np.float32(2.0)``); constant arrays become extra arguments (``const0`` ...).
A program with more than twice ``PART_KERNELS`` loop nests is split into part functions that
the main one calls in order (Numba's compile time grows faster than the size of a function).

An emitter is ``emit(L, eqn)``: it writes lines through the ``Lowering`` ``L`` (``emit``,
``loops``, ``block``, ``new_array``, ``ref``/``array`` to read inputs, ``bind`` for its
outputs, ``require`` for an import line the code needs, ``uses_prange``/``fused_ops``/
``kernels`` for the bookkeeping).

``generate_source`` returns only the text; ``compiler.compile_graph`` turns a ``Lowered``
into a callable.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import keyword
import math
import os
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from ..core import Const, Graph, GraphPrinter, Var, dtype_short
from .memory import Buffer, plan_memory

__all__ = ["lower", "generate_source", "Lowered", "Lowering", "BackendError", "emitter_for",
           "dtype_src", "literal_src", "SUPPORTED_KINDS"]


class BackendError(RuntimeError):
    """The backend could not generate or compile code for a graph. This is an internal error
    of tracejit (or a dtype/primitive the backend does not handle), not a bug in user code."""


# dtype kinds the generated code handles: bool, signed/unsigned ints, floats (32/64), complex.
SUPPORTED_KINDS = "biufc"


def dtype_src(dtype) -> str:
    """``np.float32`` etc.: how generated code spells a dtype."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return "np.bool_"
    if dt.kind not in SUPPORTED_KINDS or (dt.kind == "f" and dt.itemsize not in (4, 8)) or \
            (dt.kind == "c" and dt.itemsize not in (8, 16)):
        raise BackendError(f"the Numba backend does not support dtype {dt.name}; cast to float32/float64 first")
    return f"np.{dt.name}"


def _float_text(v: float) -> str:
    if math.isnan(v):
        return "np.nan"
    if math.isinf(v):
        return "np.inf" if v > 0 else "-np.inf"
    return repr(float(v))


def literal_src(value, dtype) -> str:
    """A typed scalar literal: ``np.float32(2.0)``, ``np.int64(-3)``, ``True``."""
    dt = np.dtype(dtype)
    v = np.asarray(value).astype(dt).item()
    if dt == np.bool_:
        return "True" if v else "False"
    name = dtype_src(dt)
    if dt.kind in "iu":
        return f"{name}({int(v)})"
    if dt.kind == "f":
        return f"{name}({_float_text(v)})"
    return f"{name}(complex({_float_text(v.real)}, {_float_text(v.imag)}))"


def identity_src(identity, dtype) -> str:
    """A reduction identity (0, "lowest", "highest") as a literal of ``dtype``."""
    dt = np.dtype(dtype)
    if identity == "lowest":
        value = False if dt == np.bool_ else (-np.inf if dt.kind == "f" else np.iinfo(dt).min)
    elif identity == "highest":
        value = True if dt == np.bool_ else (np.inf if dt.kind == "f" else np.iinfo(dt).max)
    else:
        value = identity
    return literal_src(value, dt)


def shape_src(shape) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _index_src(idx) -> str:
    return ", ".join(idx) if idx else "()"


_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^[0-9]+$")


def affine(i: str, start: int, step: int) -> str:
    """Index expression ``start + i * step``, written as simply as possible."""
    if step != 1:
        i = (i if _SIMPLE.match(i) else f"({i})") + f" * {step}"
    if start:
        i = f"{i} + {start}"
    return i


# ----------------------------------------------------------------------------- values

class Ref:
    """How generated code reads one graph value at a (tuple of) loop index expression(s)."""

    shape: tuple
    dtype: np.dtype

    def at(self, idx) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class ArrayRef(Ref):
    """An array variable in the generated code. ``root`` names the allocation it lives in:
    its own name for arrays this program allocates, ``"input"`` for arguments."""

    def __init__(self, name, shape, dtype, root):
        self.name, self.shape, self.dtype, self.root = name, tuple(shape), np.dtype(dtype), root

    def at(self, idx) -> str:
        return f"{self.name}[{_index_src(idx)}]"


class ScalarRef(Ref):
    """A 0-d constant, inlined as a typed literal wherever it is read."""

    def __init__(self, text, dtype):
        self.text, self.shape, self.dtype = text, (), np.dtype(dtype)

    def at(self, idx) -> str:
        return self.text


class ViewRef(Ref):
    """A value that is an index remapping of another (broadcast, transpose, slice): reading it
    reads ``base`` at ``index_map(idx)``; nothing is copied unless it is materialised."""

    def __init__(self, base: Ref, shape, index_map, name):
        self.base, self.shape, self.dtype = base, tuple(shape), base.dtype
        self.index_map, self.name = index_map, name

    def at(self, idx) -> str:
        return self.base.at(self.index_map(list(idx)))


# ----------------------------------------------------------------------------- lowering

@dataclass
class Lowered:
    """The generated program and what the runtime needs to call it."""

    source: str
    fn_name: str
    n_inputs: int
    in_avals: list               # Aval of each graph input (argument order)
    const_values: list           # extra array arguments after the inputs
    passthrough: dict            # output position -> input position (outputs that *are* inputs)
    n_returned: int              # outputs the program makes (the others): passed in or returned
    kernels: int
    workspace_bytes: int = 0     # size of the workspace argument (after the constants; none if 0)
    output_args: list = field(default_factory=list)  # (shape, dtype) of outputs passed in (after the workspace)
    output_positions: list = field(default_factory=list)  # their places among the n_returned outputs
    write_back: dict = field(default_factory=dict)  # output position -> input the program writes it into
    memory: object = None        # the MemoryPlan (temporaries, their slots and live ranges)
    fused_ops: int = 0
    flags: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)  # names of the part functions the main one calls
    parallel_functions: list = field(default_factory=list)  # functions compiled with parallel=True
    locations: dict = field(default_factory=dict)  # mark in a raised message -> the user's line


# Elements of work in one block of a parallel loop (``Lowering.parallel_loop``): 64 blocks for
# 1M elements, each ~16 us of the elementwise chain, so claiming one costs nothing in comparison.
PARALLEL_BLOCK = 1 << 14
# Programs whose inputs and equation results have this many elements in all release the GIL
# (Numba's nogil).
NOGIL_MIN_ELEMENTS = 1 << 14


def numba_threads() -> int:
    """The most threads Numba runs a parallel loop on (``NUMBA_NUM_THREADS``)."""
    from numba import config
    return config.NUMBA_NUM_THREADS


class Lowering:
    """The state of one ``lower`` call; emitters receive it and write code through it."""

    def __init__(self, graph: Graph, name: str, parallel=None):
        self.graph = graph
        self.parallel = parallel      # as given to tj.trace: None (backend decides), True, False
        self.uses_prange = False      # set by an emitter that writes a ``prange`` loop
        self.imports: list[str] = []  # extra import lines the program needs (emitters add them)
        self.fused_ops = 0            # equations folded into fused kernels (by their emitter)
        self.printer = GraphPrinter(graph)
        self.printer.render()  # assign SSA names in the same order as str(graph)
        self.fn_name = _py_name(name, default="fn")
        self.lines: list[str] = []
        self.depth = 1
        self.refs: dict[int, Ref] = {}
        self.names: dict[int, str] = {}
        self.taken: set[str] = {self.fn_name}
        self.counters: dict[str, int] = {}
        self.const_args: dict[int, ArrayRef] = {}
        self.const_values: list = []
        self.materialized: dict[int, ArrayRef] = {}
        self.kernels = 0
        self.eqn = None
        self.unit = 0                  # index of the equation being emitted (memory planning's clock)
        self.buffers: list[Buffer] = []  # every array allocated, for memory planning
        self.locations: dict[str, str] = {}  # see ``where``

    # -- text
    def emit(self, line: str):
        self.lines.append("    " * self.depth + line if line else "")

    def comment(self, text: str):
        for line in text.splitlines():
            self.emit("# " + line)

    @contextlib.contextmanager
    def block(self, header: str):
        """``header:`` followed by an indented block."""
        self.emit(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @contextlib.contextmanager
    def loops(self, shape, prefix="i", start=0, parallel=False):
        """Nested ``for`` loops over ``shape`` (static bounds); yields the index expressions.
        Axes of length 1 get no loop: their index is the literal ``0``. With ``parallel``
        (for loops whose iterations write disjoint elements) and ``tj.trace(parallel=True)``,
        the outermost loop runs on all threads (``parallel_loop``)."""
        idx, levels = self.open_loops(shape, prefix, start, parallel=parallel and self.parallel is True)
        try:
            yield idx
        finally:
            self.depth -= levels

    def open_loops(self, shape, prefix="i", start=0, parallel=False, first=None, row_size=1):
        """Open nested ``for`` loops over ``shape`` (axes of length 1 get none, their index is
        ``0``), the first on all threads if ``parallel`` (``parallel_loop``, with ``first`` and
        ``row_size`` elements of inner work per index). Returns (index expressions, indentation
        levels opened); the caller closes them by lowering ``depth``."""
        idx, levels = [], 0
        for d, n in enumerate(shape):
            if n == 1:
                idx.append("0")
                continue
            name = f"{prefix}{start + d}"
            if parallel and levels == 0:
                inner = int(np.prod(shape[d + 1:], dtype=np.int64)) * row_size
                levels += self.parallel_loop(name, int(n), inner, first=first)
            else:
                self.emit(f"for {name} in range({int(n)}):")
                self.depth += 1
                levels += 1
            idx.append(name)
        return idx, levels

    def parallel_loop(self, name: str, n: int, inner: int, first: str | None = None) -> int:
        """Open a loop over ``range(n)`` whose iterations (each ``inner`` elements of work) run
        on all of Numba's threads; ``name`` is its index. ``first``: a statement to run once per
        thread (the ``prange`` body is compiled as a function of its own). Returns the
        indentation levels opened.

        The iterations are cut into blocks of about ``PARALLEL_BLOCK`` elements, and each thread
        claims the next unclaimed block (``kernels.claim_block``) until none is left, rather
        than Numba's one equal share per thread: a thread that starts late (a worker woken
        from sleep, a core busy with other work) then takes fewer blocks instead of keeping
        the others waiting. On two shared cores this made the 1M-element chain 10-20% faster
        when it ran between other work, and no slower back to back."""
        rows = max(1, -(-PARALLEL_BLOCK // max(1, inner)))
        blocks = -(-n // rows)
        claims, worker, block, j = (self.fresh(p) for p in ("claims", "worker", "block", "j"))
        self.uses_prange = True
        self.require("from tracejit.backend.kernels import claim_block")
        self.require("from tracejit.backend.kernels import new_array")
        self.emit(f"{claims} = new_array((1,), np.int64)  # {name}'s {n} iterations in blocks of {rows}: "
                  f"the next block to claim")
        self.emit(f"{claims}[0] = 0")
        # One worker per thread Numba may run (numba.get_num_threads() would keep the program out
        # of Numba's disk cache); with fewer threads set, a thread runs several workers in turn,
        # and those after the first find the blocks taken.
        self.emit(f"for {worker} in prange({numba_threads()}):")
        if first:
            self.emit(f"    {first}")
        self.emit("    while True:")
        self.emit(f"        {block} = claim_block({claims})")
        # (a claimed block is never negative; saying so lets LLVM see that the indices are not)
        self.emit(f"        if {block} < 0 or {block} >= {blocks}:")
        self.emit("            break")
        if blocks * rows == n:
            self.emit(f"        for {j} in range({rows}):")
        else:
            self.emit(f"        for {j} in range(min({rows}, {n} - {block} * {rows})):")
        self.emit(f"            {name} = {block} * {rows} + {j}")
        self.depth += 3
        return 3

    def require(self, line: str):
        """Add an import line (e.g. ``from tracejit.backend import vecmath as _vm``) to the
        program's header."""
        if line not in self.imports:
            self.imports.append(line)

    def where(self) -> str:
        """For a message the program raises: a mark, ``" [equation 12]"``, that the runtime
        replaces by the user's line of the equation being emitted, ``" (model.py:12)"`` (see
        ``Lowered.locations``). The line stays out of the code so that the program, and its
        entry in the compile cache, do not change when the user's file moves the function."""
        src = self.eqn.source if self.eqn is not None else None
        if not src:
            return ""
        mark = f" [equation {self.unit}]"
        self.locations[mark] = f" ({os.path.basename(str(src[0]))}:{src[1]})"
        return mark

    # -- names
    def var_name(self, var: Var) -> str:
        name = self.names.get(var.id)
        if name is None:
            name = self.unique(_py_name(self.printer.name(var)))
            self.names[var.id] = name
        return name

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def fresh(self, prefix: str) -> str:
        """A helper name that cannot clash with SSA names (which never contain digits)."""
        k = self.counters.get(prefix, 0)
        self.counters[prefix] = k + 1
        return self.unique(f"{prefix}{k}")

    # -- values
    def bind(self, var: Var, ref: Ref):
        self.refs[var.id] = ref

    def ref(self, atom) -> Ref:
        if isinstance(atom, Const):
            value = np.asarray(atom.value)
            dtype = atom.aval.dtype
            if value.ndim == 0:
                return ScalarRef(literal_src(value, dtype), dtype)
            ref = self.const_args.get(id(atom))
            if ref is None:
                name = self.fresh("const")
                ref = ArrayRef(name, value.shape, dtype, "input")
                self.const_args[id(atom)] = ref
                self.const_values.append((name, np.ascontiguousarray(value.astype(dtype, copy=False)).view(np.ndarray)))
            return ref
        try:
            return self.refs[atom.id]
        except KeyError:
            raise BackendError(f"internal error: {atom!r} is used before it is defined") from None

    def new_array(self, var: Var, init="empty", fill=None) -> ArrayRef:
        """A new array for ``var``: uninitialised (``init="empty"``), zeros, or ``"full"`` of the
        source text ``fill``."""
        name = self.var_name(var)
        return self.alloc(name, var.aval.shape, var.aval.dtype, init, fill)

    def alloc(self, name, shape, dtype, init="empty", fill=None) -> ArrayRef:
        """A new array ``name`` (``name = new_array(shape, dtype)`` and, unless ``init`` is
        "empty", loops that set it). The text written here, one entry of ``lines``, is what an
        output gets; ``lower`` rewrites it into a view of a workspace slot if the array turns
        out to be a temporary."""
        buffer = Buffer(name, tuple(shape), np.dtype(dtype), init, fill, len(self.lines), self.unit)
        self.buffers.append(buffer)
        self.require("from tracejit.backend.kernels import new_array")
        first = f"{name} = new_array({shape_src(shape)}, {dtype_src(dtype)})"
        self.lines.append("\n".join("    " * self.depth + text for text in _allocation_src(self, buffer, first)))
        return ArrayRef(name, shape, dtype, name)

    def array(self, atom) -> ArrayRef:
        """The value as a C-contiguous array variable, copying a view or literal into a new
        array the first time it is needed this way."""
        ref = self.ref(atom)
        if isinstance(ref, ArrayRef):
            return ref
        key = id(ref)
        out = self.materialized.get(key)
        if out is None:
            # A view's own (otherwise unused) name is reserved for its materialised copy.
            name = ref.name if isinstance(ref, ViewRef) else self.fresh("tmp")
            out = self.copy_into(name, ref)
            self.materialized[key] = out
        return out

    def copy_into(self, name, ref: Ref) -> ArrayRef:
        """A fresh array ``name`` holding ``ref``'s elements (one loop nest)."""
        out = self.alloc(name, ref.shape, ref.dtype)
        self.kernels += 1
        with self.loops(ref.shape, parallel=True) as idx:
            self.emit(f"{out.at(idx)} = {ref.at(idx)}")
        return out


# Module-level names generated code may use besides builtins; values are never named so.
RESERVED_NAMES = {"np", "numba", "prange", "vm", "radd", "fmaximum", "fminimum", "gemm", "new_array",
                  "workspace_array", "reshaped", "advise_huge_pages", "claim_block", "shape_is",
                  "all_sum_in_place"}


def _py_name(name: str, default: str = "v") -> str:
    """A valid identifier that shadows nothing generated code uses (keywords, builtins, np)."""
    name = re.sub(r"\W", "_", str(name)) or default
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or hasattr(builtins, name) or name in RESERVED_NAMES:
        name += "_"
    return name


# ----------------------------------------------------------------------------- generic emitters

def _operand_texts(L: Lowering, eqn, idx):
    return [L.ref(a).at(idx) for a in eqn.inputs]


def _elementwise_check(L: Lowering, eqn, operands):
    """Checks NumPy makes that the bare scalar expression would not."""
    if eqn.prim.name == "pow" and eqn.inputs[1].aval.dtype.kind == "i":
        exponent = eqn.inputs[1]
        if isinstance(exponent, Const) and np.all(np.asarray(exponent.value) >= 0):
            return
        with L.block(f"if {operands[1]} < 0:"):
            L.emit(f"raise ValueError({'Integers to negative integer powers are not allowed.' + L.where()!r})")


# Loop bodies replacing a primitive's ``scalar_src`` for one dtype or dtype kind, where Numba's
# scalar function differs from NumPy's ufunc: (primitive name, the first input's dtype name or
# kind) -> body; a dtype name wins over its kind.
SCALAR_SRC_OVERRIDES = {
    ("sign", "u"): "1 if {0} > 0 else 0",  # Numba's np.sign gives -1 for unsigned values >= 2**(bits-1)
    # NumPy's + and * on booleans are logical or/and; Numba's give integers (True + True == 2),
    # which a fused kernel would carry on to the next equation.
    ("add", "b"): "{0} or {1}",
    ("mul", "b"): "{0} and {1}",
    # The most negative integer // -1 overflows: NumPy wraps (it stays the most negative
    # integer), Numba's int64 division gives 0.
    ("floordiv", "i"): "-{0} if {1} == -1 else {0} // {1}",
    # Numba declares np.exp2 and np.log2 as the untyped intrinsics ``llvm.exp2``/``llvm.log2``:
    # a program calling them on float32 and on float64 declares one name twice and fails to
    # compile. float32 goes through float64 (one rounding; exact on the integer cases).
    ("exp2", "float32"): "np.float32(np.exp2(np.float64({0})))",
    ("log2", "float32"): "np.float32(np.log2(np.float64({0})))",
}


def elementwise_src(L: Lowering, eqn) -> str:
    """The loop-body format string of an elementwise equation ({0}, {1}: its operands)."""
    src = eqn.prim.scalar_src
    if callable(src):
        src = src(**eqn.params)
    kind = eqn.inputs[0].aval.dtype.kind if eqn.inputs else ""
    dtype = eqn.inputs[0].aval.dtype.name if eqn.inputs else ""
    src = SCALAR_SRC_OVERRIDES.get((eqn.prim.name, dtype), SCALAR_SRC_OVERRIDES.get((eqn.prim.name, kind), src))
    vector_fn = _vector_math_name(eqn.prim.name, eqn.outputs[0].aval.dtype)
    if vector_fn is not None:
        # branch-free float exp/log/tanh/... that LLVM inlines and vectorises (libm's do not)
        L.require("from tracejit.backend import vecmath as _vm")
        src = f"_vm.{vector_fn}(" + ", ".join(f"{{{k}}}" for k in range(len(eqn.inputs))) + ")"
    return src


def emit_elementwise(L: Lowering, eqn):
    """One loop nest over the output; the body is the primitive's ``scalar_src``."""
    src = elementwise_src(L, eqn)
    out = eqn.outputs[0]
    res = L.new_array(out)
    L.kernels += 1
    with L.loops(out.aval.shape, parallel=True) as idx:
        operands = _operand_texts(L, eqn, idx)
        _elementwise_check(L, eqn, operands)
        L.emit(f"{res.at(idx)} = {src.format(*operands)}")
    L.bind(out, res)


def _vector_math_name(prim_name, dtype):
    from .vecmath import vector_math_name
    return vector_math_name(prim_name, dtype)


def _acc_dtype(prim, dtype) -> np.dtype:
    """Accumulator dtype of a reduction. Sums accumulate float32 in float64 (the result is
    rounded once, so it stays as close to NumPy's pairwise sum as NumPy's own error) and
    integers/bools in the 64-bit integer (the stored result wraps exactly like NumPy's)."""
    dt = np.dtype(dtype)
    if prim.name != "reduce_sum":
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


def _combine_src(L: Lowering, prim, acc_dt, acc: str, x: str, x_dtype) -> str:
    """The reduction's ``combine`` for one element. Float sums and max/min use LLVM operations
    that let loops vectorise: a reassociable add (the sum then differs from a sequential one
    only by rounding, as NumPy's pairwise sum does) and NaN-propagating maximum/minimum."""
    acc_dt = np.dtype(acc_dt)
    if acc_dt.kind == "f" and prim.name in ("reduce_sum", "reduce_max", "reduce_min"):
        L.require("from tracejit.backend.kernels import radd, fmaximum, fminimum")
        if np.dtype(x_dtype) != acc_dt:
            x = f"{dtype_src(acc_dt)}({x})"
        fn = {"reduce_sum": "radd", "reduce_max": "fmaximum", "reduce_min": "fminimum"}[prim.name]
        return f"{fn}({acc}, {x})"
    return prim.combine.format(acc=acc, x=x)


def emit_reduce(L: Lowering, eqn):
    """Reductions from the primitive's ``identity`` and ``combine``.

    When the reduced axes are the trailing ones, each output element gets a scalar
    accumulator; otherwise the input is walked in memory order, combining into an
    accumulator array of the output's shape.
    """
    prim = eqn.prim
    (x,), (out,) = eqn.inputs, eqn.outputs
    axes = tuple(sorted(eqn.params["axes"]))
    xr = L.ref(x)
    shape = x.aval.shape
    dtype = out.aval.dtype
    acc_dt = _acc_dtype(prim, dtype)
    ident = identity_src(prim.identity, acc_dt)
    kept = [d for d in range(len(shape)) if d not in axes]
    L.kernels += 1
    if axes == tuple(range(len(shape) - len(axes), len(shape))):
        res = L.new_array(out)
        acc = L.fresh("acc")
        with L.loops(out.aval.shape, parallel=True) as o:
            L.emit(f"{acc} = {ident}")
            with L.loops([shape[d] for d in axes], "r") as r:
                L.emit(f"{acc} = {_combine_src(L, prim, acc_dt, acc, xr.at(o + r), x.aval.dtype)}")
            L.emit(f"{res.at(o)} = {acc}")
    else:
        if acc_dt == dtype:
            acc_arr = L.new_array(out, "full", ident)
        else:
            acc_arr = L.alloc(L.fresh("acc"), out.aval.shape, acc_dt, "full", ident)
        with L.loops(shape) as i:
            o = [i[d] for d in kept]
            combined = _combine_src(L, prim, acc_dt, acc_arr.at(o), xr.at(i), x.aval.dtype)
            L.emit(f"{acc_arr.at(o)} = {combined}")
        res = acc_arr
        if acc_dt != dtype:
            res = L.new_array(out)
            L.kernels += 1
            with L.loops(out.aval.shape, parallel=True) as o:
                L.emit(f"{res.at(o)} = {acc_arr.at(o)}")
    L.bind(out, res)


def emitter_for(prim):
    """The function that writes code for ``prim``, or None if the backend cannot."""
    from .emitters import EMITTERS
    emitter = EMITTERS.get(prim.name)
    if emitter is not None:
        return emitter
    if prim.kind == "elementwise" and prim.scalar_src is not None:
        return emit_elementwise
    if prim.kind == "reduce" and prim.identity is not None and prim.combine is not None:
        return emit_reduce
    return None


# ----------------------------------------------------------------------------- the program

def _eqn_comment(L: Lowering, eqn) -> str:
    text = L.printer.render_eqn(eqn)
    if eqn.source:
        filename, lineno, line = eqn.source
        text += f"\n  {os.path.basename(str(filename))}:{lineno}" + (f": {line}" if line else "")
    return text


# Numba's compile time grows faster than linearly with the size of one function (its
# data-flow passes and LLVM's run over the whole body), so a program with more than twice this
# many loop nests is split into part functions of about this many, called in order by the main
# function. Splitting has a cost of its own, the arrays passed between parts: measured on this
# project's machine, a 500-kernel chain compiled in 24 s in parts of 32 or 64 (61 s unsplit,
# 34 s in parts of 128), while Adam steps of MLPs with 52, 69 and 105 kernels compiled in 6,
# 10 and 20 s unsplit, against 8, 13 and 22 s in parts of 32.
PART_KERNELS = 64


def lower(graph: Graph, *, fastmath=False, parallel=None, name="fn", write_back=None) -> Lowered:
    """Generate the program for ``graph`` (see the module docstring).

    ``write_back`` maps output positions to input positions: the program writes those outputs
    into the input arrays (a traced function's in-place updates of its arguments) after
    everything else, instead of returning them."""
    write_back = dict(write_back or {})
    L = Lowering(graph, name, parallel)
    input_ids = {}
    for k, var in enumerate(graph.inputs):
        dtype_src(var.aval.dtype)  # reject unsupported dtypes early
        L.bind(var, ArrayRef(L.var_name(var), var.aval.shape, var.aval.dtype, "input"))
        input_ids.setdefault(var.id, k)

    units = []  # (first line, kernels) of each equation's code, for splitting into parts
    for u, eqn in enumerate(graph.eqns):
        emitter = emitter_for(eqn.prim)
        if emitter is None:
            raise BackendError(f"the Numba backend has no emitter for primitive {eqn.prim.name!r}")
        for v in eqn.outputs:
            dtype_src(v.aval.dtype)
        units.append((len(L.lines), L.kernels))
        L.eqn, L.unit = eqn, u
        L.emit("")
        L.comment(_eqn_comment(L, eqn))
        emitter(L, eqn)
    L.eqn, L.unit = None, len(graph.eqns)

    # Outputs: fresh arrays, never an alias of an input or of another output. Outputs that
    # are graph inputs are returned by the runtime as the input object itself.
    units.append((len(L.lines), L.kernels))
    passthrough, returned, roots = {}, [], set()
    started = False
    for pos, atom in enumerate(graph.outputs):
        if isinstance(atom, Var) and atom.id in input_ids:
            passthrough[pos] = input_ids[atom.id]
            continue
        if pos in write_back:
            continue
        ref = L.ref(atom)
        if isinstance(ref, ArrayRef) and ref.root != "input" and ref.root not in roots:
            arr = ref
        else:
            if not started:
                started = True
                L.emit("")
                L.comment("outputs: views, literals and aliases of inputs or other outputs become fresh arrays")
            arr = L.array(atom) if not isinstance(ref, ArrayRef) else ref
            if arr.root == "input" or arr.root in roots:
                name_ = L.fresh("out")
                L.emit(f"{name_} = {arr.name}.copy()")
                L.kernels += 1
                arr = ArrayRef(name_, arr.shape, arr.dtype, name_)
        roots.add(arr.root)
        returned.append(arr.name)
    write_back = {pos: k for pos, k in write_back.items() if pos not in passthrough}
    in_place = {}
    if not any(_reads_inputs(L.ref(graph.outputs[pos])) for pos in write_back):
        for pos, k in write_back.items():
            if _compute_in_place(L, units, graph.outputs[pos], graph.inputs[k]):
                in_place[pos] = k
    for pos, k in write_back.items():
        if pos not in in_place:
            _emit_write_back(L, graph.outputs[pos], graph.inputs[k])
    units.append((len(L.lines), L.kernels))

    plan = plan_memory(L.buffers, [L.lines[a:b] for (a, _), (b, _) in zip(units, units[1:])],
                       _aliases(L), roots)
    workspace = _use_workspace(L, plan)
    output_args = _pass_outputs(L, plan, returned)
    passed = {b.name for b in output_args}
    # The function returns only what it does not write into a passed-in array (copies of views).
    kept = [n for n in returned if n not in passed]
    args = [L.var_name(v) for v in graph.inputs] + [n for n, _ in L.const_values] + workspace + \
        [b.name for b in output_args]
    in_names = graph.input_names or [f"in{k}" for k in range(len(graph.inputs))]
    # A program returns what it does not write into passed-in arrays (copies of views), and an
    # empty tuple when it has no outputs of its own (they are all inputs or written back), as
    # the runtime expects. When every output is passed in, it returns True, after a check of
    # the input shapes that returns False instead: the runtime's shortest call path leaves the
    # check of types to Numba's dispatcher and that of shapes to the program (``Traced``).
    guard = []
    if passed and not kept:
        ret = "return True"
        guard = _shape_guard(L, graph.inputs)
    else:
        ret = "return (" + ", ".join(kept) + ("," if len(kept) == 1 else "") + ")"
    # Only functions with a prange loop are compiled with parallel=True (Numba warns otherwise).
    njit_parallel = L.uses_prange
    # Releasing the GIL costs a call about 50 ns: only calls long enough for other threads to
    # run meanwhile release it.
    nogil = sum(v.aval.size for v in graph.inputs) + sum(
        v.aval.size for eqn in graph.eqns for v in eqn.outputs) >= NOGIL_MIN_ELEMENTS
    if L.uses_prange:
        L.require("from numba import prange")
    header = [
        f"# tracejit: generated program for {name!r}",
        f"# numba.njit(fastmath={bool(fastmath)}, parallel={njit_parallel}, error_model='numpy', nogil={nogil})",
        "import numpy as np",
        *L.imports,
        "",
        "",
        f"def {L.fn_name}({', '.join(args)}):",
    ]
    for v, user_name in zip(graph.inputs, in_names):
        header.append(f"    # input  {L.var_name(v)}:{v.aval.strong()} = {user_name}")
    for n, value in L.const_values:
        dims = ",".join(map(str, value.shape))
        header.append(f"    # const  {n}:{dtype_short(value.dtype)}[{dims}] (constant array)")
    if workspace:
        header.append(f"    # {workspace[0]}: the workspace, {plan.temp_bytes} bytes for the temporaries")
    for k, (start, size) in enumerate(zip(plan.offsets, plan.slots)):
        held = ", ".join(b.name for b in plan.temporaries if plan.slot_of[b.name] == k)
        header.append(f"    #   [{start}:{start + size}] holds {held}")
    chunks = _split(units)
    if len(chunks) == 1:
        body, parts = guard + L.lines + ["", "    " + ret], []
        parallel_functions = [L.fn_name] if L.uses_prange else []
    else:
        body, parts = _parts(L, chunks, args, kept, ret)
        body = guard + body
        parallel_functions = [part for part, (a, b) in zip(parts, chunks)
                              if any("prange(" in line for line in L.lines[a:b])]
    source = "\n".join(header + body) + "\n"
    return Lowered(source=source, fn_name=L.fn_name, n_inputs=len(graph.inputs),
                   in_avals=[v.aval for v in graph.inputs], const_values=[v for _, v in L.const_values],
                   passthrough=passthrough, n_returned=len(returned), kernels=L.kernels, fused_ops=L.fused_ops,
                   workspace_bytes=plan.temp_bytes, write_back=write_back, memory=plan,
                   output_args=[(b.shape, b.dtype) for b in output_args],
                   output_positions=[returned.index(b.name) for b in output_args],
                   flags={"fastmath": bool(fastmath), "parallel": njit_parallel, "nogil": nogil}, parts=parts,
                   parallel_functions=parallel_functions, locations=L.locations)


def _emit_write_back(L: Lowering, atom, target_var):
    """``target[...] = value`` for an argument the traced function updates in place. It runs
    after every other read of the inputs; a value that reads an input itself (``x[...] =
    x[::-1]``, or another argument that may share the same memory) is copied out first."""
    ref = L.ref(atom)
    L.emit("")
    L.comment(f"in-place update of the argument {L.var_name(target_var)}")
    if _reads_inputs(ref):
        ref = L.copy_into(L.fresh("tmp"), ref)
    target = L.ref(target_var)
    L.kernels += 1
    with L.loops(target.shape, parallel=True) as idx:
        L.emit(f"{target.at(idx)} = {ref.at(idx)}")


def _compute_in_place(L: Lowering, units, atom, target_var) -> bool:
    """Let the kernel that computes an argument's new value write it into the argument itself
    (``W -= lr * g`` then makes one pass over ``W``, not two), when the generated code shows
    that this cannot change a result: the kernel stores the value once, at its loop index,
    reading the argument only at that same index earlier in the same loop body; and nothing
    after the kernel reads the argument or the value. Returns whether it did."""
    ref = L.ref(atom)
    buffer = next((b for b in L.buffers if isinstance(ref, ArrayRef) and b.name == ref.name), None)
    target = L.ref(target_var)
    if buffer is None or buffer.init != "empty" or buffer.unit >= len(units) - 1 or \
            (buffer.shape, buffer.dtype) != (target.shape, target.dtype):
        return False
    start, end = units[buffer.unit][0], units[buffer.unit + 1][0]
    names = {buffer.name, target.name} | _aliases(L).get(buffer.name, set())
    mentions = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    if any(mentions.search(line.split("#", 1)[0]) for line in L.lines[end:]):
        return False
    body = [line.split("#", 1)[0] for line in L.lines[start:end]]
    # A kernel may read and write through flat views (``a_c0 = reshaped(a, (12,))``): each
    # name stands for (array, view shape).
    views = {buffer.name: (buffer.name, None), target.name: (target.name, None)}
    for i, line in enumerate(body):
        m = re.match(r"\s*(\w+) = reshaped\((\w+), (\(.*\))\)\s*$", line)
        if m and m.group(2) in views:
            views[m.group(1)] = (views[m.group(2)][0], m.group(3))
            body[i] = ""
    word = re.compile(r"\b(" + "|".join(map(re.escape, views)) + r")\b(?:\[([^\]]*)\])?")
    stores = [(i, views[m.group(1)][1], m.group(2)) for i, line in enumerate(body)
              for m in [word.match(line.lstrip())] if m and m.group(2) is not None
              and views[m.group(1)][0] == buffer.name and line.lstrip()[m.end():].startswith(" = ")]
    if len(stores) != 1:
        return False
    at, shape, index = stores[0]
    loop_start = max((i for i in range(at) if body[i].lstrip().startswith("for ")), default=-1)
    for i, line in enumerate(body):
        for m in word.finditer(line):
            if views[m.group(1)][0] == target.name and \
                    ((views[m.group(1)][1], m.group(2)) != (shape, index) or not loop_start < i < at):
                return False
    L.lines[buffer.line] = L.lines[buffer.line].split("=", 1)[0] + f"= {target.name}  # computed in place"
    L.buffers.remove(buffer)
    return True


def _reads_inputs(ref: Ref) -> bool:
    while isinstance(ref, ViewRef):
        ref = ref.base
    return isinstance(ref, ArrayRef) and ref.root == "input"


def _aliases(L: Lowering) -> dict:
    """``{array: other names of its memory}``: the reshapes bound to graph values."""
    aliases = {}
    for ref in L.refs.values():
        if isinstance(ref, ArrayRef) and ref.root not in ("input", ref.name):
            aliases.setdefault(ref.root, set()).add(ref.name)
    return aliases


# Outputs at least this large are recycled by the runtime once the caller has dropped them: a
# fresh array of this size costs more in page faults (one per 4 KB touched) than the runtime's
# bookkeeping; smaller ones are new arrays on every call.
OUTPUT_ARG_MIN_BYTES = 1 << 18


def _pass_outputs(L: Lowering, plan, returned) -> list:
    """Turn the allocation of each output the program returns under its own name into a
    parameter; the Buffers concerned. The runtime passes the arrays in (new or recycled, see
    ``compiler.Outputs``), and the function returns nothing for them: handing an array back
    from compiled code costs more than making it in NumPy and passing it in. In the order of
    ``returned``."""
    passed = sorted((b for b in plan.outputs if b.name in returned), key=lambda b: returned.index(b.name))
    for b in passed:
        recycled = " (recycled once the caller has dropped it)" if b.nbytes >= OUTPUT_ARG_MIN_BYTES else ""
        _rewrite_allocation(L, b, f"# {b.name}: an output array passed in{recycled}")
    return passed


def _use_workspace(L: Lowering, plan) -> list:
    """Rewrite each temporary's allocation into an array over its workspace slot; the name of
    the workspace argument (none without temporaries)."""
    if not plan.temporaries:
        return []
    ws = L.unique("ws")
    L.require("from tracejit.backend.kernels import workspace_array")
    offsets = plan.offsets
    for b in plan.temporaries:
        start = offsets[plan.slot_of[b.name]]
        _rewrite_allocation(L, b, f"{b.name} = workspace_array({ws}, {start}, {shape_src(b.shape)}, "
                                  f"{dtype_src(b.dtype)})")
    return [ws]


def _allocation_src(L: Lowering, b, first_line: str) -> list[str]:
    """``first_line``, which makes the array of Buffer ``b``, followed, for an array that must
    start at zero or a fill value, by loops setting it (new and reused memory hold old values)."""
    lines = [first_line]
    if b.init != "empty":
        index = [L.fresh("f") for _ in b.shape]
        lines += [" " * 4 * d + f"for {i} in range({n}):" for d, (i, n) in enumerate(zip(index, b.shape))]
        value = b.fill if b.init == "full" else literal_src(0, b.dtype)
        lines.append(" " * 4 * len(index) + f"{b.name}[{_index_src(index)}] = {value}")
    return lines


def _rewrite_allocation(L: Lowering, b, first_line: str):
    """Replace ``b``'s allocation (an entry of ``L.lines``) by ``first_line`` at the same
    indentation, with its zero or fill loops."""
    line = L.lines[b.line]
    indent = line[:len(line) - len(line.lstrip())]
    L.lines[b.line] = "\n".join(indent + text for text in _allocation_src(L, b, first_line))


def _split(units):
    """Group consecutive equations into chunks of about ``PART_KERNELS`` loop nests (one chunk
    for at most twice that many): a list of (first line, end line) ranges of ``Lowering.lines``."""
    if units[-1][1] - units[0][1] <= 2 * PART_KERNELS:
        return [(units[0][0], units[-1][0])]
    chunks, first, first_kernels = [], units[0][0], units[0][1]
    for (line, kernels), (end, end_kernels) in zip(units, units[1:]):
        if end_kernels - first_kernels > PART_KERNELS and line > first:
            chunks.append((first, line))
            first, first_kernels = line, kernels
    chunks.append((first, units[-1][0]))
    return chunks


def _names(lines):
    """(names assigned, names read but not assigned) by a block of generated statements.
    Names a block both assigns and reads (loop indices, accumulators) are its own: every
    generated block assigns such a name before reading it."""
    tree = ast.parse(textwrap.dedent("\n".join(lines)) or "pass")
    stored, loaded = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                stored.append(node.id)
            else:
                loaded.add(node.id)
    return list(dict.fromkeys(stored)), loaded - set(stored)


def _shape_guard(L: Lowering, inputs) -> list:
    """Lines returning False from the program when an input's shape is not the traced one."""
    checks = [f"shape_is({L.var_name(v)}, {tuple(v.aval.shape)})" for v in inputs if v.aval.shape]
    if not checks:
        return []
    L.require("from tracejit.backend.kernels import shape_is")
    return ["    # called with other shapes: False tells the caller to look for the program compiled for them",
            "    if not (" + "\n            and ".join(checks) + "):",
            "        return False"]


def _parts(L: Lowering, chunks, args, returned, ret):
    """The main function calls one part function per chunk; each part takes the arrays it
    reads that earlier parts (or the arguments) made, and returns those later code reads."""
    blocks = [L.lines[a:b] for a, b in chunks]
    info = [_names(block) for block in blocks]
    part_names = [L.unique(f"{L.fn_name}_part{k + 1}") for k in range(len(blocks))]
    available = list(args)
    params, results = [], []
    for k, (stored, loaded) in enumerate(info):
        params.append([n for n in available if n in loaded])
        later = set(returned).union(*(info[j][1] for j in range(k + 1, len(info))))
        results.append([n for n in stored if n in later and n not in available])
        available += results[-1]
    body = []
    for part, ps, rs in zip(part_names, params, results):
        call = f"{part}({', '.join(ps)})"
        body.append(f"    {', '.join(rs)}{',' if len(rs) == 1 else ''} = {call}" if rs else f"    {call}")
    body += ["    " + ret]
    for k, (part, ps, rs, block) in enumerate(zip(part_names, params, results, blocks)):
        body += ["", "", f"def {part}({', '.join(ps)}):",
                 f"    # part {k + 1} of {len(blocks)} of {L.fn_name}"] + block
        body += ["", f"    return ({', '.join(rs)}{',' if len(rs) == 1 else ''})"]
    return body, part_names


def generate_source(graph: Graph, *, fastmath=False, parallel=None, name="fn", write_back=None) -> str:
    """The generated Numba source for ``graph`` (what ``compile_graph`` compiles)."""
    return lower(graph, fastmath=fastmath, parallel=parallel, name=name, write_back=write_back).source
