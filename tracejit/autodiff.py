"""Reverse-mode autodiff: ``grad``, ``value_and_grad``, ``vjp`` and ``stop_gradient``.

Layer: a transformation over the front end. A ``TapeTrace`` wraps each input in a
``TapeTracer`` and records, for every primitive bound on them, the inputs and the output.
The backward pass walks that tape in reverse and applies each primitive's rule from
``rules/vjp.py`` (the only gradient code there is -- one rule per primitive, in one table).

The rules compute on the *primal* values, whatever they are:

- plain arrays (eager mode, or outside ``@tj.trace``): the gradient is computed right away;
- graph tracers (inside ``@tj.trace``): the backward pass is recorded into the same graph,
  which is then optimised, fused and compiled with the forward pass;
- tape tracers of an enclosing ``grad``: the backward pass is itself differentiated, which is
  how grad of grad and Hessian-vector products work.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from . import numpy as tnp
from . import pytree
from .core import Aval, aval_of
from .errors import UnsupportedError, where as _where_msg
from .numpy import literal
from .ops import broadcast_to as _broadcast_to
from .primitives import Trace, Tracer, bind, new_trace, recording
from .primitives import _state as _trace_state
from .rules.vjp import takes_needed, vjp_rules
from .tracer import _TracerArrayMethods

__all__ = ["grad", "value_and_grad", "vjp", "stop_gradient", "EagerGradient"]

_value_ids = itertools.count()


def _broadcast_rule(ct, x, out, *, shape):
    return vjp_rules[_broadcast_to](ct, x, out, shape=shape)


class TapeTracer(_TracerArrayMethods, Tracer):
    """A value seen by a ``TapeTrace``: its primal and an id the tape knows it by.

    The aval is made only when asked for: shape and dtype of an array primal are read from
    the array itself (and kept in slots, read on every operation), so most tracers of an eager
    run never build one."""

    __slots__ = ("primal", "vid", "view_of", "_aval", "shape", "dtype")

    def __init__(self, trace, primal, aval=None):
        self._trace = trace
        self.primal = primal
        self.vid = next(_value_ids)
        self.view_of = None
        self.ndarray0d = False  # set, not left unset: reading an unset slot goes through __getattr__
        if aval is None and primal.__class__ is np.ndarray:
            self._aval = None
            self.shape, self.dtype = primal.shape, primal.dtype
        else:
            aval = self._aval = aval if aval is not None else aval_of(primal)
            self.shape, self.dtype = aval.shape, aval.dtype

    @property
    def aval(self) -> Aval:
        aval = self._aval
        if aval is None:
            aval = self._aval = Aval.of(self.shape, self.dtype)
        return aval

    @aval.setter
    def aval(self, value: Aval):
        self._aval = value

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def weak(self) -> bool:
        aval = self._aval
        return aval is not None and aval.weak

    def become(self, other: "TapeTracer"):
        """In-place update: this tracer now stands for ``other``'s value (one computed outside
        this trace, e.g. a traced argument that is not differentiated, has no gradient). An input being
        differentiated cannot change: the gradient would be taken with respect to the new
        value, and the one asked for would silently come out wrong."""
        if self.vid in self._trace.input_vids:
            raise UnsupportedError(
                f"an in-place update of an array being differentiated (an argument of grad, vjp or value_and_grad) "
                f"is not supported{_where_msg()}\nThe gradient with respect to it would be wrong. Update a copy "
                "instead (a = a.copy(); a[i] = v), or build the new array with np.where or np.concatenate.")
        other = self._trace.full_raise(other)  # a value from outside this trace carries no gradient
        self.primal, self._aval, self.vid = other.primal, other._aval, other.vid
        self.shape, self.dtype = other.shape, other.dtype


# One recorded primitive application is a plain tuple (made on every differentiable operation,
# so no class and no __init__): (prim, params, in_vids, in_primals, out_vids, out_primals,
# needed, broadcast); for an ``EagerGradient`` node ``params`` holds its residuals.
# ``needed``: which inputs need a cotangent; ``broadcast``: for an elementwise primitive
# applied with NumPy's broadcasting (``TapeTrace.elementwise``), the positions of the inputs
# that were broadcast, else None. Their cotangents go through
# ``broadcast_to``'s rule, as if the broadcast had been recorded before this node.


class EagerGradient:
    """A composite function's gradient written out in NumPy, for eager autodiff.

    Eager mode records one node per primitive and runs one rule per node backwards; for a
    composite such as the cross-entropy that is a dozen Python-level steps where NumPy code
    written by hand takes three. A function with an ``EagerGradient`` is recorded on a plain
    eager tape (``TapeTrace.fused``) as one node: ``forward(*arrays) -> (out, residuals)`` and
    ``backward(ct, residuals, *arrays) -> one cotangent (or None) per array``, both on plain
    arrays. Under ``@tj.trace``, nested ``grad``, ``jvp`` or ``vmap`` the function runs as its
    composition of primitives instead, whose rules give the same gradient; the tests check
    that the two agree.
    """
    __slots__ = ("name", "forward", "backward")

    def __init__(self, name, forward, backward):
        self.name, self.forward, self.backward = name, forward, backward

    def __repr__(self):
        return f"EagerGradient({self.name})"


class TapeTrace(Trace):
    """Records differentiable operations on values that depend on the inputs (``active``)."""

    def __init__(self, level):
        super().__init__(level)
        self.tape: list[tuple] = []  # the nodes, see above
        self.active: set[int] = set()
        self.input_vids: set[int] = set()  # the values differentiated with respect to
        # Primals are plain arrays when no other transformation was active below this one;
        # primitives on them then run their NumPy ``impl`` directly (unless a graph is being
        # recorded, see ``process``).
        self.plain = level == 0
        self.broadcasts_elementwise = self.plain

    def elementwise(self, prim, operands, shape):
        """Eager autodiff: the primitive on the primals, broadcast by NumPy itself (the same
        values as on explicitly broadcast ones); one node, whose backward pass reduces the
        broadcast inputs' cotangents with ``broadcast_to``'s gradient rule."""
        active = self.active
        primals, vids, needed, broadcast = [], [], [], []
        for k, a in enumerate(operands):
            if isinstance(a, TapeTracer):
                if a._trace is not self:
                    return None
                primal = a.primal
                vids.append(a.vid)
                needed.append(a.vid in active)
            else:
                primal = a
                vids.append(None)
                needed.append(False)
            if not isinstance(primal, np.ndarray):
                return None
            if primal.shape != shape:
                broadcast.append(k)
            primals.append(primal)
        out = prim.impl(*primals)
        result = TapeTracer(self, out)
        if prim.differentiable and True in needed:
            if prim not in vjp_rules:
                raise NotImplementedError(f"primitive {prim.name} has no gradient rule (tracejit.rules.vjp.defvjp)")
            self.tape.append((prim, {}, vids, primals, [result.vid], [out], tuple(needed),
                              tuple(broadcast) if broadcast else None))
            active.add(result.vid)
        return result

    def constant_result(self, fn, args):
        """Eager autodiff on values that need no gradient: NumPy itself computes ``fn`` on the
        primals (what the front end's composition of primitives computes too), and no node is
        recorded. Not for weak (Python-number) values, whose NumPy kind would differ."""
        if not self.plain or recording():
            return None
        active = self.active
        primals = []
        for a in args:
            if isinstance(a, Tracer):
                if a._trace is not self or a.vid in active or a.weak:
                    return None
                a = a.primal
                if not isinstance(a, np.ndarray):
                    return None
            primals.append(a)
        out = fn(*primals)
        return TapeTracer(self, out if out.__class__ is np.ndarray else np.asarray(out))

    def fused(self, gradient: EagerGradient, operands):
        """``gradient.forward`` on the operands' primals, recorded as one node whose backward
        pass is ``gradient.backward``; None where that does not apply (primals that are not
        plain arrays, a graph being recorded, a tracer of another trace): the caller then
        runs the composition of primitives."""
        if not self.plain or _trace_state.recording:
            return None
        active = self.active
        primals, vids, needed = [], [], []
        for a in operands:
            if isinstance(a, Tracer):
                if a._trace is not self:
                    return None
                vids.append(a.vid)
                needed.append(a.vid in active)
                a = a.primal
            else:
                vids.append(None)
                needed.append(False)
            if a.__class__ is not np.ndarray:
                return None
            primals.append(a)
        out, residuals = gradient.forward(*primals)
        result = TapeTracer(self, out)
        if True in needed:
            self.tape.append((gradient, residuals, vids, primals, [result.vid], [out], tuple(needed), None))
            active.add(result.vid)
        return result

    def new_input(self, primal) -> TapeTracer:
        t = TapeTracer(self, primal)
        self.active.add(t.vid)
        self.input_vids.add(t.vid)
        return t

    def lift(self, value) -> TapeTracer:
        return TapeTracer(self, value)

    def process(self, prim, tracers, params):
        primals = [t.primal for t in tracers]
        if self.plain and not _trace_state.recording:
            out = prim.impl(*primals, **params)
        else:
            out = bind(prim, *primals, **params)
        if prim.multiple_results:
            out_tracers = [TapeTracer(self, o) for o in out]
            outs = list(out)
        else:
            out_tracers = [TapeTracer(self, out)]
            outs = [out]
        if prim.differentiable:
            active = self.active
            needed = tuple([t.vid in active for t in tracers])
            if True in needed:
                if prim not in vjp_rules:
                    raise NotImplementedError(f"primitive {prim.name} has no gradient rule (tracejit.rules.vjp.defvjp)")
                out_vids = [t.vid for t in out_tracers]
                self.tape.append((prim, params, [t.vid for t in tracers], primals, out_vids, outs, needed, None))
                active.update(out_vids)
        return out_tracers

    def backward(self, out_vids, out_cts, in_vids):
        """Cotangents of ``in_vids`` given cotangents ``out_cts`` of ``out_vids`` (None: no
        gradient reached that input)."""
        add = np.add  # on tracers (a cotangent may be one) NumPy hands this to the front end
        cts: dict[int, object] = {}
        for vid, ct in zip(out_vids, out_cts):
            if ct is not None:
                cts[vid] = add(cts[vid], ct) if vid in cts else ct
        for prim, params, node_in_vids, in_primals, out_node_vids, out_primals, needed, broadcast in reversed(self.tape):
            if len(out_node_vids) == 1:
                ct = cts.pop(out_node_vids[0], None)
                if ct is None:
                    continue
            else:
                node_cts = [cts.pop(v, None) for v in out_node_vids]
                if all(c is None for c in node_cts):
                    continue
                ct = node_cts
            # a rule sees its outputs as it sees their cotangents: one value, or a list of several
            out = out_primals[0] if len(out_primals) == 1 else out_primals
            if prim.__class__ is EagerGradient:
                in_cts = prim.backward(ct, params, *in_primals)
            elif prim in takes_needed:
                in_cts = vjp_rules[prim](ct, *in_primals, out=out, needed=needed, **params)
            else:
                in_cts = vjp_rules[prim](ct, *in_primals, out=out, **params)
            if broadcast is None:
                for vid, c, need in zip(node_in_vids, in_cts, needed):
                    if need and c is not None:
                        cts[vid] = add(cts[vid], c) if vid in cts else c
                continue
            for k, (vid, c, need) in enumerate(zip(node_in_vids, in_cts, needed)):
                if need and c is not None and k not in broadcast:
                    cts[vid] = add(cts[vid], c) if vid in cts else c
            # in the order the broadcast nodes would have come in the tape: reversed
            shape = out_primals[0].shape
            for k in reversed(broadcast):
                c, vid = in_cts[k], node_in_vids[k]
                if c is None or not needed[k]:
                    continue
                (c,) = _broadcast_rule(c, in_primals[k], None, shape=shape)
                cts[vid] = add(cts[vid], c) if vid in cts else c
        return [cts.get(v) for v in in_vids]


def stop_gradient(x):
    """``x`` with no gradient flowing through it (in every enclosing ``grad``)."""
    if isinstance(x, TapeTracer):
        return TapeTracer(x._trace, stop_gradient(x.primal), x.aval)
    if hasattr(x, "tangent"):  # forward mode's tracer: the same primal, no tangent
        return type(x)(x._trace, stop_gradient(x.primal), None, x.aval)
    if isinstance(x, Tracer):
        return x
    if hasattr(type(x), "__tracejit_apply__"):  # a symbolic tensor (tracejit.flow): stop it when it runs
        return x.__tracejit_apply__(stop_gradient, (x,), {})
    return pytree.tree_map(lambda v: stop_gradient(v) if isinstance(v, Tracer) else v, x) \
        if isinstance(x, (tuple, list, dict)) else x


# --------------------------------------------------------------------------- public API

def _float_input(leaf, tree, position):
    value = leaf if isinstance(leaf, Tracer) else np.asarray(leaf)
    if value.dtype.kind not in "fc":
        name = pytree.leaf_paths(tree, "primals")[position]
        raise TypeError(f"grad: {name} has dtype {value.dtype}; gradients are only defined for float inputs. "
                        f"Pass it as a float array, or leave it out of argnums (integer labels need no gradient).")
    return value


def _check_argnums(argnums, n_args, fname):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or any(not isinstance(i, int) or not -n_args <= i < n_args for i in nums):
        raise ValueError(f"{fname}: argnums={argnums!r} does not fit a call with {n_args} positional arguments")
    return nums


def _vjp(fn, primals, has_aux):
    """Run ``fn`` on tape tracers of ``primals``; returns (outputs, aux, backward function)."""
    leaves, tree = pytree.flatten(tuple(primals))
    with new_trace(TapeTrace) as tape:
        in_tracers = [tape.new_input(_float_input(leaf, tree, k)) for k, leaf in enumerate(leaves)]
        for t, leaf in zip(in_tracers, leaves):
            if _is_0d_array(leaf):
                t.ndarray0d = True
        result = fn(*pytree.unflattener(tree)(in_tracers))
        if has_aux:
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError("has_aux=True: the function must return a pair (output, aux)")
            result, aux = result
        else:
            aux = None
        out_leaves, out_tree = pytree.flatten(result)
        out_tracers = [tape.full_raise(x) for x in out_leaves]
    if aux is not None:
        aux = _strip(aux, tape)
    outputs = pytree.unflattener(out_tree)([_leave(t) for t in out_tracers])

    def backward(cotangents):
        ct_leaves, ct_tree = pytree.flatten(cotangents)
        if ct_tree != out_tree:
            raise ValueError("vjp: the cotangent must have the same structure as the function's output")
        for t, ct in zip(out_tracers, ct_leaves):
            shape = ct.shape if isinstance(ct, (np.ndarray, Tracer)) else tuple(np.shape(ct))
            if shape != t.shape:
                raise ValueError(f"vjp: cotangent of shape {shape} for an output of shape {t.shape}")
        in_cts = tape.backward([t.vid for t in out_tracers], ct_leaves, [t.vid for t in in_tracers])
        gradients = []
        for ct, t in zip(in_cts, in_tracers):
            if ct is None:
                ct = tnp.zeros_like(t.primal)
            if ct.dtype != t.dtype:
                ct = tnp.astype(ct, t.dtype)
            # a gradient has its input's kind: a 0-d array's is a 0-d array, a scalar's a scalar
            gradients.append(_as_kind(ct, t.ndarray0d))
        return pytree.unflattener(tree)(gradients)

    return outputs, aux, backward, out_tracers


def _strip(tree, tape):
    # Aux values leave the transformation as their primal values.
    return pytree.tree_map(lambda v: _leave(v) if isinstance(v, TapeTracer) and v._trace is tape else v, tree)


def _is_0d_array(value) -> bool:
    if isinstance(value, Tracer):
        return value.ndim == 0 and getattr(value, "ndarray0d", False)
    return isinstance(value, np.ndarray) and value.ndim == 0


def _leave(t: TapeTracer):
    """The value tape tracer ``t`` stands for, as the caller gets it: a plain ndarray (not the
    front end's literal subclass), and for 0-d values a NumPy scalar unless NumPy would return a
    0-d array (``np.where`` ...), as in every other mode."""
    return _as_kind(t.primal, getattr(t, "ndarray0d", False))


def _as_kind(value, array0d: bool):
    """``value`` (an array or an enclosing trace's tracer) as a plain ndarray, and if 0-d as a
    0-d array (``array0d``) or a NumPy scalar."""
    if isinstance(value, Tracer):
        if value.ndim == 0 and array0d != bool(getattr(value, "ndarray0d", False)):
            from .numpy import _ndarray0d, _scalar0d
            value = _ndarray0d(value, value) if array0d else _scalar0d(value)
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        if value.ndim == 0 and not array0d:
            return value[()]
        return value if type(value) is np.ndarray else np.asarray(value).view(np.ndarray)
    return value


def vjp(fn, *primals, has_aux=False):
    """``outputs, vjp_fn = vjp(fn, *primals)``; ``vjp_fn(cotangents)`` returns one cotangent per
    primal (a tuple). With ``has_aux=True`` returns ``outputs, vjp_fn, aux``."""
    outputs, aux, backward, _ = _vjp(fn, primals, has_aux)
    vjp_fn = lambda cotangents: backward(cotangents)  # noqa: E731
    return (outputs, vjp_fn, aux) if has_aux else (outputs, vjp_fn)


def _defined_at(fn) -> str:
    """`` from loss (model.py, line 12)``: where the differentiated function is defined."""
    code = getattr(getattr(fn, "fn", fn), "__code__", None)
    if code is None:
        return ""
    return f" from {getattr(fn, '__name__', 'the function')} ({code.co_filename}, line {code.co_firstlineno})"


def value_and_grad(fn, argnums=0, has_aux=False):
    """``value_and_grad(fn)(*args) -> (value, gradient)`` for a function returning a float scalar.

    ``argnums`` (int or tuple) picks the arguments to differentiate; each may be a pytree.
    With ``has_aux=True`` ``fn`` returns ``(value, aux)`` and the result is ``((value, aux), grad)``.
    """
    def wrapped(*args, **kwargs):
        nums = _check_argnums(argnums, len(args), "value_and_grad")
        chosen = [args[i] for i in nums]

        def partial(*diff_args):
            full = list(args)
            for i, a in zip(nums, diff_args):
                full[i] = a
            return fn(*full, **kwargs)

        value, aux, backward, out_tracers = _vjp(partial, chosen, has_aux)
        if len(out_tracers) == 1 and out_tracers[0].dtype.kind == "c":
            raise TypeError(f"grad: the function returns a complex {out_tracers[0].dtype} value{_defined_at(fn)}; the "
                            "gradient is defined for a real output, as in JAX and autograd. Differentiate its real "
                            f"part or its absolute value (np.real, np.abs), or use tj.vjp.{_where_msg()}")
        # one float value: a scalar, or an array of one element of any rank, as autograd takes it
        if len(out_tracers) != 1 or math.prod(out_tracers[0].shape) != 1 or out_tracers[0].dtype.kind not in "fc":
            shapes = [f"{t.dtype}{list(t.shape)}" for t in out_tracers]
            raise TypeError(f"grad: the function must return one float scalar, got {', '.join(shapes) or 'nothing'}"
                            f"{_defined_at(fn)}. Reduce it (e.g. .mean()) or use tj.vjp for non-scalar outputs."
                            f"{_where_msg()}")
        grads = backward(literal(np.ones(out_tracers[0].shape, out_tracers[0].dtype)))
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return ((value, aux) if has_aux else value), grads

    wrapped.__name__ = f"value_and_grad({getattr(fn, '__name__', 'fn')})"
    wrapped.__doc__ = fn.__doc__
    return wrapped


def grad(fn, argnums=0, has_aux=False):
    """The gradient of a float-scalar function (or one returning an array of a single element,
    such as ``(1, 1)``) with respect to argument(s) ``argnums``.

    Works eagerly, inside ``@tj.trace`` and nested (``grad(grad(f))``). With ``has_aux=True``
    returns ``(gradient, aux)``.
    """
    vg = value_and_grad(fn, argnums, has_aux)

    def wrapped(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    wrapped.__name__ = f"grad({getattr(fn, '__name__', 'fn')})"
    wrapped.__doc__ = fn.__doc__
    return wrapped
