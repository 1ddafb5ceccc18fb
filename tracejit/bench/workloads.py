"""The standard benchmark workloads, written once for every system.

Each workload holds the same computation as

- a hand-written NumPy function (the baseline every ratio is measured against),
- a tracejit function (plain NumPy plus ``tj.nn`` / ``tj.value_and_grad``), run in the
  ``eager``, ``graph`` or ``compiled`` mode,
- optionally a JAX function (run under ``jax.jit``) and a PyTorch function (run eagerly and
  under ``torch.compile``; the factory is told which, as idiomatic code differs),
- optionally extra reference points (the memory-copy limit of the elementwise chain).

This module imports only NumPy at module level: tracejit, JAX and PyTorch are imported when a
system is built. That lets the compile-latency child process load this file by path and measure
a peer's start-up without importing tracejit first.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["Workload", "Impl", "NotInstalled", "Unavailable", "WORKLOADS", "QUICK", "SYSTEMS",
           "TRACEJIT_MODES", "PEER_SYSTEMS", "get", "select", "import_jax", "import_torch"]

TRACEJIT_MODES = ("eager", "graph", "compiled")
PEER_SYSTEMS = {"jax.jit": "jax", "torch": "torch", "torch.compile": "torch"}
# Column order everywhere (tables, JSON, plot).
SYSTEMS = ("numpy", "numpy optimize", "eager", "graph", "compiled", "jax.jit", "torch", "torch.compile", "copy limit")


class NotInstalled(Exception):
    """A peer framework (jax, torch) is not installed."""


class Unavailable(Exception):
    """This tracejit build lacks a piece the workload needs (e.g. the compiled backend)."""


class Impl:
    """A built system: ``call()`` runs the workload once and returns its (materialised) output.

    ``traced`` is the ``tj.trace`` object for tracejit systems (its ``stats`` are reported);
    ``check=False`` marks a reference point that does not compute the same result.
    """

    def __init__(self, call, *, traced=None, check=True, mode=None):
        self.call = call
        self.traced = traced
        self.check = check
        self.mode = mode


# --------------------------------------------------------------------------------------- peers
def import_jax():
    """``(jax, jax.numpy)`` on the CPU in float32, or ``NotInstalled``."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as e:
        raise NotInstalled("jax") from e
    return jax, jnp


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise NotInstalled("torch") from e
    return torch


def _tree_map(fn, tree):
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, v) for v in tree)
    return fn(tree)


def _to_jax(jnp, args):
    def conv(x):
        if isinstance(x, np.ndarray):
            return jnp.asarray(x.astype(np.int32) if x.dtype == np.int64 else x)  # JAX runs 32-bit
        return x
    return _tree_map(conv, args)


def _to_torch(torch, args):
    return _tree_map(lambda x: torch.from_numpy(x) if isinstance(x, np.ndarray) else x, args)


def _check_tracejit(tj, needs, mode):
    for path in needs:
        obj = tj
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise Unavailable(f"this tracejit has no tj.{path} yet")
    if mode == "compiled":
        # whether Numba is installed, without importing it: a program's start-up does not pay
        # for that import before its first compile (in the background, with tiered execution)
        import importlib.util
        if importlib.util.find_spec("numba") is None:
            raise Unavailable("the compiled backend is not available (Numba is not installed)")


# ------------------------------------------------------------------------------------ workload
class Workload:
    """One benchmark: inputs, the same computation per system, and how to compare outputs.

    ``sizes`` maps ``"full"``, ``"quick"`` and ``"tiny"`` to the argument of ``make_inputs``
    (``None`` for ``"quick"`` leaves the workload out of ``--quick``). ``make_inputs(size)``
    returns the argument tuple (NumPy arrays and Python numbers); each ``*_fn`` factory returns
    a function taking those arguments: ``numpy_fn()``, ``tracejit_fn(tj)`` (``needs`` lists the
    ``tj`` attributes it uses), ``jax_fn(jax, jnp)`` and ``torch_fn(torch, for_compile)``.
    ``extra`` maps more system names to ``builder(args) -> Impl``.
    """

    def __init__(self, name, title, *, sizes, make_inputs, numpy_fn, tracejit_fn=None, needs=(),
                 jax_fn=None, torch_fn=None, extra=None, rtol=1e-4, atol=1e-6, describe=None):
        self.name = name
        self.title = title
        self.sizes = sizes
        self.make_inputs = make_inputs
        self.numpy_fn = numpy_fn
        self.tracejit_fn = tracejit_fn
        self.needs = tuple(needs)
        self.jax_fn = jax_fn
        self.torch_fn = torch_fn
        self.extra = dict(extra or {})
        self.rtol = rtol
        self.atol = atol
        self.describe = describe or (lambda size: "")

    def __repr__(self):
        return f"<Workload {self.name}: {self.title}>"

    @property
    def systems(self):
        names = ["numpy"]
        if self.tracejit_fn is not None:
            names += TRACEJIT_MODES
        if self.jax_fn is not None:
            names.append("jax.jit")
        if self.torch_fn is not None:
            names += ["torch", "torch.compile"]
        names += list(self.extra)
        return [s for s in SYSTEMS if s in names] + [s for s in names if s not in SYSTEMS]

    def build(self, system, args):
        """An ``Impl`` running this workload on ``args`` in ``system``.

        Raises ``NotInstalled`` (peer missing), ``Unavailable`` (tracejit piece missing) or
        ``KeyError`` (this workload has no such system).
        """
        if system == "numpy":
            fn = self.numpy_fn()
            return Impl(lambda: fn(*args))
        if system in TRACEJIT_MODES and self.tracejit_fn is not None:
            import tracejit as tj
            _check_tracejit(tj, self.needs, system)
            traced = tj.trace(self.tracejit_fn(tj), mode=system)
            return Impl(lambda: traced(*args), traced=traced, mode=system)
        if system == "jax.jit" and self.jax_fn is not None:
            jax, jnp = import_jax()
            fn = jax.jit(self.jax_fn(jax, jnp))
            jargs = _to_jax(jnp, args)
            block = jax.block_until_ready
            return Impl(lambda: block(fn(*jargs)))
        if system in ("torch", "torch.compile") and self.torch_fn is not None:
            torch = import_torch()
            fn = self.torch_fn(torch, for_compile=system == "torch.compile")
            if system == "torch.compile":
                fn = torch.compile(fn)
            targs = _to_torch(torch, args)
            return Impl(lambda: fn(*targs))
        if system in self.extra:
            return self.extra[system](args)
        raise KeyError(f"workload {self.name!r} has no system {system!r}")


# ------------------------------------------------------------------- 1, 2: SGD steps (MNIST shape)
def _sgd_inputs(layers, batch, seed=0):
    rng = np.random.default_rng(seed)
    params = {}
    for i, (n_in, n_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        suffix = "" if len(layers) == 2 else str(i)
        scale = 0.01 if len(layers) == 2 else 1.0 / np.sqrt(n_in)
        params["W" + suffix] = (rng.standard_normal((n_in, n_out)) * scale).astype(np.float32)
        params["b" + suffix] = np.zeros(n_out, np.float32)
    x = rng.random((batch, layers[0]), dtype=np.float32)
    y = rng.integers(0, layers[-1], batch)
    return params, x, y, 0.1


def _sgd_step(value_and_grad, loss_fn, name="step"):
    """``step(params, x, y, lr) -> (new params, loss)``: one SGD step on ``loss_fn(params, x, y)``
    with the framework's ``value_and_grad`` (tracejit's or JAX's)."""
    def step(params, x, y, lr):
        loss, g = value_and_grad(loss_fn)(params, x, y)
        return {k: params[k] - lr * g[k] for k in params}, loss
    step.__name__ = step.__qualname__ = name
    return step


def _np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _numpy_softmax_sgd():
    def step(params, x, y, lr):
        W, b = params["W"], params["b"]
        B = x.shape[0]
        logp = _np_log_softmax(x @ W + b)
        loss = -logp[np.arange(B), y].mean()
        d = np.exp(logp)                          # probs
        d[np.arange(B), y] -= 1                   # probs - onehot
        d /= B
        gW = x.T @ d
        gb = d.sum(axis=0)
        return {"W": W - lr * gW, "b": b - lr * gb}, loss
    return step


def _tracejit_softmax_sgd(tj):
    def loss_fn(params, x, y):
        logits = x @ params["W"] + params["b"]
        return tj.nn.cross_entropy(logits, y)

    return _sgd_step(tj.value_and_grad, loss_fn, "softmax_sgd_step")


def _jax_xent(jax, jnp, logits, y):
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def _jax_softmax_sgd(jax, jnp):
    def loss_fn(params, x, y):
        return _jax_xent(jax, jnp, x @ params["W"] + params["b"], y)

    return _sgd_step(jax.value_and_grad, loss_fn)


def _torch_sgd(torch, forward, for_compile):
    """The SGD step in PyTorch: eager code uses ``torch.autograd.grad`` as PyTorch users write it;
    under ``torch.compile`` that call breaks the graph, so the compiled variant differentiates with
    ``torch.func.grad_and_value``, which compiles into one graph. Same mathematics."""
    import torch.nn.functional as F

    def loss_fn(params, x, y):
        return F.cross_entropy(forward(params, x), y)

    if for_compile:
        grad_and_value = torch.func.grad_and_value(loss_fn)

        def step(params, x, y, lr):
            g, loss = grad_and_value(params, x, y)
            return {k: params[k] - lr * g[k] for k in params}, loss
        return step

    def step(params, x, y, lr):
        p = {k: v.detach().requires_grad_() for k, v in params.items()}
        loss = loss_fn(p, x, y)
        g = torch.autograd.grad(loss, list(p.values()))
        with torch.no_grad():
            return {k: p[k] - lr * gk for k, gk in zip(p, g)}, loss.detach()
    return step


def _torch_softmax_sgd(torch, for_compile):
    return _torch_sgd(torch, lambda p, x: x @ p["W"] + p["b"], for_compile)


def _numpy_mlp_sgd():
    def step(params, x, y, lr):
        W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
        B = x.shape[0]
        h = np.tanh(x @ W1 + b1)
        logp = _np_log_softmax(h @ W2 + b2)
        loss = -logp[np.arange(B), y].mean()
        d = np.exp(logp)
        d[np.arange(B), y] -= 1
        d /= B
        gW2 = h.T @ d
        gb2 = d.sum(axis=0)
        dh = (d @ W2.T) * (1 - h * h)
        gW1 = x.T @ dh
        gb1 = dh.sum(axis=0)
        return {"W1": W1 - lr * gW1, "W2": W2 - lr * gW2, "b1": b1 - lr * gb1, "b2": b2 - lr * gb2}, loss
    return step


def _tracejit_mlp_sgd(tj):
    def loss_fn(params, x, y):
        h = np.tanh(x @ params["W1"] + params["b1"])
        return tj.nn.cross_entropy(h @ params["W2"] + params["b2"], y)

    return _sgd_step(tj.value_and_grad, loss_fn, "mlp_sgd_step")


def _jax_mlp_sgd(jax, jnp):
    def loss_fn(params, x, y):
        h = jnp.tanh(x @ params["W1"] + params["b1"])
        return _jax_xent(jax, jnp, h @ params["W2"] + params["b2"], y)

    return _sgd_step(jax.value_and_grad, loss_fn)


def _torch_mlp_sgd(torch, for_compile):
    return _torch_sgd(torch, lambda p, x: torch.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], for_compile)


def _numpy_mlp_forward():
    def loss(params, x, y):
        h = np.tanh(x @ params["W1"] + params["b1"])
        logp = _np_log_softmax(h @ params["W2"] + params["b2"])
        return -logp[np.arange(x.shape[0]), y].mean()
    return loss


def _tracejit_mlp_forward(tj):
    def mlp_loss(params, x, y):
        h = np.tanh(x @ params["W1"] + params["b1"])
        return tj.nn.cross_entropy(h @ params["W2"] + params["b2"], y)
    return mlp_loss


def _jax_mlp_loss(jax, jnp):
    def loss(params, x, y):
        h = jnp.tanh(x @ params["W1"] + params["b1"])
        return _jax_xent(jax, jnp, h @ params["W2"] + params["b2"], y)
    return loss


def _jax_mlp_forward(jax, jnp):
    loss = _jax_mlp_loss(jax, jnp)
    return lambda params, x, y, lr: loss(params, x, y)


def _torch_mlp_forward(torch, for_compile):
    import torch.nn.functional as F

    def loss(params, x, y, lr):
        with torch.no_grad():
            return F.cross_entropy(torch.tanh(x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"], y)
    return loss


def _without_lr(factory):
    """The workload's inputs end with the SGD steps' learning rate, which a forward pass ignores."""
    def build(*args, **kwargs):
        fn = factory(*args, **kwargs)
        return lambda params, x, y, lr: fn(params, x, y)
    return build


def tracejit_mlp_adam(tj):
    """The MLP's Adam training step (value_and_grad and the update), whose tracing time the ``trace``
    benchmark measures: ``step(params, opt_state, x, y) -> (params, opt_state, loss)``."""
    loss_fn = _tracejit_mlp_forward(tj)
    opt = tj.optim.adam(1e-3)

    def mlp_adam_step(params, opt_state, x, y):
        loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
        params, opt_state = opt.update(params, grads, opt_state)
        return params, opt_state, loss
    return mlp_adam_step, opt


# --------------------------------------------------------------------------- 3: elementwise chain
def _elementwise_inputs(n, seed=0):
    x = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    return x, 0.5, 0.1


def _numpy_elementwise():
    def chain(x, a, b):
        return np.tanh(a * x + b) * np.exp(-x * x) + 0.5 * np.sqrt(np.abs(x))
    return chain


def _tracejit_elementwise(tj):
    def elementwise_chain(x, a, b):
        return np.tanh(a * x + b) * np.exp(-x * x) + 0.5 * np.sqrt(np.abs(x))
    return elementwise_chain


def _jax_elementwise(jax, jnp):
    def chain(x, a, b):
        return jnp.tanh(a * x + b) * jnp.exp(-x * x) + 0.5 * jnp.sqrt(jnp.abs(x))
    return chain


def _torch_elementwise(torch, for_compile):
    def chain(x, a, b):
        return torch.tanh(a * x + b) * torch.exp(-x * x) + 0.5 * torch.sqrt(torch.abs(x))
    return chain


def _copy_limit(args):
    """Reading the input once and writing an output of the same size: the least memory traffic
    any implementation of an elementwise chain needs (into a preallocated buffer)."""
    x = args[0]
    out = np.empty_like(x)
    return Impl(lambda: np.copyto(out, x), check=False)


# ------------------------------------------------------------------- 4: softmax + cross-entropy
def _xent_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape, dtype=np.float32) * 3
    y = rng.integers(0, shape[1], shape[0])
    return logits, y


def _numpy_xent():
    def xent(logits, y):
        z = logits - logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return (lse - z[np.arange(z.shape[0]), y]).mean()
    return xent


def _tracejit_xent(tj):
    def softmax_cross_entropy(logits, y):
        return tj.nn.cross_entropy(logits, y)
    return softmax_cross_entropy


def _jax_xent_fn(jax, jnp):
    return lambda logits, y: _jax_xent(jax, jnp, logits, y)


def _torch_xent(torch, for_compile):
    import torch.nn.functional as F
    return lambda logits, y: F.cross_entropy(logits, y)


# ------------------------------------------------------------------------- 5: dispatch overhead
def _dispatch_inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)


def _numpy_add():
    return lambda a, b: a + b


def _tracejit_add(tj):
    def add(a, b):
        return a + b
    return add


def _jax_add(jax, jnp):
    return lambda a, b: a + b


def _torch_add(torch, for_compile):
    return lambda a, b: a + b


# ---------------------------------------------------------------- LeNet SGD step (conv, pool, MLP)
def _lenet_inputs(size, seed=0):
    """LeNet's parameters for ``size = (batch, image side)``: conv 20@5x5, conv 50@5x5, fc 500, fc 10."""
    batch, side = size
    rng = np.random.default_rng(seed)
    flat = 50 * (((side - 4) // 2 - 4) // 2) ** 2
    shapes = {"w1": (20, 1, 5, 5), "b1": (20,), "w2": (50, 20, 5, 5), "b2": (50,),
              "w3": (flat, 500), "b3": (500,), "w4": (500, 10), "b4": (10,)}
    params = {k: (rng.standard_normal(s) * (0.1 if len(s) > 1 else 0.0)).astype(np.float32)
              for k, s in shapes.items()}
    x = rng.random((batch, 1, side, side), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return params, x, y, 0.05


def _numpy_lenet_sgd():
    """LeNet's forward and hand-derived backward in NumPy: convolutions as im2col + matmul."""
    from numpy.lib.stride_tricks import sliding_window_view

    def conv(x, w, b):
        n, f, k = x.shape[0], w.shape[0], w.shape[2]
        cols = sliding_window_view(x, (k, k), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5)
        oh, ow = cols.shape[1:3]
        cols = cols.reshape(n * oh * ow, -1)
        out = cols @ w.reshape(f, -1).T + b
        return out.reshape(n, oh, ow, f).transpose(0, 3, 1, 2), cols

    def conv_back(d, cols, w, x_shape):
        n, f, oh, ow = d.shape
        d2 = d.transpose(0, 2, 3, 1).reshape(-1, f)
        dw, db = (d2.T @ cols).reshape(w.shape), d2.sum(axis=0)
        dcols = (d2 @ w.reshape(f, -1)).reshape(n, oh, ow, *w.shape[1:])
        dx = np.zeros(x_shape, d.dtype)
        for i in range(w.shape[2]):
            for j in range(w.shape[3]):
                dx[:, :, i:i + oh, j:j + ow] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dx, dw, db

    def pool(h):
        n, c, hh, ww = h.shape
        tiles = h.reshape(n, c, hh // 2, 2, ww // 2, 2)
        out = tiles.max(axis=(3, 5))
        return out, tiles == out[:, :, :, None, :, None]

    def pool_back(d, hit):
        return (hit * d[:, :, :, None, :, None]).reshape(hit.shape[0], hit.shape[1], hit.shape[2] * 2, -1)

    def step(params, x, y, lr):
        p = params
        c1, cols1 = conv(x, p["w1"], p["b1"])
        h1 = np.tanh(c1)
        p1, hit1 = pool(h1)
        c2, cols2 = conv(p1, p["w2"], p["b2"])
        h2 = np.tanh(c2)
        p2, hit2 = pool(h2)
        flat = p2.reshape(len(x), -1)
        h3 = np.tanh(flat @ p["w3"] + p["b3"])
        logp = _np_log_softmax(h3 @ p["w4"] + p["b4"])
        B = len(x)
        loss = -logp[np.arange(B), y].mean()
        d = np.exp(logp)
        d[np.arange(B), y] -= 1
        d /= B
        g = {"w4": h3.T @ d, "b4": d.sum(axis=0)}
        d3 = (d @ p["w4"].T) * (1 - h3 * h3)
        g["w3"], g["b3"] = flat.T @ d3, d3.sum(axis=0)
        dp2 = (d3 @ p["w3"].T).reshape(p2.shape)
        dc2 = pool_back(dp2, hit2) * (1 - h2 * h2)
        dp1, g["w2"], g["b2"] = conv_back(dc2, cols2, p["w2"], p1.shape)
        dc1 = pool_back(dp1, hit1) * (1 - h1 * h1)
        _, g["w1"], g["b1"] = conv_back(dc1, cols1, p["w1"], x.shape)
        return {k: p[k] - lr * g[k] for k in p}, loss
    return step


def _tracejit_lenet_sgd(tj):
    def loss_fn(p, x, y):
        h = tj.nn.max_pool2d(np.tanh(tj.nn.conv2d(x, p["w1"], p["b1"])), 2)
        h = tj.nn.max_pool2d(np.tanh(tj.nn.conv2d(h, p["w2"], p["b2"])), 2)
        h = np.tanh(h.reshape(h.shape[0], -1) @ p["w3"] + p["b3"])
        return tj.nn.cross_entropy(h @ p["w4"] + p["b4"], y)

    return _sgd_step(tj.value_and_grad, loss_fn, "lenet_sgd_step")


def _jax_lenet_sgd(jax, jnp):
    def conv(x, w, b):
        out = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[None, :, None, None]

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p, x, y):
        h = pool(jnp.tanh(conv(x, p["w1"], p["b1"])))
        h = pool(jnp.tanh(conv(h, p["w2"], p["b2"])))
        h = jnp.tanh(h.reshape(h.shape[0], -1) @ p["w3"] + p["b3"])
        return _jax_xent(jax, jnp, h @ p["w4"] + p["b4"], y)

    return _sgd_step(jax.value_and_grad, loss_fn)


def _torch_lenet_sgd(torch, for_compile):
    import torch.nn.functional as F

    def forward(p, x):
        h = F.max_pool2d(torch.tanh(F.conv2d(x, p["w1"], p["b1"])), 2)
        h = F.max_pool2d(torch.tanh(F.conv2d(h, p["w2"], p["b2"])), 2)
        return torch.tanh(h.reshape(h.shape[0], -1) @ p["w3"] + p["b3"]) @ p["w4"] + p["b4"]
    return _torch_sgd(torch, forward, for_compile)


# ----------------------------------------------------- per-example gradients, Hessian-vector product
# The MLP of ``mlp_sgd``: per-example gradients (vmap of grad) and the Hessian-vector product of
# the batch loss with respect to the parameters (forward over reverse), against the same
# derivatives written out by hand in NumPy.
def _transform_inputs(size, seed=0):
    params, x, y, _ = _sgd_inputs(*size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    directions = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
    return params, directions, x, y


def _numpy_mlp_parts(params, x, y):
    h = np.tanh(x @ params["W1"] + params["b1"])
    p = np.exp(_np_log_softmax(h @ params["W2"] + params["b2"]))
    d = p.copy()
    d[np.arange(len(y)), y] -= 1
    return h, p, d


def _numpy_per_example_grads():
    def grads(params, directions, x, y):
        h, _, d = _numpy_mlp_parts(params, x, y)
        dh = (d @ params["W2"].T) * (1 - h * h)
        return {"W1": x[:, :, None] * dh[:, None, :], "b1": dh,
                "W2": h[:, :, None] * d[:, None, :], "b2": d}
    return grads


def _tracejit_per_example_grads(tj):
    loss = _tracejit_mlp_forward(tj)
    per_example = tj.vmap(tj.grad(lambda params, x, y: loss(params, x[None], y[None])), in_axes=(None, 0, 0))

    def grads(params, directions, x, y):
        return per_example(params, x, y)
    return grads


def _jax_per_example_grads(jax, jnp):
    loss = _jax_mlp_loss(jax, jnp)
    per_example = jax.vmap(jax.grad(lambda params, x, y: loss(params, x[None], y[None])), in_axes=(None, 0, 0))
    return lambda params, directions, x, y: per_example(params, x, y)


def _numpy_hvp():
    def hvp(params, v, x, y):
        W2 = params["W2"]
        B = len(y)
        h, p, d = _numpy_mlp_parts(params, x, y)
        d = d / B
        # the forward pass's directional derivatives along v (Pearlmutter's R-operator)
        r_h = (1 - h * h) * (x @ v["W1"] + v["b1"])
        r_z = r_h @ W2 + h @ v["W2"] + v["b2"]
        r_d = p * (r_z - (p * r_z).sum(axis=1, keepdims=True)) / B
        back = d @ W2.T
        r_dh = (r_d @ W2.T + d @ v["W2"].T) * (1 - h * h) - back * 2 * h * r_h
        return {"W1": x.T @ r_dh, "b1": r_dh.sum(axis=0), "W2": r_h.T @ d + h.T @ r_d, "b2": r_d.sum(axis=0)}
    return hvp


def _tracejit_hvp(tj):
    loss = _tracejit_mlp_forward(tj)
    return lambda params, v, x, y: tj.hvp(lambda p: loss(p, x, y), (params,), (v,))


def _jax_hvp(jax, jnp):
    loss = _jax_mlp_loss(jax, jnp)
    return lambda params, v, x, y: jax.jvp(jax.grad(lambda p: loss(p, x, y)), (params,), (v,))[1]


# ------------------------------------------------------------------------------------ registry
# ------------------------------------------------------------------- contractions: einsum, tensordot
def _einsum_inputs(size, seed=0):
    batch, n, heads = size
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.standard_normal(shape, dtype=np.float32)
    return f32(batch, n, n // 2), f32(batch, n // 2, n), f32(batch // 8, heads, n, 64), f32(batch // 8, heads, n, 64)


def _einsum_pair(einsum):
    """Batched matrix products and attention scores, as users write them with einsum."""
    return lambda a, b, q, k: (einsum("bij,bjk->bik", a, b), einsum("bhqd,bhkd->bhqk", q, k))


def _numpy_einsum_optimized(args):
    return Impl(lambda: _einsum_pair(lambda s, *ops: np.einsum(s, *ops, optimize=True))(*args))


def _tensordot_inputs(size, seed=0):
    rows, features = size
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.standard_normal(shape, dtype=np.float32)
    return f32(rows, 32, 16), f32(32, 16, features), f32(rows, features), f32(features, 8, 8)


def _tensordot_pair(tensordot):
    """A layer over two feature axes, and one producing a (8, 8) map per row."""
    return lambda x, w, h, v: (tensordot(x, w, 2), tensordot(h, v, 1))


# ------------------------------------------------------------------- np.linalg: batched solve and inverse
def _linalg_inputs(size, seed=0):
    batch, n = size
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, n, n)) + n ** 0.5 * np.eye(n)  # well conditioned
    return a, rng.standard_normal((batch, n, 4))


def _linalg_pair(solve, inv):
    return lambda a, b: (solve(a, b), inv(a))


WORKLOADS = {w.name: w for w in [
    Workload(
        "softmax_sgd", "MNIST softmax-regression SGD step (784→10, batch 128, float32)",
        sizes={"full": ((784, 10), 128), "quick": ((784, 10), 128), "tiny": ((20, 5), 8)},
        make_inputs=lambda s: _sgd_inputs(*s), numpy_fn=_numpy_softmax_sgd,
        tracejit_fn=_tracejit_softmax_sgd, needs=("value_and_grad", "nn.cross_entropy"),
        jax_fn=_jax_softmax_sgd, torch_fn=_torch_softmax_sgd,
        describe=lambda s: f"{'→'.join(map(str, s[0]))}, batch {s[1]}"),
    Workload(
        "mlp_sgd", "MLP 784-256-10 tanh SGD step (batch 128, float32)",
        sizes={"full": ((784, 256, 10), 128), "quick": ((784, 256, 10), 128), "tiny": ((20, 16, 5), 8)},
        make_inputs=lambda s: _sgd_inputs(*s), numpy_fn=_numpy_mlp_sgd,
        tracejit_fn=_tracejit_mlp_sgd, needs=("value_and_grad", "nn.cross_entropy"),
        jax_fn=_jax_mlp_sgd, torch_fn=_torch_mlp_sgd,
        describe=lambda s: f"{'-'.join(map(str, s[0]))}, batch {s[1]}"),
    Workload(
        "mlp_forward", "MLP 784-256-10 tanh forward pass and cross-entropy, no gradient (batch 128, float32)",
        sizes={"full": ((784, 256, 10), 128), "quick": ((784, 256, 10), 128), "tiny": ((20, 16, 5), 8)},
        make_inputs=lambda s: _sgd_inputs(*s), numpy_fn=_without_lr(_numpy_mlp_forward),
        tracejit_fn=_without_lr(_tracejit_mlp_forward), needs=("nn.cross_entropy",),
        jax_fn=_jax_mlp_forward, torch_fn=_torch_mlp_forward,
        describe=lambda s: f"{'-'.join(map(str, s[0]))}, batch {s[1]}"),
    Workload(
        "elementwise_1m", "elementwise chain tanh(a*x+b)*exp(-x*x)+0.5*sqrt(abs(x)), N = 1M float32",
        sizes={"full": 1 << 20, "quick": 1 << 20, "tiny": 1000},
        make_inputs=_elementwise_inputs, numpy_fn=_numpy_elementwise, tracejit_fn=_tracejit_elementwise,
        jax_fn=_jax_elementwise, torch_fn=_torch_elementwise, extra={"copy limit": _copy_limit},
        describe=lambda n: f"N = {n:,}"),
    Workload(
        "elementwise_16m", "elementwise chain tanh(a*x+b)*exp(-x*x)+0.5*sqrt(abs(x)), N = 16M float32",
        sizes={"full": 1 << 24, "quick": None, "tiny": 2000},
        make_inputs=_elementwise_inputs, numpy_fn=_numpy_elementwise, tracejit_fn=_tracejit_elementwise,
        jax_fn=_jax_elementwise, torch_fn=_torch_elementwise, extra={"copy limit": _copy_limit},
        describe=lambda n: f"N = {n:,}"),
    Workload(
        "softmax_xent", "softmax + cross-entropy forward over (4096, 1000) float32 logits",
        sizes={"full": (4096, 1000), "quick": (4096, 1000), "tiny": (16, 10)},
        make_inputs=_xent_inputs, numpy_fn=_numpy_xent, tracejit_fn=_tracejit_xent,
        needs=("nn.cross_entropy",), jax_fn=_jax_xent_fn, torch_fn=_torch_xent,
        describe=lambda s: f"logits {s}"),
    Workload(
        "lenet_step", "LeNet SGD step on MNIST-sized images (conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc 10; "
                      "batch 100, float32)",
        sizes={"full": (100, 28), "quick": None, "tiny": (2, 16)},
        make_inputs=_lenet_inputs, numpy_fn=_numpy_lenet_sgd, tracejit_fn=_tracejit_lenet_sgd,
        needs=("value_and_grad", "nn.conv2d", "nn.max_pool2d"), jax_fn=_jax_lenet_sgd, torch_fn=_torch_lenet_sgd,
        rtol=1e-3, atol=1e-5, describe=lambda s: f"batch {s[0]}, {s[1]}x{s[1]} images"),
    Workload(
        "per_example_grads", "per-example gradients of the MLP 784-256-10 tanh loss (batch 128, float32): "
                             "vmap of grad",
        sizes={"full": ((784, 256, 10), 128), "quick": None, "tiny": ((20, 16, 5), 8)},
        make_inputs=_transform_inputs, numpy_fn=_numpy_per_example_grads, tracejit_fn=_tracejit_per_example_grads,
        needs=("vmap", "grad", "nn.cross_entropy"), jax_fn=_jax_per_example_grads,
        describe=lambda s: f"{'-'.join(map(str, s[0]))}, batch {s[1]}"),
    Workload(
        "hvp", "Hessian-vector product of the MLP 784-256-10 tanh loss (batch 128, float32): forward over reverse",
        sizes={"full": ((784, 256, 10), 128), "quick": None, "tiny": ((20, 16, 5), 8)},
        make_inputs=_transform_inputs, numpy_fn=_numpy_hvp, tracejit_fn=_tracejit_hvp,
        needs=("hvp", "nn.cross_entropy"), jax_fn=_jax_hvp, rtol=1e-3, atol=1e-5,
        describe=lambda s: f"{'-'.join(map(str, s[0]))}, batch {s[1]}"),
    Workload(
        "einsum", "einsum: batched products bij,bjk->bik (64 x 128x64 @ 64x128) and attention scores "
                  "bhqd,bhkd->bhqk (8 x 4 heads, 128x64), float32",
        sizes={"full": (64, 128, 4), "quick": None, "tiny": (8, 16, 2)},
        make_inputs=_einsum_inputs, numpy_fn=lambda: _einsum_pair(np.einsum),
        tracejit_fn=lambda tj: _einsum_pair(np.einsum), jax_fn=lambda jax, jnp: _einsum_pair(jnp.einsum),
        torch_fn=lambda torch, for_compile: _einsum_pair(torch.einsum),
        extra={"numpy optimize": _numpy_einsum_optimized}, rtol=1e-4, atol=1e-4,
        describe=lambda s: f"batch {s[0]}, n {s[1]}, {s[2]} heads"),
    Workload(
        "tensordot", "tensordot: (256, 32, 16) over two axes with (32, 16, 512), and (256, 512) with (512, 8, 8); float32",
        sizes={"full": (256, 512), "quick": None, "tiny": (8, 16)},
        make_inputs=_tensordot_inputs, numpy_fn=lambda: _tensordot_pair(np.tensordot),
        tracejit_fn=lambda tj: _tensordot_pair(np.tensordot), jax_fn=lambda jax, jnp: _tensordot_pair(jnp.tensordot),
        torch_fn=lambda torch, for_compile: _tensordot_pair(lambda a, b, n: torch.tensordot(a, b, dims=n)),
        rtol=1e-4, atol=1e-3, describe=lambda s: f"{s[0]} rows, {s[1]} features"),
    Workload(
        "linalg", "np.linalg.solve (4 right-hand sides) and np.linalg.inv of 128 (64, 64) float64 matrices",
        sizes={"full": (128, 64), "quick": None, "tiny": (4, 8)},
        make_inputs=_linalg_inputs, numpy_fn=lambda: _linalg_pair(np.linalg.solve, np.linalg.inv),
        tracejit_fn=lambda tj: _linalg_pair(np.linalg.solve, np.linalg.inv),
        jax_fn=lambda jax, jnp: _linalg_pair(jnp.linalg.solve, jnp.linalg.inv),
        torch_fn=lambda torch, for_compile: _linalg_pair(torch.linalg.solve, torch.linalg.inv),
        rtol=1e-8, atol=1e-10, describe=lambda s: f"{s[0]} x ({s[1]}, {s[1]})"),
    Workload(
        "dispatch", "dispatch overhead: a + b on (8,) float32 arrays",
        sizes={"full": 8, "quick": 8, "tiny": 8},
        make_inputs=_dispatch_inputs, numpy_fn=_numpy_add, tracejit_fn=_tracejit_add,
        jax_fn=_jax_add, torch_fn=_torch_add, describe=lambda n: f"({n},)"),
]}

# The compile-latency benchmark (run in fresh processes, see ``latency.py``) measures this
# workload: the full run compiles the softmax-regression SGD step (the first call a user of the
# MNIST example waits for), --quick the small elementwise chain.
LATENCY_TARGET = {"full": ("softmax_sgd", "full"), "quick": ("elementwise_1m", "tiny"), "tiny": ("dispatch", "tiny")}
LATENCY_NAMES = ("compile_cold", "compile_warm")

# The tracing benchmark (``tracing.py``) traces the MLP's Adam step, in this process.
TRACE_TARGET = "mlp_sgd"

QUICK = [name for name, w in WORKLOADS.items() if w.sizes.get("quick") is not None] + ["compile", "trace"]


def get(name) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(all_names())}") from None


# result names -> the benchmark that measures them
_MEASURED_BY = {**dict.fromkeys(LATENCY_NAMES, "compile"), "epoch_cold": "mnist_epoch", "epoch_warm": "mnist_epoch"}


def all_names():
    return list(WORKLOADS) + ["compile", "trace", "mnist_epoch"]


def select(patterns=None, quick=False):
    """Workload names matching ``patterns`` (exact names or prefixes, e.g. ``elementwise``);
    all (or the quick set) when ``patterns`` is empty. ``"compile"`` is the latency benchmark,
    ``"trace"`` the tracing-time one, ``"mnist_epoch"`` the time to train one MNIST epoch from
    process start; the names of their results (``compile_cold``, ``epoch_warm``, ...) select them
    too, each of which measures its cold and warm results together."""
    names = all_names()
    if not patterns:
        return list(QUICK) if quick else names
    chosen = []
    for p in patterns:
        p = _MEASURED_BY.get(p, p)
        hits = [n for n in names if n == p] or [n for n in names if n.startswith(p)]
        if not hits:
            raise KeyError(f"unknown workload {p!r}; known: {', '.join(names)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen
