"""``tf.train``: optimisers of the declarative front end, over ``tj.optim``'s updates.

Layer: part of ``tracejit.flow``. ``minimize(loss)`` takes ``tf.gradients`` of the loss with
respect to the Variables it depends on and returns one op that assigns each its update, as
computed by the matching ``tj.optim`` optimiser (its state lives in extra Variables).
"""
from __future__ import annotations

import numpy as np

from .. import optim as _optim
from . import Tensor, Variable, _ancestors, _tensor, apply, assign, gradients, group

__all__ = ["Optimizer", "GradientDescentOptimizer", "AdamOptimizer"]


class Optimizer:
    """Base: ``minimize(loss, var_list=None)`` returns the training op."""

    def __init__(self, optimizer):
        self.optimizer = optimizer  # a tj.optim optimiser: the update rule itself

    def state(self, variables):
        """The optimiser's state as a pytree of new Variables (``tj.optim``'s ``init`` layout)."""
        return ()

    def minimize(self, loss, var_list=None, name=None) -> Tensor:
        """One op updating every Variable ``loss`` depends on (or those in ``var_list``) by one step."""
        loss = _tensor(loss, "minimize")
        variables = list(var_list) if var_list is not None else sorted(
            (n for n in _ancestors([loss]) if isinstance(n, Variable) and n.dtype.kind == "f"), key=lambda v: v.id)
        if not variables:
            raise ValueError(f"{type(self).__name__}.minimize: the loss {loss.name!r} depends on no float Variable")
        grads = gradients(loss, variables)
        state = self.state(variables)

        def step(params, grads, state):
            return self.optimizer.update(list(params), list(grads), state)

        updated = apply(step, variables, grads, state, name=name or f"{type(self).__name__}_step")
        new_params = [apply(lambda u, k=k: u[0][k], updated, name=f"new_{v.name}") for k, v in enumerate(variables)]
        state_vars, tree = _leaves(state)
        new_state = [apply(lambda u, path=path: _at(u[1], path), updated, name=f"new_{s.name}")
                     for s, path in zip(state_vars, tree)]
        return group(*[assign(v, p) for v, p in zip(variables, new_params)],
                     *[assign(s, p) for s, p in zip(state_vars, new_state)], name=name or "train_step")


def _leaves(state):
    """The Variables of a state pytree and the path (keys, indices) to each."""
    out, paths = [], []

    def walk(node, path):
        if isinstance(node, Variable):
            out.append(node)
            paths.append(path)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(state, ())
    return out, paths


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


class GradientDescentOptimizer(Optimizer):
    """``var - learning_rate * gradient`` (``tj.optim.sgd``)."""

    def __init__(self, learning_rate):
        super().__init__(_optim.sgd(learning_rate))


class AdamOptimizer(Optimizer):
    """Adam with bias correction (``tj.optim.adam``); its moments and step count are Variables
    initialised to zeros by ``initialize_all_variables``."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
        super().__init__(_optim.adam(learning_rate, beta1, beta2, epsilon))

    def state(self, variables):
        def like(v, what):
            return Variable(name=f"{v.name}_{what}", dtype=v.dtype, _shape_rule=v, _init=("zeros",))
        return {"step": Variable(np.zeros((), np.int64), name="adam_step"),
                "m": [like(v, "m") for v in variables], "v": [like(v, "v") for v in variables]}
