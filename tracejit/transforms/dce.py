"""Dead-code elimination: drop equations none of whose outputs reach a graph output.

Graph -> Graph. Every primitive is pure, so an unused result can always go.
"""
from __future__ import annotations

from ..core import Graph, Var

__all__ = ["dce"]


def dce(graph: Graph) -> Graph:
    live = {v.id for v in graph.outputs if isinstance(v, Var)}
    kept = []
    for eqn in reversed(graph.eqns):
        if any(o.id in live for o in eqn.outputs):
            kept.append(eqn)
            live.update(a.id for a in eqn.inputs if isinstance(a, Var))
    kept.reverse()
    return Graph(list(graph.inputs), kept, list(graph.outputs), input_names=graph.input_names)
