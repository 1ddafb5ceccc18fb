"""Collectives in compiled programs: native sums through shared memory, else a call back into Python.

Layer: backend, called by the code ``emitters.emit_all_sum`` generates. In: a C-contiguous
array of the program (its own copy of the operand). Out: the same array, summed over the
processes in place.

Generated code calls ``all_sum_in_place``, which first calls the native sum through shared
memory (``tracejit_shared_sum``, ``shared_memory.sum_in_place``): between processes of one
machine that agreed to share memory, a program's buffer in its shared segment is summed there
without Python. Where that sum did not happen (one process, another machine, a buffer
elsewhere, the first sum of a size), the program calls a C function pointer registered with
LLVM as ``tracejit_all_sum`` (so that code loaded from Numba's disk cache in a later process
links to this process's pointer by name), passing what the processes agreed in the native
sum. Behind the pointer is a ctypes callback that takes the GIL, wraps the buffer as a NumPy
array without copying and hands it to ``communicator.all_sum_in_place`` (the segments mapped,
or one MPI allreduce through mpi4py), so the program is split at the collective. The detour
costs a few microseconds per call, works the same with every MPI that mpi4py supports, and
is what every sum takes when the processes do not share memory.

Where large sums go through shared memory, a program that sums one buffer (not returned) makes
it in its process's shared segment (``shared_segment_address``; ``codegen`` decides), whose
address the native table gives once the segment exists, and a second callback,
``tracejit_shared_segment``, the first time, so that the gradients are written where the
other processes read them.

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

from .. import communicator, shared_memory

__all__ = ["all_sum_in_place", "shared_segment_address", "DTYPES"]

_SYMBOL = "tracejit_all_sum"
_SEGMENT_SYMBOL = "tracejit_shared_segment"
_NATIVE_SYMBOL = "tracejit_shared_sum"                       # shared_memory.sum_in_place
_NATIVE_SEGMENT_SYMBOL = "tracejit_shared_segment_native"    # shared_memory.segment_address

#: The dtypes a compiled all_sum handles; the callback receives the index of one.
DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.int32, np.int64, np.uint32, np.uint64,
                                      np.int8, np.int16, np.uint8, np.uint16, np.complex64, np.complex128))
_NUMBA_DTYPES = {types.float32: 0, types.float64: 1, types.int32: 2, types.int64: 3, types.uint32: 4,
                 types.uint64: 5, types.int8: 6, types.int16: 7, types.uint8: 8, types.uint16: 9,
                 types.complex64: 10, types.complex128: 11}

_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_int64)


def _all_sum_callback(address, count, dtype_index, agreed):
    try:
        dtype = DTYPES[dtype_index]
        raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
        communicator.all_sum_in_place(np.frombuffer(raw, dtype=dtype), agreed)
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
    """Sum the C-contiguous 1-or-more-dimensional array ``buffer`` over all processes, in place:
    first the native sum through shared memory (``shared_memory.sum_in_place``), then, where it
    did not sum, the call back into Python with what the processes agreed there. Returns 0 when
    done, 1 when the call back failed (its traceback is on stderr)."""
    if not (isinstance(buffer, types.Array) and buffer.layout == "C" and buffer.dtype in _NUMBA_DTYPES):
        return None
    dtype_index = _NUMBA_DTYPES[buffer.dtype]
    kind = shared_memory.element_kind(DTYPES[dtype_index])

    def codegen(context, builder, signature, args):
        array = context.make_array(buffer)(context, builder, args[0])
        data = builder.bitcast(array.data, _VOID_P)
        nbytes = builder.mul(array.nitems, ir.Constant(_I64, DTYPES[dtype_index].itemsize))
        native = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I64, [_I64, _I64, _I64]),
                                                _NATIVE_SYMBOL)
        agreed = builder.call(native, [builder.ptrtoint(data, _I64), nbytes, ir.Constant(_I64, kind)])
        status = cgutils.alloca_once_value(builder, ir.Constant(_I32, 0))
        with builder.if_then(builder.icmp_signed("!=", agreed, ir.Constant(_I64, 2))):
            fnty = ir.FunctionType(_I32, [_VOID_P, _I64, _I32, _I64])
            fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOL)
            builder.store(builder.call(fn, [data, array.nitems, ir.Constant(_I32, dtype_index), agreed]), status)
        return builder.load(status)
    return types.int32(buffer), codegen


@intrinsic
def shared_segment_address(typingctx, nbytes):
    """The address of this process's shared segment for sums of ``nbytes`` bytes, where a
    program packs the operands of such a sum: from the native table once the segment exists,
    else made by ``communicator.shared_segment``; 0 when it could not be made (the error is
    printed to stderr)."""
    if not isinstance(nbytes, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        size = context.cast(builder, args[0], nbytes, types.int64)
        known = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I64, [_I64]), _NATIVE_SEGMENT_SYMBOL)
        address = cgutils.alloca_once_value(builder, builder.call(known, [size]))
        with builder.if_then(builder.icmp_signed("==", builder.load(address), ir.Constant(_I64, 0)), likely=False):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I64, [_I64]), _SEGMENT_SYMBOL)
            builder.store(builder.call(fn, [size]), address)
        return builder.load(address)
    return types.int64(nbytes), codegen
