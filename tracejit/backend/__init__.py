"""The Numba backend: a ``Graph`` becomes the source of one Python function with explicit
loops (``generate_source``), which is compiled with ``numba.njit`` and cached in memory by a
hash of its text (``compile_graph``).

- ``lowering``: ``Lowering``, the state emitters write through, and the ``Ref``s values are
  read through;
- ``scalar``: one element's code (loop bodies, accumulators, combines) and the tables of what
  the backend knows about each primitive;
- ``emitters``: one emitter per primitive (``EMITTERS``, ``emitter_for``), the generic
  elementwise and reduction ones included; ``fused_kernels``: the emitter of fused kernels;
- ``codegen``: ``lower``, the program assembled from the equations' code;
- ``memory``: the workspace plan;
- ``compiler``: compiling, the cache, ``CompiledProgram`` (the callable the runtime uses);
- run-time helpers generated code calls: ``intrinsics`` (arrays, views, vectorisable combines),
  ``vecmath`` (vectorisable math), ``blas`` (matrix products through NumPy's OpenBLAS),
  ``collectives``; and ``disk_cache``.
"""
from .codegen import generate_source, lower
from .compiler import CompiledProgram, cache_info, clear_cache, compile_graph, is_compiled, log_enabled
from .emitters import EMITTERS, emitter_for
from .lowering import BackendError, Lowered

__all__ = ["generate_source", "compile_graph", "is_compiled", "CompiledProgram", "BackendError", "EMITTERS", "emitter_for",
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
