"""Pytrees: nested tuples, lists, dicts and None around array leaves.

Layer: runtime helper. ``flatten(tree) -> (leaves, treedef)`` and
``unflatten(treedef, leaves)``; ``treedef`` is a hashable description of the containers
(dict keys in sorted order, as JAX does) so it can be part of a cache key. ``leaf_paths``
names each leaf the way users write it (``params['W']``) for messages.
"""
from __future__ import annotations

__all__ = ["flatten", "unflatten", "leaf_paths", "tree_map"]

_LEAF = "*"


def flatten(tree):
    """Leaves in order, and the structure as a hashable value."""
    leaves = []

    def walk(node):
        if isinstance(node, tuple) and not hasattr(node, "_fields"):
            return ("t", tuple(walk(x) for x in node))
        if isinstance(node, list):
            return ("l", tuple(walk(x) for x in node))
        if isinstance(node, dict):
            try:
                keys = sorted(node)
            except TypeError:
                keys = list(node)
            return ("d", tuple(keys), tuple(walk(node[k]) for k in keys))
        if node is None:
            return ("n",)
        leaves.append(node)
        return _LEAF

    return leaves, walk(tree)


def unflatten(treedef, leaves):
    """Rebuild a tree of structure ``treedef`` from ``leaves`` (any iterable)."""
    it = iter(leaves)

    def build(d):
        if d == _LEAF:
            return next(it)
        kind = d[0]
        if kind == "t":
            return tuple(build(x) for x in d[1])
        if kind == "l":
            return [build(x) for x in d[1]]
        if kind == "d":
            return {k: build(x) for k, x in zip(d[1], d[2])}
        return None

    return build(treedef)


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
