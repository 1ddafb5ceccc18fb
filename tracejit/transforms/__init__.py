"""Graph -> Graph passes and the pipeline that runs them.

Layer: transforms, between tracing and the backends. Each pass is a pure function in its
own module taking a ``Graph`` and returning a new one with the same meaning
(``interpret(p(g), args) == interpret(g, args)``). ``DEFAULT_PASSES`` is the pipeline
``@tj.trace`` runs; pass ``passes=[...]`` to ``tj.trace`` to change it.
"""
from __future__ import annotations

from ..core import Graph, verify
from .cse import cse
from .dce import dce
from .fold import fold_constants
from .fuse import fuse
from .simplify import simplify
from .vjp import vjp_graph

__all__ = ["DEFAULT_PASSES", "run_passes", "dce", "cse", "fold_constants", "simplify", "fuse", "vjp_graph"]

# Folding exposes constants to the simplifier, whose rewrites expose duplicates to CSE;
# DCE then drops everything left unused, and fusion groups what is left into kernels.
DEFAULT_PASSES = [fold_constants, simplify, cse, dce, fuse]


def run_passes(graph: Graph, passes, check: bool = False) -> Graph:
    """Apply ``passes`` in order; with ``check=True`` verify the graph after each one."""
    for p in passes:
        graph = p(graph)
        if check:
            verify(graph)
    return graph
