"""Constant folding: an equation whose inputs are all constants is evaluated now, with the
primitive's NumPy ``impl``, when the result is no bigger than its largest input (folding a
broadcast would only trade an equation for a literal array). Collectives are never folded:
they run when the program runs, on every process. Graph -> Graph.
"""
from __future__ import annotations

import numpy as np

from ..core import Const, Graph
from .rewrite import rewrite

__all__ = ["fold_constants"]

def fold_constants(graph: Graph) -> Graph:
    def rule(eqn):
        if not eqn.inputs or not all(isinstance(a, Const) for a in eqn.inputs):
            return None
        if eqn.prim.extra.get("collective"):
            return None  # communicates with the other processes: it runs with the program
        biggest_input = max(a.value.size for a in eqn.inputs)
        if any(o.aval.size > biggest_input for o in eqn.outputs):
            return None
        with np.errstate(all="ignore"):
            values = eqn.prim.impl(*[a.value for a in eqn.inputs], **eqn.params)
        values = values if eqn.prim.extra.get("multiple_results") else (values,)
        return [Const(np.asarray(v, dtype=o.aval.dtype).reshape(o.aval.shape), o.aval)
                for v, o in zip(values, eqn.outputs)]

    return rewrite(graph, rule)
