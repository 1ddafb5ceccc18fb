"""``tj.optim``: pure, traceable optimisers over pytrees of arrays.

Layer: library code on top of the front end. ``opt = tj.optim.adam(lr=1e-3)``;
``state = opt.init(params)``; ``params, state = opt.update(params, grads, state)``.
Updates are plain NumPy expressions on the pytrees, so a whole training step -- loss,
gradient and update -- traces into one program. Nothing is updated in place. Each update
keeps every parameter's dtype (a float32 model stays float32).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .pytree import flatten, tree_map, unflatten

__all__ = ["sgd", "momentum", "adam", "Optimizer"]


def _check_rate(opt, field, low=0.0, high=None):
    """Check the hyperparameter ``opt.<field>`` (a real number, NumPy scalars included, in
    ``[low, high)``) and store it as a Python float."""
    value = getattr(opt, field)
    if (not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or not value >= low
            or (high is not None and value >= high)):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{type(opt).__name__}: {field} must be a number {bound}, got {value!r}")
    object.__setattr__(opt, field, float(value))  # the dataclasses are frozen


def _same_dtype(new, like):
    return new.astype(like.dtype) if new.dtype != like.dtype else new


@dataclass(frozen=True)
class Optimizer:
    """Base: ``init(params) -> state``, ``update(params, grads, state) -> (params, state)``."""

    def init(self, params):  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, params, grads, state):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class sgd(Optimizer):
    """Plain stochastic gradient descent: ``p - lr * g``. The state is ``()``."""

    lr: float

    def __post_init__(self):
        _check_rate(self, "lr")

    def init(self, params):
        return ()

    def update(self, params, grads, state):
        return tree_map(lambda p, g: _same_dtype(p - self.lr * g, p), params, grads), state


@dataclass(frozen=True)
class momentum(Optimizer):
    """SGD with heavy-ball momentum: ``v = beta * v + g; p = p - lr * v``. The state is ``v``."""

    lr: float
    beta: float = 0.9

    def __post_init__(self):
        _check_rate(self, "lr")
        _check_rate(self, "beta", 0.0, 1.0)

    def init(self, params):
        return tree_map(np.zeros_like, params)

    def update(self, params, grads, state):
        velocity = tree_map(lambda v, g: _same_dtype(self.beta * v + g, v), state, grads)
        return tree_map(lambda p, v: _same_dtype(p - self.lr * v, p), params, velocity), velocity


@dataclass(frozen=True)
class adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction.

    The state is ``{"step": NumPy int64 scalar, "m": first moments, "v": second moments}``.
    ``step`` is a NumPy scalar in ``init``'s state as in ``update``'s (NumPy's ``+`` on a 0-d
    array returns one), so a traced training step sees one signature and traces once.
    """

    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        _check_rate(self, "lr")
        _check_rate(self, "b1", 0.0, 1.0)
        _check_rate(self, "b2", 0.0, 1.0)
        _check_rate(self, "eps")

    def init(self, params):
        return {"step": np.int64(0), "m": tree_map(np.zeros_like, params),
                "v": tree_map(np.zeros_like, params)}

    def update(self, params, grads, state):
        step = state["step"] + 1
        m = tree_map(lambda m, g: _same_dtype(self.b1 * m + (1 - self.b1) * g, m), state["m"], grads)
        v = tree_map(lambda v, g: _same_dtype(self.b2 * v + (1 - self.b2) * (g * g), v), state["v"], grads)
        # Bias correction folded into the step size, computed once in float64.
        scale = self.lr * np.sqrt(1 - self.b2 ** step) / (1 - self.b1 ** step)
        p_leaves, tree = flatten(params)
        new = [_same_dtype(p - _same_dtype(scale, p) * mi / (np.sqrt(vi) + self.eps), p)
               for p, mi, vi in zip(p_leaves, flatten(m)[0], flatten(v)[0])]
        return unflatten(tree, new), {"step": step, "m": m, "v": v}
