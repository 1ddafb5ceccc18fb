"""Emitters: the code each primitive's equations become.

Layer: backend. Each emitter is ``emit(L, eqn)``: it writes the code for ``eqn`` through the
``Lowering`` ``L`` and binds the equation's outputs to ``Ref``s. ``emitter_for(prim)`` picks
one: ``EMITTERS`` (keyed by the primitive object) for shape and opaque primitives (the fused
kernels' emitter lives in ``fused_kernels``), else the generic ones here, a loop nest over the
primitive's ``scalar_src`` for elementwise primitives and an accumulator loop from
``identity`` + ``combine`` for reductions (their loop bodies come from ``scalar``).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .. import communicator, ops
from ..core import Var
from ..transforms.fuse import fused
from . import blas
from .fused_kernels import emit_fused
from .lowering import ArrayRef, BackendError, Lowering, ScalarRef, ViewRef, affine, dtype_src, identity_src
from .scalar import (NanFlag, acc_dtype, combine_src, convert_src, elementwise_check, elementwise_src, nan_flagged,
                     order_src, scan_combine_src)

__all__ = ["EMITTERS", "emitter_for", "emit_elementwise", "emit_reduce"]


# ----------------------------------------------------------------------------- generic emitters

def emit_elementwise(L: Lowering, eqn):
    """One loop nest over the output; the body is the primitive's ``scalar_src``."""
    src = elementwise_src(L, eqn)
    out = eqn.outputs[0]
    res = L.new_array(out)
    L.kernels += 1
    with L.loops(out.aval.shape, parallel=True) as idx:
        refs = [L.ref(a) for a in eqn.inputs]
        operands = [ref.at(idx) for ref in refs]
        elementwise_check(L, eqn, operands)
        L.emit(f"{res.at(idx)} = {src.format(*operands)}")
    L.store_elementwise(res, refs)
    L.bind(out, res)


def emit_reduce(L: Lowering, eqn):
    """Reductions from the primitive's ``identity`` and ``combine``.

    When the reduced axes are the trailing ones, each output element gets a scalar
    accumulator; otherwise the input is walked in memory order, combining into an
    accumulator array of the output's shape.
    """
    prim = eqn.prim
    (x,), (out,) = eqn.inputs, eqn.outputs
    axes = tuple(sorted(eqn.params["axes"]))
    xr = L.ref(x)
    shape = x.aval.shape
    dtype = out.aval.dtype
    acc_dt = acc_dtype(prim, dtype)
    ident = identity_src(prim.identity, acc_dt)
    kept = [d for d in range(len(shape)) if d not in axes]

    def combined(acc, at):
        return combine_src(L, prim, acc_dt, acc, convert_src(xr.at(at), x.aval.dtype, acc_dt))
    L.kernels += 1
    if axes == tuple(range(len(shape) - len(axes), len(shape))):
        res = L.new_array(out)
        acc = L.fresh("acc")
        flag = NanFlag(L, prim, acc_dt, acc) if nan_flagged(prim, acc_dt) else None
        with L.loops(out.aval.shape, parallel=True) as o:
            L.emit(f"{acc} = {ident}")
            if flag is not None:
                L.emit(flag.start)
            with L.loops([shape[d] for d in axes], "r") as r:
                if flag is not None:
                    for line in flag.combine(convert_src(xr.at(o + r), x.aval.dtype, acc_dt)):
                        L.emit(line)
                else:
                    L.emit(f"{acc} = {combined(acc, o + r)}")
            if flag is not None:
                L.emit(flag.finish)
            L.emit(f"{res.at(o)} = {acc}")
        L.store_elementwise(res, [], [xr])
    else:
        if acc_dt == dtype:
            acc_arr = L.new_array(out, "full", ident)
        else:
            acc_arr = L.alloc(L.fresh("acc"), out.aval.shape, acc_dt, "full", ident)
        with L.loops(shape) as i:
            o = [i[d] for d in kept]
            L.emit(f"{acc_arr.at(o)} = {combined(acc_arr.at(o), i)}")
        res = acc_arr
        if acc_dt != dtype:
            res = L.new_array(out)
            L.kernels += 1
            with L.loops(out.aval.shape, parallel=True) as o:
                L.emit(f"{res.at(o)} = {acc_arr.at(o)}")
    L.bind(out, res)


# ----------------------------------------------------------------------------- views (no code)
# A view reads nothing where it is made (``L.lookup``, not ``L.ref``): its reads are recorded
# where code reads through it.

def emit_broadcast_to(L: Lowering, eqn):
    """A view: size-1 axes are read at index 0, new leading axes are ignored."""
    (x,), (out,) = eqn.inputs, eqn.outputs
    x_shape = x.aval.shape
    lead = len(eqn.params["shape"]) - len(x_shape)

    def index_map(idx):
        return ["0" if n == 1 else idx[lead + d] for d, n in enumerate(x_shape)]

    L.comment("(view: read in place, no copy)")
    L.bind(out, ViewRef(L.lookup(x), out.aval.shape, index_map, L.var_name(out)))


def emit_transpose(L: Lowering, eqn):
    (x,), (out,) = eqn.inputs, eqn.outputs
    perm = eqn.params["perm"]

    def index_map(idx):
        base = [None] * len(perm)
        for j, p in enumerate(perm):
            base[p] = idx[j]
        return base

    L.comment("(view: read in place, no copy)")
    L.bind(out, ViewRef(L.lookup(x), out.aval.shape, index_map, L.var_name(out)))


def emit_slice(L: Lowering, eqn):
    (x,), (out,) = eqn.inputs, eqn.outputs
    starts, steps = eqn.params["starts"], eqn.params["steps"]

    def index_map(idx):
        return [affine(i, a, s) for i, a, s in zip(idx, starts, steps)]

    L.comment("(view: read in place, no copy)")
    L.bind(out, ViewRef(L.lookup(x), out.aval.shape, index_map, L.var_name(out)))


# ----------------------------------------------------------------------------- data movement

def emit_reshape(L: Lowering, eqn):
    """A reshape of a C-contiguous array variable is a free ``.reshape``; anything else is
    copied into a fresh array first."""
    (x,), (out,) = eqn.inputs, eqn.outputs
    ref = L.ref(x)
    if isinstance(ref, ScalarRef):  # a literal (e.g. a constant output): write it in place
        res = L.new_array(out)
        with L.loops(out.aval.shape) as idx:
            L.emit(f"{res.at(idx)} = {ref.at(idx)}")
        L.bind(out, res)
        return
    src = L.array(x)
    name = L.var_name(out)
    L.emit(f"{name} = {L.reshape_src(src.name, out.aval.shape)}")
    L.bind(out, ArrayRef(name, out.aval.shape, out.aval.dtype, src.root))


def emit_pad(L: Lowering, eqn):
    (x,), (out,) = eqn.inputs, eqn.outputs
    config = eqn.params["config"]
    xr = L.ref(x)
    res = L.new_array(out, "zeros")
    L.kernels += 1
    with L.loops(x.aval.shape) as idx:
        dst = [affine(i, lo, interior + 1) for i, (lo, _, interior) in zip(idx, config)]
        L.emit(f"{res.at(dst)} = {xr.at(idx)}")
    L.bind(out, res)


def emit_concatenate(L: Lowering, eqn):
    out = eqn.outputs[0]
    axis = eqn.params["axis"]
    res = L.new_array(out)
    offset = 0
    for x in eqn.inputs:
        xr = L.ref(x)
        L.kernels += 1
        with L.loops(x.aval.shape) as idx:
            dst = list(idx)
            dst[axis] = affine(idx[axis], offset, 1)
            L.emit(f"{res.at(dst)} = {xr.at(idx)}")
        offset += x.aval.shape[axis]
    L.bind(out, res)


def _checked_index(L: Lowering, k: str, value: str, idx_dtype, n: int, what: str, axis: int):
    """``k = value``, wrapped like NumPy (negative counts from the end) and bounds-checked:
    an index outside [-n, n) raises IndexError instead of reading out of bounds. (The message
    is a constant: formatting the index with ``str`` would double the program's compile time.)"""
    L.emit(f"{k} = {value}")
    if np.dtype(idx_dtype).kind == "i":
        with L.block(f"if {k} < 0:"):
            L.emit(f"{k} += {n}")
        cond = f"{k} < 0 or {k} >= {n}"
    else:
        cond = f"{k} >= {n}"
    with L.block(f"if {cond}:"):
        message = f"{what}: index out of bounds for axis {axis} with size {n}{L.where()}"
        L.emit(f"raise IndexError({message!r})")


def emit_gather(L: Lowering, eqn):
    """``np.take(x, idx, axis)``: loops over the output; each index is read once, checked,
    and then the trailing axes are copied."""
    (x, ind), (out,) = eqn.inputs, eqn.outputs
    axis = eqn.params["axis"]
    xr, ir = L.ref(x), L.ref(ind)
    n = x.aval.shape[axis]
    shape = out.aval.shape
    k_ind = len(ind.aval.shape)
    res = L.new_array(out)
    k = L.fresh("k")
    L.kernels += 1
    with L.loops(shape[:axis + k_ind]) as head:
        _checked_index(L, k, ir.at(head[axis:]), ind.aval.dtype, n, "gather", axis)
        with L.loops(shape[axis + k_ind:], start=axis + k_ind) as tail:
            L.emit(f"{res.at(head + tail)} = {xr.at(head[:axis] + [k] + tail)}")
    L.store_elementwise(res, [], [xr, ir])
    L.bind(out, res)


def emit_scatter_add(L: Lowering, eqn):
    """A copy of ``x`` with ``updates`` added at ``idx`` along ``axis``; repeated indices add
    up (``np.add.at``). Bool adds are logical or, as in NumPy."""
    (x, ind, upd), (out,) = eqn.inputs, eqn.outputs
    axis = eqn.params["axis"]
    xr, ir, ur = L.ref(x), L.ref(ind), L.ref(upd)
    n = x.aval.shape[axis]
    shape = upd.aval.shape
    k_ind = len(ind.aval.shape)
    res = L.new_array(out)
    L.kernels += 2
    with L.loops(out.aval.shape) as idx:
        L.emit(f"{res.at(idx)} = {xr.at(idx)}")
    k = L.fresh("k")
    op = "or" if out.aval.dtype == np.bool_ else "+"
    with L.loops(shape[:axis + k_ind]) as head:
        _checked_index(L, k, ir.at(head[axis:]), ind.aval.dtype, n, "scatter_add", axis)
        with L.loops(shape[axis + k_ind:], start=axis + k_ind) as tail:
            dst = res.at(head[:axis] + [k] + tail)
            L.emit(f"{dst} = {dst} {op} {ur.at(head + tail)}")
    L.bind(out, res)


# ----------------------------------------------------------------------------- sliding windows

def emit_windows(L: Lowering, eqn):
    """im2col: one pass writing the output in order; the image is read strided."""
    (x,), (out,) = eqn.inputs, eqn.outputs
    sh, sw = eqn.params["strides"]
    xr = L.ref(x)
    res = L.new_array(out)
    L.kernels += 1
    with L.loops(out.aval.shape, parallel=True) as (n, oh, ow, c, i, j):
        L.emit(f"{res.at([n, oh, ow, c, i, j])} = {xr.at([n, c, f'{oh} * {sh} + {i}', f'{ow} * {sw} + {j}'])}")
    L.store_elementwise(res, [], [xr])
    L.bind(out, res)


def emit_windows_sum(L: Lowering, eqn):
    """col2im: windows added into a zeroed image. Overlapping windows of one image add to the
    same pixels, so only the loop over images runs in parallel."""
    (cols,), (out,) = eqn.inputs, eqn.outputs
    sh, sw = eqn.params["strides"]
    cr = L.ref(cols)
    res = L.new_array(out, "zeros")
    L.kernels += 1
    # (with one image, the first loop that runs is over rows of windows, which overlap)
    with L.loops(cols.aval.shape, parallel=cols.aval.shape[0] > 1) as (n, oh, ow, c, i, j):
        dst = res.at([n, c, f"{oh} * {sh} + {i}", f"{ow} * {sw} + {j}"])
        L.emit(f"{dst} += {cr.at([n, oh, ow, c, i, j])}")
    L.bind(out, res)


# ----------------------------------------------------------------------------- matmul

def _blas_operand(L: Lowering, atom) -> tuple[str, bool]:
    """A 2-D matmul operand as BLAS can read it without a copy: ``(name, False)`` for a
    C-contiguous array, ``(name, True)`` for the transpose of one (handed to BLAS with its
    transpose flag). Other views are copied first."""
    ref = L.ref(atom)
    if isinstance(ref, ViewRef) and isinstance(ref.base, ArrayRef) and len(ref.shape) == 2 \
            and ref.base.shape == ref.shape[::-1] and ref.index_map(["i", "j"]) == ["j", "i"]:
        return ref.base.name, True
    return L.array(atom).name, False


def _product_src(L: Lowering, a, b, out, dtype) -> str:
    """The call writing ``out = a @ b`` for 2-D operands ``(name, transposed)``: NumPy's own
    BLAS through ``blas.gemm`` where it can be called (float32/float64), else ``np.dot``."""
    (a_name, a_t), (b_name, b_t) = a, b
    if blas.NUMPY_GEMM and dtype in (np.float32, np.float64):
        L.require("from tracejit.backend.blas import gemm")
        return f"gemm({a_name}, {a_t}, {b_name}, {b_t}, {out})"
    L.uses_runtime = True  # Numba's np.dot copies operands it cannot hand to BLAS as they are
    return f"np.dot({a_name}{'.T' if a_t else ''}, {b_name}{'.T' if b_t else ''}, {out})"


# A float product with at most this many output columns, and at most NARROW_MAX_WORK
# multiply-adds, is written as loops here instead of a BLAS call (see ``_emit_narrow_product``).
NARROW_MAX_COLUMNS = 16
NARROW_MAX_WORK = 1 << 22


def _emit_narrow_product(L: Lowering, a, b, res, m, k, n) -> bool:
    """Write ``res = a @ b`` (operands ``(name, transposed)``, shapes (m, k) @ (k, n)) as
    vectorised loops when the output has at most ``NARROW_MAX_COLUMNS`` columns, as a
    training step's ``x @ W`` and ``x.T @ d`` for 10 classes have; False (nothing written)
    for other products. OpenBLAS's kernels are tuned for wide blocks: for (128, 784) @
    (784, 10) and (784, 128) @ (128, 10) float32 on one AVX-512 core they took 44 us each,
    the loops here 23 and 27 us with separate multiplications and additions; fused
    multiply-adds (``rmuladd``, as BLAS kernels use) took the first from 24 to 18-19 us, and
    from 32 to 27 us with AVX2. The sums are vectorised, so they round differently from BLAS
    (which also differs from a sequential sum).

    ``a @ b`` with ``a`` C-contiguous: two rows of ``a`` at a time, each dotted with the n
    columns of ``b`` (copied transposed unless ``b`` already is), 2n accumulators vectorised
    along k. ``a.T @ b`` with ``a`` (k, m) C-contiguous: four rows of ``a`` at a time added,
    times the matching rows of ``b``, into the n rows of a transposed (n, m) result, each
    vectorised along m, then transposed into ``res``."""
    (a_name, a_t), (b_name, b_t) = a, b
    dtype = res.dtype
    if dtype not in (np.float32, np.float64) or n > NARROW_MAX_COLUMNS or m * k * n > NARROW_MAX_WORK:
        return False
    if a_t and b_t:
        return False
    zero = identity_src(0, dtype)
    L.require("from tracejit.backend.intrinsics import rmuladd, stack_array")
    r, c, i = L.fresh("r"), L.fresh("c"), L.fresh("i")  # loop indices (SSA names have no digits)
    if not a_t:
        L.comment(f"{m}x{k} @ {k}x{n}: {n} columns, rows of the left operand two at a time (loops, not BLAS)")
        if b_t:
            cols = b_name  # b is the transpose of this (n, k) array: its rows are b's columns
        else:
            cols = L.alloc(L.fresh(b_name + "_cols"), (n, k), dtype).name
            with L.block(f"for {r} in range({k}):"), L.block(f"for {c} in range({n}):"):
                L.emit(f"{cols}[{c}, {r}] = {b_name}[{r}, {c}]")

        def rows(first, count):
            # count * n accumulators on the stack, in loops over the n columns that LLVM unrolls
            # (it then keeps them in registers and vectorises along k, as for one scalar each)
            dots, col = L.fresh("dots"), L.fresh("q")
            L.emit(f"{dots} = stack_array({count * n}, {dtype_src(dtype)})")
            with L.block(f"for {col} in range({count * n}):"):
                L.emit(f"{dots}[{col}] = {zero}")
            slots = [f"{d * n} + {col}" if d else col for d in range(count)]  # row d's accumulator of column col
            xs = [L.fresh("x") for _ in range(count)]
            w = L.fresh("w")
            with L.block(f"for {r} in range({k}):"):
                for d, x in enumerate(xs):
                    L.emit(f"{x} = {a_name}[{first} + {d}, {r}]")
                with L.block(f"for {col} in range({n}):"):
                    L.emit(f"{w} = {cols}[{col}, {r}]")
                    for x, slot in zip(xs, slots):
                        L.emit(f"{dots}[{slot}] = rmuladd({dots}[{slot}], {x}, {w})")
            with L.block(f"for {col} in range({n}):"):
                for d, slot in enumerate(slots):
                    L.emit(f"{res.name}[{first} + {d}, {col}] = {dots}[{slot}]")
        if m >= 2:
            with L.block(f"for {i} in range(0, {m - m % 2}, 2):"):
                rows(i, 2)
        if m % 2:
            rows(str(m - 1), 1)
        return True
    if b_t:
        return False
    L.comment(f"{a_name}.T @ {b_name} ({m}x{k} @ {k}x{n}): {n} columns, accumulated transposed, "
              f"four rows of {a_name} at a time (loops, not BLAS)")
    acc = L.alloc(L.fresh(res.name + "_t"), (n, m), dtype).name
    with L.block(f"for {c} in range({n}):"), L.block(f"for {r} in range({m}):"):
        L.emit(f"{acc}[{c}, {r}] = {zero}")
    step = 4 if k >= 4 else 1
    with L.block(f"for {i} in range(0, {k - k % step}, {step}):"):
        # the step x n factors on the stack, in loops over the n columns that LLVM unrolls
        ws, col = L.fresh("ws"), L.fresh("q")
        xs = [L.fresh("x") for _ in range(step)]
        L.emit(f"{ws} = stack_array({step * n}, {dtype_src(dtype)})")
        with L.block(f"for {col} in range({n}):"):
            for d in range(step):
                L.emit(f"{ws}[{d * n} + {col}] = {b_name}[{i} + {d}, {col}]")
        with L.block(f"for {r} in range({m}):"):
            for d, x in enumerate(xs):
                L.emit(f"{x} = {a_name}[{i} + {d}, {r}]")
            with L.block(f"for {col} in range({n}):"):
                terms = f"{xs[0]} * {ws}[{col}]"
                for d, x in enumerate(xs[1:], 1):
                    terms = f"rmuladd({terms}, {x}, {ws}[{d * n} + {col}])"
                L.emit(f"{acc}[{col}, {r}] = {acc}[{col}, {r}] + {terms}")
    if k % step:
        with L.block(f"for {i} in range({k - k % step}, {k}):"), L.block(f"for {r} in range({m}):"):
            for col in range(n):
                L.emit(f"{acc}[{col}, {r}] = {acc}[{col}, {r}] + {a_name}[{i}, {r}] * {b_name}[{i}, {col}]")
    with L.block(f"for {r} in range({m}):"), L.block(f"for {c} in range({n}):"):
        L.emit(f"{res.name}[{r}, {c}] = {acc}[{c}, {r}]")
    return True


def emit_matmul(L: Lowering, eqn):
    """Float/complex: one BLAS ``gemm`` (see ``_product_src``) on C-contiguous 2-D operands or
    their transposes (batched: one per batch element). Integers and bools: explicit loops."""
    (a, b), (out,) = eqn.inputs, eqn.outputs
    *batch, m, k = a.aval.shape
    n = b.aval.shape[-1]
    dtype = out.aval.dtype
    nbatch = int(np.prod(batch, dtype=np.int64))
    if dtype.kind in "fc":
        if 0 in (nbatch, m, n, k):
            L.emit("# an empty operand: nothing to multiply")
            res = L.new_array(out, "zeros")
        elif not batch:
            res = L.new_array(out)
            a_op, b_op = _blas_operand(L, a), _blas_operand(L, b)
            if not _emit_narrow_product(L, a_op, b_op, res, m, k, n):
                L.emit(_product_src(L, a_op, b_op, res.name, dtype))
            L.kernels += 1
        else:
            ar, br = L.array(a), L.array(b)
            res = L.new_array(out)
            a3, b3, c3 = ar.name, br.name, res.name
            if len(batch) > 1:
                a3, b3, c3 = L.fresh(f"{ar.name}_"), L.fresh(f"{br.name}_"), L.fresh(f"{res.name}_")
                L.emit(f"{a3} = {L.reshape_src(ar.name, (nbatch, m, k))}")
                L.emit(f"{b3} = {L.reshape_src(br.name, (nbatch, k, n))}")
                L.emit(f"{c3} = {L.reshape_src(res.name, (nbatch, m, n))}")
            L.kernels += 1
            with L.loops([nbatch], "b") as (i,):
                L.emit(_product_src(L, (f"{a3}[{i}]", False), (f"{b3}[{i}]", False), f"{c3}[{i}]", dtype))
        L.bind(out, res)
        return
    ar, br = L.ref(a), L.ref(b)
    res = L.new_array(out)
    acc = L.fresh("acc")
    L.kernels += 1
    with L.loops(out.aval.shape) as idx:
        *bi, i, j = idx
        zero = "False" if dtype == np.bool_ else identity_src(0, np.int64 if dtype.kind == "i" else np.uint64)
        L.emit(f"{acc} = {zero}")
        with L.loops([k], "r") as (r,):
            x, y = ar.at(bi + [i, r]), br.at(bi + [r, j])
            if dtype == np.bool_:
                L.emit(f"{acc} = {acc} or ({x} and {y})")
            else:
                L.emit(f"{acc} = {acc} + {x} * {y}")
        L.emit(f"{res.at(idx)} = {acc}")
    L.store_elementwise(res, [], [ar, br])
    L.bind(out, res)


# ----------------------------------------------------------------------------- argmax / argmin

def _emit_arg_extremum(L: Lowering, eqn, better: str):
    """First index of the extreme value along ``axis``, as NumPy: ties keep the first, and a
    NaN counts as the extreme (the first NaN wins)."""
    (x,), (out,) = eqn.inputs, eqn.outputs
    axis = eqn.params["axis"]
    xr = L.ref(x)
    n = x.aval.shape[axis]
    is_float = x.aval.dtype.kind in "fc"
    res = L.new_array(out)
    best, pos, v = L.fresh("best"), L.fresh("pos"), L.fresh("v")
    L.kernels += 1
    with L.loops(out.aval.shape, parallel=True) as o:
        L.emit(f"{best} = {xr.at(o[:axis] + ['0'] + o[axis:])}")
        L.emit(f"{pos} = 0")
        loop = f"for r0 in range(1, {n}):"
        if is_float:
            with L.block(f"if {best} == {best}:"), L.block(loop):
                L.emit(f"{v} = {xr.at(o[:axis] + ['r0'] + o[axis:])}")
                with L.block(f"if {v} != {v}:"):
                    L.emit(f"{pos} = r0")
                    L.emit("break")
                with L.block(f"if {order_src(L, x.aval.dtype, v, better, best)}:"):
                    L.emit(f"{best} = {v}")
                    L.emit(f"{pos} = r0")
        else:
            with L.block(loop):
                L.emit(f"{v} = {xr.at(o[:axis] + ['r0'] + o[axis:])}")
                with L.block(f"if {v} {better} {best}:"):
                    L.emit(f"{best} = {v}")
                    L.emit(f"{pos} = r0")
        L.emit(f"{res.at(o)} = {pos}")
    L.store_elementwise(res, [], [xr])
    L.bind(out, res)


def emit_argmax(L: Lowering, eqn):
    _emit_arg_extremum(L, eqn, ">")


def emit_argmin(L: Lowering, eqn):
    _emit_arg_extremum(L, eqn, "<")


# ----------------------------------------------------------------------------- one row or matrix at a time

def emit_per_slice(L: Lowering, eqn):
    """The NumPy call a primitive's ``per_slice`` facet names, made on each row (one trailing
    axis: sorting) or matrix (two: LAPACK) of the batch: Numba compiles ``np.sort`` and
    ``np.linalg``'s functions (to its own LAPACK calls), and raises NumPy's ``LinAlgError`` for
    a singular matrix as the interpreter does."""
    call, core = eqn.prim.extra["per_slice"]
    batch = eqn.inputs[0].aval.shape[:len(eqn.inputs[0].aval.shape) - core]
    nbatch = int(np.prod(batch, dtype=np.int64))
    results = [L.new_array(out) for out in eqn.outputs]
    if nbatch == 0 or 0 in eqn.inputs[0].aval.shape:
        L.emit(f"# empty: no row or matrix to pass to {call.format('...')}")
    else:
        operands = [_batched(L, L.array(x).name, x.aval.shape[len(batch):], nbatch) for x in eqn.inputs]
        targets = [_batched(L, res.name, out.aval.shape[len(batch):], nbatch)
                   for res, out in zip(results, eqn.outputs)]
        L.kernels += 1
        with L.loops([nbatch], "b") as (i,):
            values = [L.fresh("m") for _ in targets]
            L.emit(f"{', '.join(values)} = {call.format(', '.join(f'{x}[{i}]' for x in operands))}")
            for target, value in zip(targets, values):
                L.emit(f"{target}[{i}] = {value}")
    for out, res in zip(eqn.outputs, results):
        L.bind(out, res)


def _batched(L: Lowering, name, tail, nbatch):
    """``name`` viewed with its batch axes as one leading axis of ``nbatch``."""
    view = L.fresh(f"{name}_")
    L.emit(f"{view} = {L.reshape_src(name, (nbatch,) + tuple(tail))}")
    return view


# ----------------------------------------------------------------------------- host calls

def emit_host_call(L: Lowering, eqn):
    """A primitive Numba cannot compile (its ``host_call`` facet gives the NumPy call for the
    params): the compiled program leaves machine code for it, in a ``numba.objmode`` block that
    runs the call in the interpreter and writes the result into the output array."""
    (x,), (out,) = eqn.inputs, eqn.outputs
    call = eqn.prim.extra["host_call"](**eqn.params)
    operand = L.array(x)
    res = L.new_array(out)
    L.require("import numba")
    L.uses_objmode = True
    L.kernels += 1
    L.comment(f"(NumPy's {eqn.prim.name}, called from compiled code through the interpreter)")
    with L.block("with numba.objmode():"):
        L.emit(f"{res.name}[...] = {call.format(operand.name)}")
    L.bind(out, res)


# ----------------------------------------------------------------------------- collectives

def place_all_sum_operands(L: Lowering, graph):
    """With several processes, an ``all_sum`` sums its operands packed in one buffer. An operand
    this program makes for the sum alone (no other reader, not an output) is written by its
    producer straight into its place in that buffer, so the sum copies nothing in."""
    if communicator.size() == 1:
        return
    from . import collectives  # several processes only: it loads the native sums (shared_memory)
    readers = Counter(a.id for e in graph.eqns for a in e.inputs if isinstance(a, Var))
    readers.update(a.id for a in graph.outputs if isinstance(a, Var))
    made = {o.id for e in graph.eqns for o in e.outputs}
    for u, eqn in enumerate(graph.eqns):
        if eqn.prim is not ops.all_sum or eqn.outputs[0].aval.dtype not in collectives.DTYPES:
            continue
        total, offset = sum(out.aval.size for out in eqn.outputs), 0
        for x in eqn.inputs:
            if isinstance(x, Var) and x.id in made and readers[x.id] == 1:
                L.place_in_pack(x, ("all_sum", u), offset, total, x.aval.dtype)
            offset += x.aval.size


def emit_all_sum(L: Lowering, eqn):
    """One process: the operands themselves (no code). Several: the operands packed in one
    buffer (copied in, unless their producers wrote them there: ``place_all_sum_operands``),
    which is summed in place over the processes by a call back into the communicator
    (``collectives.py``); the outputs are views of it. The number of processes is a constant
    of the program, so its source, and its cache entry, differ between the two."""
    if communicator.size() == 1:
        L.comment("(one process: the sums over processes are the operands)")
        for x, out in zip(eqn.inputs, eqn.outputs):
            L.bind(out, L.lookup(x))
        return
    from . import collectives
    dtype = eqn.outputs[0].aval.dtype
    if dtype not in collectives.DTYPES:
        raise BackendError(f"all_sum: compiled programs sum {[str(d) for d in collectives.DTYPES]} over "
                           f"processes, not {dtype}")
    sizes = [out.aval.size for out in eqn.outputs]
    buffer = L.pack(("all_sum", L.unit), sum(sizes), dtype)
    L.reads(buffer)
    in_place = {x.id: x for x in eqn.inputs if isinstance(x, Var) and L.lookup(x) is L.packed.get(x.id)}
    if in_place:
        L.comment(f"({' '.join(map(L.var_name, in_place.values()))}: written in their places by the equations "
                  "that made them)")
    offset = 0
    for x, n in zip(eqn.inputs, sizes):
        if not isinstance(x, Var) or x.id not in in_place:
            xr = L.ref(x)
            L.kernels += 1
            with L.loops(x.aval.shape) as idx:
                flat = " + ".join(f"{i} * {int(np.prod(x.aval.shape[d + 1:], dtype=np.int64))}"
                                  for d, i in enumerate(idx)) or "0"
                L.emit(f"{buffer.name}[{offset} + {flat}] = {xr.at(idx)}")
        offset += n
    L.require("from tracejit.backend.collectives import all_sum_in_place")
    with L.block(f"if all_sum_in_place({buffer.name}) != 0:"):
        message = f"all_sum: the sum over {communicator.size()} processes failed (its error is printed above){L.where()}"
        L.emit(f"raise RuntimeError({message!r})")
    offset = 0
    for out, n in zip(eqn.outputs, sizes):
        name = L.var_name(out)
        L.emit(f"{name} = {L.reshape_src(f'{buffer.name}[{offset}:{offset + n}]', out.aval.shape)}")
        L.bind(out, ArrayRef(name, out.aval.shape, dtype, buffer.root))
        offset += n


# ----------------------------------------------------------------------------- scans

def _emit_scan_loops(L: Lowering, eqn, first_value, step):
    """A scan along ``axis`` (from the end with ``reverse``): the first place of each line takes
    ``first_value(index)``, every later one ``step(previous value, index)``, in order, as NumPy's
    ``accumulate`` (no reassociation). Along the last axis each line keeps its value in a scalar;
    along another, each row of the trailing axes is computed from the previous row, walking
    memory in order. The lines (the leading axes) are independent and run in parallel."""
    out = eqn.outputs[0]
    axis, reverse = eqn.params["axis"], eqn.params["reverse"]
    shape = out.aval.shape
    n = shape[axis]
    res = L.new_array(out)
    if n == 0:
        L.bind(out, res)
        return
    k = L.fresh("k")
    first, rest, previous = (n - 1, f"range({n - 2}, -1, -1)", f"{k} + 1") if reverse \
        else (0, f"range(1, {n})", f"{k} - 1")
    L.kernels += 1
    with L.loops(shape[:axis], parallel=True) as before:
        if axis == len(shape) - 1:
            acc = L.fresh("acc")
            L.emit(f"{acc} = {first_value(before + [str(first)])}")
            L.emit(f"{res.at(before + [str(first)])} = {acc}")
            with L.block(f"for {k} in {rest}:"):
                L.emit(f"{acc} = {step(acc, before + [k])}")
                L.emit(f"{res.at(before + [k])} = {acc}")
        else:
            with L.loops(shape[axis + 1:], start=axis + 1) as after:
                at = before + [str(first)] + after
                L.emit(f"{res.at(at)} = {first_value(at)}")
            with L.block(f"for {k} in {rest}:"), L.loops(shape[axis + 1:], start=axis + 1) as after:
                L.emit(f"{res.at(before + [k] + after)} = {step(res.at(before + [previous] + after), before + [k] + after)}")
    L.bind(out, res)


def emit_scan(L: Lowering, eqn):
    """Running sums, products and extremes (``cumsum``, ``cumprod``, ``cummax``, ``cummin``): the primitive's ``combine`` of the
    value so far with each element."""
    xr = L.ref(eqn.inputs[0])
    combine = scan_combine_src(L, eqn.prim, eqn.inputs[0].aval.dtype)
    _emit_scan_loops(L, eqn, xr.at, lambda acc, at: combine.format(acc=acc, x=xr.at(at)))


def emit_linear_scan(L: Lowering, eqn):
    """``h[i] = a[i] * h[i-1] + b[i]``, starting from ``b`` at the scan's first place."""
    ar, br = L.ref(eqn.inputs[0]), L.ref(eqn.inputs[1])
    _emit_scan_loops(L, eqn, br.at, lambda acc, at: f"{ar.at(at)} * {acc} + {br.at(at)}")


EMITTERS = {
    ops.broadcast_to: emit_broadcast_to,
    ops.reshape: emit_reshape,
    ops.transpose: emit_transpose,
    ops.slice: emit_slice,
    ops.pad: emit_pad,
    ops.concatenate: emit_concatenate,
    ops.gather: emit_gather,
    ops.scatter_add: emit_scatter_add,
    ops.matmul: emit_matmul,
    ops.windows: emit_windows,
    ops.windows_sum: emit_windows_sum,
    ops.argmax: emit_argmax,
    ops.argmin: emit_argmin,
    fused: emit_fused,
    ops.all_sum: emit_all_sum,
    ops.cumsum: emit_scan,
    ops.cumprod: emit_scan,
    ops.cummax: emit_scan,
    ops.cummin: emit_scan,
    ops.linear_scan: emit_linear_scan,
}


#: Emitters whose code makes no array but through ``Lowering.alloc`` (which memory planning
#: turns into workspace views or arrays passed in) and calls nothing that does, unless they set
#: ``Lowering.uses_runtime``: a program made of these alone can be compiled without Numba's
#: reference-counting runtime (``codegen``).
#: The others (``per_slice`` NumPy routines, host calls, windows) call functions that return
#: new arrays.
ALLOCATION_FREE = frozenset({
    emit_broadcast_to, emit_reshape, emit_transpose, emit_slice, emit_pad, emit_concatenate, emit_gather,
    emit_scatter_add, emit_matmul, emit_argmax, emit_argmin, emit_fused, emit_all_sum, emit_scan,
    emit_linear_scan, emit_elementwise, emit_reduce})


def emitter_for(prim):
    """The function that writes code for ``prim``, or None if the backend cannot."""
    emitter = EMITTERS.get(prim)
    if emitter is not None:
        return emitter
    if prim.kind == "elementwise" and prim.scalar_src is not None:
        return emit_elementwise
    if prim.kind == "reduce" and prim.identity is not None and prim.combine is not None:
        return emit_reduce
    if prim.extra.get("per_slice"):
        return emit_per_slice
    if prim.extra.get("host_call"):
        return emit_host_call
    return None
