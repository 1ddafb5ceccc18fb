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

Processes of one machine sum large buffers through shared memory instead of MPI's allreduce
(``SharedSums``): each process keeps its buffer in a segment of ``/dev/shm`` that the others
map, and each adds up one slice of all the buffers and writes it into every one of them, between
two barriers. This reads each element once and writes it n times, with no copy in or out when
the buffer already lives in the segment (a compiled program puts its packed gradients there,
``shared_segment``); MPICH's allreduce copies the buffer through its own shared cells instead.
Every process gets the same bits, added in rank order. The MNIST MLP's gradient (2.14 MB, two
processes) is summed in ~0.10 ms instead of ~0.35 ms this way (README, "Data parallelism").

Under MPI, an uncaught exception in any process prints its traceback (prefixed by the rank)
and aborts the whole job with ``MPI_Abort``, so ``mpiexec`` exits non-zero with that error
instead of leaving the other processes waiting in a collective for ever.
"""
from __future__ import annotations

import atexit
import mmap
import os
import secrets
import socket
import sys
import time

import numpy as np

__all__ = ["world", "rank", "size", "launched_by_mpi", "all_sum_in_place", "broadcast_in_place",
           "CollectiveStats", "stats", "SharedSums", "shared_sums_possible", "shared_buffer", "shared_segment",
           "SHARED_SUM_MIN_BYTES"]

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
    """Replace ``buffer`` (a C-contiguous array) by its sum over all processes: through shared
    memory when every process runs on this machine and has its buffer in its shared segment
    (``shared_segment``; at least ``SHARED_SUM_MIN_BYTES``), else one MPI allreduce. A process on
    its own leaves it as it is."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return buffer
    _checked_buffer(buffer, "all_sum_in_place")
    start = time.perf_counter()
    if not (buffer.nbytes >= SHARED_SUM_MIN_BYTES and _shared_sums().usable() and _shared.sum_in_place(buffer)):
        from mpi4py import MPI
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


# ----------------------------------------------------------------------------- shared memory

#: Buffers at least this large are summed through shared memory between processes of one
#: machine. Below it, MPI's allreduce (a few microseconds) costs less than two barriers and
#: NumPy's per-call overhead.
SHARED_SUM_MIN_BYTES = 1 << 18

_SHM_DIRECTORY = "/dev/shm"
_SEGMENT_MIN_BYTES = 1 << 16


def _local_size() -> int | None:
    """The number of processes on this machine, as the launcher states it (MPICH, Open MPI)."""
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def shared_sums_possible() -> bool:
    """Whether large sums will likely go through shared memory: several processes, all on this
    machine by the launcher's account, a writeable ``/dev/shm``, and ``TRACEJIT_SHARED_SUMS``
    not 0 (which sends every sum through MPI's allreduce). Decides where compiled
    programs put the buffer they sum; the sums themselves decide with every process together,
    at the first one (``SharedSums.usable``)."""
    return size() > 1 and _shared_sums_wanted() and _local_size() == size() and os.access(_SHM_DIRECTORY, os.W_OK)


def _shared_sums_wanted() -> bool:
    value = os.environ.get("TRACEJIT_SHARED_SUMS", "1")
    if value not in ("0", "1"):
        raise ValueError(f"TRACEJIT_SHARED_SUMS must be 0 or 1; got {value!r}")
    return value == "1"


class SharedSums:
    """In-place sums over the processes of one machine through segments of ``/dev/shm``.

    Each process owns one segment per size class (a power of two of bytes), a file it creates,
    maps, and removes once every other process has mapped it (after the first sum in that
    class), so that nothing is left behind by a job that ends. A sum of ``count`` elements uses
    the first ``count`` of the class's segments; process ``r`` adds slice ``r`` of every
    process's segment, in rank order, and writes the result into all of them:

        barrier; seg[q][slice r] = seg[0][slice r] + ... + seg[n-1][slice r] for every q; barrier

    No process reads or writes another's segment outside those two barriers, so a process may
    fill its own segment for the next sum as soon as it has left the second one."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.prefix = f"tracejit-{os.getpid()}-{secrets.token_hex(4)}"
        self.own = {}          # size class -> (path, mmap)
        self.shared = set()    # size classes every process has mapped (their files are removed)
        self.peers = {}        # (rank, size class) -> mmap of another process's segment
        self.prefixes = None   # every process's prefix, once the processes agreed to share
        self.decided = False
        self.sums = 0          # sums done through shared memory
        atexit.register(self.close)

    @staticmethod
    def size_class(nbytes: int) -> int:
        return max(int(nbytes - 1).bit_length(), _SEGMENT_MIN_BYTES.bit_length() - 1)

    def _path(self, prefix, k):
        return os.path.join(_SHM_DIRECTORY, f"{prefix}-{k}")

    def segment(self, nbytes: int) -> mmap.mmap:
        """This process's segment for sums of ``nbytes``, created the first time."""
        k = self.size_class(nbytes)
        if k not in self.own:
            path = self._path(self.prefix, k)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            try:
                os.ftruncate(fd, 1 << k)
                self.own[k] = (path, mmap.mmap(fd, 1 << k))
            finally:
                os.close(fd)
        return self.own[k][1]

    def _peer(self, q, k) -> mmap.mmap:
        if (q, k) not in self.peers:
            fd = os.open(self._path(self.prefixes[q], k), os.O_RDWR)
            try:
                self.peers[q, k] = mmap.mmap(fd, 1 << k)
            finally:
                os.close(fd)
        return self.peers[q, k]

    def usable(self) -> bool:
        """Whether sums go through shared memory: decided once, by every process together (the
        first large sum is a collective call on all of them): all on one host, all able to."""
        if not self.decided:
            able = _shared_sums_wanted() and os.access(_SHM_DIRECTORY, os.W_OK)
            everyone = self.comm.allgather((socket.gethostname(), able, self.prefix))
            if len({host for host, _, _ in everyone}) == 1 and all(ok for _, ok, _ in everyone):
                self.prefixes = [prefix for _, _, prefix in everyone]
            self.decided = True
        return self.prefixes is not None

    def sum_in_place(self, buffer: np.ndarray) -> bool:
        """Sum the C-contiguous ``buffer`` over the processes (see the class docstring) when it
        is every process's shared segment; returns whether it was. The processes find out
        together (a one-integer allreduce, which is also the first barrier): a process whose
        buffer is elsewhere (an eager sum, a program that returns its sums, or a process whose
        launcher did not say that it shares the machine) makes all of them use MPI's allreduce,
        which costs less than copying the buffer in and out."""
        from mpi4py import MPI
        k = self.size_class(buffer.nbytes)
        flat = buffer.reshape(-1)
        own = np.frombuffer(self.own[k][1], dtype=buffer.dtype, count=flat.size) if k in self.own else None
        everywhere = np.array([own is not None and own.ctypes.data == flat.ctypes.data], dtype=np.int32)
        self.comm.Allreduce(MPI.IN_PLACE, everywhere, op=MPI.MIN)
        if not everywhere[0]:
            return False
        segments = [own if q == self.rank else
                    np.frombuffer(self._peer(q, k), dtype=buffer.dtype, count=flat.size)
                    for q in range(self.size)]
        lo, hi = (flat.size * self.rank) // self.size, (flat.size * (self.rank + 1)) // self.size
        total = own[lo:hi]
        np.add(segments[0][lo:hi], segments[1][lo:hi], out=total)
        for segment in segments[2:]:
            np.add(total, segment[lo:hi], out=total)
        for q, segment in enumerate(segments):
            if q != self.rank:
                segment[lo:hi] = total
        self.comm.Barrier()
        self.sums += 1
        if k not in self.shared:  # every process has mapped it now
            self.shared.add(k)
            os.unlink(self.own[k][0])
        return True

    def close(self):
        """Remove this process's segment files that are still there (at exit)."""
        for k, (path, _) in self.own.items():
            if k not in self.shared:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self.shared.add(k)


_shared = None


def _shared_sums() -> SharedSums:
    global _shared
    if _shared is None:
        _shared = SharedSums(world())
    return _shared


def shared_buffer(count: int, dtype) -> np.ndarray:
    """This process's shared segment for sums of ``count`` elements of ``dtype``, as a 1-d
    array (created the first time). ``all_sum_in_place`` of it copies nothing in or out when
    every process passes its own; the next sum of the same size overwrites it."""
    dtype = np.dtype(dtype)
    return np.frombuffer(_shared_sums().segment(count * dtype.itemsize), dtype=dtype, count=count)


def shared_segment(nbytes: int) -> int:
    """The address of this process's shared segment for sums of ``nbytes`` (created the first
    time): a compiled program packs the operands of such a sum there (``shared_buffer``)."""
    return shared_buffer(nbytes, np.uint8).ctypes.data
