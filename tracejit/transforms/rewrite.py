"""The one loop every local rewriting pass shares.

``rewrite(graph, rule)`` walks the equations in order with a substitution map. ``rule(eqn)``
sees the equation with its inputs already substituted and returns either ``None`` (keep it)
or one replacement atom per output (an existing ``Var`` or a ``Const``); later uses are
redirected. Graph outputs replaced by a constant get a materialising equation, so outputs
stay ``Var``s.
"""
from __future__ import annotations

from ..core import Const, Eqn, Graph, Var

__all__ = ["rewrite"]


def rewrite(graph: Graph, rule) -> Graph:
    subst: dict[int, object] = {}

    def read(atom):
        return subst.get(atom.id, atom) if isinstance(atom, Var) else atom

    eqns = []
    for eqn in graph.eqns:
        new = Eqn(eqn.prim, [read(a) for a in eqn.inputs], eqn.outputs, eqn.params, eqn.source)
        replacement = rule(new)
        if replacement is None:
            eqns.append(new)
        else:
            for out, atom in zip(eqn.outputs, replacement):
                subst[out.id] = atom
    outputs = []
    for v in graph.outputs:
        atom = read(v)
        if isinstance(atom, Const):
            from .. import ops
            var = Var(v.aval)
            eqns.append(Eqn(ops.reshape, [atom], [var], {"shape": v.aval.shape}))
            atom = var
        outputs.append(atom)
    return Graph(list(graph.inputs), eqns, outputs, input_names=graph.input_names)
