"""Pytrees: nested tuples, lists, dicts and None around array leaves.

Layer: runtime helper. ``flatten(tree) -> (leaves, treedef)`` and
``unflatten(treedef, leaves)``; ``treedef`` is a hashable description of the containers
(dict keys in sorted order, as JAX does) so it can be part of a cache key. ``leaf_paths``
names each leaf the way users write it (``params['W']``) for messages.
"""
from __future__ import annotations

import functools

__all__ = ["flatten", "unflatten", "unflattener", "leaf_paths", "tree_map"]

_LEAF = "*"


def flatten(tree):
    """Leaves in order, and the structure as a hashable value."""
    leaves = []
    return leaves, _flatten_into(tree, leaves)


# The recursions are module-level functions, not closures: a closure that calls itself is a
# reference cycle, which would keep every flattened array alive until the garbage collector
# runs (in a training loop, about a hundred steps' parameters and gradients at a time).
def _flatten_into(node, leaves):
    """Append ``node``'s leaves to ``leaves``; return its structure."""
    # exact container types first: this runs on every call of a traced function
    t = type(node)
    if t is dict:
        try:
            keys = sorted(node)
        except TypeError:
            keys = list(node)
        return ("d", tuple(keys), tuple([_flatten_into(node[k], leaves) for k in keys]))
    if t is tuple:
        return ("t", tuple([_flatten_into(x, leaves) for x in node]))
    if t is list:
        return ("l", tuple([_flatten_into(x, leaves) for x in node]))
    if t.__module__ == "numpy" or t in (float, int, bool, complex):
        leaves.append(node)
        return _LEAF
    if isinstance(node, tuple) and not hasattr(node, "_fields"):
        return ("t", tuple(_flatten_into(x, leaves) for x in node))
    if isinstance(node, list):
        return ("l", tuple(_flatten_into(x, leaves) for x in node))
    if isinstance(node, dict):
        try:
            keys = sorted(node)
        except TypeError:
            keys = list(node)
        return ("d", tuple(keys), tuple(_flatten_into(node[k], leaves) for k in keys))
    if node is None:
        return ("n",)
    leaves.append(node)
    return _LEAF


def unflatten(treedef, leaves):
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (any iterable)."""
    return _build(treedef, iter(leaves))


def _build(d, leaves):
    """The tree of structure ``d``, its leaves taken in order from the iterator ``leaves``."""
    if d == _LEAF:
        return next(leaves)
    kind = d[0]
    if kind == "t":
        return tuple(_build(x, leaves) for x in d[1])
    if kind == "l":
        return [_build(x, leaves) for x in d[1]]
    if kind == "d":
        return {k: _build(x, leaves) for k, x in zip(d[1], d[2])}
    return None


@functools.lru_cache(maxsize=256)
def unflattener(treedef):
    """A function ``leaves -> tree`` for one structure, faster than ``unflatten`` on every call:
    the tree is built by one generated expression, e.g. ``lambda v: ({k[0]: v[0], k[1]: v[1]},
    v[2])``. Dict keys are passed in as ``k``, never written into the text, so any key works."""
    keys, n_leaves = [], 0

    def expr(d):
        nonlocal n_leaves
        if d == _LEAF:
            n_leaves += 1
            return f"v[{n_leaves - 1}]"
        kind = d[0]
        if kind == "t":
            return "(" + "".join(expr(x) + ", " for x in d[1]) + ")"
        if kind == "l":
            return "[" + ", ".join(expr(x) for x in d[1]) + "]"
        if kind == "d":
            items = []
            for key, x in zip(d[1], d[2]):
                keys.append(key)
                items.append(f"k[{len(keys) - 1}]: {expr(x)}")
            return "{" + ", ".join(items) + "}"
        return "None"

    body = expr(treedef)
    return eval(f"lambda v: {body}", {"k": tuple(keys)})  # noqa: S307 - built above from indices only


def leaf_paths(treedef, prefix=""):
    """Readable paths of the leaves, e.g. ``["params['W']", "params['b']", "x"]``."""
    out = []

    def walk(d, path):
        if d == _LEAF:
            out.append(path)
        elif d[0] in "tl":
            for i, x in enumerate(d[1]):
                walk(x, f"{path}[{i}]")
        elif d[0] == "d":
            for k, x in zip(d[1], d[2]):
                walk(x, f"{path}[{k!r}]")

    walk(treedef, prefix)
    return out


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise over trees of the same structure."""
    leaves, treedef = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])
