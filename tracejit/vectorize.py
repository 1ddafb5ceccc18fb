"""``vmap``: a function of one example made a function of a batch, without a Python loop.

Layer: a transformation over the front end, beside ``autodiff.py`` and ``forward.py``. A
``BatchTrace`` carries each value with a flag: batched (its first axis runs over the
examples) or the same for every example. Its tracers look like one example (their shape
leaves the batch axis out), so the function runs unchanged; every primitive bound on them is
applied to the whole batch at once by its rule in ``rules/batching.py``. The rules bind
primitives on the underlying values, so ``vmap`` works eagerly, inside ``@tj.trace`` (the
batched computation is one graph) and with ``grad`` and ``jvp`` in any order:
``tj.trace(tj.vmap(tj.grad(loss), in_axes=(None, 0, 0)))`` computes per-example gradients in
one compiled program.
"""
from __future__ import annotations

import numpy as np

from . import pytree
from .core import Aval, aval_of
from .primitives import Trace, Tracer, bind, new_trace
from .rules.batching import batching_rules, broadcast_batch
from .tracer import _TracerArrayMethods

__all__ = ["vmap", "BatchTracer"]



class BatchTracer(_TracerArrayMethods, Tracer):
    """One example's view of a value of a ``BatchTrace``: ``value`` holds every example
    (along its first axis) when ``batched``, or the one value they share."""

    __slots__ = ("value", "batched", "view_of")

    def __init__(self, trace, value, batched):
        self._trace = trace
        self.value, self.batched = value, batched
        aval = aval_of(value)
        self.aval = Aval(aval.shape[1:], aval.dtype, aval.weak) if batched else aval
        self.view_of = None

    def become(self, other: "BatchTracer"):
        """In-place update: this tracer now stands for ``other``'s value (a value computed
        outside this trace, e.g. from constants alone, is one every example shares)."""
        other = self._trace.full_raise(other)
        self.value, self.batched, self.aval = other.value, other.batched, other.aval


class BatchTrace(Trace):
    def __init__(self, level, size):
        super().__init__(level)
        self.size = size

    def lift(self, value) -> BatchTracer:
        return BatchTracer(self, value, False)

    def process(self, prim, tracers, params):
        values = [t.value for t in tracers]
        batched = [t.batched for t in tracers]
        several = prim.extra.get("multiple_results")
        if not any(batched):
            out = bind(prim, *values, **params)
            return [BatchTracer(self, o, False) for o in (out if several else (out,))]
        rule = batching_rules.get(prim)
        if rule is None:
            raise NotImplementedError(f"primitive {prim.name} has no batching rule (tracejit.rules.batching.defbatch)")
        out, out_batched = rule(values, batched, self.size, **params)
        if not several:
            out, out_batched = (out,), (out_batched,)
        return [BatchTracer(self, o, b) for o, b in zip(out, out_batched)]


def _axes_per_argument(axes, n_args, name):
    if isinstance(axes, (tuple, list)):
        if len(axes) != n_args:
            raise ValueError(f"vmap: {name} has {len(axes)} entries for a call with {n_args} positional arguments")
        return list(axes)
    return [axes] * n_args


def _check_axis(axis, ndim, what):
    if axis is None:
        return None
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(f"vmap: axis {axis!r} does not fit {what}, which has {ndim} dimensions")
    return axis % ndim


def vmap(fn, in_axes=0, out_axes=0):
    """``fn`` mapped over a batch axis of its arguments, as one batched computation.

    ``in_axes``: for every positional argument (a tuple), or for all of them (one value), the
    axis of its arrays that runs over the examples, or None for an argument every example
    shares. ``out_axes``: where the batch axis goes in the results (an int for all of them).
    Every batched argument must have the same number of examples."""
    from . import numpy as tnp

    def wrapped(*args):
        axes = _axes_per_argument(in_axes, len(args), "in_axes")
        flat, size = [], None
        for k, (arg, axis) in enumerate(zip(args, axes)):
            leaves, tree = pytree.flatten(arg)
            paths = pytree.leaf_paths(tree, f"args[{k}]")
            moved = []
            for leaf, path in zip(leaves, paths):
                if axis is None:
                    moved.append((leaf, False))
                    continue
                shape = tuple(np.shape(leaf)) if not isinstance(leaf, Tracer) else leaf.shape
                a = _check_axis(axis, len(shape), path)
                if a is None:
                    raise ValueError(f"vmap: {path} is a scalar and cannot be batched along axis {axis} "
                                     "(give its argument in_axes=None)")
                if size is None:
                    size, first = shape[a], path
                elif shape[a] != size:
                    raise ValueError(f"vmap: {path} has {shape[a]} examples along axis {a}, but {first} has {size}")
                moved.append((tnp.moveaxis(leaf, a, 0) if a else leaf, True))
            flat.append((moved, tree))
        if size is None:
            raise ValueError("vmap: no argument is batched (every in_axes is None)")
        with new_trace(BatchTrace, size) as trace:
            inputs = [[(BatchTracer(trace, v, b), v) if b else (v, None) for v, b in moved] for moved, _ in flat]
            call_args = [pytree.unflatten(tree, [t for t, _ in row]) for row, (_, tree) in zip(inputs, flat)]
            result = fn(*call_args)
            out_leaves, out_tree = pytree.flatten(result)
            out_tracers = [trace.full_raise(x) for x in out_leaves]
        _write_back(args, axes, inputs, size)
        outs = []
        for t in out_tracers:
            value = t.value if t.batched else broadcast_batch(t.value, size)
            ndim = len(t.aval.shape) + 1
            axis = _check_axis(out_axes, ndim, "a result")
            outs.append(_plain(tnp.moveaxis(value, 0, axis) if axis else value))
        return pytree.unflatten(out_tree, outs)

    wrapped.__name__ = f"vmap({getattr(fn, '__name__', 'fn')})"
    return wrapped


def _write_back(args, axes, inputs, size):
    """Arguments the function updated in place (``x *= 2``, ``x[0] = v``) get the new values of
    their examples, as a loop over views of them (``f(X[i])``) would leave them."""
    from . import numpy as tnp
    for arg, axis, row in zip(args, axes, inputs):
        leaves = pytree.flatten(arg)[0]
        for leaf, (tracer, initial) in zip(leaves, row):
            if initial is None or tracer.value is initial:
                continue
            value = tracer.value if tracer.batched else broadcast_batch(tracer.value, size)
            ndim = len(tracer.aval.shape) + 1
            new = tnp.moveaxis(value, 0, axis % ndim) if axis % ndim else value
            if isinstance(leaf, np.ndarray):
                np.copyto(leaf, new)
            else:
                leaf[...] = new  # a traced argument: an in-place update of the traced program


def _plain(value):
    """A result as the caller gets it: a plain ndarray outside every transformation."""
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
        return value.view(np.ndarray)
    return value
