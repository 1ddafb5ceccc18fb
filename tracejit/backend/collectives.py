"""Collectives in compiled programs: the program calls back into the process's communicator.

Layer: backend, called by the code ``emitters.emit_all_sum`` generates. In: a C-contiguous
array of the program (its own copy of the operand). Out: the same array, summed over the
processes in place by ``communicator.all_sum_in_place`` (through shared memory between the
processes of one machine, else one MPI allreduce through mpi4py).

The compiled program is split at the collective: generated code calls ``all_sum_in_place``,
which calls a C function pointer registered with LLVM as ``tracejit_all_sum`` (so that code
loaded from Numba's disk cache in a later process links to this process's pointer by name).
Behind the pointer is a ctypes callback that takes the GIL, wraps the buffer as a NumPy
array without copying and hands it to mpi4py. The detour costs a few microseconds per call
against the hundreds an allreduce of a training step's gradients takes (measured in README's
"Data parallelism" section), and works the same with every MPI that mpi4py supports.

Where large sums go through shared memory, a program that sums one buffer (not returned) makes
it in its process's shared segment, whose address a second callback,
``tracejit_shared_segment``, gives (``shared_segment_address``; ``codegen`` decides), so that
the gradients are written where the other processes read them.

A failure inside the callback (an MPI error) cannot unwind through compiled code: the callback
prints the exception's traceback to stderr and returns non-zero, and the program raises a
RuntimeError that points to it.
"""
from __future__ import annotations

import ctypes
import traceback

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import communicator

__all__ = ["all_sum_in_place", "shared_segment_address", "DTYPES"]

_SYMBOL = "tracejit_all_sum"
_SEGMENT_SYMBOL = "tracejit_shared_segment"

#: The dtypes a compiled all_sum handles; the callback receives the index of one.
DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64,
                                      np.int8, np.int16, np.uint8, np.uint16, np.complex64, np.complex128))
_NUMBA_DTYPES = {types.float32: 0, types.float64: 1, types.int32: 2, types.int64: 3, types.uint32: 4,
                 types.uint64: 5, types.int8: 6, types.int16: 7, types.uint8: 8, types.uint16: 9,
                 types.complex64: 10, types.complex128: 11}

_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)


def _all_sum_callback(address, count, dtype_index):
    try:
        dtype = DTYPES[dtype_index]
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
        communicator.all_sum_in_place(np.frombuffer(raw, dtype=dtype))
        return 0
    except BaseException:  # noqa: BLE001 - cannot cross compiled code; the program raises instead
        traceback.print_exc()
        return 1


_callback = _CALLBACK_TYPE(_all_sum_callback)  # kept alive for the whole process
llvm.add_symbol(_SYMBOL, ctypes.cast(_callback, ctypes.c_void_p).value)


def _shared_segment_callback(nbytes):
    try:
        return communicator.shared_segment(nbytes)
    except BaseException:  # noqa: BLE001 - cannot cross compiled code; the program raises instead
        traceback.print_exc()
        return 0


_segment_callback = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(_shared_segment_callback)
llvm.add_symbol(_SEGMENT_SYMBOL, ctypes.cast(_segment_callback, ctypes.c_void_p).value)


_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VOID_P = ir.IntType(8).as_pointer()


@intrinsic
def all_sum_in_place(typingctx, buffer):
    """Sum the C-contiguous 1-or-more-dimensional array ``buffer`` over all processes, in place.
    Returns the callback's status: 0 when done, 1 when it failed (its traceback is on stderr)."""
    if not (isinstance(buffer, types.Array) and buffer.layout == "C" and buffer.dtype in _NUMBA_DTYPES):
        return None
    dtype_index = _NUMBA_DTYPES[buffer.dtype]

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(_I32, [_VOID_P, _I64, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOL)
        array = context.make_array(buffer)(context, builder, args[0])
        return builder.call(fn, [builder.bitcast(array.data, _VOID_P), array.nitems,
                                 ir.Constant(_I32, dtype_index)])
    return types.int32(buffer), codegen


@intrinsic
def shared_segment_address(typingctx, nbytes):
    """The address of this process's shared segment for sums of ``nbytes`` bytes
    (``communicator.shared_segment``), where a program packs the operands of such a sum; 0 when
    it could not be made (the error is printed to stderr)."""
    if not isinstance(nbytes, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I64, [_I64]), _SEGMENT_SYMBOL)
        return builder.call(fn, [context.cast(builder, args[0], nbytes, types.int64)])
    return types.int64(nbytes), codegen
