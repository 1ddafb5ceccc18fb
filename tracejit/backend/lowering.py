"""The state of one lowering, and how generated code names and reads values.

Layer: backend. ``Lowering`` is what every emitter writes through: ``emit``, ``loops``,
``block``, ``parallel_loop`` for text; ``new_array``/``alloc`` for the arrays the program makes
(recorded as ``memory.Buffer``s for memory planning); ``ref``/``array`` to read a graph value
and ``bind`` to give an equation's output its ``Ref``; ``require`` for an import line the
program needs; ``where`` for the user's line in a raised message; ``uses_prange``,
``fused_ops`` and ``kernels`` for the bookkeeping. A value is read through a ``Ref``: an
``ArrayRef`` (an array variable), a ``ScalarRef`` (a literal) or a ``ViewRef`` (an index map
over another ``Ref``: broadcasts, transposes and slices copy nothing).

In: a ``Graph``; out (through ``codegen.lower``): a ``Lowered``. This module also spells
dtypes, literals and shapes as generated code writes them.
"""
from __future__ import annotations

import builtins
import contextlib
import keyword
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..core import Const, Graph, GraphPrinter, Var
from .memory import Buffer

__all__ = ["Lowering", "Lowered", "Step", "Allocation", "BackendError", "Ref", "ArrayRef", "ScalarRef", "ViewRef", "dtype_src",
           "literal_src", "identity_src", "shape_src", "affine", "eqn_comment", "allocation_src",
           "SUPPORTED_KINDS", "PARALLEL_BLOCK", "RESERVED_NAMES"]

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
    if identity == "lowest":  # below every value in NumPy's order (complex: lexicographic)
        value = False if dt == np.bool_ else (-np.inf if dt.kind == "f" else complex(-np.inf, -np.inf)
                                              if dt.kind == "c" else np.iinfo(dt).min)
    elif identity == "highest":
        value = True if dt == np.bool_ else (np.inf if dt.kind == "f" else complex(np.inf, np.inf)
                                             if dt.kind == "c" else np.iinfo(dt).max)
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


# ----------------------------------------------------------------------------- records

@dataclass
class Step:
    """What one step of the program does with its arrays, recorded as the emitters write it:
    a step is one equation's code, and a last one makes the outputs and writes the arguments
    updated in place. Memory planning (liveness), part splitting and the in-place analysis
    read these records, never the generated text.

    ``reads``: names of arrays the step's code reads or writes into (arguments, constants,
    arrays of this or earlier steps, through every view of them), in first-use order;
    ``defines``: names the step gives arrays that later steps may read (its allocations, the
    reshapes and slices it binds), in the order its code assigns them; ``allocates``: its
    ``Buffer``s; ``elementwise``: for a buffer whose every element the step stores once, in a
    loop over the buffer's shape, the names of the arrays it reads only at that element, earlier
    in the same iteration (see ``Lowering.store_elementwise``)."""

    first_line: int                 # index in ``Lowering.lines`` of its first line
    kernels: int                    # ``Lowering.kernels`` when it started
    reads: dict = field(default_factory=dict)      # name -> None (an ordered set)
    defines: list = field(default_factory=list)
    allocates: list = field(default_factory=list)
    elementwise: dict = field(default_factory=dict)  # buffer name -> frozenset of names
    parallel: bool = False          # it has a ``prange`` loop
    code: str = ""                  # its code in the program, once assembled


class Allocation:
    """The place in ``Lowering.lines`` of the statements that make one ``Buffer``'s array. What
    they are depends on the memory plan, so they are written when the program is assembled
    (``codegen``): a new array, a view of a workspace slot, an output passed in, or the
    argument the array is computed in."""

    def __init__(self, buffer: Buffer, depth: int, index_names: list):
        self.buffer, self.depth = buffer, depth
        self.index_names = index_names  # of its zero or fill loops
        self.first_line = f"{buffer.name} = new_array({shape_src(buffer.shape)}, {dtype_src(buffer.dtype)})"

    def lines(self) -> str:
        """The statements, indented, as one entry of the program's lines."""
        return "\n".join("    " * self.depth + line
                         for text in allocation_src(self.buffer, self.first_line, iter(self.index_names))
                         for line in text.split("\n"))


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
    steps: list = field(default_factory=list)  # the ``Step`` records of the program's code


# Elements of work in one block of a parallel loop (``Lowering.parallel_loop``): 64 blocks for
# 1M elements, each ~16 us of the elementwise chain, so claiming one costs nothing in comparison.
PARALLEL_BLOCK = 1 << 14


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
        self.uses_objmode = False     # set by an emitter that writes a ``numba.objmode`` block
        self.uses_runtime = False     # set by an emitter that calls a Numba function that makes arrays
        self.imports: list[str] = []  # extra import lines the program needs (emitters add them)
        self.fused_ops = 0            # equations folded into fused kernels (by their emitter)
        self.printer = GraphPrinter(graph)
        self.printer.render()  # assign SSA names in the same order as str(graph)
        self.fn_name = _py_name(name, default="fn")
        self.lines: list = []  # source lines, and an ``Allocation`` for each array made
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
        self.allocations: dict[str, Allocation] = {}  # buffer name -> its placeholder in ``lines``
        self.steps: list[Step] = []    # see ``Step``; ``begin_step`` opens one
        self.defined: set[str] = set()  # array names steps have defined
        self.arguments: set[str] = set()  # names of the inputs and constant arrays
        self.loop_bodies = 0           # loop nests opened so far: a loop body's number, for analyses
        self.locations: dict[str, str] = {}  # see ``where``
        self.pack_places: dict[int, tuple] = {}  # var id -> (pack key, offset, length, dtype): see ``place_in_pack``
        self.packs: dict = {}                    # pack key -> the ArrayRef of its 1-d buffer, once allocated
        self.packed: dict[int, ArrayRef] = {}    # var id -> the view of a pack its producer wrote it into

    # -- records
    def begin_step(self, eqn, unit: int):
        """Start the code of equation ``eqn`` (None for the outputs), the ``unit``-th step."""
        self.eqn, self.unit = eqn, unit
        self.steps.append(Step(len(self.lines), self.kernels))

    def reads(self, ref: Ref):
        """Record that the current step's code reads (or writes into) ``ref``'s array."""
        while isinstance(ref, ViewRef):
            ref = ref.base
        if isinstance(ref, ArrayRef) and self.steps:
            self.steps[-1].reads.setdefault(ref.name, None)

    def define(self, name: str):
        """Record that the current step assigns the array variable ``name`` (unless it is an
        argument, or an earlier step assigned it)."""
        if name not in self.defined and name not in self.arguments and self.steps:
            self.defined.add(name)
            self.steps[-1].defines.append(name)

    def store_elementwise(self, out: ArrayRef, same_element, other=()):
        """Record that the current step stores each element of ``out`` (which it allocated) once,
        in a loop over ``out``'s shape, having read the refs of ``same_element`` only at that
        element, earlier in the same iteration, and the refs of ``other`` anyhow: computing
        ``out`` into one of the arrays only read at the same element instead cannot change a
        result (``codegen``'s in-place updates). Views and arrays of another shape count as
        read anyhow."""
        same, elsewhere = set(), set()
        for ref in same_element:
            if isinstance(ref, ArrayRef) and tuple(ref.shape) == tuple(out.shape):
                same.add(ref.name)
            else:
                elsewhere.add(ref)
        names = set()
        for ref in [*elsewhere, *other]:
            while isinstance(ref, ViewRef):
                ref = ref.base
            if isinstance(ref, ArrayRef):
                names.add(ref.name)
        self.steps[-1].elementwise[out.name] = frozenset(same - names)

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
        self.loop_bodies += 1
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
        if self.steps:
            self.steps[-1].parallel = True
        self.require("from tracejit.backend.intrinsics import claim_block")
        self.require("from tracejit.backend.intrinsics import new_array")
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
        if isinstance(ref, ArrayRef) and self.steps:  # (inputs are bound before the first step)
            self.define(ref.name)

    def ref(self, atom) -> Ref:
        """How the code reads ``atom`` (recorded as a read of the current step)."""
        ref = self.lookup(atom)
        self.reads(ref)
        return ref

    def lookup(self, atom) -> Ref:
        """How code would read ``atom``, for an analysis: no read is recorded."""
        if isinstance(atom, Const):
            value = np.asarray(atom.value)
            dtype = atom.aval.dtype
            if value.ndim == 0:
                return ScalarRef(literal_src(value, dtype), dtype)
            ref = self.const_args.get(id(atom))
            if ref is None:
                name = self.fresh("const")
                self.arguments.add(name)
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
        source text ``fill``; for a var placed in a pack (``place_in_pack``), a view of its place
        there, which the producer fills as it would a new array."""
        name = self.var_name(var)
        place = self.pack_places.get(var.id)
        if place is not None and init == "empty" and self.depth == 1:
            key, offset, length, dtype = place
            buffer = self.pack(key, length, dtype)
            self.reads(buffer)
            self.emit(f"{name} = {self.reshape_src(f'{buffer.name}[{offset}:{offset + var.aval.size}]', var.aval.shape)}")
            self.define(name)
            self.packed[var.id] = ArrayRef(name, var.aval.shape, var.aval.dtype, buffer.root)
            return self.packed[var.id]
        return self.alloc(name, var.aval.shape, var.aval.dtype, init, fill)

    def place_in_pack(self, var: Var, key, offset: int, length: int, dtype):
        """Let the equation that makes ``var`` write it into elements ``offset:`` of the 1-d
        array ``key`` of ``length`` elements of ``dtype`` (allocated by the first var placed
        there), instead of into an array of its own: an equation that reads its operands packed
        together (a collective) then finds them there. Where the producer does not allocate
        ``var`` with ``new_array`` at the top level, ``packed`` does not name it and the reader
        copies it in."""
        self.pack_places[var.id] = (key, offset, length, np.dtype(dtype))

    def pack(self, key, length: int, dtype) -> ArrayRef:
        """The 1-d array ``key`` of ``length`` elements, allocated here the first time."""
        if key not in self.packs:
            self.packs[key] = self.alloc(self.fresh("packed"), (length,), dtype)
        return self.packs[key]

    def alloc(self, name, shape, dtype, init="empty", fill=None) -> ArrayRef:
        """A new array ``name`` (and, unless ``init`` is "empty", loops that set it). Its
        statements are an ``Allocation`` placeholder in ``lines``, written when the program is
        assembled (``codegen``): a new array for an output, a view of a workspace slot for a
        temporary."""
        buffer = Buffer(name, tuple(shape), np.dtype(dtype), init, fill, len(self.lines), self.unit)
        self.buffers.append(buffer)
        self.require("from tracejit.backend.intrinsics import new_array")
        index_names = [self.fresh("f") for _ in buffer.shape] if init != "empty" else []
        allocation = Allocation(buffer, self.depth, index_names)
        self.allocations[name] = allocation
        self.lines.append(allocation)
        if self.steps:
            self.steps[-1].allocates.append(buffer)
        self.define(name)
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
        self.reads(out)
        return out

    def reshape_src(self, array: str, shape) -> str:
        """Source of the C-contiguous array ``array`` viewed with ``shape`` (``intrinsics.reshaped``)."""
        self.require("from tracejit.backend.intrinsics import reshaped")
        return f"reshaped({array}, {shape_src(shape)})"

    def copy_into(self, name, ref: Ref) -> ArrayRef:
        """A fresh array ``name`` holding ``ref``'s elements (one loop nest)."""
        out = self.alloc(name, ref.shape, ref.dtype)
        self.kernels += 1
        with self.loops(ref.shape, parallel=True) as idx:
            self.emit(f"{out.at(idx)} = {ref.at(idx)}")
        self.store_elementwise(out, [ref])
        return out


# Module-level names generated code may use besides builtins; values are never named so.
RESERVED_NAMES = {"np", "numba", "prange", "vm", "radd", "rmuladd", "fmaximum", "fminimum", "fmax_nonnan", "fmin_nonnan",
                  "gemm", "new_array",
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


def eqn_comment(L: Lowering, eqn) -> str:
    """An equation's SSA text and, when known, the user's line that made it."""
    text = L.printer.render_eqn(eqn)
    if eqn.source:
        filename, lineno, line = eqn.source
        text += f"\n  {os.path.basename(str(filename))}:{lineno}" + (f": {line}" if line else "")
    return text


def allocation_src(b: Buffer, first_line: str, index_names) -> list[str]:
    """``first_line``, which makes the array of Buffer ``b``, followed, for an array that must
    start at zero or a fill value, by loops setting it (new and reused memory hold old values),
    whose indices ``index_names`` names."""
    lines = [first_line]
    if b.init != "empty":
        index = [next(index_names) for _ in b.shape]
        lines += [" " * 4 * d + f"for {i} in range({n}):" for d, (i, n) in enumerate(zip(index, b.shape))]
        value = b.fill if b.init == "full" else literal_src(0, b.dtype)
        lines.append(" " * 4 * len(index) + f"{b.name}[{_index_src(index)}] = {value}")
    return lines
