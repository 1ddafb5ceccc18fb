"""Data parallelism over MPI: one model, one process per worker, gradients averaged every step.

Layer: front end (public API), on ``communicator`` (the process group) and the ``all_sum``
primitive of ``ops``. In: pytrees of arrays. Out: pytrees of the same structure.

Launch the same script with ``mpiexec -n N python train.py``: every process runs it, holds the
whole model, takes its own part of every global batch (``shard``, ``batches``), and averages
its gradients with the others (``all_mean``) before the update, so all processes keep
identical parameters. Started without ``mpiexec`` (or without ``mpi4py`` installed), a script is
one process of one: ``rank() == 0``, ``size() == 1`` and the collectives return their input.

``all_sum`` and ``all_mean`` work on arrays and inside ``@tj.trace``: there a collective is an
equation of the graph (primitive ``all_sum``, whose gradient is again ``all_sum``), so a traced
training step contains its own allreduce. With several processes, the leaves of one dtype are
packed into one contiguous buffer and summed by one MPI allreduce.
"""
from __future__ import annotations

import numpy as np

from . import communicator, ops, pytree
from . import numpy as tnp
from .primitives import Tracer

__all__ = ["rank", "size", "is_distributed", "broadcast", "all_sum", "all_mean", "shard", "batches",
           "collective_stats"]


def rank() -> int:
    """This process's index, ``0 <= rank() < size()``; 0 outside ``mpiexec``."""
    return communicator.rank()


def size() -> int:
    """The number of processes running this program; 1 outside ``mpiexec``."""
    return communicator.size()


def is_distributed() -> bool:
    """Whether more than one process runs this program."""
    return communicator.size() > 1


def collective_stats() -> communicator.CollectiveStats:
    """This process's running counts of collectives (``calls``, ``seconds``, ``bytes``), eager
    and compiled alike; ``.reset()`` sets them to zero."""
    return communicator.stats


# --------------------------------------------------------------------------- packing


def _summable_dtype(leaf, what):
    dtype = np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
    if dtype.kind not in "iufc":
        raise TypeError(f"{what}: leaves must be numeric arrays or numbers; got a leaf of dtype {dtype}")
    return dtype


def _groups_by_dtype(leaves, what):
    """{dtype: [leaf index, ...]} in first-seen order (the same on every process)."""
    groups: dict = {}
    for i, leaf in enumerate(leaves):
        groups.setdefault(_summable_dtype(leaf, what), []).append(i)
    return groups


def _sum_leaves(leaves, groups):
    """The sums over processes of ``leaves``: one ``all_sum`` (one buffer, one allreduce) per
    dtype. Numbers come back as NumPy scalars, arrays as arrays (views of that buffer)."""
    out = [None] * len(leaves)
    for dtype, members in groups.items():
        summed = ops.all_sum(*[tnp.asarray(leaves[i], dtype=dtype) for i in members])
        for i, s in zip(members, summed):
            scalar = not isinstance(leaves[i], (np.ndarray, Tracer)) and np.ndim(leaves[i]) == 0
            out[i] = s[()] if scalar else s
    return out


def all_sum(tree):
    """The leaf-wise sum of ``tree`` over all processes, as a tree of the same structure.

    Every process must pass a tree of the same structure, shapes and dtypes. Leaves of one dtype
    travel in one contiguous buffer, summed by one MPI allreduce. Works on arrays and on traced
    values (inside ``@tj.trace`` and ``tj.grad`` it is the primitive ``all_sum``, whose gradient
    is ``all_sum`` of the cotangent). In one process it returns ``tree`` itself.
    """
    leaves, treedef = pytree.flatten(tree)
    groups = _groups_by_dtype(leaves, "all_sum")
    if communicator.size() == 1 and not any(isinstance(leaf, Tracer) for leaf in leaves):
        return tree
    return pytree.unflatten(treedef, _sum_leaves(leaves, groups))


def all_mean(tree):
    """The leaf-wise mean of ``tree`` over all processes: ``all_sum(tree)`` divided by ``size()``.

    This is the gradient averaging of data-parallel training: with equal shards of a global
    batch and a mean loss, the mean of the processes' gradients is the gradient of the global
    batch. Leaves must be floating (or complex). In one process it returns ``tree`` itself.
    """
    leaves, treedef = pytree.flatten(tree)
    for leaf in leaves:
        if _summable_dtype(leaf, "all_mean").kind not in "fc":
            raise TypeError(f"all_mean: leaves must be floating or complex; got a leaf of dtype "
                            f"{_summable_dtype(leaf, 'all_mean')} (use all_sum for integers)")
    n = communicator.size()
    summed = all_sum(tree)
    if n == 1:
        return summed
    scale = 1.0 / n
    means = [leaf * scale for leaf in pytree.flatten(summed)[0]]
    return pytree.unflatten(treedef, means)


def broadcast(tree, root: int = 0):
    """Every process gets process ``root``'s ``tree`` (a pytree of arrays and numbers), e.g. the
    initial parameters, so that all processes start from the same model.

    The processes' trees must have the same structure, shapes and dtypes: this is checked (one
    small message from ``root``) and a mismatch raises ValueError naming the leaf. Returns new
    arrays; in one process, ``tree`` itself. Not traceable: call it outside ``@tj.trace``.
    """
    n = communicator.size()
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < n:
        raise ValueError(f"broadcast: root must be an int in [0, {n}); got {root!r}")
    leaves, treedef = pytree.flatten(tree)
    if any(isinstance(leaf, Tracer) for leaf in leaves):
        raise TypeError("broadcast: called on traced values; broadcast the parameters once, outside "
                        "the traced function (gradients are averaged with all_mean instead)")
    if n == 1:
        return tree
    arrays = [np.asarray(leaf) for leaf in leaves]
    signature = (treedef, [(a.shape, a.dtype.str) for a in arrays])
    root_signature = communicator.world().bcast(signature, root=int(root))
    if root_signature != signature:
        raise ValueError(f"broadcast: rank {communicator.rank()}'s tree differs from rank {root}'s: "
                         f"{_first_difference(signature, root_signature)}")
    groups: dict = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.dtype, []).append(i)
    out = [None] * len(arrays)
    for dtype, members in groups.items():
        buffer = np.concatenate([arrays[i].reshape(-1) for i in members]) if len(members) > 1 \
            else np.array(arrays[members[0]], order="C", copy=True).reshape(-1)
        communicator.broadcast_in_place(buffer, int(root))
        offset = 0
        for i in members:
            a = arrays[i]
            part = buffer[offset:offset + a.size].reshape(a.shape)
            out[i] = part[()] if a.ndim == 0 and not isinstance(leaves[i], np.ndarray) else part
            offset += a.size
    return pytree.unflatten(treedef, out)


def _first_difference(mine, theirs):
    if mine[0] != theirs[0]:
        return f"the structure is {mine[0]} here and {theirs[0]} there"
    paths = pytree.leaf_paths(mine[0], "tree")
    for path, a, b in zip(paths, mine[1], theirs[1]):
        if a != b:
            return f"{path} is shape {a[0]} dtype {np.dtype(a[1])} here and shape {b[0]} dtype {np.dtype(b[1])} there"
    return "unknown difference"


# --------------------------------------------------------------------------- data


def shard(*arrays):
    """This process's part of a global batch: the ``rank()``-th of ``size()`` equal, contiguous
    slices along the first axis of each array (the rows ``[r*B/n, (r+1)*B/n)``). One array in,
    one out; several in, a tuple out. The batch size must be divisible by ``size()``: with equal
    parts, the mean of the processes' mean gradients is the global batch's mean gradient.
    """
    if not arrays:
        raise TypeError("shard: needs at least one array")
    n, r = communicator.size(), communicator.rank()
    parts = []
    for k, a in enumerate(arrays):
        a = np.asarray(a)
        if a.ndim == 0:
            raise ValueError(f"shard: argument {k} must have a sample axis first; got a 0-d array")
        if len(a) != len(arrays[0]):
            raise ValueError(f"shard: arguments must have the same length; argument 0 has {len(arrays[0])}, "
                             f"argument {k} has {len(a)}")
        if len(a) % n:
            raise ValueError(f"shard: the batch size ({len(a)}) must be divisible by the number of processes ({n})")
        per = len(a) // n
        parts.append(a[r * per:(r + 1) * per])
    return parts[0] if len(parts) == 1 else tuple(parts)


def batches(x, y, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
    """``tj.datasets.batches`` for data parallelism: each process gets its ``shard`` of each
    global batch of ``batch_size`` samples. Every process draws the same order from ``seed`` (an
    int: fresh entropy would differ between processes), so the processes' parts are disjoint and
    together they are exactly the batches one process would see.

    ``batch_size`` must be divisible by ``size()``, and so must the last batch's size unless
    ``drop_last`` skips it (checked here, before the first batch).
    """
    from . import datasets

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"batches: seed must be an int >= 0, the same on every process; got {seed!r}")
    n = communicator.size()
    if isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool) and batch_size >= 1:
        if batch_size % n:
            raise ValueError(f"batches: batch_size ({batch_size}) must be divisible by the number of processes ({n})")
        last = len(x) % batch_size
        if not drop_last and last % n:
            raise ValueError(f"batches: the last batch has {last} samples, not divisible by the number of "
                             f"processes ({n}); pass drop_last=True")
    plan = datasets._batch_plan(x, y, batch_size, shuffle, int(seed), drop_last)
    return datasets._iterate_batches(*plan, int(batch_size), communicator.rank(), n)
