"""``interpret(graph, args)``: the NumPy reference evaluator of the IR.

Layer: runs a ``Graph``. It is the meaning every pass and the Numba backend are tested
against, and what ``"graph"`` mode runs: each equation's primitive ``impl`` applied in order.
"""
from __future__ import annotations

import numpy as np

from .core import Const, Graph

__all__ = ["interpret", "evaluate"]


def interpret(graph: Graph, args) -> list:
    """Evaluate ``graph`` on ``args`` (one array per graph input); returns the output arrays."""
    if len(args) != len(graph.inputs):
        raise TypeError(f"interpret: graph takes {len(graph.inputs)} inputs, got {len(args)}")
    env = {var.id: np.asarray(value) for var, value in zip(graph.inputs, args)}

    def read(atom):
        return atom.value if isinstance(atom, Const) else env[atom.id]

    for eqn in graph.eqns:
        outs = eqn.prim.impl(*[read(a) for a in eqn.inputs], **eqn.params)
        outs = outs if eqn.prim.extra.get("multiple_results") else (outs,)
        for var, value in zip(eqn.outputs, outs):
            env[var.id] = np.asarray(value)
    return [read(v) for v in graph.outputs]


def evaluate(graph: Graph, args) -> list:
    """Run ``graph`` by binding each primitive: on arrays it computes, on tracers it records
    into the active transformation. This is how a transformation re-interprets a graph."""
    from .primitives import bind
    env = dict(zip((v.id for v in graph.inputs), args))

    def read(atom):
        return atom.value if isinstance(atom, Const) else env[atom.id]

    for eqn in graph.eqns:
        sub = eqn.params.get("graph")
        if isinstance(sub, Graph):
            # A fused region is re-run equation by equation, so a transformation sees (and can
            # differentiate) the primitives inside it.
            outs = evaluate(sub, [read(a) for a in eqn.inputs])
        else:
            outs = bind(eqn.prim, *[read(a) for a in eqn.inputs], **eqn.params)
            outs = outs if eqn.prim.extra.get("multiple_results") else (outs,)
        env.update(zip((v.id for v in eqn.outputs), outs))
    return [read(v) for v in graph.outputs]
