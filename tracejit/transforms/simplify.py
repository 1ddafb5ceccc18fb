"""Algebraic simplification with exact rules only. Graph -> Graph.

Each rule gives bit-for-bit the same values (up to the sign of a zero), so it may always
fire: ``x * 1``, ``x / 1``, ``x + 0``, ``x - 0`` -> ``x``; ``x * 0`` -> ``0`` for integers
and booleans only (for floats ``inf * 0`` is nan); ``-(-x)`` -> ``x``; reshape, transpose and
broadcast chains collapse into one; no-op reshapes, transposes, broadcasts and casts vanish.
``exp(log(x))`` is *not* rewritten: it is not exact.
"""
from __future__ import annotations

import numpy as np

from ..core import Const, Eqn, Graph, Var
from .rewrite import rewrite

__all__ = ["simplify"]


def simplify(graph: Graph) -> Graph:
    producer: dict[int, Eqn] = {}

    def uniform_value(atom):
        """The single value every element of ``atom`` has, if it is a known constant."""
        while isinstance(atom, Var) and atom.id in producer and producer[atom.id].prim.name in (
                "broadcast_to", "reshape"):
            atom = producer[atom.id].inputs[0]
        if isinstance(atom, Const) and atom.value.size and np.all(atom.value == atom.value.flat[0]):
            value = atom.value.flat[0]
            return value if not np.isnan(value) else None
        return None

    def same(atom, like):
        return atom.aval.shape == like.aval.shape and atom.aval.dtype == like.aval.dtype

    def rule(eqn):
        name, ins, out = eqn.prim.name, eqn.inputs, eqn.outputs[0]
        replacement = None
        if name in ("mul", "add") and len(ins) == 2:
            unit = 1 if name == "mul" else 0
            for a, b in ((ins[0], ins[1]), (ins[1], ins[0])):
                if uniform_value(b) == unit and same(a, out):
                    replacement = a
                    break
            if replacement is None and name == "mul" and out.aval.dtype.kind in "biu":
                for b in ins:
                    if uniform_value(b) == 0:
                        replacement = Const(np.zeros(out.aval.shape, out.aval.dtype), out.aval)
        elif name in ("div", "sub") and uniform_value(ins[1]) == (1 if name == "div" else 0) and same(ins[0], out):
            replacement = ins[0]
        elif name == "neg" and _made_by(producer, ins[0], "neg"):
            replacement = producer[ins[0].id].inputs[0]
        elif name in ("reshape", "broadcast_to") and ins[0].aval.shape == out.aval.shape:
            replacement = ins[0]
        elif name == "cast" and ins[0].aval.dtype == out.aval.dtype:
            replacement = ins[0]
        elif name == "transpose" and eqn.params["perm"] == tuple(range(out.aval.ndim)):
            replacement = ins[0]
        elif name in ("reshape", "broadcast_to") and _made_by(producer, ins[0], name):
            # Collapse the chain: rebuild this equation on the first one's input.
            eqn.inputs = [producer[ins[0].id].inputs[0]]
            if eqn.inputs[0].aval.shape == out.aval.shape:
                replacement = eqn.inputs[0]
        elif name == "transpose" and _made_by(producer, ins[0], "transpose"):
            inner = producer[ins[0].id]
            perm = tuple(inner.params["perm"][p] for p in eqn.params["perm"])
            if perm == tuple(range(len(perm))):
                replacement = inner.inputs[0]
            else:
                eqn.inputs, eqn.params = [inner.inputs[0]], {"perm": perm}
        if replacement is not None:
            return [replacement]
        for o in eqn.outputs:
            producer[o.id] = eqn
        return None

    return rewrite(graph, rule)


def _made_by(producer, atom, name) -> bool:
    return isinstance(atom, Var) and atom.id in producer and producer[atom.id].prim.name == name
