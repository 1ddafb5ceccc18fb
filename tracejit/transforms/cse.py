"""Common-subexpression elimination: an equation identical to an earlier one (same primitive,
same inputs, same parameters) reuses the earlier result. Graph -> Graph.

The backward pass recomputes much of what the forward pass had (broadcasts of the same
value, the same transposes); this is where those copies go.
"""
from __future__ import annotations

from ..core import Const, Graph
from .rewrite import rewrite

__all__ = ["cse"]

_SMALL_CONST = 64  # larger constants are compared by identity, not by value


def _atom_key(atom):
    if isinstance(atom, Const):
        v = atom.value
        return ("c", v.dtype.str, v.shape, v.tobytes() if v.size <= _SMALL_CONST else id(v))
    return ("v", atom.id)


def _params_key(params):
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return None  # e.g. a fused region's sub-graph: never merged


def cse(graph: Graph) -> Graph:
    seen: dict = {}

    def rule(eqn):
        params = _params_key(eqn.params)
        if params is None:
            return None
        key = (eqn.prim.name, tuple(_atom_key(a) for a in eqn.inputs), params)
        if key in seen:
            return seen[key]
        seen[key] = eqn.outputs
        return None

    return rewrite(graph, rule)
