"""Recording a Python function into a ``Graph``.

Layer: front end -> IR. ``make_graph(fn, example_leaves, ...)`` runs ``fn`` on
``GraphTracer`` stand-ins; every primitive bound on them becomes an equation. Values the
function reads that are not its arguments are handled here too:

- Python scalars and the front end's own literals become ``Const``;
- NumPy arrays from closures, globals or computed at trace time are *captured by reference*
  as implicit inputs, so in-place changes to them are seen on later calls (as in eager mode);
- tracers of an enclosing transformation are captured the same way.

Arguments the function updated in place (``W -= lr * g``) become extra outputs that the
runtime writes back into the caller's arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .core import Aval, Const, Eqn, Graph, Var
from .errors import user_frame
from .numpy import _Literal
from .outside import Watched, plain
from .primitives import Trace, Tracer, abstract_eval_list, new_trace
from .tracer import _TracerArrayMethods

__all__ = ["GraphTracer", "GraphTrace", "make_graph", "TracedProgram"]


class GraphTracer(_TracerArrayMethods, Tracer):
    """A value in a graph under construction: an ``atom`` (``Var`` or ``Const``) and its aval."""

    __slots__ = ("atom", "view_of")

    def __init__(self, trace, atom, aval=None):
        self._trace = trace
        self.atom = atom
        self.aval = aval if aval is not None else atom.aval
        self.view_of = None
        self.ndarray0d = False  # set, not left unset: reading an unset slot goes through __getattr__

    def become(self, other: "GraphTracer"):
        """In-place update: this tracer now stands for ``other``'s value."""
        self.atom, self.aval = other.atom, other.aval


class GraphTrace(Trace):
    """Collects equations. Lower-level values are captured as implicit inputs (see module doc)."""

    records_constants = True

    def __init__(self, level):
        super().__init__(level)
        self.eqns: list[Eqn] = []
        self.captured: dict[int, tuple[object, Var]] = {}  # id(value) -> (value, input var)
        self.int_ranges: list = []  # (atom, dtype): a Python int that must fit dtype (see TracedProgram)

    def new_input(self, aval: Aval) -> GraphTracer:
        return GraphTracer(self, Var(aval))

    def lift(self, value) -> GraphTracer:
        if isinstance(value, np.generic) or isinstance(value, _Literal):
            return GraphTracer(self, Const(np.asarray(value).view(np.ndarray)))
        if isinstance(value, (bool, int, float, complex)):
            return GraphTracer(self, Const(np.asarray(value), Aval((), np.asarray(value).dtype, weak=True)))
        if isinstance(value, Watched):  # a global or closure array, watched while tracing
            value = plain(value)
        if isinstance(value, (np.ndarray, Tracer)):
            key = id(value)
            if key not in self.captured:
                if isinstance(value, np.ndarray) and value.dtype == object:
                    raise TypeError("object arrays are not supported by tracejit")
                aval = value.aval if isinstance(value, Tracer) else Aval(value.shape, value.dtype)
                self.captured[key] = (value, Var(aval))
            return GraphTracer(self, self.captured[key][1])
        raise TypeError(f"tracejit cannot use a value of type {type(value).__name__} in a traced computation")

    def process(self, prim, tracers, params):
        avals = [t.aval for t in tracers]
        out_avals = abstract_eval_list(prim, avals, params)
        outs = [Var(a) for a in out_avals]
        self.eqns.append(Eqn(prim, [t.atom for t in tracers], outs, params, source=user_frame()))
        return [GraphTracer(self, v) for v in outs]


@dataclass
class TracedProgram:
    """What tracing one call produced: the graph and how its inputs and outputs map to the call.

    ``graph.inputs`` are the flat argument leaves, then the captured values (``captured``).
    ``graph.outputs`` are the flat results, then the new values of the arguments updated in
    place (their leaf positions in ``mutated``).
    """

    graph: Graph
    out_tree: object
    n_results: int
    captured: list = field(default_factory=list)
    mutated: list = field(default_factory=list)
    # positions of 0-d results that are returned as 0-d arrays, as NumPy would (others: scalars)
    ndarray_outputs: frozenset = frozenset()
    # (leaf position, dtype): a Python int argument combined with values of that integer dtype,
    # which NumPy 2 refuses (OverflowError) when the dtype cannot hold it; calls check them
    int_ranges: tuple = ()
    # positions of results that the function returned as Python numbers (constants of the trace)
    python_outputs: frozenset = frozenset()


def make_graph(fn, in_avals, unflatten_args, flatten_out, input_names=None) -> TracedProgram:
    """Trace ``fn`` on tracers with avals ``in_avals``.

    ``unflatten_args(leaves) -> (args, kwargs)`` rebuilds the call; ``flatten_out(result) ->
    (leaves, tree)`` flattens the result. Non-tracer result leaves become constant outputs.
    """
    with new_trace(GraphTrace) as trace:
        in_tracers = [trace.new_input(a) for a in in_avals]
        in_vars = [t.atom for t in in_tracers]
        args, kwargs = unflatten_args(list(in_tracers))
        result = fn(*args, **kwargs)
        out_leaves, out_tree = flatten_out(result)
        ndarray_outputs = frozenset(i for i, leaf in enumerate(out_leaves) if _is_0d_ndarray(leaf))
        python_outputs = frozenset(i for i, leaf in enumerate(out_leaves) if type(leaf) in (bool, int, float, complex))
        out_atoms = [trace.full_raise(leaf).atom for leaf in out_leaves]
        mutated = [i for i, (t, v) in enumerate(zip(in_tracers, in_vars)) if t.atom is not v]
        out_atoms += [in_tracers[i].atom for i in mutated]
    captured = list(trace.captured.values())
    inputs = in_vars + [var for _, var in captured]
    names = list(input_names or [f"in{i}" for i in range(len(in_vars))])
    names += [f"captured{i}" for i in range(len(captured))]
    outputs = [_as_var(trace, a) for a in out_atoms]
    graph = Graph(inputs, trace.eqns, outputs, input_names=names)
    positions = {id(v): k for k, v in enumerate(in_vars)}
    int_ranges = tuple(sorted({(positions[id(atom)], dtype) for atom, dtype in trace.int_ranges
                               if id(atom) in positions}, key=lambda r: (r[0], r[1].str)))
    return TracedProgram(graph, out_tree, len(out_leaves), [value for value, _ in captured], mutated,
                         ndarray_outputs, int_ranges, python_outputs)


def _is_0d_ndarray(leaf) -> bool:
    if isinstance(leaf, Tracer):
        return leaf.ndim == 0 and getattr(leaf, "ndarray0d", False)
    return isinstance(leaf, np.ndarray) and leaf.ndim == 0


def _as_var(trace, atom):
    # Outputs are Vars so every backend can return them uniformly; a constant output gets
    # a (cheap, foldable) copy equation.
    if isinstance(atom, Var):
        return atom
    from . import ops
    out = Var(atom.aval)
    trace.eqns.append(Eqn(ops.reshape, [atom], [out], {"shape": atom.aval.shape}))
    return out
