"""Tiered execution: compiling in the background while the NumPy interpreter answers.

Layer: runtime, beside ``jit.py``, which is its only user. On a cache miss in compiled mode
``jit.Traced`` traces and optimises the function, hands the compile to ``submit`` and runs
the optimised graph with the interpreter until the compiled program is ready. ``submit``
queues a job for one worker thread and returns a ``concurrent.futures.Future``;
``block_until_compiled`` waits for every job submitted so far.

The job runs on that thread. It compiles there, in this process, or has a helper process
compile the program into the disk cache, waiting for it without holding the GIL, and loads the
machine code (``helper_wanted`` chooses when the compile starts, unless
``TRACEJIT_COMPILE_HELPER`` is 1 or 0). A compile on the thread shares the GIL with the
training loop, which slows both; the helper leaves them apart but pays Python's and Numba's
start-up first (once: it stays for the next compiles), and needs a core of its own. So the
helper compiles while the caller keeps calling on a machine with a core to spare, and the
thread when someone waits for the compile (``Traced.wait``, ``block_until_compiled``), the
cores are busy, or this process has compiled before without a helper (the backend decides
that part; ARCHITECTURE.md, ``benchmarks/background_compile.py``). One worker, because Numba
compiles one function at a time in a process anyway (its compiler lock). The thread is a
daemon: a program that ends while a compile is still running does not wait for it; a compile
already in Numba's hands is then handed to a helper process that finishes it into the disk
cache (the next run loads it), as does a helper already compiling it, while one not started
yet is dropped (``Traced.wait()`` before the end keeps it).

``TRACEJIT_TIERED`` (``1`` by default, ``0`` to compile before the first call returns, as
``tj.trace(tiered=False)`` does for one function) and ``TRACEJIT_COMPILE_HELPER`` are read in
``settings``.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import queue
import sys
import threading
from concurrent.futures import Future

from . import numpy_blas
from .settings import tiered_by_default, use_helper_process

__all__ = ["tiered_by_default", "use_helper_process", "helper_wanted", "waiting", "submit", "block_until_compiled",
           "pending_count"]

#: Python's GIL switch interval (seconds) while a compile runs. The compile is Python code that
#: holds the GIL whenever it can; each time the training loop lets the GIL go (NumPy does around
#: most operations) it waits up to one interval to get it back. At Python's default of 5 ms the
#: interpreted MNIST softmax-regression epoch took 2.0-2.3 s while its step compiled, against
#: 0.66 s at 0.1 ms, and the compile took as long (2.2-2.5 s), measured from an empty cache on
#: two cores (`python benchmarks/background_compile.py`; ARCHITECTURE.md).
SWITCH_INTERVAL_WHILE_COMPILING = 1e-4

_jobs: "queue.Queue[tuple[Future, object]]" = queue.Queue()
_waiters = 0  # threads blocked until compiles finish (``waiting``)
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


@contextlib.contextmanager
def waiting():
    """Marks a thread blocked until compiles finish: compiles that start meanwhile run on the
    compile thread, which is then the faster way (the helper would first start Python)."""
    global _waiters
    with _lock:
        _waiters += 1
    try:
        yield
    finally:
        with _lock:
            _waiters -= 1


def helper_wanted() -> bool:
    """Whether the compile that is about to start should run in a helper process: as
    ``TRACEJIT_COMPILE_HELPER`` says when it is 1 or 0; by default (``auto``) when nobody waits
    for it and the machine has a core to spare (one-minute load average below the CPU count
    less a half, the training loop included, where the system reports it). Measured from an
    empty cache on this project's two cores, the softmax-regression step's compile while the
    training loop kept calling: on the thread the compiled program came 1.89 s after the first
    call and the interpreted calls took 0.79 ms meanwhile, in a helper 1.68 s and 0.34 ms; with
    the caller waiting, 1.08 s on the thread and 1.42 s in a helper
    (``python benchmarks/background_compile.py``). The backend also compiles on the thread when
    this process has compiled before and has no helper running (``compiler._compile``)."""
    setting = use_helper_process()
    if setting is not None:
        return setting
    with _lock:
        if _waiters:
            return False
    cores = os.cpu_count() or 1
    if cores < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): the CPU count alone
        return True
    return load < cores - 0.5


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
    with waiting():
        done, not_done = wait(futures, timeout=timeout)
    if not_done:
        raise TimeoutError(f"tj.block_until_compiled: {len(not_done)} compile(s) still running after {timeout} s")
