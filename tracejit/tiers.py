"""Tiered execution: compiling in the background while the NumPy interpreter answers.

Layer: runtime, beside ``jit.py``, which is its only user. On a cache miss in compiled mode
``jit.Traced`` traces and optimises the function, hands the compile to ``submit`` and runs
the optimised graph with the interpreter until the compiled program is ready. ``submit``
queues a job for one worker thread and returns a ``concurrent.futures.Future``;
``block_until_compiled`` waits for every job submitted so far.

The job runs on that thread and compiles there, in this process, unless
``TRACEJIT_COMPILE_HELPER=1``: then the thread starts a helper process that compiles the
program into the disk cache, waits for it without holding the GIL, and loads the machine code.
The helper leaves this process's core to the training loop but pays Python's and Numba's
start-up first; measured on this project's machine of two busy cores the thread was the faster
(ARCHITECTURE.md, ``benchmarks/background_compile.py``). One worker, because Numba compiles one
function at a time in a process anyway (its compiler lock). The thread is a daemon: a program
that ends while a compile is still running does not wait for it; a compile already in Numba's
hands is then handed to a helper process that finishes it into the disk cache (the next run
loads it), while one not started yet is dropped (``Traced.wait()`` before the end keeps it).

``TRACEJIT_TIERED`` (``1`` by default, ``0`` to compile before the first call returns, as
``tj.trace(tiered=False)`` does for one function) and ``TRACEJIT_COMPILE_HELPER`` are read in
``settings``.
"""
from __future__ import annotations

import atexit
import contextlib
import queue
import sys
import threading
from concurrent.futures import Future

from . import numpy_blas
from .settings import tiered_by_default, use_helper_process

__all__ = ["tiered_by_default", "use_helper_process", "submit", "block_until_compiled", "pending_count"]

#: Python's GIL switch interval (seconds) while a compile runs. The compile is Python code that
#: holds the GIL whenever it can; each time the training loop lets the GIL go (NumPy does around
#: most operations) it waits up to one interval to get it back. At Python's default of 5 ms the
#: interpreted MNIST softmax-regression epoch took 2.0-2.3 s while its step compiled, against
#: 0.66 s at 0.1 ms, and the compile took as long (2.2-2.5 s), measured from an empty cache on
#: two cores (`python benchmarks/background_compile.py`; ARCHITECTURE.md).
SWITCH_INTERVAL_WHILE_COMPILING = 1e-4

_jobs: "queue.Queue[tuple[Future, object]]" = queue.Queue()
_pending: set = set()  # futures not done yet
_lock = threading.Lock()
_worker = None


@contextlib.contextmanager
def _while_compiling():
    """The conditions a compile runs under, restored after it: the short switch interval, and
    NumPy's BLAS on one thread. OpenBLAS's threads spin while they wait, so with the compile on
    one of two cores an interpreted product split over both waits for the descheduled one
    (backend/blas.py: a small product took 306 us on one thread against 2.5 ms on two with one
    core busy)."""
    interval = sys.getswitchinterval()
    blas_threads = numpy_blas.threads() or 1
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL_WHILE_COMPILING))
    if blas_threads > 1:
        numpy_blas.set_threads(1)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if blas_threads > 1:
            numpy_blas.set_threads(blas_threads)


def _work():
    while True:
        future, job = _jobs.get()
        running = future.set_running_or_notify_cancel()
        result = error = None
        if running:
            try:
                with _while_compiling():
                    result = job()  # the job installs its program: the function is compiled from here
            except BaseException as exc:  # handed to whoever waits for it, or calls next
                error = exc
        # Out of the pending set before the future resolves: whoever a wait releases finds
        # pending_count() without it.
        with _lock:
            _pending.discard(future)
        if running:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
        del future, job, result, error  # a finished job's program is kept by its entry, not by this frame


def _at_exit():
    """A program ending while a compile runs does not wait for it: the compile is handed to a
    helper process that finishes it into the disk cache, so the next run finds it there."""
    if pending_count():
        compiler = sys.modules.get("tracejit.backend.compiler")
        if compiler is not None:
            compiler.hand_off_unfinished()


def submit(job) -> Future:
    """Run ``job()`` on the compile thread, after the jobs submitted before it."""
    global _worker
    future = Future()
    with _lock:
        _pending.add(future)
        if _worker is None:
            _worker = threading.Thread(target=_work, name="tracejit-compile", daemon=True)
            _worker.start()
            atexit.register(_at_exit)
    _jobs.put((future, job))
    return future


def pending_count() -> int:
    """How many submitted compiles have not finished."""
    with _lock:
        return len(_pending)


def block_until_compiled(timeout: float | None = None) -> None:
    """Wait until every compile submitted so far has finished (``tj.block_until_compiled``).

    A compile that failed does not raise here; its function raises the error on its next call
    (or in its ``wait()``). ``timeout`` (seconds): raise ``TimeoutError`` if they take longer."""
    with _lock:
        futures = list(_pending)
    from concurrent.futures import wait
    done, not_done = wait(futures, timeout=timeout)
    if not_done:
        raise TimeoutError(f"tj.block_until_compiled: {len(not_done)} compile(s) still running after {timeout} s")
