"""Code for fused kernels: one loop nest per ``fused`` equation (see ``transforms/fuse.py``).

Layer: backend. ``emit_fused(L, eqn)`` writes a kernel over the group's domain ``F`` split
into outer dimensions ``F[:k]`` and inner ones ``F[k:]``::

    for o in outer loops:                  # prange over the first when the kernel is large
        ... outer values ready before any inner loop
        for i in inner loops:              # phase 0: full values, reductions accumulate
            ...
        ... reductions finish; outer values that needed them
        for i in inner loops:              # phase 1: full values that needed phase 0's results
            ...

Full values live in local scalars inside an inner loop; a full value needed again in a later
phase is recomputed there (from its inputs) unless it is a kernel output, which is read back.
Nothing between the member equations is ever stored in a temporary array.

Loops are written so LLVM vectorises them: float transcendental functions come from
``vecmath`` (no libm calls in the loop), float sums accumulate through ``radd`` (an ``fadd``
marked ``reassoc``, which lets LLVM split the accumulator into vector lanes -- the result
differs from a sequential sum only by rounding, as NumPy's pairwise sum also does), and
float max/min use LLVM's NaN-propagating ``maximum``/``minimum``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from ..core import Const, Var
from .codegen import _acc_dtype, _elementwise_check, _eqn_comment, dtype_src, elementwise_src, identity_src

__all__ = ["emit_fused", "radd", "fmaximum", "fminimum", "PARALLEL_MIN_SIZE"]

# A kernel whose domain has at least this many elements runs its outer loop on all cores when
# ``parallel=None`` (below it, waking the threads costs more than it saves).
PARALLEL_MIN_SIZE = 1 << 20


@intrinsic
def radd(typingctx, a, b):
    """``a + b`` that LLVM may reassociate (so a sum over a loop vectorises)."""
    def codegen(context, builder, signature, args):
        inst = builder.fadd(args[0], args[1])
        inst.flags = list(inst.flags) + ["reassoc"]
        return inst
    return a(a, b), codegen


def _llvm_binary(name):
    def typer(typingctx, a, b):
        def codegen(context, builder, signature, args):
            ty = context.get_value_type(signature.return_type)
            fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty, ty]))
            return builder.call(fn, args)
        return a(a, b), codegen
    return typer


fmaximum = intrinsic(_llvm_binary("llvm.maximum"))  # NaN-propagating, like np.maximum
fminimum = intrinsic(_llvm_binary("llvm.minimum"))


def _combine(prim, acc_dtype, acc, x):
    kind = np.dtype(acc_dtype).kind
    if prim.name == "reduce_sum":
        return f"radd({acc}, {x})" if kind in "fc" else (f"{acc} or {x}" if kind == "b" else f"{acc} + {x}")
    if kind == "f":
        return f"{'fmaximum' if prim.name == 'reduce_max' else 'fminimum'}({acc}, {x})"
    return prim.combine.format(acc=acc, x=x)


class _Kernel:
    """The analysis of one fused equation: levels, phases and how to read each value."""

    def __init__(self, L, eqn):
        self.L = L
        self.sub = eqn.params["graph"]
        self.domain = tuple(eqn.params["domain"])
        self.k = eqn.params["outer"]
        self.members = self.sub.eqns
        self.made = {o.id: e for e in self.members for o in e.outputs}
        self.outputs = {v.id for v in self.sub.outputs}
        self.level: dict[int, str] = {}
        self.phase: dict[int, int] = {}   # full value: the inner loop it is first needed in
        self.ready: dict[int, int] = {}   # outer value: the inner loop after which it exists
        for e in self.members:
            self._classify(e)

    # -- analysis
    def _in_level(self, atom):
        if isinstance(atom, Var) and atom.id in self.level:
            return self.level[atom.id]
        return "full" if atom.aval.shape == self.domain else "outer"

    def _when(self, atom):
        """(level, phase) of a value: externals are ready before everything."""
        if not (isinstance(atom, Var) and atom.id in self.level):
            return self._in_level(atom), 0
        lvl = self.level[atom.id]
        return lvl, (self.phase[atom.id] if lvl == "full" else self.ready[atom.id])

    def _classify(self, e):
        name = e.prim.name
        out = e.outputs[0]
        ins = [self._when(a) for a in e.inputs if not isinstance(a, Const)]
        if name in ("reduce_sum", "reduce_max", "reduce_min"):
            _, p = ins[0]
            self.level[out.id], self.ready[out.id] = "outer", p + 1
            return
        if name == "broadcast_to":
            lvl = "full" if out.aval.shape == self.domain else "outer"
        elif name == "reshape":
            lvl = ins[0][0]
        else:
            lvl = "full" if any(level == "full" for level, _ in ins) or (
                out.aval.shape == self.domain and self.k == len(self.domain)) else "outer"
        when = max([p for _, p in ins], default=0)
        self.level[out.id] = lvl
        (self.phase if lvl == "full" else self.ready)[out.id] = when

    # -- indices
    def index_for(self, shape, full_idx):
        """Index expressions for a value of ``shape`` at the current loop position."""
        if tuple(shape) == self.domain:
            return list(full_idx)
        o = list(full_idx[:self.k])
        return o[:len(shape)] + ["0"] * max(len(shape) - self.k, 0)


def _unit_map(src_shape, dst_shape, dst_idx):
    """Index into ``src_shape`` for a reshape that only adds/removes size-1 dims."""
    kept = [i for i, d in zip(dst_idx, dst_shape) if d != 1]
    it = iter(kept)
    return ["0" if d == 1 else next(it) for d in src_shape]


def _broadcast_map(src_shape, dst_shape, dst_idx):
    lead = len(dst_shape) - len(src_shape)
    return ["0" if n == 1 else dst_idx[lead + d] for d, n in enumerate(src_shape)]


def emit_fused(L, eqn):
    """Write the kernel for one ``fused`` equation (see the module docstring)."""
    K = _Kernel(L, eqn)
    L.require("from tracejit.backend.kernels import radd, fmaximum, fminimum")
    n, k = len(K.domain), K.k
    L.kernels += 1
    L.fused_ops += len(K.members)
    out_refs = {}
    for v in eqn.outputs:
        out_refs[v.id] = L.new_array(v)
    locals_: dict[int, str] = {}   # value -> local scalar holding it at the current position
    written: set[int] = set()      # full kernel outputs stored by an earlier phase

    def read(atom, idx):
        """Expression for ``atom`` at the index ``idx`` of its own shape."""
        if isinstance(atom, Const):
            return L.ref(atom).at(idx) if atom.aval.shape else L.ref(atom).at(())
        if atom.id in locals_:
            return locals_[atom.id]
        e = K.made.get(atom.id)
        if e is None:  # from outside the kernel
            return L.ref(atom).at(idx)
        src = e.inputs[0]
        if e.prim.name == "broadcast_to":
            return read(src, _broadcast_map(src.aval.shape, atom.aval.shape, idx))
        if e.prim.name == "reshape":
            return read(src, _unit_map(src.aval.shape, atom.aval.shape, idx))
        if atom.id in K.outputs and atom.id in written:
            return out_refs[atom.id].at(idx)
        raise AssertionError(f"kernel value {atom!r} read before it is computed")

    def compute(e, idx_full):
        """Emit ``name = expr`` for an elementwise member at the current position."""
        out = e.outputs[0]
        idx = K.index_for(out.aval.shape, idx_full)
        operands = [read(a, idx) for a in e.inputs]
        L.comment(_eqn_comment(L, e))
        _elementwise_check(L, e, operands)
        name = L.fresh(L.var_name(out) + "_")
        L.emit(f"{name} = {elementwise_src(L, e).format(*operands)}")
        locals_[out.id] = name
        if out.id in K.outputs:
            L.emit(f"{out_refs[out.id].at(idx)} = {name}")

    def closure(targets):
        """Member equations (full level, computed) needed for ``targets``, in order."""
        need, stack = set(), list(targets)
        while stack:
            v = stack.pop()
            e = K.made.get(v)
            if e is None or v in need or v in written:
                continue
            if K.level[v] != "full" or e.prim.kind == "reduce":
                continue
            need.add(v)
            stack += [a.id for a in e.inputs if isinstance(a, Var)]
        return [e for e in K.members if e.outputs[0].id in need and e.prim.kind == "elementwise"]

    reductions = [e for e in K.members if e.prim.kind == "reduce"]
    full_outputs = [v for v in eqn.outputs if K.level[v.id] == "full"]
    n_phases = max([K.ready[e.outputs[0].id] for e in reductions] +
                   [K.phase[v.id] + 1 for v in full_outputs], default=1)
    outer_eqns = [e for e in K.members if K.level[e.outputs[0].id] == "outer" and e.prim.kind == "elementwise"]

    size = int(np.prod(K.domain, dtype=np.int64))
    parallel = L.parallel is True or (L.parallel is None and size >= PARALLEL_MIN_SIZE)
    view_outputs = [v for v in eqn.outputs if K.made[v.id].prim.name in ("broadcast_to", "reshape")]

    def store_views(values, idx_full):
        # A kernel output that is only a view of another value has no loop body of its own.
        for v in values:
            if v in view_outputs:
                idx = K.index_for(v.aval.shape, idx_full)
                L.emit(f"{out_refs[v.id].at(idx)} = {read(v, idx)}")

    # 0-d inputs are read once, before the loops (a parallel loop cannot index them).
    for v in eqn.inputs:
        if isinstance(v, Var) and v.aval.shape == () and v.id not in locals_:
            name = L.fresh(L.var_name(v) + "_")
            L.emit(f"{name} = {L.ref(v).at(())}")
            locals_[v.id] = name

    with _outer_loops(L, K.domain[:k], parallel and k > 0) as o:
        def emit_outer(p):
            for e in outer_eqns:
                if K.ready[e.outputs[0].id] == p and e.outputs[0].id not in locals_:
                    compute(e, o + ["0"] * (n - k))
            store_views([v for v in view_outputs if K.level[v.id] == "outer" and K.ready[v.id] == p],
                        o + ["0"] * (n - k))
        if k == n:
            for e in closure([v.id for v in eqn.outputs]):
                compute(e, o)
            store_views(eqn.outputs, o)
            emit_outer(0)
        else:
            emit_outer(0)
            for p in range(n_phases):
                phase_reds = [e for e in reductions if K.ready[e.outputs[0].id] == p + 1]
                phase_outs = [v for v in full_outputs if K.phase[v.id] == p]
                accs = {}
                for e in phase_reds:
                    acc_dt = _acc_dtype(e.prim, e.outputs[0].aval.dtype)
                    acc = L.fresh("acc")
                    L.emit(f"{acc} = {identity_src(e.prim.identity, acc_dt)}")
                    accs[e.outputs[0].id] = (acc, acc_dt)
                targets = [e.inputs[0].id for e in phase_reds if isinstance(e.inputs[0], Var)] + \
                          [v.id for v in phase_outs]
                saved = dict(locals_)
                with L.loops(K.domain[k:], "j", start=k) as inner:
                    idx_full = o + inner
                    for e in closure(targets):
                        compute(e, idx_full)
                    store_views(phase_outs, idx_full)
                    for e in phase_reds:
                        acc, acc_dt = accs[e.outputs[0].id]
                        x = read(e.inputs[0], idx_full)
                        if np.dtype(acc_dt) != e.inputs[0].aval.dtype:
                            x = f"{dtype_src(acc_dt)}({x})"
                        L.comment(_eqn_comment(L, e))
                        L.emit(f"{acc} = {_combine(e.prim, acc_dt, acc, x)}")
                # inner-loop locals are not visible to later phases: those recompute
                written.update(v.id for v in phase_outs)
                locals_.clear()
                locals_.update(saved)
                for e in phase_reds:
                    out = e.outputs[0]
                    acc, acc_dt = accs[out.id]
                    name = L.fresh(L.var_name(out) + "_")
                    dt = out.aval.dtype
                    L.emit(f"{name} = {dtype_src(dt)}({acc})" if dt != acc_dt else f"{name} = {acc}")
                    locals_[out.id] = name
                    if out.id in K.outputs:
                        L.emit(f"{out_refs[out.id].at(K.index_for(out.aval.shape, o + ['0'] * (n - k)))} = {name}")
                emit_outer(p + 1)
    for v in eqn.outputs:
        L.bind(v, out_refs[v.id])


class _outer_loops:
    """Nested loops over the outer dimensions; the first is a ``prange`` when ``parallel``."""

    def __init__(self, L, shape, parallel):
        self.L, self.shape, self.parallel = L, shape, parallel

    def __enter__(self):
        L = self.L
        self.opened = 0
        idx = []
        for d, size in enumerate(self.shape):
            if size == 1:
                idx.append("0")
                continue
            rng = "prange" if self.parallel and self.opened == 0 else "range"
            L.emit(f"for i{d} in {rng}({int(size)}):")
            L.depth += 1
            self.opened += 1
            idx.append(f"i{d}")
        if self.parallel and self.opened:
            L.uses_prange = True
        return idx

    def __exit__(self, *exc):
        self.L.depth -= self.opened
        return False
