"""The table of the NumPy functions and ufuncs ``tj.numpy`` supports, made from the dispatch
tables: ``python -m tracejit.numpy.supported`` prints it as Markdown (``docs/numpy-support.md``
is this output; a test keeps the two equal).

Layer: tools (it traces, so it sits above the runtime; the front end never imports it). In:
``dispatch``'s registrations. Out: one row per definition -- the NumPy names it implements, its
module, the primitives it records when traced on a small float64 example, and whether reverse
mode differentiates it (every primitive recorded has a VJP rule or carries no gradient).
"""
from __future__ import annotations

import builtins

import numpy as np

from ..jit import trace
from ..rules.vjp import vjp_rules
from . import dispatch

_X = np.array([[0.5, -1.25, 2.0], [1.5, 0.75, -0.5]])
_Y = np.array([[1.0, 0.25, -1.5], [-0.75, 2.5, 1.25]])
_MASK = _X > 0
_SQUARE = _X @ _X.T + 3 * np.eye(2)  # symmetric positive definite, for np.linalg

# How to call a definition on example arguments (traced in graph mode), where ``f(x)`` or, for a
# ufunc of two inputs, ``f(x, y)`` does not fit: (arguments, call).
_SAMPLES = {
    np.matmul: ((_X, _Y.T), lambda f, x, y: f(x, y)),
    np.einsum: ((_X, _Y), lambda f, x, y: f("ij,kj->ik", x, y)),
    np.linalg.solve: ((_SQUARE, _X), lambda f, a, b: f(a, b)),
    np.quantile: ((_X,), lambda f, x: f(x, 0.25)),
    np.percentile: ((_X,), lambda f, x: f(x, 25.0)),
    np.partition: ((_X,), lambda f, x: f(x, 1)),
    np.linalg.inv: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.det: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.slogdet: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.cholesky: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.eigh: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.eigvalsh: ((_SQUARE,), lambda f, a: f(a)),
    np.linalg.svd: ((_X,), lambda f, a: f(a, full_matrices=False)),
    np.linalg.qr: ((_X.T,), lambda f, a: f(a)),
    np.linalg.lstsq: ((_X.T, _Y[0]), lambda f, a, b: f(a, b)),
    np.fft.fftshift: ((_X,), lambda f, x: f(x)),
    np.linspace: ((_X[0, 0], _X[1, 1]), lambda f, a, b: f(a, b, 4)),
    np.lib.stride_tricks.sliding_window_view: ((_X,), lambda f, x: f(x, 2, axis=1)),
    np.fft.ifftshift: ((_X,), lambda f, x: f(x)),
    np.tensordot: ((_X, _Y), lambda f, x, y: f(x, y, axes=([1], [1]))),
    np.invert: ((_MASK,), lambda f, m: f(m)),
    np.bitwise_and: ((_MASK, ~_MASK), lambda f, m, n: f(m, n)),
    np.bitwise_or: ((_MASK, ~_MASK), lambda f, m, n: f(m, n)),
    np.bitwise_xor: ((_MASK, ~_MASK), lambda f, m, n: f(m, n)),
    np.where: ((_MASK, _X, _Y), lambda f, m, x, y: f(m, x, y)),
    np.clip: ((_X,), lambda f, x: f(x, -1.0, 1.0)),
    np.reshape: ((_X,), lambda f, x: f(x, (3, 2))),
    np.swapaxes: ((_X,), lambda f, x: f(x, 0, 1)),
    np.moveaxis: ((_X,), lambda f, x: f(x, 0, 1)),
    np.expand_dims: ((_X,), lambda f, x: f(x, 0)),
    np.squeeze: ((_X[:1],), lambda f, x: f(x)),
    np.atleast_1d: ((_X[0, 0],), lambda f, x: f(x)),
    np.atleast_2d: ((_X[0],), lambda f, x: f(x)),
    np.broadcast_to: ((_X,), lambda f, x: f(x, (4, 2, 3))),
    np.broadcast_arrays: ((_X, _Y[:1]), lambda f, x, y: f(x, y)),
    np.concatenate: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.stack: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.hstack: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.vstack: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.full_like: ((_X,), lambda f, x: f(x, 2.0)),
    np.dot: ((_X, _Y.T), lambda f, x, y: f(x, y)),
    np.vdot: ((_X, _Y), lambda f, x, y: f(x, y)),
    np.inner: ((_X, _Y), lambda f, x, y: f(x, y)),
    np.outer: ((_X[0], _Y[0]), lambda f, x, y: f(x, y)),
    np.take: ((_X,), lambda f, x: f(x, [2, 0], axis=1)),
    np.take_along_axis: ((_X,), lambda f, x: f(x, np.array([[2], [0]]), 1)),
    np.pad: ((_X,), lambda f, x: f(x, 1, constant_values=3.0)),
    np.result_type: ((_X,), lambda f, x: f(x, 1.0)),
    np.roll: ((_X,), lambda f, x: f(x, 1, axis=1)),
    np.rollaxis: ((_X,), lambda f, x: f(x, 1)),
    np.repeat: ((_X,), lambda f, x: f(x, 2, axis=0)),
    np.tile: ((_X,), lambda f, x: f(x, (2, 1))),
    np.split: ((_X,), lambda f, x: f(x, 3, axis=1)),
    np.array_split: ((_X,), lambda f, x: f(x, 2, axis=1)),
    np.hsplit: ((_X,), lambda f, x: f(x, 3)),
    np.vsplit: ((_X,), lambda f, x: f(x, 2)),
    np.dsplit: ((_X,), lambda f, x: f(x[:, :, None], 1)),
    np.column_stack: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.dstack: ((_X, _Y), lambda f, x, y: f([x, y])),
    np.append: ((_X, _Y), lambda f, x, y: f(x, y, axis=0)),
    np.kron: ((_X, _Y), lambda f, x, y: f(x, y)),
    np.cross: ((_X, _Y), lambda f, x, y: f(x, y)),
    np.select: ((_MASK, _X, _Y), lambda f, m, x, y: f([m], [x], y)),
    np.meshgrid: ((_X, _Y), lambda f, x, y: f(x[0], y[:, 0])),
}

# Where a traced call's result may differ from NumPy's, by a rule: printed under the table.
_NOTES = {
    np.linalg.lstsq: "NumPy's residuals are empty when the rank is below N, a shape that depends on the values; "
                     "traced, they keep the full-rank shape when M > N and are NaN where the matrix turns out "
                     "rank-deficient when the program runs (empty when M <= N, as in NumPy).",
}


def rows() -> list[dict]:
    """One row per definition registered in ``dispatch``, sorted by the first NumPy name."""
    out = []
    for fn, callables in dispatch._DEFINITIONS.items():
        names = [_name(c) for c in callables]
        row = {"numpy": names, "kind": "ufunc" if isinstance(callables[0], np.ufunc) else "function",
               "module": fn.__module__.rsplit(".", 1)[-1]}
        row.update(_traced(fn, callables[0]))
        out.append(row)
    return sorted(out, key=lambda r: r["numpy"][0])


def _name(func) -> str:
    return dispatch._qualified_name(func).removeprefix("np.")


def _traced(fn, func) -> dict:
    """What ``fn`` records on the example, and whether its recording has a gradient."""
    if fn.__doc__ and fn.__doc__.startswith("Refused on traced values"):
        return {"modes": "eager only (data-dependent shape)", "primitives": [], "gradient": "-"}
    args, call = _SAMPLES.get(func) or (((_X, _Y), lambda f, x, y: f(x, y)) if getattr(func, "nin", 1) == 2
                                        else ((_X,), lambda f, x: f(x)))
    answers = []

    def body(*traced):
        out = call(fn, *traced)
        if isinstance(out, (list, tuple)) and builtins.all(hasattr(o, "aval") for o in out):
            return list(out)
        if hasattr(out, "aval"):
            return out
        answers.append(out)  # a question about the operands (np.shape, np.result_type ...)
        return traced[0]

    graph = trace(body).graph(*args, optimize=False)
    if answers:
        return {"modes": "eager, graph, compiled", "primitives": [], "gradient": "-"}
    prims = sorted({eqn.prim.name for eqn in graph.eqns})
    no_rule = sorted({eqn.prim.name for eqn in graph.eqns
                      if eqn.prim.differentiable and eqn.prim not in vjp_rules})
    float_out = builtins.any(np.dtype(o.aval.dtype).kind in "fc" for o in graph.outputs)
    if no_rule:
        gradient = "no (" + ", ".join(no_rule) + ")"
    elif not float_out:
        gradient = "none (no float output)"
    else:
        gradient = "yes" if graph.eqns else "yes (identity)"
    return {"modes": "eager, graph, compiled", "primitives": prims, "gradient": gradient}


def markdown() -> str:
    lines = [
        "# NumPy functions and ufuncs supported by tracejit",
        "",
        "Generated by `python -m tracejit.numpy.supported` from the front end's dispatch tables",
        "(`tracejit/numpy/dispatch.py`); `tests/test_numpy_support.py` keeps this file in sync.",
        "Each row is one definition; *primitives* are those it records when traced on a small",
        "float64 example (other dtypes add `cast`s); *gradient* says whether reverse mode",
        "differentiates it (`yes`: every primitive recorded has a VJP rule; `none`: its output",
        "carries no gradient). Ufuncs are reached through `np.name(...)` and the operators,",
        "functions through `np.name(...)` (`__array_function__`) and `tj.numpy.name`.",
        "Anything not listed raises `UnsupportedError` on traced values.",
        "",
        "| NumPy | kind | module | modes | primitives | gradient |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows():
        lines.append(f"| {', '.join(f'`{n}`' for n in r['numpy'])} | {r['kind']} | {r['module']} | {r['modes']} | "
                     f"{', '.join(r['primitives']) or '-'} | {r['gradient']} |")
    lines += ["", "Ufunc methods on traced values: " + "; ".join(
        f"`{method}` of " + ", ".join(f"`{u.__name__}`" for u in sorted(table, key=lambda u: u.__name__))
        for method, table in (("reduce", dispatch._UFUNC_REDUCE), ("accumulate", dispatch._UFUNC_ACCUMULATE))) + "."]
    lines += ["", "Notes on traced results that differ from NumPy's by rule:", ""]
    lines += [f"- `{_name(func)}`: {note}" for func, note in sorted(_NOTES.items(), key=lambda item: _name(item[0]))]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
