"""The run-time intrinsics generated programs call, instead of NumPy functions Numba would
compile separately.

Layer: backend, called only by generated code (``from tracejit.backend.intrinsics import
...``); nothing of tracejit is imported. Each is a Numba ``@intrinsic`` (or a small ``njit``
function) that writes its LLVM directly, so a program's first compile costs next to nothing
for it:

- ``radd``, ``rmuladd``, ``fmaximum``, ``fminimum``: the float combines that let reduction loops vectorise
  (a reassociable add and multiply-add, NaN-propagating maximum and minimum); ``fmax_nonnan`` and
  ``fmin_nonnan``, maximum and minimum of operands promised not NaN (one ``vmaxps`` /
  ``vminps`` per vector), for reductions that track NaNs apart (``scalar.nan_flagged``);
- ``new_array``, ``workspace_array``, ``reshaped``: arrays without ``np.empty``, views or
  reshapes (a new array; a typed view of a slot of the program's workspace, see ``memory``; a
  C-contiguous array seen with another shape);
- ``shape_is``: the program's check of its inputs' shapes (``codegen``);
- ``claim_block``: the atomic block counter of a parallel loop (``Lowering.parallel_loop``);
- ``advise_huge_pages``: transparent huge pages for a large output before its first write;
- ``complex_less``, ``complex_less_equal``: NumPy's order of complex numbers (real parts
  first, then imaginary parts; a NaN in an imaginary part makes the real parts' strict
  comparison false), which Numba's ``<`` lacks.

Numba's disk cache does not see this module's text, so ``compiler`` hashes it into every
program's cache key.
"""
from __future__ import annotations

import numpy as np

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils, ir_utils
from numba.extending import intrinsic

__all__ = ["radd", "rmuladd", "fmaximum", "fminimum", "fmax_nonnan", "fmin_nonnan", "advise_huge_pages", "new_array", "claim_block", "shape_is",
           "workspace_array", "reshaped", "complex_less", "complex_less_equal"]

_HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # Linux's value; other systems get no advice


@intrinsic
def radd(typingctx, a, b):
    """``a + b`` that LLVM may reassociate (so a sum over a loop vectorises)."""
    def codegen(context, builder, signature, args):
        inst = builder.fadd(args[0], args[1])
        inst.flags = list(inst.flags) + ["reassoc"]
        return inst
    return a(a, b), codegen


@intrinsic
def rmuladd(typingctx, acc, x, w):
    """``acc + x * w`` that LLVM may reassociate (so a sum over a loop vectorises) and contract
    into one fused multiply-add, as BLAS kernels compute: the narrow products' loops
    (``emitters._emit_narrow_product``)."""
    if not (isinstance(acc, types.Float) and acc == x == w):
        return None

    def codegen(context, builder, signature, args):
        product = builder.fmul(args[1], args[2], flags=("contract", "reassoc"))
        return builder.fadd(args[0], product, flags=("contract", "reassoc"))
    return acc(acc, x, w), codegen


def _llvm_binary(name, fastmath=()):
    def typer(typingctx, a, b):
        def codegen(context, builder, signature, args):
            ty = context.get_value_type(signature.return_type)
            fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty, ty]))
            return builder.call(fn, args, fastmath=fastmath)
        return a(a, b), codegen
    return typer


fmaximum = intrinsic(_llvm_binary("llvm.maximum"))  # NaN-propagating, like np.maximum
fminimum = intrinsic(_llvm_binary("llvm.minimum"))
# Without the promise, a vectorised llvm.maximum orders signed zeros and propagates NaNs with
# three blends per vector on AVX2 (a vblendvps is three micro-ops on recent Intel cores).
fmax_nonnan = intrinsic(_llvm_binary("llvm.maxnum", ("nnan", "nsz")))
fmin_nonnan = intrinsic(_llvm_binary("llvm.minnum", ("nnan", "nsz")))


def _c_array(context, builder, array_type, data, shape_value, shape_type, meminfo, parent):
    """Code for a C-contiguous array of ``array_type`` over ``data`` with the shape tuple
    ``shape_value``, sharing (and keeping alive) the memory of ``meminfo``."""
    from numba.core.imputils import impl_ret_borrowed
    from numba.np.arrayobj import make_array, populate_array
    out = make_array(array_type)(context, builder)
    intp = context.get_value_type(types.intp)
    dims = [context.cast(builder, d, t, types.intp)
            for d, t in zip(cgutils.unpack_tuple(builder, shape_value, len(shape_type)), shape_type)]
    itemsize = context.get_abi_sizeof(context.get_data_type(array_type.dtype))
    strides, step = [], intp(itemsize)
    for d in reversed(dims):  # C order
        strides.append(step)
        step = builder.mul(step, d)
    populate_array(out, data=data, shape=dims, strides=strides[::-1], itemsize=intp(itemsize),
                   meminfo=meminfo, parent=parent)
    return impl_ret_borrowed(context, builder, array_type, out._getvalue())


@intrinsic
def new_array(typingctx, shape, dtype):
    """A new, uninitialised C-contiguous array of ``dtype`` and ``shape``: ``np.empty(shape,
    dtype)`` built directly. Numba compiles ``np.empty`` as a separate function for every
    number of dimensions and dtype, ~0.1 s each on a program's first compile; this is inline."""
    if not isinstance(shape, types.BaseTuple) or not isinstance(dtype, types.NumberClass):
        return None
    array_type = types.Array(dtype.instance_type, len(shape), "C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import _empty_nd_impl
        dims = [context.cast(builder, d, t, types.intp)
                for d, t in zip(cgutils.unpack_tuple(builder, args[0], len(shape)), shape)]
        return _empty_nd_impl(context, builder, array_type, dims)._getvalue()

    return array_type(shape, dtype), codegen


@intrinsic
def claim_block(typingctx, counter):
    """``counter[0]``, incremented by one in the same atomic step: the next block of a
    parallel loop (see ``lowering.Lowering.parallel_loop``), so each block goes to exactly one
    of the threads that share ``counter``, a 1-d ``int64`` array."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array
        data = make_array(signature.args[0])(context, builder, args[0]).data
        # Only the claim itself must be atomic: the loop's results are published to the
        # caller when the parallel region joins.
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


@intrinsic
def shape_is(typingctx, array, shape):
    """Whether ``array.shape == shape`` (a tuple of integers, one per dimension): the check a
    program makes of its inputs' shapes (see ``codegen._shape_guard``). Numba's tuple
    comparison costs each program about twice as much compile time."""
    if not (isinstance(array, types.Array) and isinstance(shape, types.BaseTuple) and len(shape) == array.ndim
            and all(isinstance(t, types.Integer) for t in shape)):
        return None

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array
        dims = cgutils.unpack_tuple(builder, make_array(signature.args[0])(context, builder, args[0]).shape)
        same = cgutils.true_bit
        for dim, wanted, wanted_type in zip(dims, cgutils.unpack_tuple(builder, args[1]), signature.args[1]):
            wanted = context.cast(builder, wanted, wanted_type, types.intp)
            same = builder.and_(same, builder.icmp_signed("==", dim, wanted))
        return same

    return types.boolean(array, shape), codegen


@intrinsic
def workspace_array(typingctx, ws, offset, shape, dtype):
    """The C-contiguous array of ``dtype`` and ``shape`` whose data starts ``offset`` bytes into
    the ``uint8`` array ``ws`` (a temporary in a program's workspace, see ``memory``); it keeps
    ``ws`` alive. The same as ``ws[offset:offset + n].view(dtype).reshape(shape)``, but built
    directly: Numba's view and reshape cost ~0.5 s of compile time the first time a process
    uses them, this costs next to nothing."""
    if not isinstance(shape, types.BaseTuple) or not isinstance(dtype, types.NumberClass):
        return None
    ndim = len(shape)
    elem = dtype.instance_type
    array_type = types.Array(elem, ndim, "C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array
        ws_value, offset_value, shape_value, _ = args
        src = make_array(signature.args[0])(context, builder, ws_value)
        offset_value = context.cast(builder, offset_value, signature.args[1], types.intp)
        data = builder.bitcast(builder.gep(src.data, [offset_value]), context.get_data_type(elem).as_pointer())
        return _c_array(context, builder, array_type, data, shape_value, shape, src.meminfo, None)

    return array_type(ws, offset, shape, dtype), codegen


@intrinsic
def stack_array(typingctx, count, dtype):
    """A 1-d array of ``count`` (a constant) elements of ``dtype`` on the stack of the function,
    uninitialised: a loop's handful of accumulators, which LLVM keeps in registers once it has
    unrolled the short loops over them. Numba types and lowers one such loop far faster than
    the same statements written out one per accumulator."""
    if not isinstance(count, types.Integer) or not isinstance(dtype, types.NumberClass):
        return None
    elem = dtype.instance_type
    array_type = types.Array(elem, 1, "C")

    def codegen(context, builder, signature, args):
        size = args[0]
        if not isinstance(size, ir.Constant):
            raise TypeError("stack_array: the number of elements must be a constant")
        with builder.goto_entry_block():
            data = builder.alloca(context.get_data_type(elem), size=size)
        shape_type = types.UniTuple(types.intp, 1)
        shape = context.make_tuple(builder, shape_type, [context.cast(builder, size, signature.args[0], types.intp)])
        null = context.get_constant_null(types.MemInfoPointer(types.voidptr))
        return _c_array(context, builder, array_type, data, shape, tuple(shape_type), null, None)

    return array_type(count, dtype), codegen


@intrinsic
def array_at(typingctx, address, shape, dtype):
    """The C-contiguous array of ``dtype`` and ``shape`` whose data starts at the integer
    ``address``: memory that outlives the program (a shared segment), not owned by the array."""
    if not isinstance(address, types.Integer) or not isinstance(shape, types.BaseTuple) or \
            not isinstance(dtype, types.NumberClass):
        return None
    elem = dtype.instance_type
    array_type = types.Array(elem, len(shape), "C")

    def codegen(context, builder, signature, args):
        address_value, shape_value, _ = args
        data = builder.inttoptr(address_value, context.get_data_type(elem).as_pointer())
        null = context.get_constant_null(types.MemInfoPointer(types.voidptr))
        return _c_array(context, builder, array_type, data, shape_value, shape, null, None)

    return array_type(address, shape, dtype), codegen


@intrinsic
def reshaped(typingctx, a, shape):
    """The C-contiguous array ``a`` seen with another ``shape`` of the same size (reshapes, and
    the views a fused kernel's collapsed loop reads and writes through), read-only if ``a`` is.
    The same as ``a.reshape(shape)``, which Numba compiles through a function of its own on a
    program's first compile (0.1 s); only C-contiguous arrays are accepted."""
    if not isinstance(a, types.Array) or a.layout != "C" or not isinstance(shape, types.BaseTuple):
        return None
    ndim = len(shape)
    array_type = types.Array(a.dtype, ndim, "C", readonly=not a.mutable)

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array
        src = make_array(signature.args[0])(context, builder, args[0])
        return _c_array(context, builder, array_type, src.data, args[1], shape, src.meminfo, src.parent)

    return array_type(a, shape), codegen


def _reshaped_aliases(lhs, args, alias_map, arg_aliases):
    """Tell Numba's alias analysis that the result of ``reshaped`` (or ``workspace_array``)
    is its argument's memory: without it, ``parallel=True`` compilation drops a ``prange``
    loop that only writes such a view (read by nobody afterwards) as dead code."""
    ir_utils._add_alias(lhs, args[0].name, alias_map, arg_aliases)


ir_utils.alias_func_extensions[("reshaped", __name__)] = _reshaped_aliases
ir_utils.alias_func_extensions[("workspace_array", __name__)] = _reshaped_aliases


@intrinsic
def _madvise(typingctx, addr, length, advice):
    """libc's ``madvise(addr, length, advice)`` (resolved by the JIT linker like libm calls)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(8).as_pointer(), ir.IntType(64), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "madvise")
        return builder.call(fn, [builder.inttoptr(args[0], ir.IntType(8).as_pointer()), args[1], args[2]])
    return types.int32(types.uint64, types.uint64, types.int32), codegen


@numba.njit(cache=True)
def advise_huge_pages(a):
    """Ask Linux to back the whole 2 MB pages inside ``a``'s memory with huge pages. Call it
    before the first write: the pages are then faulted in 2 MB at a time. Only advice: if
    transparent huge pages are off, nothing changes."""
    mask = np.uint64(_HUGE_PAGE - 1)
    start = np.uint64(a.ctypes.data)
    end = start + np.uint64(a.nbytes)
    start = (start + mask) & ~mask
    end = end & ~mask
    if end > start:
        _madvise(start, end - start, np.int32(_MADV_HUGEPAGE))


# NumPy's comparisons of complex numbers (its CLT and CLE; a > b is b < a): lexicographic, and a
# NaN imaginary part on either side keeps the real parts' strict order from deciding.
@numba.njit(cache=True, inline="always")
def complex_less(a, b):
    return (a.real < b.real and a.imag == a.imag and b.imag == b.imag) or (a.real == b.real and a.imag < b.imag)


@numba.njit(cache=True, inline="always")
def complex_less_equal(a, b):
    return (a.real < b.real and a.imag == a.imag and b.imag == b.imag) or (a.real == b.real and a.imag <= b.imag)
