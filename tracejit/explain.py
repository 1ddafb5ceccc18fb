"""``tj.explain(f, *args)``: what a traced function does with these arguments, in words.

Layer: runtime diagnostics. Prints (and returns) the cache key for the call -- every argument
leaf with its signature, and the static values -- whether that key was traced before, the graph
sizes as traced and after the passes, and whether the compiled program exists yet and how it
was obtained (compiled, loaded from the disk cache, found in memory), its kernels and how many
equations were fused into them. Tracing happens if needed; the function is not run.
"""
from __future__ import annotations

from .jit import Traced, _describe

__all__ = ["explain"]


def explain(fn, *args, **kwargs) -> str:
    """Describe how the ``@tj.trace`` function ``fn`` handles this call; prints and returns the text."""
    if not isinstance(fn, Traced):
        raise TypeError(f"tj.explain: expected a function decorated with @tj.trace, got {type(fn).__name__}")
    key, leaves = fn._key(args, kwargs)
    names = fn._leaf_names(leaves, args, kwargs)
    cached = key in fn._cache
    entry = fn._entry_for(args, kwargs)
    lines = [f"{fn.__name__}: {'traced before for this signature (no new trace)' if cached else 'a new signature, traced now'}; "
             f"{len(fn._cache)} signature(s) cached, {fn.stats['traces']} trace(s), "
             f"{len(fn.stats['retraces'])} retrace(s)"]
    lines.append("  key:")
    for name, sig in zip(names, key[1]):
        lines.append(f"    {name}: {_describe(sig)}")
    for kind, where, value in key[2]:
        if kind == "#" and where < len(fn._positional_names):
            where = fn._positional_names[where]
        lines.append(f"    {where} (static): {value!r}")
    for reason in fn.stats["retraces"][-3:]:
        lines.append(f"  retraced because {reason}")
    raw, graph = entry.raw_graph, entry.program.graph
    lines.append(f"  graph: {len(raw.eqns)} equations as traced, {len(graph.eqns)} after passes "
                 f"({', '.join(p.__name__ for p in fn.passes) or 'no passes'})")
    if entry.program.captured:
        lines.append(f"  captured arrays (closures/globals): {len(entry.program.captured)}")
    if entry.program.mutated:
        lines.append(f"  arguments updated in place: {', '.join(names[i] for i in entry.program.mutated)}")
    compiled = entry.compiled
    if compiled is None:
        lines.append("  compiled program: none yet (the first call in compiled mode compiles it, or loads it "
                     "from the disk cache)")
    else:
        lines.append(f"  compiled program: {getattr(compiled, 'origin', 'compiled')}; {compiled.kernels} kernel(s), "
                     f"{compiled.fused_ops} fused equation(s)")
        for line in getattr(compiled, "kernel_summary", lambda: [])():
            lines.append(f"    {line}")
    text = "\n".join(lines)
    print(text)
    return text
