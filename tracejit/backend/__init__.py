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
import gc as _gc
import os as _os
import sys as _sys
import time as _time

_import_start = _time.perf_counter()

__all__ = ["generate_source", "compile_graph", "is_compiled", "CompiledProgram", "BackendError", "EMITTERS", "emitter_for",
           "lower", "Lowered", "cache_info", "clear_cache", "log_enabled", "take_import_seconds"]


def _quiet_typing_errors():
    # Numba formats an error message, coloured with colorama when that is installed, for every
    # typing rule that does not match a call it types, also when another rule does: 2,500 of them
    # for the softmax-regression step, 0.03-0.05 s of its cold compile. Numba reads this switch
    # once, when it is imported; it stays off in this process (Numba's errors print uncoloured)
    # unless Numba was imported first, and the environment is left as it was.
    if "numba" not in _sys.modules and "NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING" not in _os.environ:
        _os.environ["NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING"] = "1"
        try:
            import numba.core.errors  # noqa: F401
        finally:
            del _os.environ["NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING"]


def _prefer_workqueue_threads():
    # Numba's OpenMP layer keeps its threads spinning between parallel loops, which on a busy
    # machine (or beside BLAS threads) makes every parallel kernel several times slower. The
    # work-queue layer sleeps instead. An explicit NUMBA_THREADING_LAYER is respected.
    import os

    import numba
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


def _defer_scipy_linalg():
    # Numba's first compilation (or first load from its cache) imports numba.np.arraymath, which
    # imports scipy.linalg only to learn whether a BLAS is there: 0.16 s of a cold start here,
    # mostly SciPy's array-API and f2py modules. tracejit's products call NumPy's OpenBLAS, so
    # that question is answered here from SciPy being installed (a dependency); the compiled
    # code that does use SciPy's BLAS (np.dot, np.linalg inside Numba) still imports it when it
    # is compiled. Skipped if Numba no longer has the names this relies on.
    import importlib.util

    if "numba.np.arraymath" in _sys.modules or importlib.util.find_spec("scipy") is None:
        return
    import numba.np.linalg as numba_linalg
    ensure_blas = getattr(numba_linalg, "ensure_blas", None)
    if ensure_blas is None:
        return
    numba_linalg.ensure_blas = lambda: None
    try:
        import numba.np.arraymath  # noqa: F401 - decides its _HAVE_BLAS while importing
    finally:
        numba_linalg.ensure_blas = ensure_blas


# Importing Numba makes a hundred thousand objects that live as long as the process, and the
# full collections they set off scan every object of the process each time: the backend's
# import took 175-186 ms with them and 165-172 ms without (after NumPy and tracejit, four
# alternating runs). The cycle collector waits until the import is done.
_collecting = _gc.isenabled()
_gc.disable()
try:
    _quiet_typing_errors()
    from .codegen import generate_source, lower
    from .compiler import CompiledProgram, cache_info, clear_cache, compile_graph, is_compiled, log_enabled
    from .emitters import EMITTERS, emitter_for
    from .lowering import BackendError, Lowered
    _prefer_workqueue_threads()
    _defer_scipy_linalg()

    # Numba's typeof of an array asks whether it is a masked array, and NumPy imports numpy.ma
    # when first asked (5-10 ms): here, while the backend is loaded (in the background with tiered
    # execution), rather than in the first call of the first compiled program.
    import numpy.ma  # noqa: F401
finally:
    if _collecting:
        _gc.enable()

_import_seconds = _time.perf_counter() - _import_start


def take_import_seconds() -> float:
    """How long importing the backend took (Numba's import and set-up above included), the
    first time it is asked, 0 after: the first compile or load of a process reports it as the
    "backend import" part of its time (``Traced.stats["compile_parts"]``)."""
    global _import_seconds
    seconds, _import_seconds = _import_seconds, 0.0
    return seconds
