"""The settings tracejit reads from the environment, each read when it is used (so a test or a
program may change it between calls), each with its own clear error for a bad value.

Layer: base (imports nothing of tracejit), so that the runtime can read the backend's settings
without importing the backend (and with it Numba).
"""
from __future__ import annotations

import os

__all__ = ["cache_size", "compile_limit", "tiered_by_default", "use_helper_process", "cache_root",
           "machine_code_cached"]

DEFAULT_CACHE_SIZE = 64


def cache_size() -> int:
    """How many compiled programs (and signatures per traced function) are kept in memory beyond
    those in use: ``$TRACEJIT_CACHE_SIZE``, default 64."""
    value = os.environ.get("TRACEJIT_CACHE_SIZE", "")
    try:
        return max(1, int(value)) if value else DEFAULT_CACHE_SIZE
    except ValueError:
        raise ValueError(f"TRACEJIT_CACHE_SIZE must be a positive integer, got {value!r}") from None


DEFAULT_COMPILE_LIMIT = 8


def compile_limit() -> int:
    """How many programs one traced function compiles (one per signature) before later new
    signatures run in the NumPy interpreter instead: ``$TRACEJIT_COMPILE_LIMIT``, default 8, 0
    for no limit. Numba keeps the machine code of every program it compiles until the process
    ends (about 1 MiB each), so a function called with ever new shapes would grow the process
    without bound; ``torch.compile`` bounds recompiles the same way (its cache size limit, 8)."""
    value = os.environ.get("TRACEJIT_COMPILE_LIMIT", "")
    try:
        limit = int(value) if value else DEFAULT_COMPILE_LIMIT
    except ValueError:
        limit = -1
    if limit < 0:
        raise ValueError(f"TRACEJIT_COMPILE_LIMIT must be a whole number of programs (0: no limit), got {value!r}")
    return limit


def tiered_by_default() -> bool:
    """Whether compiled mode tiers (``TRACEJIT_TIERED``, default on)."""
    value = os.environ.get("TRACEJIT_TIERED", "1").strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"TRACEJIT_TIERED must be 1 (compile in the background, the default) or 0 (compile before "
                     f"the first call returns), got {os.environ['TRACEJIT_TIERED']!r}")


def use_helper_process() -> bool | None:
    """Where a background compile runs (``TRACEJIT_COMPILE_HELPER``): True for a helper process
    (``1``), False for a thread of this process (``0``), None to let ``tiers.helper_wanted``
    choose when the compile starts (``auto``, the default)."""
    value = os.environ.get("TRACEJIT_COMPILE_HELPER", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("", "auto"):
        return None
    raise ValueError(f"TRACEJIT_COMPILE_HELPER must be 1 (compile in a helper process), 0 (on a thread of "
                     f"this process) or auto (choose at each compile, the default), got "
                     f"{os.environ['TRACEJIT_COMPILE_HELPER']!r}")


def cache_root() -> str:
    """The disk cache's folder: ``TRACEJIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tracejit`` or
    ``~/.cache/tracejit``."""
    root = os.environ.get("TRACEJIT_CACHE_DIR")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tracejit")


def machine_code_cached() -> bool:
    """Whether the disk cache holds any compiled program's machine code: if not, no program
    can be loaded from it, and the runtime need not import the backend (and Numba) to look."""
    try:
        with os.scandir(os.path.join(cache_root(), "kernels", "__pycache__")) as entries:
            return any(entry.name.endswith(".nbi") for entry in entries)
    except OSError:
        return False
