"""Jacobians, Hessians and friends, composed from forward mode (``forward.py``) and reverse
mode (``autodiff.py``).

Layer: beside the two modes it composes (tracing and autodiff); no rules of its own. Every
function here works eagerly, inside ``@tj.trace`` (the whole Jacobian becomes one program)
and nested in the others, since the two modes nest.

A Jacobian of outputs ``out`` with respect to arguments ``args`` has, for each output leaf of
shape ``S`` and each input leaf of shape ``T``, an array of shape ``S + T``; the results are
arranged as the output's pytree of the input's pytree (the input's is a tuple when
``argnums`` is a tuple), as in JAX. ``jacfwd`` makes one forward pass per input element and
suits functions with few inputs and many outputs; ``jacrev`` one backward pass per output
element (after one forward pass), for many inputs and few outputs.
"""
from __future__ import annotations

import numpy as np

from . import numpy as tnp
from . import pytree
from .autodiff import _check_argnums, grad, vjp
from .forward import jvp

__all__ = ["jacfwd", "jacrev", "jacobian", "hessian", "hvp", "elementwise_grad"]


def _select(fn, argnums, args, kwargs, name):
    """(the chosen arguments, ``fn`` as a function of them alone)."""
    nums = _check_argnums(argnums, len(args), name)
    chosen = tuple(args[i] for i in nums)

    def partial(*diff_args):
        full = list(args)
        for i, a in zip(nums, diff_args):
            full[i] = a
        return fn(*full, **kwargs)

    return chosen, partial


def _split_aux(result, has_aux, name):
    if not has_aux:
        return result, None
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(f"{name}: has_aux=True: the function must return a pair (output, aux)")
    return result[0], result[1]


def _basis(leaves, k, index):
    """Plain arrays of zeros shaped like ``leaves``, with a one at flat position ``index`` of leaf ``k``."""
    out = [np.zeros(np.shape(x), np.result_type(x)) for x in leaves]
    out[k].reshape(-1)[index] = 1
    return out


def _arrange(blocks, out_tree, in_tree, argnums):
    """``blocks[k][m]`` (output leaf k, input leaf m) into the output's tree of the inputs' tree."""
    def inputs(row):
        chosen = pytree.unflatten(in_tree, row)
        return chosen[0] if isinstance(argnums, int) else chosen
    return pytree.unflatten(out_tree, [inputs(row) for row in blocks])


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def jacfwd(fn, argnums=0, has_aux=False):
    """The Jacobian of ``fn`` with respect to argument(s) ``argnums``, by forward mode (one
    ``jvp`` per input element). With ``has_aux=True`` returns ``(jacobian, aux)``."""
    def wrapped(*args, **kwargs):
        chosen, partial = _select(fn, argnums, args, kwargs, "jacfwd")
        in_leaves, in_tree = pytree.flatten(chosen)
        columns = []  # per input leaf: per element, the output tangents' leaves
        out_tree, outputs, aux = None, None, None
        for m, leaf in enumerate(in_leaves):
            per_element = []
            for j in range(_size(np.shape(leaf))):
                tangents = pytree.unflatten(in_tree, _basis(in_leaves, m, j))
                result, result_tangents = jvp(partial, chosen, tangents)
                outputs, aux = _split_aux(result, has_aux, "jacfwd")
                out_tangents, _ = _split_aux(result_tangents, has_aux, "jacfwd")
                leaves, out_tree = pytree.flatten(out_tangents)
                per_element.append(leaves)
            columns.append(per_element)
        if out_tree is None:  # no input element at all: one plain call for the outputs' shapes
            outputs, aux = _split_aux(partial(*chosen), has_aux, "jacfwd")
        out_leaves, out_tree = pytree.flatten(outputs)
        blocks = [[_block([leaves[k] for leaves in columns[m]], -1, out, in_leaves[m])
                   for m in range(len(in_leaves))] for k, out in enumerate(out_leaves)]
        jac = _arrange(blocks, out_tree, in_tree, argnums)
        return (jac, aux) if has_aux else jac

    wrapped.__name__ = f"jacfwd({getattr(fn, '__name__', 'fn')})"
    return wrapped


def jacrev(fn, argnums=0, has_aux=False):
    """The Jacobian of ``fn`` with respect to argument(s) ``argnums``, by reverse mode (one
    forward pass, then one backward pass per output element). With ``has_aux=True`` returns
    ``(jacobian, aux)``."""
    def wrapped(*args, **kwargs):
        chosen, partial = _select(fn, argnums, args, kwargs, "jacrev")
        in_leaves, in_tree = pytree.flatten(chosen)
        if has_aux:
            outputs, backward, aux = vjp(partial, *chosen, has_aux=True)
        else:
            (outputs, backward), aux = vjp(partial, *chosen), None
        out_leaves, out_tree = pytree.flatten(outputs)
        blocks = []
        for k, out in enumerate(out_leaves):
            rows = [pytree.flatten(backward(pytree.unflatten(out_tree, _basis(out_leaves, k, j))))[0]
                    for j in range(_size(np.shape(out)))]
            blocks.append([_block([row[m] for row in rows], 0, out, leaf) for m, leaf in enumerate(in_leaves)])
        jac = _arrange(blocks, out_tree, in_tree, argnums)
        return (jac, aux) if has_aux else jac

    wrapped.__name__ = f"jacrev({getattr(fn, '__name__', 'fn')})"
    return wrapped


def _block(parts, axis, out, leaf):
    """One output leaf's derivatives with respect to one input leaf, a part per element of the
    input (``axis=-1``, forward mode) or of the output (``axis=0``, reverse mode), stacked
    along ``axis`` into the ``out.shape + leaf.shape`` array."""
    shape = tuple(np.shape(out)) + tuple(np.shape(leaf))
    if not parts:
        return tnp.zeros(shape, np.result_type(out))
    return tnp.reshape(tnp.stack(parts, axis=axis), shape)


jacobian = jacrev


def hessian(fn, argnums=0):
    """The Hessian of a float-scalar ``fn``: the forward-mode Jacobian of its gradient."""
    wrapped = jacfwd(jacrev(fn, argnums), argnums)
    wrapped.__name__ = f"hessian({getattr(fn, '__name__', 'fn')})"
    return wrapped


def hvp(fn, primals, tangents):
    """The Hessian of a float-scalar ``fn`` at ``primals`` times ``tangents``, by forward mode
    over reverse mode, without forming the Hessian. ``primals`` and ``tangents`` are tuples of
    the positional arguments; the result is shaped like the first argument for one argument,
    a tuple for several."""
    argnums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    return jvp(grad(fn, argnums), primals, tangents)[1]


def elementwise_grad(fn, argnums=0):
    """The gradient of the sum of ``fn``'s outputs: for a function applied elementwise, each
    output's derivative with respect to its own input (as in HIPS autograd)."""
    def wrapped(*args, **kwargs):
        chosen, partial = _select(fn, argnums, args, kwargs, "elementwise_grad")
        outputs, backward = vjp(partial, *chosen)
        grads = backward(pytree.tree_map(tnp.ones_like, outputs))
        return grads[0] if isinstance(argnums, int) else tuple(grads)

    wrapped.__name__ = f"elementwise_grad({getattr(fn, '__name__', 'fn')})"
    return wrapped
