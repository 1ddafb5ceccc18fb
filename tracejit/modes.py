"""Execution modes: ``"eager"``, ``"graph"`` and ``"compiled"`` (the default).

- eager: the decorated Python body runs on the real arrays (plain NumPy, debuggable);
- graph: the body is traced once per signature, optimised, and run by ``interpret``;
- compiled: traced, optimised and run as generated Numba code.

The mode comes from, in order: the ``mode=`` given to ``tj.trace``, the innermost
``with tj.mode(...)`` block of the current thread, ``tj.set_mode(...)``, and the
``TRACEJIT_MODE`` environment variable.
"""
from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["MODES", "mode", "set_mode", "get_mode", "check_mode"]

MODES = ("eager", "graph", "compiled")


def check_mode(name, what="mode") -> str:
    if name not in MODES:
        raise ValueError(f"{what} must be one of {', '.join(repr(m) for m in MODES)}; got {name!r}")
    return name


def _initial_mode() -> str:
    name = os.environ.get("TRACEJIT_MODE", "compiled").strip().lower() or "compiled"
    return check_mode(name, "the environment variable TRACEJIT_MODE")


_global_mode = _initial_mode()
_local = threading.local()
_count_lock = threading.Lock()
_open_blocks = 0  # `with tj.mode(...)` blocks open in any thread; 0 skips the thread-local look-up


def get_mode() -> str:
    """The mode in force for this thread."""
    if not _open_blocks:
        return _global_mode
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else _global_mode


def set_mode(name: str) -> None:
    """Set the process-wide default mode (``with tj.mode(...)`` blocks still take precedence)."""
    global _global_mode
    _global_mode = check_mode(name)


@contextlib.contextmanager
def mode(name: str):
    """``with tj.mode("eager"): ...`` runs traced functions in that mode inside the block."""
    global _open_blocks
    check_mode(name)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(name)
    with _count_lock:
        _open_blocks += 1
    try:
        yield name
    finally:
        stack.pop()
        with _count_lock:
            _open_blocks -= 1
