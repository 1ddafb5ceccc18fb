"""The process group: which process this is, how many there are, and the MPI calls on buffers.

Layer: below everything else (imports nothing from tracejit), so that the primitive set
(``ops``), the backend (``backend/collectives.py``) and the public ``tracejit.distributed``
can all reach the same communicator. In: contiguous NumPy buffers. Out: the same buffers,
summed or broadcast over the processes, in place.

MPI is used only when the process was started by an MPI launcher (``mpiexec``/``mpirun``,
which set ``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE`` or ``PMIX_RANK``), or when
``TRACEJIT_MPI=1`` asks for it. Otherwise this is one process on its own: rank 0 of 1, and
nothing imports ``mpi4py``, so the core never needs it. A process started by a launcher when
``mpi4py`` is not installed raises an ImportError on first use rather than training alone:
n processes that each believe they are the only one would silently compute n different models.

Under MPI, an uncaught exception in any process prints its traceback (prefixed by the rank)
and aborts the whole job with ``MPI_Abort``, so ``mpiexec`` exits non-zero with that error
instead of leaving the other processes waiting in a collective for ever.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

__all__ = ["world", "rank", "size", "launched_by_mpi", "all_sum_in_place", "broadcast_in_place",
           "CollectiveStats", "stats"]

_ABORT_GRACE_SECONDS = 0.5
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")

_world = None          # the mpi4py communicator, once initialised
_initialised = False   # whether the decision (MPI or a lone process) has been taken


class CollectiveStats:
    """Time spent in collectives by this process: ``calls``, ``seconds`` and ``bytes`` (summed
    buffer sizes). The benchmark reads it to report the fraction of a step spent communicating."""

    __slots__ = ("calls", "seconds", "bytes")

    def __init__(self):
        self.reset()

    def reset(self):
        """Set every count back to zero."""
        self.calls, self.seconds, self.bytes = 0, 0.0, 0


#: This process's counts of collective calls (see ``CollectiveStats``).
stats = CollectiveStats()


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher, or ``TRACEJIT_MPI=1`` asks for MPI."""
    forced = os.environ.get("TRACEJIT_MPI", "")
    if forced not in ("", "0", "1"):
        raise ValueError(f"TRACEJIT_MPI must be 0 or 1; got {forced!r}")
    if forced:
        return forced == "1"
    return any(os.environ.get(name) for name in _LAUNCHER_VARIABLES)


def world():
    """The ``mpi4py`` communicator of all processes, or None for a process on its own."""
    global _world, _initialised
    if _initialised:
        return _world
    if launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError as e:
            launcher = next((f"{n}={os.environ[n]}" for n in _LAUNCHER_VARIABLES if os.environ.get(n)),
                            "TRACEJIT_MPI=1")
            raise ImportError(
                f"this process was started for MPI ({launcher}) but mpi4py cannot be imported ({e}); "
                "install it with `pip install 'tracejit[distributed]'`, or run without mpiexec") from e
        _world = MPI.COMM_WORLD
        if _world.Get_size() > 1:
            _abort_on_uncaught_exceptions(_world)
    _initialised = True
    return _world


def rank() -> int:
    """This process's index among the processes, 0 for a process on its own."""
    comm = world()
    return 0 if comm is None else comm.Get_rank()


def size() -> int:
    """The number of processes (1 for a process on its own)."""
    comm = world()
    return 1 if comm is None else comm.Get_size()


def _abort_on_uncaught_exceptions(comm):
    import traceback

    def hook(kind, value, tb):
        report = (f"tracejit.distributed: rank {comm.Get_rank()} of {comm.Get_size()} failed; "
                  "aborting every rank\n" + "".join(traceback.format_exception(kind, value, tb)))
        sys.stdout.flush()
        # One write to the descriptor, then a pause: the launcher forwards each process's
        # output on its own schedule, and MPI_Abort kills the forwarding with the processes,
        # so a traceback written in pieces just before the abort was seen cut off.
        try:
            os.write(sys.stderr.fileno(), report.encode("utf-8", "replace"))
        except (OSError, ValueError, AttributeError):
            sys.__stderr__.write(report)
            sys.__stderr__.flush()
        time.sleep(_ABORT_GRACE_SECONDS)
        comm.Abort(1)

    sys.excepthook = hook


def _checked_buffer(buffer, what):
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous or not buffer.flags.writeable:
        raise TypeError(f"{what}: buffer must be a writeable C-contiguous numpy array; got {type(buffer).__name__}"
                        + (f" with flags {buffer.flags}" if isinstance(buffer, np.ndarray) else ""))
    return buffer


def all_sum_in_place(buffer: np.ndarray) -> np.ndarray:
    """Replace ``buffer`` (a C-contiguous array) by its sum over all processes: one allreduce.
    A process on its own leaves it as it is."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return buffer
    from mpi4py import MPI
    _checked_buffer(buffer, "all_sum_in_place")
    start = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    stats.seconds += time.perf_counter() - start
    stats.calls += 1
    stats.bytes += buffer.nbytes
    return buffer


def broadcast_in_place(buffer: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``buffer`` on every process with its contents on process ``root``."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return buffer
    _checked_buffer(buffer, "broadcast_in_place")
    start = time.perf_counter()
    comm.Bcast(buffer, root=root)
    stats.seconds += time.perf_counter() - start
    stats.calls += 1
    stats.bytes += buffer.nbytes
    return buffer
