"""NumPy's own OpenBLAS, through ctypes: where it is and how many threads it runs.

Layer: base (imports NumPy only, so the runtime can use it before Numba is loaded). In: nothing;
out: the library's path (``library_path``), the ``ctypes.CDLL`` NumPy already loaded
(``library``), and its thread count (``threads``, ``set_threads``). ``backend/blas.py`` calls the
library's matrix products from compiled code; tiered execution runs NumPy's products on one
thread while a compile keeps a core busy (``tiers.py``). A NumPy built against another BLAS
(other symbol names, 32-bit integers) gives None throughout.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os

import numpy as np

__all__ = ["library_path", "library", "threads", "set_threads", "threads_set"]

#: The thread count tracejit last gave the library (0: unknown), by ``set_threads`` here or by
#: compiled code (``backend/blas.py`` registers its address with LLVM), so that a product that
#: wants the count already set makes no call.
threads_set = ctypes.c_int64(0)


def library_path() -> str | None:
    """Path of the OpenBLAS shared library bundled with NumPy's wheel, or None."""
    package = os.path.dirname(np.__file__)
    patterns = [os.path.join(package + ".libs", "*openblas*"),          # Linux, Windows
                os.path.join(package, ".dylibs", "*openblas*")]         # macOS
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if path.endswith((".so", ".dylib", ".dll")) or ".so." in path:
                return path
    return None


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """NumPy's OpenBLAS (already loaded by NumPy: this only looks it up), or None when NumPy
    has another BLAS or a build without the ``scipy_openblas`` names."""
    path = library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.scipy_openblas_get_num_threads64_.restype = ctypes.c_int
        lib.scipy_openblas_set_num_threads64_.argtypes = [ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return lib


def threads() -> int | None:
    """The threads NumPy's OpenBLAS runs a product on, or None (no such library)."""
    lib = library()
    return None if lib is None else max(1, lib.scipy_openblas_get_num_threads64_())


def set_threads(n: int) -> None:
    """Make NumPy's OpenBLAS run products on ``n`` threads (nothing without the library)."""
    lib = library()
    if lib is not None:
        lib.scipy_openblas_set_num_threads64_(int(n))
        threads_set.value = int(n)
