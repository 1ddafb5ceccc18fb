"""The tracing-time benchmark: how long recording a training step's graph takes.

Tracing is the part of every first call (and of every retrace) that runs the user's Python on
tracers; compiling comes after it and is measured by the ``compile`` benchmark. This traces the
MLP's Adam training step (``value_and_grad`` and the update; ``workloads.tracejit_mlp_adam``)
several times, each time into a fresh ``tj.trace`` in graph mode, and reports the median of
``Traced.stats["trace_seconds"]`` under the ``compiled`` column, with the equations recorded,
the time per equation and the passes' time (``pass_seconds``) in the note.
"""
from __future__ import annotations

import statistics

from . import workloads as W
from .results import Result, SystemResult

__all__ = ["run_tracing", "TRACE_RUNS"]

TRACE_RUNS = {"full": 15, "quick": 5, "tiny": 2}


def run_tracing(size="full", runs=None, progress=None) -> list:
    import tracejit as tj

    wl = W.get(W.TRACE_TARGET)
    params, x, y, _ = wl.make_inputs(wl.sizes[size])
    step, opt = W.tracejit_mlp_adam(tj)
    state = opt.init(params)
    runs = runs or TRACE_RUNS[size]
    stats = []
    for r in range(runs):
        if progress is not None:
            progress("compiled", "tracing", r + 1, runs)
        traced = tj.trace(step, mode="graph")
        traced.graph(params, state, x, y)  # traces and runs the passes; runs nothing
        stats.append(dict(traced.stats))
    record = [s["trace_seconds"] for s in stats]
    passes = statistics.median(s["pass_seconds"] for s in stats)
    equations = stats[-1]["traced_equations"]
    median = statistics.median(record)
    result = SystemResult("compiled", median=median, min=min(record), max=max(record), rounds=runs, batch=1,
                          samples=record, traces=1,
                          note=f"{equations} equations, {median / equations * 1e6:.1f} µs each; passes "
                               f"{passes * 1e3:.1f} ms",
                          extra={"equations": equations, "pass_seconds": passes})
    title = f"tracing the MLP's Adam training step ({wl.describe(wl.sizes[size])}): value_and_grad + update"
    return [Result(name="trace", title=title, kind="latency", baseline=None, systems={"compiled": result},
                   params={"size_desc": wl.describe(wl.sizes[size])},
                   notes=["time to record the graph (Traced.stats['trace_seconds']), median over fresh traces; "
                          "the passes and compiling come after it"])]
