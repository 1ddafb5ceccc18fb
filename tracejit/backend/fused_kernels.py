"""The emitter of fused kernels: one loop nest per ``fused`` equation (see ``transforms/fuse.py``).

Layer: backend. ``emit_fused(L, eqn)`` writes a kernel over the group's domain ``F`` split
into outer dimensions ``F[:k]`` and inner ones ``F[k:]``::

    for o in outer loops:                  # the first on all threads when the kernel is large
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
float max/min use LLVM's NaN-propagating ``maximum``/``minimum``. A float32 sum adds blocks
of ``SUM_BLOCK`` elements in float32 lanes and the block sums in float64 (see
``SUM_BLOCK``). Every kernel asks LLVM for 512-bit vectors
(``vecmath.prefer_vector_width_512``), in the outlined body of a ``prange`` loop too.

Loops over short dimensions vectorise poorly (an innermost loop of 10 iterations leaves a
16-lane vector loop nothing to do), so trailing dimensions are *collapsed* where that cannot
change what is read: when every array the loops read or write along a trailing block of the
loop dimensions (the inner ones, or all of them for an elementwise kernel) is C-contiguous and
indexed by exactly those loop indices on its last axes -- or not indexed by them at all, like
0-d values and per-row values in an inner loop -- the block runs as one loop over its product,
reading and writing views of the arrays with those axes merged (``reshaped``). ``W - lr * gW``
over (784, 10) becomes one loop over 7840; ``x - x.max(axis=1, keepdims=True)`` keeps its two
loops (the per-row maximum varies along the rows), and so does anything read through a
broadcast, transpose or slice along the block. See ``_find_collapse``.

A kernel with reductions over short rows that cannot be collapsed (a softmax over (128, 10):
the per-row maximum varies along the rows) runs with its loops turned inside out when its
inner loops cover at most ``SHORT_ROW_MAX`` elements and it has at least as many rows: each
phase loops over the inner dimensions outside and over the rows inside, so LLVM vectorises
across rows, and the per-row values a later loop reads (accumulators, the row maximum) are
kept in small arrays over the rows in the workspace. See ``_emit_rows_innermost``.

Outputs of ``HUGE_PAGE_MIN_BYTES`` or more are marked for transparent huge pages before the
kernel first writes them (``advise_huge_pages``), as NumPy does for its own allocations: a
fresh 64 MB array otherwise takes 16384 page faults, which cost more than computing it.
"""
from __future__ import annotations

import sys

import numba
import numpy as np

from .. import ops
from ..core import Const, Var
from ..transforms.fuse import is_index_map
from .lowering import ArrayRef, ViewRef, dtype_src, eqn_comment, identity_src
from .scalar import (NanFlag, acc_dtype, combine_src, convert_src, elementwise_check, elementwise_src, nan_flagged,
                     nonpositive_values)

__all__ = ["emit_fused", "PARALLEL_MIN_SIZE", "SUM_BLOCK", "SHORT_ROW_MAX", "HUGE_PAGE_MIN_BYTES"]

# A kernel whose domain has at least this many elements runs its outer loop on all cores when
# ``parallel=None`` (below it, waking the threads costs more than it saves), unless Numba has a
# single thread (``NUMBA_NUM_THREADS=1``): a ``prange`` loop on one thread ran the 1M-element
# chain 1.5x slower than the plain loop.
PARALLEL_MIN_SIZE = 1 << 20

# A float32 sum accumulates blocks of this many elements in float32 (LLVM keeps 16 lanes, so
# each lane adds at most 16 elements, as each of the 8 accumulators of NumPy's pairwise sum
# over its 128-element blocks does) and adds the block sums in float64. Converting every
# element to float64 instead halves the vector width of the loop and, with a transcendental
# function in the body, can stop LLVM vectorising it at all.
SUM_BLOCK = 256

# A kernel with reductions whose inner loops cover at most this many elements, over at least
# as many rows, runs with the rows innermost (see ``emit_fused``): an inner loop this short
# leaves a 16-lane vector loop nothing to do.
SHORT_ROW_MAX = 16

# NumPy asks for transparent huge pages from this size on (its default allocator); so do we.
HUGE_PAGE_MIN_BYTES = 1 << 22


def _accumulate_src(L, e, acc, acc_dt, x):
    """``acc = acc (+, max, ...) x`` for the reduction ``e``, converting ``x`` to the
    accumulator's dtype where they differ."""
    return f"{acc} = {combine_src(L, e.prim, acc_dt, acc, convert_src(x, e.inputs[0].aval.dtype, acc_dt))}"


def _sums_in_blocks(e) -> bool:
    """Whether the reduction ``e`` widens float32 to a float64 accumulator: it then adds
    blocks of ``SUM_BLOCK`` elements in float32 first (see ``SUM_BLOCK``)."""
    return e.inputs[0].aval.dtype == np.float32 and acc_dtype(e.prim, np.float32) == np.float64


class _Kernel:
    """The analysis of one fused equation: levels, phases and how to read each value."""

    def __init__(self, L, eqn):
        self.L = L
        self.sub = eqn.params["graph"]
        self.domain = tuple(eqn.params["domain"])
        self.k = eqn.params["outer"]
        self.members = self.sub.eqns
        self.made = {o.id: e for e in self.members for o in e.outputs}
        self.nonpositive = nonpositive_values(self.members)
        self.outputs = {v.id for v in self.sub.outputs}
        self.level: dict[int, str] = {}
        self.phase: dict[int, int] = {}   # full value: the inner loop it is first needed in
        self.ready: dict[int, int] = {}   # outer value: the inner loop after which it exists
        for e in self.members:
            self._classify(e)
        self.reductions = [e for e in self.members if e.prim.kind == "reduce"]
        self.full_outputs = [v for v in eqn.outputs if self.level[v.id] == "full"]
        self.n_phases = max([self.ready[e.outputs[0].id] for e in self.reductions] +
                            [self.phase[v.id] + 1 for v in self.full_outputs], default=1)
        self.outer_eqns = [e for e in self.members
                           if self.level[e.outputs[0].id] == "outer" and e.prim.kind == "elementwise"]
        # kernel outputs that are only views of other values: no loop body of their own
        self.view_outputs = [v for v in eqn.outputs if is_index_map(self.made[v.id])]

    def phase_work(self, p):
        """What inner-loop phase ``p`` does: the reductions it finishes, the full kernel outputs
        it stores, and the ids of the values its loop body must compute for them."""
        reds = [e for e in self.reductions if self.ready[e.outputs[0].id] == p + 1]
        outs = [v for v in self.full_outputs if self.phase[v.id] == p]
        targets = [e.inputs[0].id for e in reds if isinstance(e.inputs[0], Var)] + [v.id for v in outs]
        return reds, outs, targets

    def outer_views(self, p):
        """The view outputs at the outer level that exist after phase ``p``."""
        return [v for v in self.view_outputs if self.level[v.id] == "outer" and self.ready[v.id] == p]

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
        out = e.outputs[0]
        ins = [self._when(a) for a in e.inputs if not isinstance(a, Const)]
        if e.prim.kind == "reduce":
            p = ins[0][1] if ins else 0  # the sum of a constant (the passes left it) is ready at once
            self.level[out.id], self.ready[out.id] = "outer", p + 1
            return
        if e.prim is ops.broadcast_to:
            lvl = "full" if out.aval.shape == self.domain else "outer"
        elif e.prim is ops.reshape:
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


def _resolve(ref, idx):
    """The array (or literal) that reading ``ref`` at ``idx`` reads, and the index into it."""
    idx = list(idx)
    while isinstance(ref, ViewRef):
        idx = list(ref.index_map(idx))
        ref = ref.base
    return ref, idx


class _Collapse:
    """The loops over the trailing dimensions ``domain[c:]`` of a kernel, run as one loop over
    their product. While the kernel is analysed and written, the index of each collapsed
    dimension is a marker (never valid code); an access whose index holds markers is rewritten
    into a read of a view of the array with those axes merged (``access``)."""

    def __init__(self, domain, c):
        self.c = c
        self.shape = tuple(domain[c:])
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.markers = [f"<collapsed {d}>" if n != 1 else "0" for d, n in enumerate(self.shape, c)]
        self.live = [m for m in self.markers if m != "0"]
        self.index = None  # the collapsed loop's variable, once the loop is written
        self.views: dict = {}  # (array name, first merged axis) -> (view name, view shape)

    def split(self, ref, idx):
        """``(array, index, p)`` for an access that follows the collapsed loop (the array's
        axes ``p:`` are the collapsed dimensions, in order, plus size-1 axes read at 0),
        ``(ref, idx, None)`` for one that does not depend on it, or None for one that cannot
        be collapsed (a broadcast, transpose or slice along the collapsed dimensions)."""
        if not any(m in i for i in idx for m in self.live):
            return ref, idx, None
        base, bidx = _resolve(ref, idx)
        if not isinstance(base, ArrayRef):
            return None
        hits = [p for p, i in enumerate(bidx) if any(m in i for m in self.live)]
        if not hits:  # a view maps the collapsed indices away (e.g. a gather of one row): keep the loops
            return None
        p = hits[0]
        got = [(i, n) for i, n in zip(bidx[p:], base.shape[p:]) if not (i == "0" and n == 1)]
        want = [(m, n) for m, n in zip(self.markers, self.shape) if n != 1]
        return (base, bidx, p) if got == want else None

    def access(self, L, ref, idx):
        """The expression that reads (or is assigned) ``ref`` at ``idx`` in the collapsed loop."""
        base, bidx, p = self.split(ref, idx)
        if p is None:
            return ref.at(idx)
        name, _ = self.views[(base.name, p)]
        return f"{name}[{', '.join(bidx[:p] + [self.index])}]"

    def add_view(self, L, ref, idx):
        base, bidx, p = self.split(ref, idx)
        if p is not None and (base.name, p) not in self.views:
            self.views[(base.name, p)] = (L.fresh(base.name + "_c"), base.shape[:p] + (self.size,))


def _unit_map(src_shape, dst_shape, dst_idx):
    """Index into ``src_shape`` for a reshape that only adds/removes size-1 dims."""
    kept = [i for i, d in zip(dst_idx, dst_shape) if d != 1]
    it = iter(kept)
    return ["0" if d == 1 else next(it) for d in src_shape]


def _broadcast_map(src_shape, dst_shape, dst_idx):
    lead = len(dst_shape) - len(src_shape)
    return ["0" if n == 1 else dst_idx[lead + d] for d, n in enumerate(src_shape)]


def _find_collapse(L, K, eqn, out_refs):
    """The largest trailing block of the kernel's loop dimensions (the inner ones, or all of
    them when it has no inner loops) of at least two non-unit dimensions that can run as one
    loop: every array the loops read or write along those dimensions is C-contiguous and
    indexed by them, in order, on its last axes (an ``ArrayRef`` always is C-contiguous, see
    ``compiler``); values constant along them are fine. None if there is no such block."""
    n, k = len(K.domain), K.k

    def accesses(idx_full):
        """Every (ref, index) the kernel's loops read or write, as ``emit_fused``'s ``read``
        and stores reach them (values computed in the loop are locals, not accesses)."""
        found = []

        def walk(atom, idx):
            if isinstance(atom, Const) or K.made.get(atom.id) is None:
                if atom.aval.shape:  # 0-d values are literals or read before the loops
                    found.append((L.lookup(atom), idx))
                return
            e = K.made[atom.id]
            src = e.inputs[0]
            if e.prim is ops.broadcast_to:
                walk(src, _broadcast_map(src.aval.shape, atom.aval.shape, idx))
            elif e.prim is ops.reshape:
                walk(src, _unit_map(src.aval.shape, atom.aval.shape, idx))
            elif atom.id in K.outputs:  # a kernel output a later phase reads back
                found.append((out_refs[atom.id], idx))

        for e in K.members:
            if is_index_map(e):
                continue  # index maps: walked from their readers
            idx = idx_full if e.prim.kind == "reduce" else K.index_for(e.outputs[0].aval.shape, idx_full)
            for a in e.inputs:
                walk(a, idx)
        for v in eqn.outputs:
            idx = K.index_for(v.aval.shape, idx_full)
            walk(v, idx)
            found.append((out_refs[v.id], idx))
        return found

    first = k if k < n else 0
    for c in range(first, n - 1):
        if sum(d != 1 for d in K.domain[c:]) < 2:
            break
        collapse = _Collapse(K.domain, c)
        found = accesses([f"i{d}" for d in range(c)] + collapse.markers)
        if all(collapse.split(ref, idx) is not None for ref, idx in found):
            for ref, idx in found:
                collapse.add_view(L, ref, idx)
            return collapse
    return None


class _Accesses:
    """Where a kernel reads the arrays from outside it and stores its outputs: (index, loop
    body, order) of each access. ``record`` tells the lowering which outputs the kernel stores
    element by element (``Lowering.store_elementwise``), for in-place updates."""

    def __init__(self, L):
        self.L, self.reads, self.stores, self.order = L, [], {}, 0

    def _when(self, idx):
        self.order += 1
        return list(idx), self.L.loop_bodies, self.order

    def read(self, ref, idx):
        self.reads.append((ref, *self._when(idx)))
        return ref

    def store(self, v_id, idx):
        self.stores.setdefault(v_id, []).append(self._when(idx))

    def record(self, K, outputs, out_refs):
        for v in outputs:
            stores = self.stores.get(v.id, [])
            if tuple(v.aval.shape) != K.domain or len(stores) != 1:
                continue
            (idx, body, when), = stores
            same = [ref for ref, r_idx, r_body, r_when in self.reads if (r_idx, r_body) == (idx, body) and r_when < when]
            other = [ref for ref, r_idx, r_body, r_when in self.reads
                     if not ((r_idx, r_body) == (idx, body) and r_when < when)]
            self.L.store_elementwise(out_refs[v.id], same, other)


def emit_fused(L, eqn):
    """Write the kernel for one ``fused`` equation (see the module docstring)."""
    K = _Kernel(L, eqn)
    first_line = len(L.lines)
    L.require("from tracejit.backend.intrinsics import radd, fmaximum, fminimum")
    n, k = len(K.domain), K.k
    L.kernels += 1
    L.fused_ops += len(K.members)
    out_refs = {}
    for v in eqn.outputs:
        out_refs[v.id] = L.new_array(v)
    if sys.platform.startswith("linux"):
        for v in eqn.outputs:
            if v.aval.size * v.aval.dtype.itemsize >= HUGE_PAGE_MIN_BYTES:
                L.require("from tracejit.backend.intrinsics import advise_huge_pages")
                L.emit(f"advise_huge_pages({out_refs[v.id].name})  # before the first write: 2 MB page faults")
    locals_: dict[int, str] = {}   # value -> local scalar holding it at the current position
    written: set[int] = set()      # full kernel outputs stored by an earlier phase
    collapse = _find_collapse(L, K, eqn, out_refs)
    accesses = _Accesses(L)

    def at(ref, idx):
        """``ref`` read (or assigned) at ``idx``, through a merged view in a collapsed loop."""
        return collapse.access(L, ref, idx) if collapse is not None else ref.at(idx)

    def read(atom, idx):
        """Expression for ``atom`` at the index ``idx`` of its own shape."""
        if isinstance(atom, Const):
            return at(accesses.read(L.ref(atom), idx), idx) if atom.aval.shape else L.ref(atom).at(())
        if atom.id in locals_:
            return locals_[atom.id]
        e = K.made.get(atom.id)
        if e is None:  # from outside the kernel
            return at(accesses.read(L.ref(atom), idx), idx)
        src = e.inputs[0]
        if e.prim is ops.broadcast_to:
            return read(src, _broadcast_map(src.aval.shape, atom.aval.shape, idx))
        if e.prim is ops.reshape:
            return read(src, _unit_map(src.aval.shape, atom.aval.shape, idx))
        if atom.id in K.outputs and atom.id in written:
            return at(out_refs[atom.id], idx)
        raise AssertionError(f"kernel value {atom!r} read before it is computed")

    def compute(e, idx_full):
        """Emit ``name = expr`` for an elementwise member at the current position."""
        out = e.outputs[0]
        idx = K.index_for(out.aval.shape, idx_full)
        operands = [read(a, idx) for a in e.inputs]
        L.comment(eqn_comment(L, e))
        elementwise_check(L, e, operands)
        name = L.fresh(L.var_name(out) + "_")
        nonpositive = isinstance(e.inputs[0], Var) and e.inputs[0].id in K.nonpositive if e.inputs else False
        L.emit(f"{name} = {elementwise_src(L, e, nonpositive).format(*operands)}")
        locals_[out.id] = name
        if out.id in K.outputs:
            accesses.store(out.id, idx)
            L.emit(f"{at(out_refs[out.id], idx)} = {name}")

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

    size = int(np.prod(K.domain, dtype=np.int64))
    parallel = L.parallel is True or (L.parallel is None and size >= PARALLEL_MIN_SIZE
                                      and numba.config.NUMBA_NUM_THREADS > 1)

    def store_views(values, idx_full):
        for v in values:
            if v in K.view_outputs:
                idx = K.index_for(v.aval.shape, idx_full)
                value = read(v, idx)
                accesses.store(v.id, idx)
                L.emit(f"{at(out_refs[v.id], idx)} = {value}")

    # 0-d inputs are read once, before the loops (a parallel loop cannot index them), and the
    # scalar arguments the group computes from them (``fuse``'s copies) are computed there too.
    for v in eqn.inputs:
        if isinstance(v, Var) and v.aval.shape == () and v.id not in locals_:
            name = L.fresh(L.var_name(v) + "_")
            L.emit(f"{name} = {accesses.read(L.ref(v), ()).at(())}")
            locals_[v.id] = name
    if n:
        for e in K.members:
            out = e.outputs[0]
            if e.prim.kind == "elementwise" and out.aval.shape == () and out.id not in K.outputs and all(
                    isinstance(a, Const) and a.aval.shape == () or isinstance(a, Var) and a.id in locals_
                    for a in e.inputs):
                compute(e, [])

    outer_shape, inner_shape = K.domain[:k], K.domain[k:]
    if collapse is not None:
        dims = "x".join(map(str, collapse.shape))
        L.comment(f"loops over {dims} collapsed into one over {collapse.size}: every array read or written "
                  f"along them is C-contiguous with them as its last axes")
        for (base, _), (name, shape) in collapse.views.items():
            L.emit(f"{name} = {L.reshape_src(base, shape)}")
        if k < n:
            inner_shape = K.domain[k:collapse.c] + (collapse.size,)
        else:
            outer_shape = K.domain[:collapse.c] + (collapse.size,)

    def expand(loop_idx):
        # the collapsed loop's indices -> indices over the domain (markers for the merged dims)
        if collapse is None:
            return list(loop_idx)
        collapse.index = loop_idx[-1]
        return list(loop_idx[:-1]) + collapse.markers

    L.require("from tracejit.backend import vecmath as _vm")
    wide = "_vm.prefer_vector_width_512()  # LLVM may use 512-bit vectors in these loops"
    n_rows, row_size = int(np.prod(outer_shape, dtype=np.int64)), int(np.prod(inner_shape, dtype=np.int64))
    if collapse is None and 0 < k < n and not parallel and row_size <= SHORT_ROW_MAX <= n_rows:
        L.emit(wide)
        _emit_rows_innermost(L, K, outer_shape, inner_shape, out_refs, locals_, written, compute, read, closure,
                             store_views, accesses)
        accesses.record(K, eqn.outputs, out_refs)
        for v in eqn.outputs:
            L.bind(v, out_refs[v.id])
        return
    outer_parallel = parallel and k > 0 and any(d != 1 for d in outer_shape)
    if not outer_parallel:
        L.emit(wide)
    # The prange body becomes a function of its own: it asks for wide vectors too.
    with _outer_loops(L, outer_shape, parallel and k > 0, first=wide, row_size=row_size) as o:
        o = expand(o) if k == n else o

        def emit_outer(p):
            for e in K.outer_eqns:
                if K.ready[e.outputs[0].id] == p and e.outputs[0].id not in locals_:
                    compute(e, o + ["0"] * (n - k))
            store_views(K.outer_views(p), o + ["0"] * (n - k))
        if k == n:
            for e in closure([v.id for v in eqn.outputs]):
                compute(e, o)
            store_views(eqn.outputs, o)
            emit_outer(0)
        else:
            emit_outer(0)
            for p in range(K.n_phases):
                phase_reds, phase_outs, targets = K.phase_work(p)
                accs, blocks, nan_flags = {}, {}, {}
                for e in phase_reds:
                    acc_dt = acc_dtype(e.prim, e.outputs[0].aval.dtype)
                    acc = L.fresh("acc")
                    L.emit(f"{acc} = {identity_src(e.prim.identity, acc_dt)}")
                    accs[e.outputs[0].id] = (acc, acc_dt)
                    if _sums_in_blocks(e):
                        blocks[e.outputs[0].id] = L.fresh("part")
                    if nan_flagged(e.prim, acc_dt):
                        flag = nan_flags[e.outputs[0].id] = NanFlag(L, e.prim, acc_dt, acc)
                        L.emit(flag.start)
                saved = dict(locals_)
                block_start = [f"{part} = np.float32(0.0)" for part in blocks.values()]
                block_end = [f"{accs[v][0]} = {accs[v][0]} + np.float64({part})" for v, part in blocks.items()]
                with _inner_loops(L, inner_shape, k, block_start, block_end) as inner:
                    idx_full = o + expand(inner)
                    for e in closure(targets):
                        compute(e, idx_full)
                    store_views(phase_outs, idx_full)
                    for e in phase_reds:
                        acc, acc_dt = accs[e.outputs[0].id]
                        x = read(e.inputs[0], idx_full)
                        L.comment(eqn_comment(L, e))
                        part = blocks.get(e.outputs[0].id)
                        flag = nan_flags.get(e.outputs[0].id)
                        if part is not None:
                            L.emit(f"{part} = {combine_src(L, e.prim, np.float32, part, x)}")
                        elif flag is not None:
                            for line in flag.combine(x):
                                L.emit(line)
                        else:
                            L.emit(_accumulate_src(L, e, acc, acc_dt, x))
                # inner-loop locals are not visible to later phases: those recompute
                written.update(v.id for v in phase_outs)
                locals_.clear()
                locals_.update(saved)
                for e in phase_reds:
                    out = e.outputs[0]
                    acc, acc_dt = accs[out.id]
                    if out.id in nan_flags:
                        L.emit(nan_flags[out.id].finish)
                    name = L.fresh(L.var_name(out) + "_")
                    dt = out.aval.dtype
                    L.emit(f"{name} = {dtype_src(dt)}({acc})" if dt != acc_dt else f"{name} = {acc}")
                    locals_[out.id] = name
                    if out.id in K.outputs:
                        idx = K.index_for(out.aval.shape, o + ['0'] * (n - k))
                        accesses.store(out.id, idx)
                        L.emit(f"{out_refs[out.id].at(idx)} = {name}")
                emit_outer(p + 1)
    if collapse is not None and any("<collapsed " in line for line in L.lines[first_line:] if isinstance(line, str)):
        raise AssertionError("a collapsed dimension's marker was written into the kernel's code")
    accesses.record(K, eqn.outputs, out_refs)
    for v in eqn.outputs:
        L.bind(v, out_refs[v.id])


def _emit_rows_innermost(L, K, outer_shape, inner_shape, out_refs, locals_, written, compute, read, closure,
                         store_views, accesses):
    """``emit_fused``'s loops turned inside out for short rows: every phase loops over the
    inner dimensions outside and over the rows inside, so LLVM vectorises across rows (a
    softmax over (128, 10) runs 16 rows per vector instead of one scalar row at a time).
    Per-row values (reduction accumulators, values computed once per row) live in small
    arrays over the rows, read at the row index in the loops that follow."""
    n, k = len(K.domain), K.k
    zeros = ["0"] * (n - k)
    readers: dict[int, list] = {}
    for e in K.members:
        for a in e.inputs:
            if isinstance(a, Var):
                readers.setdefault(a.id, []).append(e)

    def read_later(v_id, this_pass):
        """Whether a member outside ``this_pass`` (ids computed in the same row loop) reads
        the value, directly or through a broadcast or reshape of it."""
        for e in readers.get(v_id, []):
            out = e.outputs[0].id
            if is_index_map(e):
                if read_later(out, this_pass):
                    return True
            elif out not in this_pass:
                return True
        return False

    def row_array(prefix, dtype):
        return L.alloc(L.fresh(prefix), outer_shape, dtype)

    def row_pass(finished, p):
        """One loop over the rows: the reductions in ``finished`` end, then the per-row values
        ready after phase ``p`` are computed; each is kept in a row array for later loops."""
        todo = [e for e in K.outer_eqns if K.ready[e.outputs[0].id] == p and e.outputs[0].id not in locals_]
        views = K.outer_views(p)
        values = [e.outputs[0] for e, _ in finished] + [e.outputs[0] for e in todo]
        if not values and not views:
            return
        this_pass = {v.id for v in values}
        keep = {v.id: row_array(L.var_name(v) + "_rows", v.aval.dtype) for v in values
                if v.id not in K.outputs and read_later(v.id, this_pass)}
        with _outer_loops(L, outer_shape, False) as o:
            for e, acc in finished:
                out = e.outputs[0]
                name = L.fresh(L.var_name(out) + "_")
                L.emit(f"{name} = {dtype_src(out.aval.dtype)}({acc.at(o)})")
                locals_[out.id] = name
                if out.id in K.outputs:
                    idx = K.index_for(out.aval.shape, o + zeros)
                    accesses.store(out.id, idx)
                    L.emit(f"{out_refs[out.id].at(idx)} = {name}")
            for e in todo:
                compute(e, o + zeros)
            store_views(views, o + zeros)
            for v in values:
                if v.id in keep:
                    L.emit(f"{keep[v.id].at(o)} = {locals_[v.id]}")
        for v in values:
            if v.id in keep:
                locals_[v.id] = keep[v.id].at(o)
            elif v.id in K.outputs:
                locals_[v.id] = out_refs[v.id].at(K.index_for(v.aval.shape, o + zeros))
            else:
                del locals_[v.id]  # read by nothing after this loop

    def row_acc_dtype(e):
        # A float32 sum adds its (at most SHORT_ROW_MAX) terms in float32, as one block of the
        # long-row kernels does.
        if _sums_in_blocks(e):
            return np.float32
        return acc_dtype(e.prim, e.outputs[0].aval.dtype)

    row_pass([], 0)
    for p in range(K.n_phases):
        phase_reds, phase_outs, targets = K.phase_work(p)
        accs = {e.outputs[0].id: row_array("acc", row_acc_dtype(e)) for e in phase_reds}
        if phase_reds:
            with _outer_loops(L, outer_shape, False) as o:
                for e in phase_reds:
                    acc = accs[e.outputs[0].id]
                    L.emit(f"{acc.at(o)} = {identity_src(e.prim.identity, acc.dtype)}")
        saved = dict(locals_)
        with _inner_loops(L, inner_shape, k, [], []) as inner:
            with _outer_loops(L, outer_shape, False) as o:
                idx_full = o + inner
                for e in closure(targets):
                    compute(e, idx_full)
                store_views(phase_outs, idx_full)
                for e in phase_reds:
                    acc = accs[e.outputs[0].id]
                    x = read(e.inputs[0], idx_full)
                    L.comment(eqn_comment(L, e))
                    L.emit(_accumulate_src(L, e, acc.at(o), acc.dtype, x))
        written.update(v.id for v in phase_outs)
        locals_.clear()
        locals_.update(saved)
        row_pass([(e, accs[e.outputs[0].id]) for e in phase_reds], p + 1)


class _inner_loops:
    """Nested loops over the inner dimensions. With ``block_start``/``block_end`` lines (the
    float32 sums' partial accumulators), the last loop runs in blocks of ``SUM_BLOCK``:
    ``block_start`` is written before each block and ``block_end`` after it."""

    def __init__(self, L, shape, start, block_start, block_end):
        self.L, self.shape, self.start = L, tuple(shape), start
        self.block_start, self.block_end = block_start, block_end

    def __enter__(self):
        L = self.L
        self.opened = 0
        idx = []
        last = max([d for d, n in enumerate(self.shape) if n != 1], default=None)
        for d, n in enumerate(self.shape):
            name = f"j{self.start + d}"
            if d == last and self.block_start:
                if n > SUM_BLOCK:
                    L.emit(f"for {name}b in range(0, {int(n)}, {SUM_BLOCK}):")
                    L.depth += 1
                    self.opened += 1
                for line in self.block_start:
                    L.emit(line)
                self.block_depth = L.depth
                rng = f"{name}b, min({name}b + {SUM_BLOCK}, {int(n)})" if n > SUM_BLOCK else f"{int(n)}"
                L.emit(f"for {name} in range({rng}):")
            elif n == 1:
                idx.append("0")
                continue
            else:
                L.emit(f"for {name} in range({int(n)}):")
            L.depth += 1
            self.opened += 1
            idx.append(name)
        if last is None and self.block_start:  # a single element: one block without a loop
            for line in self.block_start:
                L.emit(line)
            self.block_depth = L.depth
        L.loop_bodies += 1
        return idx

    def __exit__(self, *exc):
        L = self.L
        if self.block_start:
            closed = L.depth - self.block_depth
            L.depth = self.block_depth
            for line in self.block_end:
                L.emit(line)
            L.depth -= self.opened - closed
        else:
            L.depth -= self.opened
        return False


class _outer_loops:
    """Nested loops over the outer dimensions; the first runs on all threads when ``parallel``
    (``Lowering.parallel_loop``), its body starting with the statement ``first``; ``row_size``:
    the elements the inner loops cover for each outer index (the work the blocks share out)."""

    def __init__(self, L, shape, parallel, first=None, row_size=1):
        self.L, self.shape, self.parallel, self.first = L, shape, parallel, first
        self.row_size = row_size  # elements the inner loops cover per outer index

    def __enter__(self):
        idx, self.levels = self.L.open_loops(self.shape, parallel=self.parallel, first=self.first,
                                             row_size=self.row_size)
        return idx

    def __exit__(self, *exc):
        self.L.depth -= self.levels
        return False
