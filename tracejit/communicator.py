"""The process group: which process this is, how many there are, and the MPI calls on buffers.

Layer: below everything else (it imports only ``shared_memory``, its native half, beside it), so
that the primitive set (``ops``), the backend (``backend/collectives.py``) and the public
``tracejit.distributed`` can all reach the same communicator. In: contiguous NumPy buffers.
Out: the same buffers, summed or broadcast over the processes, in place.

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
Every process gets the same bits, added in rank order. The sums and their barriers run in
native code (``shared_memory``), which compiled programs call without Python; this module
makes the segments, decides with the other processes whether to share, and fills in the
native code's table. The MNIST MLP's gradient (2.14 MB, two processes) is summed in about
0.09 ms instead of 0.35-0.42 ms through MPI (README, "Data parallelism").

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
    buffer sizes), counted in Python and by the native sums through shared memory together. The
    benchmark reads it to report the fraction of a step spent communicating."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Set every count back to zero."""
        self._calls, self._seconds, self._bytes = 0, 0.0, 0
        self._native_start = _native_counts()

    def _native(self, i):
        return _native_counts()[i] - self._native_start[i]

    @property
    def calls(self) -> int:
        return self._calls + self._native(0)

    @property
    def seconds(self) -> float:
        return self._seconds + self._native(1)

    @property
    def bytes(self) -> int:
        return self._bytes + self._native(2)


def _native_counts():
    """(calls, seconds, bytes) of the native sums so far (``shared_memory``), zeros before they ran."""
    if _native is None:
        return 0, 0.0, 0
    table = _native.TABLE
    return int(table[_native.CALLS]), table[_native.NANOSECONDS] * 1e-9, int(table[_native.BYTES])


_native = None         # the module ``shared_memory``, once sums go through shared memory


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


def all_sum_in_place(buffer: np.ndarray, agreed: int = -1) -> np.ndarray:
    """Replace ``buffer`` (a C-contiguous array) by its sum over all processes: through shared
    memory when every process runs on this machine and has its buffer in its shared segment
    (``shared_segment``; at least ``SHARED_SUM_MIN_BYTES``), else one MPI allreduce. A process on
    its own leaves it as it is. ``agreed`` is for compiled programs whose native sum
    (``shared_memory.sum_in_place``) returned without summing: what the processes agreed there."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return buffer
    _checked_buffer(buffer, "all_sum_in_place")
    start, native_start = time.perf_counter(), _native_counts()
    if not (buffer.nbytes >= SHARED_SUM_MIN_BYTES and _shared_sums().usable()
            and _shared.sum_in_place(buffer, agreed)):
        from mpi4py import MPI
        comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        stats._calls += 1
        stats._bytes += buffer.nbytes
    # the native sum counts its own calls and time
    stats._seconds += time.perf_counter() - start - (_native_counts()[1] - native_start[1])
    return buffer


def broadcast_in_place(buffer: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``buffer`` on every process with its contents on process ``root``."""
    comm = world()
    if comm is None or comm.Get_size() == 1:
        return buffer
    _checked_buffer(buffer, "broadcast_in_place")
    start = time.perf_counter()
    comm.Bcast(buffer, root=root)
    stats._seconds += time.perf_counter() - start
    stats._calls += 1
    stats._bytes += buffer.nbytes
    return buffer


# ----------------------------------------------------------------------------- shared memory

#: Buffers at least this large are summed through shared memory between processes of one
#: machine. Below it, MPI's allreduce (a few microseconds) costs less than two barriers and
#: NumPy's per-call overhead.
SHARED_SUM_MIN_BYTES = 1 << 18

_SHM_DIRECTORY = "/dev/shm"


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
    fill its own segment for the next sum as soon as it has left the second one. The barriers
    spin on a control block per process (a small segment every process maps), and the sums run
    in native code that compiled programs call without going through Python
    (``shared_memory``); this class makes the segments and fills in the native code's table."""

    def __init__(self, comm):
        global _native
        from . import shared_memory
        _native = self.native = shared_memory
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.prefix = f"tracejit-{os.getpid()}-{secrets.token_hex(4)}"
        self.own = {}          # size class -> (path, mmap)
        self.shared = set()    # size classes every process has mapped (their files are removed)
        self.peers = {}        # (rank, size class) -> mmap of another process's segment
        self.prefixes = None   # every process's prefix, once the processes agreed to share
        self.controls = None   # every process's control block (mmaps), once they agreed
        self.decided = False
        atexit.register(self.close)

    @property
    def sums(self) -> int:
        """The sums done through shared memory so far."""
        return int(self.native.TABLE[self.native.CALLS])

    def _path(self, prefix, k):
        return os.path.join(_SHM_DIRECTORY, f"{prefix}-{k}")

    def _create(self, name, nbytes) -> tuple:
        path = self._path(self.prefix, name)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, nbytes)
            return path, mmap.mmap(fd, nbytes)
        finally:
            os.close(fd)

    def _map(self, q, name, nbytes) -> mmap.mmap:
        fd = os.open(self._path(self.prefixes[q], name), os.O_RDWR)
        try:
            return mmap.mmap(fd, nbytes)
        finally:
            os.close(fd)

    def segment(self, nbytes: int) -> mmap.mmap:
        """This process's segment for sums of ``nbytes``, created the first time."""
        k = self.native.size_class(nbytes)
        if k not in self.own:
            self.own[k] = self._create(k, 1 << k)
            if k < self.native.SIZE_CLASSES:
                self.native.TABLE[self.native.segment_slot(k, self.rank)] = _address(self.own[k][1])
        return self.own[k][1]

    def usable(self) -> bool:
        """Whether sums go through shared memory: decided once, by every process together (the
        first large sum is a collective call on all of them): all on one host, all able to. Then
        every process maps every other's control block and the native sums take over."""
        if not self.decided:
            native = self.native
            able = _shared_sums_wanted() and os.access(_SHM_DIRECTORY, os.W_OK) and self.size <= native.MAX_PROCESSES
            path, control = self._create("control", mmap.PAGESIZE) if able else (None, None)
            try:
                everyone = self.comm.allgather((socket.gethostname(), able, self.prefix))
                if len({host for host, _, _ in everyone}) == 1 and all(ok for _, ok, _ in everyone):
                    self.prefixes = [prefix for _, _, prefix in everyone]
                    self.controls = [control if q == self.rank else self._map(q, "control", mmap.PAGESIZE)
                                     for q in range(self.size)]
                    self.comm.Barrier()  # every process has mapped every control block
            finally:
                if path:
                    os.unlink(path)
            if self.prefixes is not None:
                table = native.TABLE
                table[native.RANK], table[native.SIZE] = self.rank, self.size
                table[native.MIN_BYTES] = SHARED_SUM_MIN_BYTES
                for q, block in enumerate(self.controls):
                    table[native.control_slot(q)] = _address(block)
                table[native.READY] = 1
            self.decided = True
        return self.prefixes is not None

    def sum_in_place(self, buffer: np.ndarray, agreed: int = -1) -> bool:
        """Sum the C-contiguous ``buffer`` over the processes (see the class docstring) when it
        is every process's shared segment; returns whether it was. The processes find out
        together, at the first barrier (``shared_memory.sum_in_place``): a process whose
        buffer is elsewhere (an eager sum, a program that returns its sums, or a process whose
        launcher did not say that it shares the machine) makes all of them use MPI's allreduce,
        which costs less than copying the buffer in and out. ``agreed``: what the processes
        agreed in a native sum that a compiled program already called, -1 for none."""
        native = self.native
        address, kind = _address(buffer), native.element_kind(buffer.dtype)
        if agreed < 0:
            agreed = native.sum_in_place(address, buffer.nbytes, kind)
        if agreed == 1:  # every buffer is its process's segment, not yet mapped everywhere
            k = native.size_class(buffer.nbytes)
            for q in range(self.size):
                if q != self.rank and (q, k) not in self.peers:
                    self.peers[q, k] = self._map(q, k, 1 << k)
                    native.TABLE[native.segment_slot(k, q)] = _address(self.peers[q, k])
            agreed = native.sum_in_place(address, buffer.nbytes, kind)
            if agreed == 2 and k not in self.shared:  # every process has mapped its segments now
                self.shared.add(k)
                os.unlink(self.own[k][0])
        return agreed == 2

    def close(self):
        """Remove this process's segment files that are still there (at exit)."""
        for k, (path, _) in self.own.items():
            if k not in self.shared:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self.shared.add(k)


def _address(memory) -> int:
    """The address of a mapping or an array's first element."""
    if isinstance(memory, mmap.mmap):
        memory = np.frombuffer(memory, np.uint8)
    return memory.__array_interface__["data"][0]


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
    return _address(shared_buffer(nbytes, np.uint8))
