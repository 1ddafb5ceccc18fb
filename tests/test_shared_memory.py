"""The native sums through shared memory (``tracejit.shared_memory``), in one process.

The other processes are stand-ins: their segments are arrays of this process and their control
blocks say that they have arrived and what they want, so the protocol runs here alone. The
sums of several real processes are tested under ``mpiexec`` in test_distributed.py.
"""
import threading
import time

import numpy as np
import pytest

from tracejit import shared_memory as sm

COUNT = 270_000   # elements of every sum here: at least MIN_BYTES (256 KiB) for every dtype below


@pytest.fixture
def world():
    """A stand-in machine of ``size`` processes seen by process ``rank``; TABLE is put back after."""
    saved = sm.TABLE.copy()
    keep = []

    def make(rank, size, dtype, values, peer_flags=2, peer_nbytes=None, arrived=1 << 40):
        dtype = np.dtype(dtype)
        nbytes = COUNT * dtype.itemsize
        k = sm.size_class(nbytes)
        segments = [np.zeros((1 << k) // dtype.itemsize, dtype) for _ in range(size)]
        controls = [np.zeros(8, np.int64) for _ in range(size)]
        for q in range(size):
            segments[q][:COUNT] = values[q]
            sm.TABLE[sm.segment_slot(k, q)] = segments[q].ctypes.data
            sm.TABLE[sm.control_slot(q)] = controls[q].ctypes.data
            if q != rank:  # arrived, with its flag, size and kind
                controls[q][:4] = arrived, peer_flags, peer_nbytes or nbytes, sm.element_kind(dtype)
        sm.TABLE[[sm.RANK, sm.SIZE, sm.MIN_BYTES, sm.READY]] = rank, size, 1 << 18, 1
        keep.append((segments, controls))
        return segments, controls, nbytes

    yield make
    sm.TABLE[:] = saved


def values(size, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(COUNT).astype(dtype) for _ in range(size)]


def native_sum(segment, nbytes):
    return sm.sum_in_place(segment.ctypes.data, nbytes, sm.element_kind(segment.dtype))


def as_process(rank, controls, nbytes, dtype):
    """Make ``rank`` this process; the others have arrived at its next two phases, wanting a sum."""
    sm.TABLE[sm.RANK] = rank
    for q, control in enumerate(controls):
        if q != rank:
            control[:4] = controls[rank][0] + 2, 2, nbytes, sm.element_kind(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("size", [2, 3])
def test_every_process_sums_its_slice_into_every_segment(world, dtype, size):
    operands = values(size, np.float64)
    if np.dtype(dtype).kind == "c":
        operands = [x + 1j * x[::-1] for x in operands]
    operands = [x.astype(dtype) for x in operands]
    segments, controls, nbytes = world(0, size, dtype, operands)
    total = operands[0] + operands[1]   # rank order, as NumPy adds
    for x in operands[2:]:
        total = total + x
    before = sm.TABLE[sm.CALLS]
    for rank in range(size):   # each process adds its slice and writes it into every segment
        as_process(rank, controls, nbytes, dtype)
        assert native_sum(segments[rank], nbytes) == 2
        assert controls[rank][0] % 2 == 0   # arrived at both phases
        if rank == 0:   # only its slice has changed so far
            lo, hi = 0, COUNT // size
            np.testing.assert_array_equal(segments[1][lo:hi], total[lo:hi])
            np.testing.assert_array_equal(segments[1][hi:COUNT], operands[1][hi:])
    for segment in segments:
        np.testing.assert_array_equal(segment[:COUNT], total)
    assert sm.TABLE[sm.CALLS] == before + size


def test_three_processes_add_in_rank_order(world):
    # (1e8 - 1e8) + 1 is 1 in float32; 1e8 + (-1e8 + 1) is 0: the order shows
    operands = [np.full(COUNT, v, np.float32) for v in (1e8, -1e8, 1.0)]
    segments, _, nbytes = world(0, 3, np.float32, operands)
    assert native_sum(segments[0], nbytes) == 2
    assert (segments[0][:COUNT // 3] == 1.0).all()


def test_the_processes_agree_on_the_least_they_can_do(world):
    operands = values(2, np.float32)
    # a buffer that is not the segment: the processes go to MPI, nothing is summed
    segments, controls, nbytes = world(0, 2, np.float32, operands)
    elsewhere = operands[0].copy()
    assert native_sum(elsewhere, nbytes) == 0
    np.testing.assert_array_equal(elsewhere, operands[0])
    np.testing.assert_array_equal(segments[1][:COUNT], operands[1])
    assert controls[0][1] == 0   # its flag said so
    # another process has not mapped the segments yet: map them, then sum again
    segments, _, nbytes = world(0, 2, np.float32, operands, peer_flags=1)
    assert native_sum(segments[0], nbytes) == 1
    np.testing.assert_array_equal(segments[0][:COUNT], operands[0])
    # this process has not mapped the other's segment yet
    segments, controls, nbytes = world(0, 2, np.float32, operands)
    sm.TABLE[sm.segment_slot(sm.size_class(nbytes), 1)] = 0
    assert native_sum(segments[0], nbytes) == 1 and controls[0][1] == 1
    # another process sums another size: MPI, whose allreduce reports the mismatch
    segments, _, nbytes = world(0, 2, np.float32, operands, peer_nbytes=4 * (COUNT - 1))
    assert native_sum(segments[0], nbytes) == 0
    np.testing.assert_array_equal(segments[0][:COUNT], operands[0])


def test_nothing_happens_before_the_processes_agreed_to_share_or_below_the_size(world):
    segments, controls, nbytes = world(0, 2, np.float32, values(2, np.float32))
    assert native_sum(segments[0], 1 << 17) == -1   # below MIN_BYTES
    sm.TABLE[sm.READY] = 0
    assert native_sum(segments[0], nbytes) == -1
    assert controls[0][0] == 0   # never arrived anywhere
    np.testing.assert_array_equal(segments[0][:COUNT], values(2, np.float32)[0])


def test_a_process_waits_for_the_others_at_each_phase(world):
    operands = values(2, np.float64)
    segments, controls, nbytes = world(1, 2, np.float64, operands, arrived=0)
    result = []
    summing = threading.Thread(target=lambda: result.append(native_sum(segments[1], nbytes)))
    summing.start()   # ctypes lets the GIL go while the native sum waits
    time.sleep(0.2)
    assert summing.is_alive() and controls[1][0] == 1   # arrived at phase 1, waiting for process 0
    np.testing.assert_array_equal(segments[0][:COUNT], operands[0])
    controls[0][0] = 1   # process 0 arrives: process 1 sums, then waits at phase 2
    time.sleep(0.2)
    assert summing.is_alive() and controls[1][0] == 2
    half = COUNT // 2
    np.testing.assert_array_equal(segments[0][half:COUNT], operands[0][half:] + operands[1][half:])
    controls[0][0] = 2
    summing.join(10)
    assert result == [2]


def test_integers_and_unknown_kinds_go_through_mpi(world):
    operands = [np.arange(COUNT, dtype=np.int32) * (q + 1) for q in range(2)]
    segments, controls, nbytes = world(0, 2, np.int32, operands)
    assert native_sum(segments[0], nbytes) == 0
    np.testing.assert_array_equal(segments[1][:COUNT], operands[1])
    # a kind this module does not know (a program compiled against other kinds): never summed here
    controls[1][:4] = controls[0][0] + 2, 2, nbytes, 7
    assert sm.sum_in_place(segments[0].ctypes.data, nbytes, 7) == 0
    np.testing.assert_array_equal(segments[0][:COUNT], operands[0])


def test_element_kinds_and_size_classes():
    assert sm.element_kind(np.float32) == sm.element_kind(np.complex64) != sm.element_kind(np.float64)
    assert sm.element_kind(np.float64) == sm.element_kind(np.complex128)
    assert sm.element_kind(np.float16) == sm.element_kind(np.int32) == sm.element_kind(np.bool_) == -1
    assert [sm.size_class(n) for n in (1, 1 << 16, (1 << 16) + 1, 3 << 20)] == [16, 16, 17, 22]
