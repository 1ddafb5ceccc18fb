"""Primitives: one record per operation, and ``bind``, the single way to apply one.

A primitive is declared once with ``defop`` and carries all of its facets together:

- ``impl``: the NumPy reference implementation (used by eager autodiff and ``interpret``);
- ``abstract_eval``: avals in -> aval(s) out (shapes, dtypes, weak flag);
- ``differentiable``: False for operations whose output carries no gradient (comparisons,
  ``floor``, ``argmax``); how each transformation treats the others is a rule in that
  transform's table (``tracejit/rules/``), not a facet here;
- ``scalar_src`` (elementwise) or ``identity`` + ``combine`` (reductions): the loop body the
  Numba backend emits. Other kinds name an ``emit`` function in the backend.

``bind(prim, *args, **params)`` looks at its arguments: with no tracer among them it runs
``impl`` on the arrays; otherwise it hands the call to the innermost active trace (graph
building, or the eager autodiff tape), JAX-style, so transformations nest.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Primitive", "defop", "bind", "registry", "Trace", "Tracer", "trace_stack", "new_trace"]

KINDS = ("elementwise", "reduce", "shape", "opaque")


@dataclass(eq=False)
class Primitive:
    """Every facet of one operation. See the module docstring for what each one is."""

    name: str
    kind: str
    impl: Callable
    abstract_eval: Callable
    scalar_src: str | Callable | None = None
    identity: Any = None
    combine: str | None = None
    differentiable: bool = True
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # Looked up on every bind: plain attributes rather than ``extra`` lookups.
        self.multiple_results = bool(self.extra.get("multiple_results"))

    def __repr__(self):
        return f"<primitive {self.name}>"


registry: dict[str, Primitive] = {}


def defop(name: str, kind: str, *, impl: Callable, abstract_eval: Callable,
          scalar_src=None, identity=None, combine=None, differentiable: bool = True, doc: str = "",
          **extra) -> Primitive:
    """Declare a primitive with all of its facets; it is registered under ``name``.

    ``differentiable=False`` marks ops whose output carries no gradient at all (comparisons,
    argmax, integer results); the others get a rule in ``tracejit.rules.vjp``
    (``defvjp(prim, rule)``), which may also take ``needed``, a tuple of one bool per input:
    callers pass it to say which cotangents they use, and the rule may return ``None`` for the
    others instead of computing them.
    """
    if "vjp" in extra:  # the facet of earlier versions: rules now live in one table per transformation
        raise TypeError(f"defop({name!r}): vjp= is no longer a facet of the primitive; register the rule with "
                        "tracejit.rules.vjp.defvjp(prim, rule) (and defjvp, defbatch for forward mode and vmap)")
    if kind not in KINDS:
        raise ValueError(f"defop({name!r}): kind must be one of {KINDS}, got {kind!r}")
    if name in registry:
        raise ValueError(f"defop: primitive {name!r} is already defined")
    prim = Primitive(name, kind, impl, abstract_eval, scalar_src, identity, combine, differentiable, doc, extra)
    registry[name] = prim
    return prim


class Tracer:
    """A stand-in for an array while a trace is active. Subclasses hold the trace's data;
    the NumPy-facing behaviour (operators, ``__array_ufunc__`` ...) lives in ``tracer.py``."""

    # ndarray0d: set (True) on a 0-d value that NumPy would hold as a 0-d ndarray rather than a
    # scalar (np.where's result, a reshape of an array ...); outputs without it come back as scalars.
    __slots__ = ("_trace", "aval", "ndarray0d", "__weakref__")
    __array_priority__ = 1000

    @property
    def shape(self):
        return self.aval.shape

    @property
    def dtype(self):
        return self.aval.dtype

    @property
    def ndim(self):
        return self.aval.ndim

    @property
    def size(self):
        return self.aval.size

    @property
    def weak(self) -> bool:
        return self.aval.weak


class Trace:
    """One active transformation. ``level`` orders nested traces: the highest level among an
    operation's arguments handles it, and sees lower-level values as constants."""

    # A trace that records computations on constants too (graph building). Primitives bound
    # on constants alone go to the innermost such trace instead of running right away, so
    # gradient rules applied to constants become equations rather than large literals.
    records_constants = False
    # A trace that applies elementwise primitives to operands of different (broadcastable)
    # shapes itself, through ``elementwise``; the front end then skips the explicit
    # ``broadcast_to`` it otherwise inserts.
    broadcasts_elementwise = False

    def __init__(self, level: int):
        self.level = level

    def lift(self, value) -> Tracer:  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, prim: Primitive, tracers: list, params: dict) -> list:  # pragma: no cover
        raise NotImplementedError

    def elementwise(self, prim: Primitive, operands: list, shape: tuple):
        """Apply elementwise ``prim`` to ``operands`` (one dtype; tracers of this trace or
        arrays) broadcast to ``shape``; ``None`` if this trace does not, for these operands."""
        return None

    def constant_result(self, fn, args):
        """``fn(*args)`` (a NumPy function) as a value of this trace when no argument needs the
        trace's attention, computed by NumPy itself; ``None`` otherwise (the caller goes on)."""
        return None

    def full_raise(self, value) -> Tracer:
        if isinstance(value, Tracer) and value._trace is self:
            return value
        if isinstance(value, Tracer) and value._trace.level > self.level:
            raise AssertionError("a tracer from an inner transformation escaped into an outer one")
        return self.lift(value)


class _TraceState(threading.local):
    def __init__(self):
        self.stack: list[Trace] = []
        self.recording = 0  # how many traces on the stack record constants (graph building)


_state = _TraceState()


def trace_stack() -> list[Trace]:
    """The active traces of this thread, innermost last."""
    return _state.stack


class new_trace:
    """Context manager: push a trace of class ``cls`` at the next level, pop it on exit."""

    def __init__(self, cls, *args, **kwargs):
        self.cls, self.args, self.kwargs = cls, args, kwargs

    def __enter__(self) -> Trace:
        self.trace = self.cls(len(_state.stack), *self.args, **self.kwargs)
        _state.stack.append(self.trace)
        _state.recording += self.trace.records_constants
        return self.trace

    def __exit__(self, *exc):
        popped = _state.stack.pop()
        assert popped is self.trace
        _state.recording -= popped.records_constants
        return False


def recording() -> bool:
    """Whether a trace that records constants is active: if not, a primitive bound on plain
    arrays simply runs (see ``bind``)."""
    return _state.recording > 0


def _innermost_recording_trace():
    if not _state.recording:
        return None
    for trace in reversed(_state.stack):
        if trace.records_constants:
            return trace
    return None


def top_trace(args) -> Trace | None:
    top = None
    for a in args:
        if isinstance(a, Tracer) and (top is None or a._trace.level > top.level):
            top = a._trace
    return top


def bind(prim: Primitive, *args, **params):
    """Apply ``prim``: on arrays directly, or via the innermost trace among the arguments.

    Multi-output primitives return a tuple; all others a single value.
    """
    trace = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if trace is None or t.level > trace.level:
                trace = t
            if a.view_of is not None:  # a view of an array: refused if that array changed since
                a.view_of.check_fresh()
    if trace is None:
        trace = _innermost_recording_trace()
        if trace is None:
            return prim.impl(*args, **params)
    tracers = [a if isinstance(a, Tracer) and a._trace is trace else trace.full_raise(a) for a in args]
    outs = trace.process(prim, tracers, params)
    return tuple(outs) if prim.multiple_results else outs[0]


# Calling a primitive is binding it (without a second Python frame on every operation).
Primitive.__call__ = bind


def abstract_eval_list(prim: Primitive, avals, params) -> list:
    out = prim.abstract_eval(*avals, **params)
    return list(out) if isinstance(out, (tuple, list)) else [out]
