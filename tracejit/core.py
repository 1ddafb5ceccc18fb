"""The IR: abstract values, variables, equations and graphs.

This is the bottom layer. Everything above it -- the tracer that records graphs, the passes
that rewrite them, the interpreter and the Numba backend that run them -- speaks in these
types and nothing else:

- ``Aval(shape, dtype, weak)``: what is known about a value at trace time.
- ``Var``: a value produced by one equation (or a graph input); ``Const``: a literal.
- ``Eqn(prim, inputs, outputs, params)``: one primitive applied once.
- ``Graph(inputs, eqns, outputs)``: single-assignment, topologically ordered.

``str(graph)`` is the SSA text users see in ``Traced.graph(...)``; ``verify(graph)`` checks
the invariants every pass must keep.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Aval", "Var", "Const", "Eqn", "Graph", "verify", "VerifyError", "dtype_short"]

_SHORT_DTYPE = {
    "bool": "bool", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "float16": "f16", "float32": "f32", "float64": "f64",
    "complex64": "c64", "complex128": "c128",
}


def dtype_short(dtype) -> str:
    """``float32`` -> ``f32``: the spelling used in graph text."""
    name = np.dtype(dtype).name
    return _SHORT_DTYPE.get(name, name)


@dataclass(frozen=True)
class Aval:
    """Abstract value: shape and dtype, plus NumPy 2's "weak" flag.

    ``weak`` marks values that came from Python scalars (NEP 50): in ``x_f32 * lr`` with a
    Python float ``lr`` the result stays float32. Weak values keep their Python kind's default
    dtype (int64, float64, complex128, bool) until they meet a strongly typed operand.
    """

    shape: tuple
    dtype: np.dtype
    weak: bool = False

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @classmethod
    def of(cls, shape: tuple, dtype: np.dtype, weak: bool = False) -> "Aval":
        """An aval from an array's own ``shape`` (a tuple of ints) and ``dtype`` (an
        ``np.dtype``), without the conversions of the constructor: eager autodiff makes one
        for most values it sees, so this is on its per-operation path."""
        aval = object.__new__(cls)
        aval.__dict__.update(shape=shape, dtype=dtype, weak=weak)
        return aval

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def strong(self) -> "Aval":
        return Aval(self.shape, self.dtype, False) if self.weak else self

    def __str__(self):
        dims = ",".join(str(d) for d in self.shape)
        return f"{dtype_short(self.dtype)}[{dims}]" + ("~" if self.weak else "")


_var_ids = itertools.count()



def aval_of(value) -> Aval:
    """A tracer's own aval, or the shape and dtype of an array or number."""
    if value.__class__ is not np.ndarray:
        aval = getattr(value, "aval", None)
        if isinstance(aval, Aval):
            return aval
        value = np.asarray(value)
    return Aval.of(value.shape, value.dtype)

class Var:
    """A value defined exactly once in a graph. Identity is object identity."""

    __slots__ = ("aval", "id")

    def __init__(self, aval: Aval):
        self.aval = aval
        self.id = next(_var_ids)

    def __repr__(self):
        return f"Var({self.id}: {self.aval})"


class Const:
    """A literal value inlined in the graph (Python scalars and small NumPy constants)."""

    __slots__ = ("value", "aval")

    def __init__(self, value, aval: Aval | None = None):
        value = np.asarray(value)
        self.value = value
        self.aval = aval if aval is not None else Aval(value.shape, value.dtype)

    def __repr__(self):
        return f"Const({format_const(self.value)}: {self.aval})"


def format_const(value: np.ndarray) -> str:
    if value.ndim == 0:
        v = value.item()
        return repr(v)
    if value.size <= 4:
        return np.array2string(value, separator=",").replace("\n", "")
    return f"<{dtype_short(value.dtype)}{list(value.shape)} array>"


@dataclass
class Eqn:
    """``outputs = prim(*inputs, **params)``. ``params`` are static (hashable) settings.

    ``source`` is the user's (file, line, text) that produced the equation, kept for errors
    and for the comments in generated code.
    """

    prim: Any  # tracejit.primitives.Primitive
    inputs: list
    outputs: list
    params: dict = field(default_factory=dict)
    source: tuple | None = None


@dataclass
class Graph:
    """A traced program: ``outputs = f(*inputs)`` as a list of equations in order."""

    inputs: list
    eqns: list
    outputs: list
    # Names for inputs (e.g. "params['W']") used in text and error messages.
    input_names: list | None = None

    def __str__(self):
        return GraphPrinter(self).render()

    def __repr__(self):
        return f"<Graph: {len(self.inputs)} inputs, {len(self.eqns)} equations, {len(self.outputs)} outputs>"

    def to_dot(self) -> str:
        """The graph in Graphviz's DOT language (render with ``dot -Tsvg``; Graphviz itself is
        not needed to produce the text)."""
        printer = GraphPrinter(self)
        lines = ["digraph tracejit {", '  node [fontname="monospace", fontsize=10];']
        producer: dict[int, str] = {}
        for i, v in enumerate(self.inputs):
            label = printer.name(v)
            if self.input_names and i < len(self.input_names):
                label = f"{label} = {self.input_names[i]}"
            lines.append(f'  in{i} [shape=ellipse, label="{_dot_escape(label)}\\n{v.aval}"];')
            producer[v.id] = f"in{i}"
        for k, eqn in enumerate(self.eqns):
            lines.append(f'  e{k} [shape=box, label="{_dot_escape(printer.render_eqn(eqn))}"];')
            for j, a in enumerate(eqn.inputs):
                if isinstance(a, Const):
                    lines.append(f'  c{k}_{j} [shape=plaintext, label="{_dot_escape(format_const(a.value))}"];')
                    lines.append(f"  c{k}_{j} -> e{k};")
                else:
                    lines.append(f"  {producer[a.id]} -> e{k};")
            for o in eqn.outputs:
                producer[o.id] = f"e{k}"
        for i, v in enumerate(self.outputs):
            lines.append(f'  out{i} [shape=ellipse, style=bold, label="out {i}\\n{v.aval}"];')
            lines.append(f"  {producer[v.id]} -> out{i};")
        lines.append("}")
        return "\n".join(lines)

    def count(self, prim_name: str) -> int:
        """How many equations apply the primitive called ``prim_name`` (sub-graphs included)."""
        n = 0
        for eqn in self.eqns:
            n += eqn.prim.name == prim_name
            sub = eqn.params.get("graph")
            if isinstance(sub, Graph):
                n += sub.count(prim_name)
        return n


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l")


def _var_name(n: int) -> str:
    # a, b, ..., z, ba, bb, ... as in jaxprs: short and stable within one printout.
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = letters[n % 26] + s
        n //= 26
        if n == 0:
            return s


def format_param(value) -> str:
    if isinstance(value, Graph):
        return "{...}"
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, tuple):
        return "(" + ",".join(format_param(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, slice):
        return f"{'' if value.start is None else value.start}:{'' if value.stop is None else value.stop}" + (
            "" if value.step in (None, 1) else f":{value.step}")
    return repr(value)


class GraphPrinter:
    """Renders a graph as SSA text, one equation per line, names assigned in order of use."""

    def __init__(self, graph: Graph, indent: str = "  "):
        self.graph = graph
        self.indent = indent
        self.names: dict[int, str] = {}

    def name(self, atom) -> str:
        if isinstance(atom, Const):
            return format_const(atom.value)
        if atom.id not in self.names:
            self.names[atom.id] = _var_name(len(self.names))
        return self.names[atom.id]

    def typed(self, var) -> str:
        return f"{self.name(var)}:{var.aval}"

    def render(self) -> str:
        g = self.graph
        ins = " ".join(self.typed(v) for v in g.inputs)
        lines = [f"{{ lambda {ins} ."]
        for eqn in g.eqns:
            lines.append(self.indent + self.render_eqn(eqn))
        outs = ", ".join(self.name(v) for v in g.outputs)
        lines.append(f"  in ({outs}) }}")
        return "\n".join(lines)

    def render_eqn(self, eqn: Eqn) -> str:
        outs = " ".join(self.typed(v) for v in eqn.outputs)
        params = {k: v for k, v in eqn.params.items() if k != "graph"}
        p = ""
        if params:
            p = "[" + " ".join(f"{k}={format_param(v)}" for k, v in params.items()) + "]"
        args = " ".join(self.name(a) for a in eqn.inputs)
        line = f"{outs} = {eqn.prim.name}{p} {args}".rstrip()
        sub = eqn.params.get("graph")
        if isinstance(sub, Graph):
            inner = GraphPrinter(sub, self.indent + "    ")
            inner.names = self.names  # share names so the region reads in context
            body = "\n".join(self.indent + "    " + inner.render_eqn(e) for e in sub.eqns)
            line += " {\n" + body + "\n" + self.indent + "  }"
        return line


class VerifyError(AssertionError):
    """A graph broke an IR invariant (a bug in tracejit, not in user code)."""


def verify(graph: Graph) -> Graph:
    """Check single assignment, define-before-use and that every equation's output avals
    agree with its primitive's shape rule. Returns the graph so it can be chained."""
    defined: set[int] = set()

    def define(var, where):
        if not isinstance(var, Var):
            raise VerifyError(f"{where}: output {var!r} is not a Var")
        if var.id in defined:
            raise VerifyError(f"{where}: {var!r} assigned twice")
        defined.add(var.id)

    def use(atom, where):
        if isinstance(atom, Const):
            return
        if not isinstance(atom, Var):
            raise VerifyError(f"{where}: input {atom!r} is neither Var nor Const")
        if atom.id not in defined:
            raise VerifyError(f"{where}: {atom!r} used before it is defined")

    for v in graph.inputs:
        define(v, "graph inputs")
    for i, eqn in enumerate(graph.eqns):
        where = f"equation {i} ({eqn.prim.name})"
        for a in eqn.inputs:
            use(a, where)
        expected = eqn.prim.abstract_eval(*[a.aval for a in eqn.inputs], **eqn.params)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        if len(expected) != len(eqn.outputs):
            raise VerifyError(f"{where}: {len(eqn.outputs)} outputs, shape rule gives {len(expected)}")
        for out, exp in zip(eqn.outputs, expected):
            if (out.aval.shape, out.aval.dtype) != (exp.shape, exp.dtype):
                raise VerifyError(f"{where}: output is {out.aval}, shape rule gives {exp}")
        for out in eqn.outputs:
            define(out, where)
    for v in graph.outputs:
        use(v, "graph outputs")
    return graph
