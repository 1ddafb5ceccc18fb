"""The Numba backend: a ``Graph`` becomes the source of one Python function with explicit
loops (``generate_source``), which is compiled with ``numba.njit`` and cached in memory by a
hash of its text (``compile_graph``).

- ``codegen``: lowering (names, loops, the generic elementwise and reduction emitters);
- ``emitters``: one emitter per shape/opaque primitive, in the table ``EMITTERS``;
- ``compiler``: compiling, the cache, ``CompiledProgram`` (the callable the runtime uses);
- ``kernels`` (fused loop nests), ``vecmath`` (vectorisable math), ``blas`` (matrix products
  through NumPy's OpenBLAS), ``memory`` (the workspace plan), ``disk_cache``.
"""
from .codegen import BackendError, Lowered, emitter_for, generate_source, lower
from .compiler import CompiledProgram, cache_info, clear_cache, compile_graph, log_enabled
from .emitters import EMITTERS

__all__ = ["generate_source", "compile_graph", "CompiledProgram", "BackendError", "EMITTERS", "emitter_for",
           "lower", "Lowered", "cache_info", "clear_cache", "log_enabled"]


def _prefer_workqueue_threads():
    # Numba's OpenMP layer keeps its threads spinning between parallel loops, which on a busy
    # machine (or beside BLAS threads) makes every parallel kernel several times slower. The
    # work-queue layer sleeps instead. An explicit NUMBA_THREADING_LAYER is respected.
    import os

    import numba
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


_prefer_workqueue_threads()
