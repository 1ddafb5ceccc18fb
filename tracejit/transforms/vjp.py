"""Reverse-mode autodiff of a whole graph. Graph -> Graph.

``vjp_graph(g)`` takes ``outputs = g(inputs)`` and returns the graph
``(inputs..., output cotangents...) -> (outputs..., input cotangents...)``: the forward pass
followed by the backward pass, as ordinary IR. It re-runs ``g`` under the autodiff tape
(``tracejit.autodiff``) while recording into a new graph, so the backward equations come
from the same per-primitive ``vjp`` rules as ``tj.grad``. Inputs that are not floats get no
cotangent output.
"""
from __future__ import annotations

import numpy as np

from ..core import Graph
from ..graph_builder import make_graph
from ..interpret import evaluate

__all__ = ["vjp_graph"]


def vjp_graph(graph: Graph) -> Graph:
    from ..autodiff import vjp
    n_in = len(graph.inputs)
    diff = [i for i, v in enumerate(graph.inputs) if np.issubdtype(v.aval.dtype, np.inexact)]
    in_avals = [v.aval for v in graph.inputs] + [v.aval.strong() for v in graph.outputs]

    def forward_and_backward(*args):
        primals, cotangents = list(args[:n_in]), list(args[n_in:])

        def on_differentiable(*xs):
            full = list(primals)
            for i, x in zip(diff, xs):
                full[i] = x
            return evaluate(graph, full)

        outputs, backward = vjp(on_differentiable, *[primals[i] for i in diff])
        return list(outputs) + list(backward(cotangents))

    program = make_graph(forward_and_backward, in_avals, lambda leaves: (tuple(leaves), {}),
                         lambda result: (list(result), None))
    names = list(graph.input_names or [f"in{i}" for i in range(n_in)])
    program.graph.input_names = names + [f"ct_out{i}" for i in range(len(graph.outputs))]
    return program.graph
