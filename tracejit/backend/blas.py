"""Matrix products in compiled programs through the BLAS NumPy itself uses.

Layer: backend, called by the code ``emitters.emit_matmul`` generates. In: two 2-D float32 or
float64 operands, each a C-contiguous array or the transpose of one, and a C-contiguous
output. Out: ``out = a @ b``, written by one CBLAS ``gemm`` call.

Numba's own ``np.dot`` calls the OpenBLAS bundled with SciPy, which for the small products of
a training step can be much slower than the one bundled with NumPy: on this project's
benchmark machine (AVX-512), ``x.T @ d`` for x (128, 784) and d (128, 10) took 85 us through
Numba (SciPy's OpenBLAS 0.3.30) against 44 us through NumPy (its OpenBLAS 0.3.31). Calling
NumPy's library makes a compiled step's products cost what the same products cost in NumPy,
and sets the library's thread count per product from its size (``threads_for``: small
products never fan out; see ``SERIAL_WORK``), at most ``set_max_threads``'s ceiling.

NumPy's wheels (2.x, Linux, macOS and Windows) ship OpenBLAS with its symbols prefixed
``scipy_`` and 64-bit integers (``scipy_cblas_sgemm64_``). ``NUMPY_GEMM`` is true when that
library was found and its ``gemm`` entry points registered with LLVM (as
``tracejit_cblas_sgemm`` / ``tracejit_cblas_dgemm``), so that compiled code, including code
loaded from Numba's disk cache in a later process, links to them by name. Where NumPy was
built against another BLAS (conda's MKL, Accelerate, a system OpenBLAS), ``NUMPY_GEMM`` is
false and the generator keeps ``np.dot``; results are the same products either way.
"""
from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import numpy_blas

__all__ = ["NUMPY_GEMM", "SERIAL_WORK", "numpy_blas_library", "gemm", "set_max_threads", "threads_for"]

numpy_blas_library = numpy_blas.library_path

# CBLAS enumerations
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

_SYMBOLS = {"s": "tracejit_cblas_sgemm", "d": "tracejit_cblas_dgemm"}


# BLAS threads per product. OpenBLAS's threads spin while they wait; on a machine whose cores
# are busy with anything else a product split over two threads waits for a descheduled one.
# Measured on this project's shared two-core machine (`python benchmarks/blas_threads.py`,
# float32, median of 5 rounds, 1 thread against 2; the same with `--load`, one CPU kept busy):
# (128x784)@(784x10) 125 us against 1.06 ms (306 us against 2.5 ms); (128x784)@(784x512)
# 3.9 ms against 36 ms; (512x512)@(512x512) 9.0 ms against 60 ms; (1024x1024)@(1024x1024)
# 70 ms against 105 ms. So a product runs on one thread unless it has at least SERIAL_WORK
# multiply-adds (no product of a training step of the examples comes near), and on one more
# thread per SERIAL_WORK above that, up to ``max_threads()``: only products that take tens of
# milliseconds on one core are split, where a quiet machine gains from it.
SERIAL_WORK = 1 << 28  # multiply-adds (m * n * k); a (1024x1024)@(1024x1024) product is 2**30

_SET_THREADS = "tracejit_blas_set_num_threads"
_MAX_THREADS = "tracejit_blas_max_threads"    # read by compiled code on every product
_THREADS_NOW = "tracejit_blas_threads_now"    # the count last set, so unchanged counts cost no call
_max_threads = ctypes.c_int64(1)
_threads_now = numpy_blas.threads_set
_library = None


def _register_numpy_gemm() -> bool:
    global _library
    library = numpy_blas.library()
    if library is None:
        return False  # another build of OpenBLAS (32-bit integers or other names): keep np.dot
    try:
        addresses = {kind: ctypes.cast(getattr(library, f"scipy_cblas_{kind}gemm64_"), ctypes.c_void_p).value
                     for kind in _SYMBOLS}
    except AttributeError:
        return False
    set_threads = ctypes.cast(library.scipy_openblas_set_num_threads64_, ctypes.c_void_p).value
    for kind, address in addresses.items():
        llvm.add_symbol(_SYMBOLS[kind], address)
    llvm.add_symbol(_SET_THREADS, set_threads)
    llvm.add_symbol(_MAX_THREADS, ctypes.addressof(_max_threads))
    llvm.add_symbol(_THREADS_NOW, ctypes.addressof(_threads_now))
    _library = library
    set_max_threads(None)
    return True


def set_max_threads(n: int | None) -> int:
    """The most BLAS threads a compiled product may use; returns the value in force. ``None``:
    OpenBLAS's own thread count (``OPENBLAS_NUM_THREADS``, else the cores) capped by the cores
    this process may run on and by Numba's thread count, so BLAS threads never outnumber the
    cores Numba's parallel loops use. Products choose up to this many by size (``SERIAL_WORK``)."""
    if n is None:
        import numba
        n = numba.config.NUMBA_NUM_THREADS
        if _library is not None:
            n = min(n, numpy_blas.threads())
        if hasattr(os, "sched_getaffinity"):
            n = min(n, len(os.sched_getaffinity(0)))
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_max_threads: n must be a positive int or None, got {n!r}")
    _max_threads.value = n
    _threads_now.value = 0  # unknown: the next product sets its count
    return n


def threads_for(m: int, n: int, k: int) -> int:
    """The BLAS thread count a compiled (m x k) @ (k x n) product uses (the rule the generated
    code evaluates, for tests and diagnostics)."""
    return max(1, min(_max_threads.value, (m * n * k) // SERIAL_WORK))


#: True when compiled matrix products call NumPy's own BLAS (see the module docstring).
NUMPY_GEMM = _register_numpy_gemm()

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VOID_P = ir.IntType(8).as_pointer()


def _choose_threads(builder, work):
    """Emit: threads = clamp(work // SERIAL_WORK, 1, max threads); tell OpenBLAS if it changed."""
    def global_i64(name):
        gv = builder.module.globals.get(name)
        if gv is None:
            gv = ir.GlobalVariable(builder.module, _I64, name)
            gv.linkage = "external"
        return gv
    ceiling = builder.load(global_i64(_MAX_THREADS))
    want = builder.sdiv(work, ir.Constant(_I64, SERIAL_WORK))
    want = builder.select(builder.icmp_signed("<", want, ceiling), want, ceiling)
    want = builder.select(builder.icmp_signed("<", want, ir.Constant(_I64, 1)), ir.Constant(_I64, 1), want)
    now = global_i64(_THREADS_NOW)
    with builder.if_then(builder.icmp_signed("!=", builder.load(now), want), likely=False):
        set_threads = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [_I32]),
                                                     _SET_THREADS)
        builder.call(set_threads, [builder.trunc(want, _I32)])
        builder.store(want, now)


@intrinsic
def gemm(typingctx, a, a_transposed, b, b_transposed, out):
    """``out[...] = op(a) @ op(b)``, where ``op(x)`` is ``x.T`` if its flag is true and ``x``
    otherwise; ``a``, ``b`` and ``out`` are C-contiguous 2-D arrays of one float dtype with
    ``out.shape == (op(a).shape[0], op(b).shape[1])`` and all dimensions non-zero (the
    generated code checks this statically). One ``cblas_?gemm`` call, written inline: a
    separately compiled Numba function per signature cost ~0.2 s on its first compile."""
    arrays = (a, b, out)
    if not (all(isinstance(x, types.Array) and x.ndim == 2 and x.layout == "C" for x in arrays)
            and out.dtype in (types.float32, types.float64) and a.dtype == b.dtype == out.dtype
            and isinstance(a_transposed, types.Boolean) and isinstance(b_transposed, types.Boolean)):
        return None
    kind = "s" if out.dtype == types.float32 else "d"

    def codegen(context, builder, signature, args):
        a_, a_t, b_, b_t, out_ = args
        scalar = ir.FloatType() if kind == "s" else ir.DoubleType()
        fnty = ir.FunctionType(ir.VoidType(), [_I32, _I32, _I32, _I64, _I64, _I64, scalar, _VOID_P, _I64,
                                               _VOID_P, _I64, scalar, _VOID_P, _I64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[kind])
        a_array, b_array, out_array = (context.make_array(t)(context, builder, v)
                                       for t, v in zip(arrays, (a_, b_, out_)))
        a_rows, a_cols = cgutils.unpack_tuple(builder, a_array.shape, 2)
        _, b_cols = cgutils.unpack_tuple(builder, b_array.shape, 2)
        m, n = cgutils.unpack_tuple(builder, out_array.shape, 2)

        def is_true(value):
            return builder.icmp_unsigned("!=", value, ir.Constant(value.type, 0))

        def flag(value):
            return builder.select(is_true(value), ir.Constant(_I32, _TRANS), ir.Constant(_I32, _NO_TRANS))

        def data(array):
            return builder.bitcast(array.data, _VOID_P)
        k = builder.select(is_true(a_t), a_rows, a_cols)
        _choose_threads(builder, builder.mul(builder.mul(m, n), k))
        builder.call(fn, [ir.Constant(_I32, _ROW_MAJOR), flag(a_t), flag(b_t), m, n, k, ir.Constant(scalar, 1.0),
                          data(a_array), a_cols, data(b_array), b_cols, ir.Constant(scalar, 0.0),
                          data(out_array), n])
        return context.get_dummy_value()
    return types.none(a, a_transposed, b, b_transposed, out), codegen
