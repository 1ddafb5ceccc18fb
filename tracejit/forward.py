"""Forward mode: ``jvp`` and ``linearize``.

Layer: a transformation over the front end, beside reverse mode (``autodiff.py``). A
``JVPTrace`` carries each value as a pair, its primal and its tangent, and for every primitive
bound on them computes the primal (by binding it again, on the primals) and the tangent (by
the primitive's rule in ``rules/jvp.py``). Primal and tangent computations are front-end code,
so they run on whatever the primals are: arrays (eager), graph tracers (inside ``@tj.trace``,
where both become equations of one program) or the tracers of an enclosing ``grad`` (reverse
over forward); and ``grad`` inside ``jvp`` gives forward over reverse (Hessian-vector products).

A value that no input's tangent reached has tangent ``None`` (a symbolic zero): primitives on
such values cost nothing extra, and the rules skip the terms of such inputs (a product with a
constant matrix is one product, not two).
"""
from __future__ import annotations

import numpy as np

from . import pytree
from .core import aval_of
from .primitives import Trace, Tracer, bind, new_trace
from .rules.jvp import jvp_rules
from .tracer import _TracerArrayMethods

__all__ = ["jvp", "linearize", "JVPTracer"]


class JVPTracer(_TracerArrayMethods, Tracer):
    """A value seen by a ``JVPTrace``: its primal and its tangent (None: zero)."""

    __slots__ = ("primal", "tangent", "view_of")

    def __init__(self, trace, primal, tangent, aval=None):
        self._trace = trace
        self.primal, self.tangent = primal, tangent
        self.aval = aval if aval is not None else aval_of(primal)
        self.view_of = None

    def become(self, other: "JVPTracer"):
        """In-place update: this tracer now stands for ``other``'s value (one computed outside
        this trace, e.g. from constants alone, has no tangent)."""
        other = self._trace.full_raise(other)
        self.primal, self.tangent, self.aval = other.primal, other.tangent, other.aval



def _is_float(aval) -> bool:
    return aval.dtype.kind in "fc"


class JVPTrace(Trace):
    def lift(self, value) -> JVPTracer:
        return JVPTracer(self, value, None)

    def process(self, prim, tracers, params):
        primals = [t.primal for t in tracers]
        out = bind(prim, *primals, **params)
        several = prim.extra.get("multiple_results")
        outs = out if several else (out,)
        tangents = [t.tangent for t in tracers]
        if not prim.differentiable or all(t is None for t in tangents):
            return [JVPTracer(self, o, None) for o in outs]
        rule = jvp_rules.get(prim)
        if rule is None:
            raise NotImplementedError(f"primitive {prim.name} has no forward-mode rule (tracejit.rules.jvp.defjvp)")
        out_tangents = rule(primals, tangents, out, **params)
        out_tangents = out_tangents if several else (out_tangents,)
        return [JVPTracer(self, o, _as_dtype(t, o)) for o, t in zip(outs, out_tangents)]


def _as_dtype(tangent, primal):
    """A tangent in its primal's dtype (a rule's constants can promote a float32 tangent)."""
    from . import numpy as tnp
    aval = aval_of(primal)
    if tangent is None or not _is_float(aval):
        return None
    dtype = aval.dtype
    return tnp.astype(tangent, dtype) if tangent.dtype != dtype else tangent


def _checked_tangents(primals, tangents):
    p_leaves, p_tree = pytree.flatten(tuple(primals))
    t_leaves, t_tree = pytree.flatten(tuple(tangents))
    if t_tree != p_tree:
        raise ValueError("jvp: tangents must have the same structure as primals (one tangent per primal leaf)")
    paths = pytree.leaf_paths(p_tree, "primals")
    for p, t, path in zip(p_leaves, t_leaves, paths):
        pa, ta = aval_of(p), aval_of(t)
        if not _is_float(pa):
            raise TypeError(f"jvp: {path} has dtype {pa.dtype}; forward mode differentiates float inputs only")
        if ta.shape != pa.shape or ta.dtype != pa.dtype:
            raise ValueError(f"jvp: the tangent of {path} must have the primal's shape and dtype "
                             f"{pa.dtype}{list(pa.shape)}, got {ta.dtype}{list(ta.shape)}")
    return p_leaves, p_tree, t_leaves


def jvp(fn, primals, tangents):
    """``(outputs, output_tangents) = jvp(fn, primals, tangents)``: ``fn(*primals)`` and its
    directional derivative along ``tangents``, in one forward pass.

    ``primals`` and ``tangents`` are tuples (or lists) of the positional arguments, pytrees of
    float arrays and numbers with equal structures, shapes and dtypes. Outputs that do not
    depend on the inputs get zero tangents."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (or lists) of the positional arguments, "
                        f"got {type(primals).__name__} and {type(tangents).__name__}")
    p_leaves, p_tree, t_leaves = _checked_tangents(primals, tangents)
    with new_trace(JVPTrace) as trace:
        in_tracers = [JVPTracer(trace, p, t) for p, t in zip(p_leaves, t_leaves)]
        for tracer, p in zip(in_tracers, p_leaves):
            if isinstance(p, np.ndarray) and p.ndim == 0 or getattr(p, "ndarray0d", False):
                tracer.ndarray0d = True
        result = fn(*pytree.unflatten(p_tree, in_tracers))
        out_leaves, out_tree = pytree.flatten(result)
        out_tracers = [trace.full_raise(x) for x in out_leaves]
    from . import numpy as tnp
    from .autodiff import _as_kind
    outputs, out_tangents = [], []
    for t in out_tracers:
        array0d = bool(getattr(t, "ndarray0d", False))
        outputs.append(_as_kind(t.primal, array0d))
        tangent = t.tangent if t.tangent is not None else tnp.zeros_like(t.primal)
        out_tangents.append(_as_kind(tangent, array0d))
    return pytree.unflatten(out_tree, outputs), pytree.unflatten(out_tree, out_tangents)


def linearize(fn, *primals):
    """``(outputs, f_jvp) = linearize(fn, *primals)``: ``fn(*primals)`` and the linear map
    ``f_jvp(*tangents)`` -> the output tangents at ``primals``. Each ``f_jvp`` call runs the
    forward pass again alongside the tangents (the primal values are not stored)."""
    outputs, _ = jvp(fn, primals, [pytree.tree_map(np.zeros_like, p) for p in primals])

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise TypeError(f"linearize: the linear map takes {len(primals)} tangents (one per primal), "
                            f"got {len(tangents)}")
        return jvp(fn, primals, tangents)[1]

    return outputs, f_jvp
