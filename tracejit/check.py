"""``check=True``: run eager NumPy alongside the traced program and compare.

Layer: runtime diagnostics. ``@tj.trace(check=True)`` (or ``TRACEJIT_CHECK=1``) makes every
call also run the Python body eagerly on copies of the arguments, then compares the results
-- and the arguments updated in place -- within the tolerances tracejit promises (float64 rtol
1e-12, float32 rtol 1e-5; looser with ``fastmath=True``). The first mismatch raises
``tj.MismatchError`` naming the output, the worst element and both values.
"""
from __future__ import annotations

import copy
import os

import numpy as np

from . import pytree
from .errors import TracerError

__all__ = ["MismatchError", "check_enabled_by_env", "run_checked", "tolerances"]


class MismatchError(TracerError):
    """A traced result differs from eager NumPy beyond the stated tolerance."""


def check_enabled_by_env() -> bool:
    return os.environ.get("TRACEJIT_CHECK", "").strip().lower() in ("1", "true", "yes", "on")


def tolerances(dtype, fastmath=False):
    """(rtol, atol) for comparing a traced result of ``dtype`` with eager NumPy."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "fc":
        return 0.0, 0.0
    rtol = {2: 1e-2, 4: 1e-5, 8: 1e-12}.get(dtype.itemsize if dtype.kind == "f" else dtype.itemsize // 2, 1e-5)
    if fastmath:
        rtol = max(rtol * 100, 1e-4 if dtype.itemsize <= 4 else 1e-10)
    return rtol, rtol * 1e-3


def _compare(name, got, want, fastmath):
    got_a, want_a = np.asarray(got), np.asarray(want)
    if got_a.shape != want_a.shape or got_a.dtype != want_a.dtype:
        raise MismatchError(f"{name}: traced result is {got_a.dtype}{list(got_a.shape)}, eager NumPy gives "
                            f"{want_a.dtype}{list(want_a.shape)}")
    rtol, atol = tolerances(want_a.dtype, fastmath)
    if want_a.dtype.kind in "fc":
        bad = ~np.isclose(got_a, want_a, rtol=rtol, atol=atol, equal_nan=True)
    else:
        bad = got_a != want_a
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0]) if got_a.ndim else ()
        raise MismatchError(
            f"{name}: traced and eager results differ at index {index}: {got_a[index]!r} vs {want_a[index]!r} "
            f"({int(np.count_nonzero(bad))} of {got_a.size} elements beyond rtol={rtol:g}). "
            "Run with TRACEJIT_LOG=graph,source to see what was compiled, and please report it.")


def run_checked(traced, fn, args, kwargs, run_traced):
    """Call ``run_traced()`` and ``fn`` eagerly on copies of the arguments; compare everything."""
    eager_args, eager_kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    result = run_traced()
    from .modes import mode
    with mode("eager"):
        expected = fn(*eager_args, **eager_kwargs)
    got_leaves, got_tree = pytree.flatten(result)
    want_leaves, want_tree = pytree.flatten(expected)
    fname = getattr(fn, "__name__", "function")
    if got_tree != want_tree:
        raise MismatchError(f"{fname}: traced and eager results have different structures")
    for path, got, want in zip(pytree.leaf_paths(got_tree, "result"), got_leaves, want_leaves):
        _compare(f"{fname}: {path}", got, want, traced.fastmath)
    # Arguments updated in place must end up the same too.
    for path, got, want in zip(pytree.leaf_paths(pytree.flatten((args, kwargs))[1], "argument"),
                               pytree.flatten((args, kwargs))[0], pytree.flatten((eager_args, eager_kwargs))[0]):
        if isinstance(got, np.ndarray):
            _compare(f"{fname}: {path} (updated in place)", got, want, traced.fastmath)
    return result
