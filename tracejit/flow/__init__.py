"""``tracejit.flow`` (``import tracejit.flow as tf``): the declarative front end, with TensorFlow 1's names.

Layer: a second front end, on top of the runtime (``jit``). Placeholders, Variables and ops
build a symbolic graph of ``Tensor`` nodes; nothing runs until ``Session.run``. Each node
holds a function over NumPy values -- the same NumPy calls and ``tj.nn`` functions the
imperative side uses -- so a ``Session.run`` replays the nodes it needs inside one Python
function of the fed values and the Variables' values, and hands that function to
``tj.trace``: tracing, autodiff (``gradients`` is ``tj.grad`` of a replay), the passes, fusion,
the Numba backend, the cache and its retrace reasons, ``check=`` and logging are the
imperative side's own. Variables live in the ``Session`` as NumPy arrays; assignments made by
a run are written into them in place when the run ends (every read in a run sees the values
from before it).

    x = tf.placeholder(tf.float32, [None, 784])
    W = tf.Variable(tf.zeros([784, 10]))
    y = tf.nn.softmax(tf.matmul(x, W))
    ...
    sess = tf.Session()
    sess.run(tf.initialize_all_variables())
    sess.run(train_step, feed_dict={x: images, y_: labels})
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from .. import nn as _tjnn
from ..autodiff import grad as _grad
from ..core import Aval
from ..errors import TracerError, user_frame, where as _where
from ..graph_builder import GraphTrace
from ..jit import trace as _trace
from ..modes import check_mode
from ..primitives import new_trace

__all__ = [
    "Tensor", "Placeholder", "Variable", "Session", "FlowError",
    "placeholder", "constant", "zeros", "ones", "zeros_like", "ones_like", "normal",
    "float32", "float64", "int32", "int64", "bool_",
    "matmul", "exp", "log", "sqrt", "tanh", "sigmoid", "abs", "negative",
    "reduce_sum", "reduce_mean", "reduce_max", "argmax", "equal", "cast", "reshape", "transpose", "pad",
    "assign", "group", "gradients", "apply", "initialize_all_variables", "global_variables_initializer",
    "infer_variable_shapes", "nn", "train", "datasets",
]

float32, float64, int32, int64, bool_ = np.float32, np.float64, np.int32, np.int64, np.bool_


class FlowError(TracerError, ValueError):
    """A declarative program that cannot run as written: a missing or ill-shaped feed, an
    uninitialised Variable, a Variable whose shape was never inferred."""


_ids = itertools.count()


def _described(node) -> str:
    """``placeholder 'x' (created at File "train.py", line 3)`` for messages."""
    return f"{node.kind} {node.name!r}" + (f" (created at{_where(node.source)})" if node.source else "")


# ============================================================================ the graph


class Tensor:
    """A symbolic value: the result of ``fn`` applied to the values of ``inputs`` when a
    ``Session`` runs it. Supports Python's arithmetic operators (scalars on either side,
    NumPy broadcasting) and NumPy functions (``np.exp(t)`` is a new ``Tensor``)."""

    kind = "op"
    __array_priority__ = 2000  # above tracers' and arrays': ``array + tensor`` builds a node

    def __init__(self, fn, inputs=(), name=None):
        self.fn = fn
        self.inputs = tuple(inputs)
        self.id = next(_ids)
        self.name = name or f"{getattr(fn, '__name__', 'op')}_{self.id}"
        self.source = user_frame()

    def __repr__(self):
        return f"<tf.{type(self).__name__} {self.name!r}>"

    def evaluate(self, run, values):
        """The node's value, given its inputs' ``values`` (``run``: the ``_Replay`` asking)."""
        return self.fn(*values)

    def eval(self, feed_dict=None, session=None):
        """``session.run(self, feed_dict)``; by default in the last ``Session`` created."""
        return _default_session(session).run(self, feed_dict=feed_dict)

    # Python operators: each is a new node applying the NumPy operator to the values.
    def __add__(self, other): return apply(np.add, self, other)
    def __radd__(self, other): return apply(np.add, other, self)
    def __sub__(self, other): return apply(np.subtract, self, other)
    def __rsub__(self, other): return apply(np.subtract, other, self)
    def __mul__(self, other): return apply(np.multiply, self, other)
    def __rmul__(self, other): return apply(np.multiply, other, self)
    def __truediv__(self, other): return apply(np.true_divide, self, other)
    def __rtruediv__(self, other): return apply(np.true_divide, other, self)
    def __pow__(self, other): return apply(np.power, self, other)
    def __rpow__(self, other): return apply(np.power, other, self)
    def __matmul__(self, other): return apply(np.matmul, self, other)
    def __rmatmul__(self, other): return apply(np.matmul, other, self)
    def __neg__(self): return apply(np.negative, self)
    def __abs__(self): return apply(np.absolute, self)
    def __lt__(self, other): return apply(np.less, self, other)
    def __le__(self, other): return apply(np.less_equal, self, other)
    def __gt__(self, other): return apply(np.greater, self, other)
    def __ge__(self, other): return apply(np.greater_equal, self, other)
    # ``==`` stays identity, as in TensorFlow 1: tensors are dict keys (feed_dict); use tf.equal.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __getitem__(self, index):
        return apply(lambda value: value[index], self, name="getitem")

    def __bool__(self):
        raise TypeError(f"the truth value of a symbolic tensor is only known when a Session runs it "
                        f"({_described(self)}); use tf ops, or sess.run(t) to get its value")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or "out" in kwargs:
            return NotImplemented
        return apply(lambda *values: ufunc(*values, **kwargs), *inputs, name=ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        return apply(func, *args, **kwargs)

    def __tracejit_apply__(self, fn, args, kwargs):
        """How ``tj.nn`` functions and ``tj.stop_gradient`` take tensors: as a node calling them."""
        return apply(fn, *args, **kwargs)


def apply(fn, *args, name=None, **kwargs):
    """A ``Tensor`` computing ``fn(*args, **kwargs)`` when run, with the values of the tensors
    among ``args`` (also inside lists, tuples and dicts) in their places. ``fn`` is any NumPy
    code -- ``tj.nn.conv2d``, your own function -- so imperative code composes with graphs."""
    tensors, rebuild = _split_tensors((args, kwargs))
    if not tensors:
        raise TypeError(f"tf.apply({getattr(fn, '__name__', fn)}): no tensor among the arguments")

    def run(*values):
        call_args, call_kwargs = rebuild(values)
        return fn(*call_args, **call_kwargs)

    run.__name__ = name or getattr(fn, "__name__", "op")
    return Tensor(run, tensors)


def _split_tensors(tree):
    """The tensors inside ``tree`` (lists, tuples, dicts), and ``rebuild(values)`` putting values in their places."""
    tensors = []

    def walk(node):
        if isinstance(node, Tensor):
            tensors.append(node)
            return ("t", len(tensors) - 1)
        if isinstance(node, (list, tuple)):
            return (type(node), [walk(x) for x in node])
        if isinstance(node, dict):
            return ("d", {k: walk(v) for k, v in node.items()})
        return ("c", node)

    shape = walk(tree)

    def build(node, values):
        tag, body = node
        if tag == "t":
            return values[body]
        if tag == "c":
            return body
        if tag == "d":
            return {k: build(v, values) for k, v in body.items()}
        return tag(build(x, values) for x in body)

    return tensors, lambda values: build(shape, values)


def _tensor(value, what="value") -> Tensor:
    """``value`` as a node: tensors stay, arrays and numbers become constants."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
        return constant(value)
    raise TypeError(f"{what}: expected a tensor, an array or a number, got {type(value).__name__}")


class Placeholder(Tensor):
    """An input fed at run time (``feed_dict``). ``shape``: None (any), or one entry per axis,
    each an int or None (any length)."""

    kind = "placeholder"

    def __init__(self, dtype, shape=None, name=None):
        super().__init__(None, (), name or f"placeholder_{next(_ids)}")
        self.dtype = np.dtype(dtype)
        if shape is not None:
            shape = tuple(None if d is None else int(d) for d in shape)
        self.shape = shape

    def evaluate(self, run, values):  # pragma: no cover - runs take placeholders from the feeds
        raise AssertionError("placeholders are fed")

    def check_feed(self, value):
        """``value`` as an array of this placeholder's dtype, or a ``FlowError`` saying what is wrong."""
        array = np.asarray(value)
        if array.dtype != self.dtype:
            fits = np.can_cast(array.dtype, self.dtype, "same_kind") or (
                array.dtype.kind in "biu" and self.dtype.kind == "f")
            if not fits:
                raise FlowError(f"feed for {_described(self)}: expected dtype {self.dtype}, got {array.dtype}, "
                                f"which does not convert to it without losing its kind{_where()}")
            array = array.astype(self.dtype)
        if self.shape is not None and (array.ndim != len(self.shape) or any(
                d is not None and d != n for d, n in zip(self.shape, array.shape))):
            wanted = "[" + ", ".join("None" if d is None else str(d) for d in self.shape) + "]"
            raise FlowError(f"feed for {_described(self)}: expected shape {wanted}, got {list(array.shape)}{_where()}")
        return np.ascontiguousarray(array)


def placeholder(dtype, shape=None, name=None) -> Placeholder:
    """An input to feed at run time: ``placeholder(tf.float32, [None, 784])``."""
    return Placeholder(dtype, shape, name)


class Variable(Tensor):
    """A value that lives in the ``Session`` between runs and changes only through ``assign``.

    ``initial_value``: an array, a number, or a tensor of constants and random draws
    (``tf.zeros([784, 10])``, ``tf.normal(shape, 0.01)``), set by ``initialize_all_variables``.
    Layers (``nn.linear``, ``nn.conv2d``) create Variables whose shape is inferred from their
    input by ``infer_variable_shapes``; they are initialised with ``init`` (zeros or N(0, stdev)).
    """

    kind = "Variable"

    def __init__(self, initial_value=None, name=None, dtype=None, *, _shape_rule=None, _init=None):
        super().__init__(None, (), name or f"Variable_{next(_ids)}")
        self.initial_value = None if initial_value is None else _tensor(initial_value, "tf.Variable")
        self.shape_rule = _shape_rule  # (tensor, shape of tensor -> shape of variable), or a variable to copy
        self.init = _init  # for a shape found later: ("zeros",) or ("normal", stdev)
        self.shape = None
        if isinstance(initial_value, (np.ndarray, np.generic, numbers.Number, list, tuple)):
            value = np.asarray(initial_value, dtype=dtype)
            self.shape, dtype = value.shape, value.dtype
        elif isinstance(initial_value, Tensor):
            dtype = dtype or getattr(initial_value, "dtype", None)
            self.shape = getattr(initial_value, "shape", None)
        elif initial_value is None and _shape_rule is None:
            raise TypeError("tf.Variable: needs an initial_value")
        self.dtype = np.dtype(dtype or np.float32)
        _all_variables.append(self)

    def evaluate(self, run, values):  # pragma: no cover - runs take Variables from the session
        raise AssertionError("Variables are inputs of a run")

    def known_shape(self):
        """The shape, once known (given, inferred, or that of the Variable it copies), else None."""
        if self.shape is None and isinstance(self.shape_rule, Variable):
            self.shape = self.shape_rule.known_shape()
        return self.shape


_all_variables: list[Variable] = []


def constant(value, dtype=None, name=None) -> Tensor:
    """A constant node holding ``np.asarray(value, dtype)``."""
    array = np.array(value, dtype=dtype)
    node = Tensor(lambda: array, (), name or "constant")
    node.dtype, node.shape = array.dtype, array.shape
    return node


class _Random(Tensor):
    """Random draws: made by NumPy in each run and passed into the compiled program as an
    input (a draw inside a traced function would be frozen into the program)."""

    kind = "random"

    def __init__(self, shape, draw, dtype, name):
        super().__init__(None, (), name)
        self.shape, self.dtype, self.draw = tuple(int(d) for d in shape), np.dtype(dtype), draw

    def value(self, rng):
        return self.draw(rng, self.shape).astype(self.dtype)


def normal(shape, stdev=1.0, dtype=np.float32, name=None) -> Tensor:
    """Draws from N(0, stdev**2) of ``shape``, new on every run."""
    return _Random(shape, lambda rng, s: rng.normal(0.0, stdev, s), dtype, name or "normal")


def zeros(shape, dtype=np.float32, name=None) -> Tensor:
    """A constant array of zeros."""
    return constant(np.zeros(shape, dtype), name=name or "zeros")


def ones(shape, dtype=np.float32, name=None) -> Tensor:
    """A constant array of ones."""
    return constant(np.ones(shape, dtype), name=name or "ones")


def zeros_like(x, name=None) -> Tensor:
    """Zeros with the shape and dtype of ``x``'s value."""
    return apply(np.zeros_like, x, name=name or "zeros_like")


def ones_like(x, name=None) -> Tensor:
    """Ones with the shape and dtype of ``x``'s value."""
    return apply(np.ones_like, x, name=name or "ones_like")


# ============================================================================ ops


def _unary(np_fn, name):
    def op(x, name=None):
        return apply(np_fn, x, name=name or op.__name__)
    op.__name__ = name
    op.__doc__ = f"Elementwise ``{getattr(np_fn, '__module__', 'numpy')}.{np_fn.__name__}``."
    return op


exp = _unary(np.exp, "exp")
log = _unary(np.log, "log")
sqrt = _unary(np.sqrt, "sqrt")
tanh = _unary(np.tanh, "tanh")
abs = _unary(np.absolute, "abs")  # noqa: A001 - TensorFlow's name
negative = _unary(np.negative, "negative")
sigmoid = _unary(_tjnn.sigmoid, "sigmoid")


def matmul(a, b, name=None) -> Tensor:
    """Matrix product ``a @ b``."""
    return apply(np.matmul, a, b, name=name or "matmul")


def _axes(axis, reduction_indices, what):
    if axis is not None and reduction_indices is not None:
        raise TypeError(f"{what}: give axis= or reduction_indices=, not both")
    axis = reduction_indices if axis is None else axis
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _reduction(np_fn, name):
    def op(x, axis=None, keepdims=False, name=None, reduction_indices=None, keep_dims=None):
        axes = _axes(axis, reduction_indices, f"tf.{op.__name__}")
        keep = bool(keepdims if keep_dims is None else keep_dims)
        return apply(lambda v: np_fn(v, axis=axes, keepdims=keep), x, name=name or op.__name__)
    op.__name__ = name
    op.__doc__ = (f"``numpy.{np_fn.__name__}`` over ``axis`` (or ``reduction_indices``; None: all axes), "
                  f"``keepdims`` keeps them as length 1." + (" A boolean tensor's mean is the fraction of "
                                                             "true values." if name == "reduce_mean" else ""))
    return op


reduce_sum = _reduction(np.sum, "reduce_sum")
reduce_mean = _reduction(np.mean, "reduce_mean")
reduce_max = _reduction(np.max, "reduce_max")


def argmax(x, axis=None, name=None, dimension=None) -> Tensor:
    """Index of the largest value along ``axis`` (int64)."""
    axis = dimension if axis is None else axis
    if axis is None:
        raise TypeError("tf.argmax: needs axis=")
    return apply(np.argmax, x, axis=axis, name=name or "argmax")


def equal(a, b, name=None) -> Tensor:
    """Elementwise ``a == b`` (booleans)."""
    return apply(np.equal, a, b, name=name or "equal")


def cast(x, dtype, name=None) -> Tensor:
    """``x`` converted to ``dtype``."""
    dtype = np.dtype(dtype)
    return apply(lambda v: v.astype(dtype), x, name=name or "cast")


def reshape(x, shape, name=None) -> Tensor:
    """``x`` reshaped to ``shape`` (one entry may be -1)."""
    shape = tuple(int(d) for d in shape)
    return apply(np.reshape, x, shape, name=name or "reshape")


def transpose(x, perm=None, name=None) -> Tensor:
    """Axes permuted by ``perm`` (default: reversed)."""
    return apply(np.transpose, x, None if perm is None else tuple(perm), name=name or "transpose")


def pad(x, dim, pad, name=None) -> Tensor:  # noqa: A002 - tinyflow's keywords
    """tinyflow's pad: ``pad`` zeros on both sides of axis ``dim``; a negative ``pad`` crops
    ``-pad`` elements from both sides instead."""
    dim, pad = int(dim), int(pad)

    def run(v):
        axis = dim % v.ndim
        if pad >= 0:
            return np.pad(v, [(pad, pad) if a == axis else (0, 0) for a in range(v.ndim)])
        index = [slice(None)] * v.ndim
        index[axis] = slice(-pad, v.shape[axis] + pad)
        return v[tuple(index)]

    return apply(run, x, name=name or "pad")


class _Assign(Tensor):
    """``var``'s new value, written into the Session's array when the run ends."""

    kind = "assign"

    def __init__(self, var, value, name):
        super().__init__(lambda v: v, (value,), name)
        self.var = var

    def evaluate(self, run, values):
        (value,) = values
        if np.shape(value) != self.var.known_shape() and self.var.known_shape() is not None:
            raise FlowError(f"assign to {_described(self.var)}: the value has shape {list(np.shape(value))}, "
                            f"the Variable {list(self.var.known_shape())}{_where(self.source)}")
        value = value.astype(self.var.dtype) if value.dtype != self.var.dtype else value
        run.assign(self.var, value)
        return value


def assign(var, value, name=None) -> Tensor:
    """An op setting ``var`` to ``value``; running it returns the new value. Reads of ``var``
    in the same run see its value from before the run."""
    if not isinstance(var, Variable):
        raise TypeError(f"tf.assign: the first argument must be a tf.Variable, got {type(var).__name__}")
    return _Assign(var, _tensor(value, "tf.assign"), name or f"assign_{var.name}")


class _Group(Tensor):
    """Runs its inputs; has no value (running it returns None)."""

    kind = "group"

    def evaluate(self, run, values):
        return None


def group(*ops, name=None) -> Tensor:
    """One op that runs all of ``ops`` (lists are flattened); its value is None."""
    tensors, _ = _split_tensors(list(ops))
    return _Group(None, tensors, name or "group")


class _Gradients(Tensor):
    """The gradients of ``sum(ys)`` with respect to ``xs``: ``tj.grad`` of a replay of the
    graph from ``xs`` to ``ys`` (values that do not depend on ``xs`` are reused)."""

    kind = "gradients"

    def __init__(self, ys, xs, name):
        super().__init__(None, tuple(ys) + tuple(xs), name)
        self.ys, self.xs = tuple(ys), tuple(xs)

    def evaluate(self, run, values):
        def total(*x_values):
            inner = run.fork(dict(zip(self.xs, x_values)))
            out = 0
            for y in self.ys:
                out = out + np.sum(inner.value(y))
            return out

        return _grad(total, argnums=tuple(range(len(self.xs))))(*values[len(self.ys):])


def gradients(ys, xs, name=None) -> list:
    """Symbolic gradients of ``sum(ys)`` (all elements of every tensor in ``ys``) with respect to
    each of ``xs`` (Variables or any tensors): a list of tensors, one per ``x``. Gradients of a
    tensor that ``ys`` does not depend on are zeros."""
    ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
    xs_list = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    node = _Gradients([_tensor(y, "tf.gradients") for y in ys], [_tensor(x, "tf.gradients") for x in xs_list],
                      name or "gradients")
    return [apply(lambda g, k=k: g[k], node, name=f"gradient_{x.name}") for k, x in enumerate(xs_list)]


class _Initializer(Tensor):
    """Sets Variables to their initial values (run eagerly in NumPy by the Session)."""

    kind = "initializer"

    def __init__(self, variables, name):
        super().__init__(None, (), name)
        self.variables = tuple(variables)


def initialize_all_variables() -> Tensor:
    """An op giving every Variable created so far its initial value: Variables with an initial
    value get it; those whose shape was inferred and were not assigned yet get their layer's
    (zeros, or N(0, stdev**2))."""
    return _Initializer(list(_all_variables), "init")


global_variables_initializer = initialize_all_variables


# ============================================================================ running


class _Replay:
    """One evaluation of nodes: ``values`` holds the fed placeholders, the Variables' values and
    the random draws; every other node is computed once from its inputs (iteratively, so deep
    graphs do not hit Python's recursion limit). Assignments are collected in ``updates``."""

    def __init__(self, values, infer=None):
        self.values = dict(values)
        self.updates: dict = {}
        self.infer = infer  # shape inference: makes inputs for Variables (see infer_variable_shapes)
        self.record = True

    def value(self, node):
        if node in self.values:
            return self.values[node]
        stack = [node]
        while stack:
            top = stack[-1]
            if top in self.values:
                stack.pop()
                continue
            missing = [i for i in top.inputs if i not in self.values]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            if isinstance(top, (Variable, Placeholder, _Random)):
                self.values[top] = self.leaf(top)
                continue
            try:
                self.values[top] = top.evaluate(self, [self.values[i] for i in top.inputs])
            except FlowError:
                raise
            except Exception as exc:
                if top.source and not getattr(exc, "_flow_noted", False):
                    exc.add_note(f"while computing {_described(top)}")
                    exc._flow_noted = True
                raise
        return self.values[node]

    def leaf(self, node):
        if self.infer is None:  # pragma: no cover - runs feed every leaf they need
            raise AssertionError(f"{node} was not fed")
        return self.infer(self, node)

    def assign(self, var, value):
        if self.record:
            self.updates[var] = value

    def fork(self, replaced: dict):
        """A replay where ``replaced`` nodes hold other values: values that depend on them are
        computed again (on the new values); the others are shared."""
        stale = _downstream(self.values.keys() | set(replaced), set(replaced))
        inner = _Replay({n: v for n, v in self.values.items() if n not in stale}, self.infer)
        inner.values.update(replaced)
        inner.record = False
        return inner


def _ancestors(nodes, stop=()):
    """Every node the ``nodes`` depend on (themselves included), inputs before users."""
    order, seen, stack = [], set(), [(n, False) for n in reversed(list(nodes))]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        if node not in stop:
            stack.extend((i, False) for i in reversed(node.inputs) if i not in seen)
    return order


def _downstream(nodes, sources):
    """The nodes among ``nodes`` (and their ancestors) that depend on any of ``sources``."""
    out = set()
    for node in _ancestors(nodes):
        if node in sources or any(i in out for i in node.inputs):
            out.add(node)
    return out


def _flatten_fetches(fetches):
    leaves = []
    return leaves, _fetch_structure(fetches, "fetches", leaves)


# Module-level recursions, not closures calling themselves: such a closure is a reference
# cycle, which would keep each run's fetched arrays alive until the garbage collector runs.
def _fetch_structure(node, path, leaves):
    if isinstance(node, Tensor):
        leaves.append(node)
        return ("t",)
    if isinstance(node, (list, tuple)):
        return (type(node), tuple(_fetch_structure(x, f"{path}[{i}]", leaves) for i, x in enumerate(node)))
    if isinstance(node, dict):
        return ("d", tuple(node), tuple(_fetch_structure(v, f"{path}[{k!r}]", leaves) for k, v in node.items()))
    raise TypeError(f"Session.run: fetch {path} is a {type(node).__name__}, not a tensor or an op{_where()}")


def _unflatten_fetches(tree, values):
    return _build_fetches(tree, iter(values))


def _build_fetches(node, values):
    if node[0] == "t":
        return next(values)
    if node[0] == "d":
        return {k: _build_fetches(v, values) for k, v in zip(node[1], node[2])}
    return node[0](_build_fetches(x, values) for x in node[1])


_sessions: list = []


def _default_session(session):
    if session is not None:
        return session
    if not _sessions:
        raise FlowError("Tensor.eval() needs a Session: create one with tf.Session() (the last one created is used)")
    return _sessions[-1]


class Session:
    """Runs graphs and holds the Variables' values (NumPy arrays, updated in place by assignments).

    ``mode``: "eager", "graph" or "compiled" (default: tracejit's current mode); ``check=True``
    cross-checks compiled runs against eager ones (see ``tj.trace``). ``config`` is accepted
    and ignored (TensorFlow's device options).
    """

    def __init__(self, config=None, *, mode=None, check=None, seed=0):
        self.mode = None if mode is None else check_mode(mode)
        self.check = check
        self.values: dict = {}
        self.rng = np.random.default_rng(seed)
        self._programs: dict = {}
        _sessions.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Forget the compiled programs and the Variables' values."""
        self._programs.clear()
        self.values.clear()
        if self in _sessions:
            _sessions.remove(self)

    # ------------------------------------------------------------------------- run
    def run(self, fetches, feed_dict=None):
        """The values of ``fetches`` (a tensor, an op, or nested lists/tuples/dicts of them) in
        the same structure, with ``feed_dict`` ({placeholder or tensor: value}) as inputs. Ops
        (``group``, an optimiser's step) give None; assignments take effect when the run ends."""
        leaves, tree = _flatten_fetches(fetches)
        for init in [n for n in leaves if isinstance(n, _Initializer)]:
            self._initialize(init.variables)
        program, feeds, variables, randoms = self._program(leaves, tree, feed_dict or {})
        if program is None:
            return _unflatten_fetches(tree, [None] * len(leaves))
        feed_values = tuple(node.check_feed(value) if isinstance(node, Placeholder) else np.asarray(value)
                            for node, value in feeds)
        draws = tuple(r.value(self.rng) for r in randoms)
        results, updates = program(feed_values, tuple(self.values[v] for v in variables), draws)
        for var, new in updates.items():
            current = self.values.get(var)
            if current is not None and current.shape == np.shape(new):
                np.copyto(current, new)
            else:
                self.values[var] = np.array(new, dtype=var.dtype)
        return _unflatten_fetches(tree, results)

    def graph_text(self, fetches, feed_dict=None, optimize=True) -> str:
        """The tracejit graph (SSA text) that ``run(fetches, feed_dict)`` runs."""
        return str(self.graph(fetches, feed_dict, optimize=optimize))

    def graph(self, fetches, feed_dict=None, optimize=True):
        """The ``tj.Graph`` that ``run(fetches, feed_dict)`` runs (after the passes unless ``optimize=False``)."""
        leaves, tree = _flatten_fetches(fetches)
        traced, feeds, variables, randoms = self._program(leaves, tree, feed_dict or {}, traced=True)
        feed_values = tuple(node.check_feed(v) if isinstance(node, Placeholder) else np.asarray(v) for node, v in feeds)
        feed_names, variable_names = _unique_names([n for n, _ in feeds]), _unique_names(variables)
        return traced.graph(dict(zip(feed_names, feed_values)),
                            dict(zip(variable_names, (self.values[v] for v in variables))),
                            tuple(r.value(self.rng) for r in randoms), optimize=optimize)

    def _program(self, leaves, tree, feed_dict, traced=False):
        fed = {}
        for node, value in feed_dict.items():
            if not isinstance(node, Tensor):
                raise TypeError(f"Session.run: feed_dict keys must be placeholders or tensors, got "
                                f"{type(node).__name__}{_where()}")
            fed[node] = value
        runnable = [n for n in leaves if not isinstance(n, _Initializer)]
        nodes = _ancestors(runnable, stop=fed)
        feeds = [(n, fed[n]) for n in nodes if n in fed]
        for node in nodes:
            if isinstance(node, Placeholder) and node not in fed:
                raise FlowError(f"Session.run: {_described(node)} needs a value: add it to feed_dict{_where()}")
        assigned = {n.var for n in nodes if isinstance(n, _Assign)}
        variables = [n for n in nodes if isinstance(n, Variable) and n not in fed]
        for var in variables:
            if var not in self.values:
                raise FlowError(f"Session.run: {_described(var)} is used before it has a value: run "
                                f"tf.initialize_all_variables() (or assign it) first{_where()}")
        randoms = [n for n in nodes if isinstance(n, _Random) and n not in fed]
        if not runnable:
            return None, (), (), ()
        key = (tuple(leaves), tree, tuple(n for n, _ in feeds), tuple(variables), tuple(randoms))
        entry = self._programs.get(key)
        if entry is None:
            entry = self._programs[key] = self._build(leaves, [n for n, _ in feeds], variables, randoms, assigned)
        if traced:
            return entry[0], feeds, variables, randoms
        return entry[1], feeds, variables, randoms

    def _build(self, leaves, fed, variables, randoms, assigned):
        """``(traced step, call)``: the step replays the nodes on (feeds, Variables, draws) and
        returns (fetch values, new Variable values); ``call`` runs it and rebuilds the results."""
        order = sorted(assigned, key=lambda v: v.id)
        # The program's arguments are dicts keyed by the nodes' names, so a retrace reason names
        # the placeholder or Variable whose shape or dtype changed.
        feed_names, variable_names = _unique_names(fed), _unique_names(variables)

        def step(feeds, variable_values, draws):
            replay = _Replay({**{n: feeds[k] for n, k in zip(fed, feed_names)},
                              **{v: variable_values[k] for v, k in zip(variables, variable_names)},
                              **dict(zip(randoms, draws))})
            results = [replay.value(n) for n in leaves if not isinstance(n, _Initializer)]
            missing = [v for v in order if v not in replay.updates]
            if missing:  # pragma: no cover - every assignment in the graph is run
                raise AssertionError(missing)
            return [r for r in results if r is not None], [replay.updates[v] for v in order]

        step.__name__ = step.__qualname__ = "session_run"
        traced = _trace(step, mode=self.mode, check=self.check)
        # ops (group, initialisers) have no value: their fetches give None
        has_value = [not isinstance(n, (_Group, _Initializer)) for n in leaves]

        def call(feed_values, variable_values, draws):
            values, new = traced(dict(zip(feed_names, feed_values)), dict(zip(variable_names, variable_values)), draws)
            # In eager mode a fetch can be an input array itself (sess.run(v)): hand back a copy,
            # which the assignments below cannot change.
            inputs = {id(a) for a in feed_values + variable_values}
            values = iter([np.array(v) if id(v) in inputs else v for v in values])
            return [next(values) if v else None for v in has_value], dict(zip(order, new))

        return traced, call

    def _initialize(self, variables):
        for var in variables:
            if var.initial_value is not None:
                value = _Replay({}, infer=lambda run, node: node.value(self.rng)).value(var.initial_value)
                self.values[var] = np.array(value, dtype=var.dtype)
            elif var not in self.values:
                shape = var.known_shape()
                if shape is None:
                    raise FlowError(f"initialize_all_variables: the shape of {_described(var)} is not known yet: "
                                    f"call tf.infer_variable_shapes(loss, feed_dict={{placeholder: shape}}) first")
                kind, *args = var.init or ("zeros",)
                draw = np.zeros(shape) if kind == "zeros" else self.rng.normal(0.0, args[0], shape)
                self.values[var] = draw.astype(var.dtype)


def _unique_names(nodes):
    """The nodes' names, with ``_<id>`` added to those that two nodes share."""
    counts = {}
    for node in nodes:
        counts[node.name] = counts.get(node.name, 0) + 1
    return [node.name if counts[node.name] == 1 else f"{node.name}_{node.id}" for node in nodes]


def infer_variable_shapes(loss, feed_dict):
    """Infer the shapes of the Variables ``loss`` depends on whose shape depends on their input
    (``nn.linear``, ``nn.conv2d`` weights and biases), from the shapes of the placeholders in
    ``feed_dict`` ({placeholder: shape}). Yields ``(variable, name, shape)`` for each, in the
    order they were created. Only shapes are computed (by tracing), no values."""
    shapes = {node: tuple(int(d) for d in shape) for node, shape in feed_dict.items()}
    inferred = []
    with new_trace(GraphTrace) as graph_trace:
        def leaf(run, node):
            if isinstance(node, Placeholder):
                if node not in shapes:
                    raise FlowError(f"infer_variable_shapes: {_described(node)} needs a shape in feed_dict")
                return graph_trace.new_input(Aval(shapes[node], node.dtype))
            if isinstance(node, _Random):
                return graph_trace.new_input(Aval(node.shape, node.dtype))
            shape = node.known_shape()
            if shape is None:
                source, rule = node.shape_rule
                shape = node.shape = tuple(rule(tuple(run.value(source).shape)))
                inferred.append(node)
            return graph_trace.new_input(Aval(shape, node.dtype))

        _Replay({}, infer=leaf).value(_tensor(loss, "infer_variable_shapes"))
    for var in sorted(inferred, key=lambda v: v.id):
        yield var, var.name, var.shape


from . import datasets, nn, train  # noqa: E402  (they build on the names above)
