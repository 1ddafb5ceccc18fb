"""Jacobians, Hessians and friends, composed from forward mode (``forward.py``) and reverse
mode (``autodiff.py``).

Layer: beside the two modes it composes (tracing and autodiff); no rules of its own. Every
function here works eagerly, inside ``@tj.trace`` (the whole Jacobian becomes one program)
and nested in the others, since the two modes nest.

A Jacobian of outputs ``out`` with respect to arguments ``args`` has, for each output leaf of
shape ``S`` and each input leaf of shape ``T``, an array of shape ``S + T``; the results are
arranged as the output's pytree of the input's pytree (the input's is a tuple when
``argnums`` is a tuple), as in JAX. ``jacfwd`` makes one forward pass per input element and
suits functions with few inputs and many outputs, ``jacrev`` one backward pass per output
element (after one forward pass), for many inputs and few outputs; the passes of each run as
one batched computation (``vmap`` over the basis vectors), not as a Python loop.
"""
from __future__ import annotations

import numpy as np

from . import numpy as tnp
from . import pytree
from .autodiff import _check_argnums, grad, vjp
from .forward import jvp
from .vectorize import vmap

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


def _arrange(blocks, out_tree, in_tree, argnums):
    """``blocks[k][m]`` (output leaf k, input leaf m) into the output's tree of the inputs' tree."""
    def inputs(row):
        chosen = pytree.unflatten(in_tree, row)
        return chosen[0] if isinstance(argnums, int) else chosen
    return pytree.unflatten(out_tree, [inputs(row) for row in blocks])


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _basis(leaves, k):
    """Per leaf of ``leaves``: for leaf ``k`` the identity over its elements, shaped
    ``(size,) + leaf.shape`` (a batch of one-hot arrays, in_axes 0); for the others zeros of
    their own shape, shared by the batch (in_axes None)."""
    values, axes = [], []
    for i, x in enumerate(leaves):
        shape, dtype = tuple(np.shape(x)), np.result_type(x)
        if i == k:
            values.append(np.eye(_size(shape), dtype=dtype).reshape((_size(shape),) + shape))
            axes.append(0)
        else:
            values.append(np.zeros(shape, dtype))
            axes.append(None)
    return values, tuple(axes)


def _block(batched, axis_of_elements, out, leaf):
    """One output leaf's derivatives with respect to one input leaf, computed for a batch of
    basis vectors (its first axis: the input's elements in forward mode, the output's in
    reverse mode), as the ``out.shape + leaf.shape`` array."""
    out_shape, in_shape = tuple(np.shape(out)), tuple(np.shape(leaf))
    if axis_of_elements == "input":  # (n_in,) + out_shape -> out_shape + (n_in,)
        batched = tnp.moveaxis(batched, 0, -1)
    return tnp.reshape(batched, out_shape + in_shape)


def jacfwd(fn, argnums=0, has_aux=False):
    """The Jacobian of ``fn`` with respect to argument(s) ``argnums``, by forward mode: ``jvp``
    along every input element at once (one batched forward pass, ``vmap`` over the basis).
    With ``has_aux=True`` returns ``(jacobian, aux)``."""
    def wrapped(*args, **kwargs):
        chosen, partial = _select(fn, argnums, args, kwargs, "jacfwd")
        in_leaves, in_tree = pytree.flatten(chosen)
        outputs, aux = _split_aux(partial(*chosen), has_aux, "jacfwd")
        out_leaves, out_tree = pytree.flatten(outputs)

        def pushforward(*tangent_leaves):
            _, tangents = jvp(partial, chosen, pytree.unflatten(in_tree, list(tangent_leaves)))
            return pytree.flatten(_split_aux(tangents, has_aux, "jacfwd")[0])[0]

        columns = []  # per input leaf: the output tangents' leaves, batched over its elements
        for m, leaf in enumerate(in_leaves):
            if _size(np.shape(leaf)) == 0:
                columns.append(None)
                continue
            basis, axes = _basis(in_leaves, m)
            columns.append(vmap(pushforward, in_axes=axes)(*basis))
        blocks = [[_zeros_or_block(columns[m], k, "input", out, leaf) for m, leaf in enumerate(in_leaves)]
                  for k, out in enumerate(out_leaves)]
        jac = _arrange(blocks, out_tree, in_tree, argnums)
        return (jac, aux) if has_aux else jac

    wrapped.__name__ = f"jacfwd({getattr(fn, '__name__', 'fn')})"
    return wrapped


def _zeros_or_block(batched_leaves, k, axis_of_elements, out, leaf):
    if batched_leaves is None:  # no element to differentiate along
        return tnp.zeros(tuple(np.shape(out)) + tuple(np.shape(leaf)), np.result_type(out))
    return _block(batched_leaves[k], axis_of_elements, out, leaf)


def jacrev(fn, argnums=0, has_aux=False):
    """The Jacobian of ``fn`` with respect to argument(s) ``argnums``, by reverse mode: one
    forward pass, then the backward pass for every output element at once (``vmap`` over the
    basis). With ``has_aux=True`` returns ``(jacobian, aux)``."""
    def wrapped(*args, **kwargs):
        chosen, partial = _select(fn, argnums, args, kwargs, "jacrev")
        in_leaves, in_tree = pytree.flatten(chosen)
        if has_aux:
            outputs, backward, aux = vjp(partial, *chosen, has_aux=True)
        else:
            (outputs, backward), aux = vjp(partial, *chosen), None
        out_leaves, out_tree = pytree.flatten(outputs)

        def pullback(*cotangent_leaves):
            return pytree.flatten(backward(pytree.unflatten(out_tree, list(cotangent_leaves))))[0]

        blocks = []
        for k, out in enumerate(out_leaves):
            if _size(np.shape(out)) == 0:
                rows = None
            else:
                basis, axes = _basis(out_leaves, k)
                rows = vmap(pullback, in_axes=axes)(*basis)
            blocks.append([_zeros_or_block(rows, m, "output", out, leaf) for m, leaf in enumerate(in_leaves)])
        jac = _arrange(blocks, out_tree, in_tree, argnums)
        return (jac, aux) if has_aux else jac

    wrapped.__name__ = f"jacrev({getattr(fn, '__name__', 'fn')})"
    return wrapped


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
