"""Fusion: group equations into kernels that run as one loop nest. Graph -> Graph.

Each group becomes one ``fused`` equation whose ``graph`` parameter holds the member
equations (using the same ``Var`` objects, so the text reads in context). A group has a loop
domain ``F`` (a shape) split into ``k`` outer and ``len(F) - k`` inner dimensions:

- *full* values have shape ``F``: elementwise equations on them run in the inner loops;
- *outer* values have shape ``F[:k]`` (or that with trailing 1s, as ``keepdims`` leaves
  them): reductions over the inner dimensions produce them, elementwise equations on them
  run once per outer index, and ``broadcast_to`` turns them back into full values.

So a pure elementwise chain is one group with ``k == len(F)``; ``sum(exp(x - max(x)))`` over
the rows of ``x`` is one group with ``k = 1``: for each row, one inner loop finds the
maximum and the next accumulates the sum (softmax reads each row from memory once).
``broadcast_to`` of values computed outside the group is an index map, never a copy.

Groups are convex: no path leaves a group and comes back into it (checked as groups grow,
in topological order). Matmul, gather, scatter, concatenate, pad, slice, transpose and argmax
stay outside (matmul goes to BLAS). Reductions over leading axes are not fused yet.

*Scalar arguments*: 0-d elementwise equations computed from the graph's inputs and constants
only (``lr`` cast to float32, ``-lr``), and broadcasts of such scalars to a shape, join no
group while groups form; each group that reads one gets its own copy of the chain that
computes it (a few scalar operations the kernel does before its loops), so a step with
Python-scalar arguments has no 0-d kernel of its own, and ``lr * g`` joins the kernel that
makes ``g`` instead of the group its broadcast ``lr`` would otherwise have started. Only what
something else than a group reads (a matrix product, an output) is computed once: the 0-d
chain in a 0-d kernel, a broadcast as the view it is.
"""
from __future__ import annotations

from .. import ops
from ..core import Const, Eqn, Graph, Var
from ..interpret import interpret
from ..primitives import defop

__all__ = ["fuse", "fused"]


def _fused_abstract_eval(*avals, graph, **params):
    return [v.aval for v in graph.outputs]


fused = defop("fused", "opaque",
              impl=lambda *args, graph, **params: tuple(interpret(graph, list(args))),
              abstract_eval=_fused_abstract_eval, differentiable=False, multiple_results=True,
              doc="a fusion group: ``graph`` runs as one kernel (params: graph, domain, outer)")

_MAX_SIBLING_LOOKBACK = 4


def _is_reduction(prim) -> bool:
    """A reduction a kernel can accumulate: one with an identity and a combine rule (argmax and
    argmin, reductions too, have neither)."""
    return prim.kind == "reduce" and prim.identity is not None and prim.combine is not None


def is_index_map(eqn) -> bool:
    """A member that computes nothing: a broadcast or a reshape reads its input through an
    index map (the backend's kernels read it so too)."""
    return eqn.prim is ops.broadcast_to or eqn.prim is ops.reshape


def _is_unit_reshape(eqn) -> bool:
    """A reshape that only adds or removes size-1 dimensions (a pure relabelling)."""
    return eqn.prim is ops.reshape and \
        [d for d in eqn.inputs[0].aval.shape if d != 1] == [d for d in eqn.outputs[0].aval.shape if d != 1]


class _Group:
    def __init__(self, gid, domain, outer):
        self.id = gid
        self.domain = tuple(domain)
        self.outer = outer
        self.members: list[int] = []
        self.level: dict[int, str] = {}  # var id -> "full" | "outer"

    @property
    def outer_shape(self):
        return self.domain[:self.outer]

    def shape_level(self, shape):
        shape = tuple(shape)
        if shape == self.domain:
            return "full"
        if self.outer < len(self.domain) and (
                shape == self.outer_shape or shape == self.outer_shape + (1,) * (len(self.domain) - self.outer)):
            return "outer"
        return None

    def outer_aligned(self, shape) -> bool:
        """Whether broadcasting ``shape`` to the domain (NumPy's rule: trailing axes line up)
        repeats it along the inner axes only. An outer value of shape ``F[:k]`` without the
        trailing 1s lines up with the *last* axes instead (``x - x.sum(axis=1)``)."""
        n = len(self.domain)
        aligned = (1,) * (n - len(shape)) + tuple(shape)
        return aligned == self.outer_shape + (1,) * (n - self.outer)

    def input_level(self, atom):
        """Level of an input: a member's own level, or the level its shape implies."""
        if isinstance(atom, Var) and atom.id in self.level:
            return self.level[atom.id]
        if isinstance(atom, Const) and atom.aval.shape == ():
            return "any"
        return self.shape_level(atom.aval.shape)

    def try_accept(self, eqn):
        """The level of ``eqn``'s output if it can join, else None (and the group is unchanged)."""
        out_shape = eqn.outputs[0].aval.shape
        if eqn.prim.kind == "elementwise":
            level = self.shape_level(out_shape)
            if level and all(self.input_level(a) in (level, "any") for a in eqn.inputs):
                return level
            return None
        if eqn.prim is ops.broadcast_to:
            level = self.shape_level(out_shape)
            src = eqn.inputs[0]
            src_member = isinstance(src, Var) and src.id in self.level
            if level == "full" and not src_member:
                return "full"  # an index map over a value from outside the group
            if level == "full" and self.level[src.id] == "outer" and self.outer_aligned(src.aval.shape):
                return "full"
            if level == "outer" and not src_member:
                return "outer"
            return None
        if _is_unit_reshape(eqn):
            src = eqn.inputs[0]
            if isinstance(src, Var) and src.id in self.level and self.shape_level(out_shape) == self.level[src.id]:
                return self.level[src.id]
            return None
        if _is_reduction(eqn.prim):
            src, axes = eqn.inputs[0], tuple(sorted(eqn.params["axes"]))
            if src.aval.shape != self.domain or self.input_level(src) != "full" or not axes:
                return None
            n = len(self.domain)
            if axes != tuple(range(axes[0], n)):
                return None
            if self.outer == n and not any(lvl == "outer" for lvl in self.level.values()):
                self.outer = axes[0]  # the group gains inner dimensions
            return "outer" if axes[0] == self.outer else None
        return None


def _seed(eqn, gid):
    """A new group started by ``eqn``, or None if it cannot start one."""
    if eqn.prim.kind == "elementwise" or eqn.prim is ops.broadcast_to:
        shape = eqn.outputs[0].aval.shape
        return _Group(gid, shape, len(shape))
    if _is_reduction(eqn.prim):
        src, axes = eqn.inputs[0].aval.shape, tuple(sorted(eqn.params["axes"]))
        if axes and axes == tuple(range(axes[0], len(src))):
            return _Group(gid, src, axes[0])
    return None


def _scalar_arguments(graph: Graph) -> set:
    """Indices of the 0-d elementwise equations whose inputs are graph inputs, constants or
    outputs of such equations, and of the broadcasts of 0-d ones among these (see the module
    docstring)."""
    known = {v.id for v in graph.inputs}
    found = set()
    for i, e in enumerate(graph.eqns):
        if len(e.outputs) != 1 or not all(isinstance(a, Const) and a.aval.shape == () or
                                          isinstance(a, Var) and a.id in known for a in e.inputs):
            continue
        if e.prim.kind == "elementwise" and e.outputs[0].aval.shape == ():
            found.add(i)
            known.add(e.outputs[0].id)
        elif e.prim is ops.broadcast_to and e.inputs[0].aval.shape == ():
            found.add(i)  # nothing is computed from it here: only kernels read a broadcast
    return found


def fuse(graph: Graph) -> Graph:
    eqns = graph.eqns
    producer = {o.id: i for i, e in enumerate(eqns) for o in e.outputs}
    scalar_arguments = _scalar_arguments(graph)
    group_of: dict[int, _Group] = {}
    groups: list[_Group] = []
    deps: list[frozenset] = []  # group ids each equation depends on, transitively
    group_deps: dict[int, set] = {}  # group id -> ids of the groups its members depend on

    for i, eqn in enumerate(eqns):
        if i in scalar_arguments:  # copied into the groups that read it, in _rebuild
            deps.append(frozenset())
            continue
        in_eqns = [producer[a.id] for a in eqn.inputs if isinstance(a, Var) and a.id in producer]
        input_deps = frozenset().union(*(deps[p] for p in in_eqns)) if in_eqns else frozenset()
        chosen = None
        candidates = []
        for p in in_eqns:
            if p in group_of and group_of[p] not in candidates:
                candidates.append(group_of[p])
        candidates += [g for g in reversed(groups[-_MAX_SIBLING_LOOKBACK:]) if g not in candidates]
        for g in candidates:
            # Convexity: an input made outside g by something that depends on g closes a cycle;
            # so does depending on another group that (transitively) depends on g.
            if any(group_of.get(p) is not g and g.id in deps[p] for p in in_eqns):
                continue
            if any(q != g.id and _reaches(group_deps, q, g.id) for q in input_deps):
                continue
            saved_outer = g.outer
            level = g.try_accept(eqn)
            if level is None:
                g.outer = saved_outer
                continue
            chosen = g
            break
        if chosen is None:
            chosen = _seed(eqn, len(groups))
            if chosen is not None:
                level = "outer" if _is_reduction(eqn.prim) else "full"
                groups.append(chosen)
        if chosen is None:
            deps.append(input_deps)
            continue
        chosen.members.append(i)
        group_deps.setdefault(chosen.id, set()).update(q for q in input_deps if q != chosen.id)
        for o in eqn.outputs:
            chosen.level[o.id] = level
        group_of[i] = chosen
        deps.append(input_deps | {chosen.id})

    return _rebuild(graph, groups, group_of, scalar_arguments)


def _reaches(group_deps, start, target) -> bool:
    """Whether group ``start`` depends, directly or through other groups, on ``target``."""
    stack, seen = [start], {start}
    while stack:
        g = stack.pop()
        if g == target:
            return True
        for q in group_deps.get(g, ()):
            if q not in seen:
                seen.add(q)
                stack.append(q)
    return False


def _with_scalar_arguments(members, eqns, scalar_made):
    """``members`` preceded by fresh copies of the scalar-argument equations (``scalar_made``:
    var id -> equation index) they read, directly or through each other, with their inputs
    renamed to the copies' outputs."""
    renamed: dict[int, Var] = {}
    copies = []

    def copy(index):
        e = eqns[index]
        for a in e.inputs:
            if isinstance(a, Var) and a.id in scalar_made and a.id not in renamed:
                copy(scalar_made[a.id])
        out = Var(e.outputs[0].aval)
        renamed[e.outputs[0].id] = out
        copies.append(Eqn(e.prim, [renamed.get(a.id, a) if isinstance(a, Var) else a for a in e.inputs], [out],
                          dict(e.params), e.source))

    for e in members:
        for a in e.inputs:
            if isinstance(a, Var) and a.id in scalar_made and a.id not in renamed:
                copy(scalar_made[a.id])
    if not copies:
        return members
    return copies + [Eqn(e.prim, [renamed.get(a.id, a) if isinstance(a, Var) else a for a in e.inputs],
                         e.outputs, e.params, e.source) for e in members]


def _rebuild(graph, groups, group_of, scalar_arguments):
    eqns = graph.eqns
    # Groups of broadcasts and reshapes only stay views of their inputs, not kernels.
    views_only = {g.id for g in groups if all(is_index_map(eqns[m]) for m in g.members)}
    in_kernel = {i for i, g in group_of.items() if g.id not in views_only}
    # What kernels do not read of the scalar arguments is computed once, in a 0-d group.
    scalar_made = {eqns[i].outputs[0].id: i for i in scalar_arguments}
    needed = {v.id for v in graph.outputs} | {a.id for i, e in enumerate(eqns) if i not in in_kernel
                                              and i not in scalar_arguments for a in e.inputs if isinstance(a, Var)}
    kept = _Group(len(groups), (), 0)
    standalone_broadcasts = set()  # read by something other than a kernel: stays a view
    for i in sorted(scalar_arguments, reverse=True):
        if eqns[i].outputs[0].id in needed:
            if eqns[i].prim is ops.broadcast_to:
                standalone_broadcasts.add(i)
            else:
                kept.members.insert(0, i)
                group_of[i] = kept
            needed.update(a.id for a in eqns[i].inputs if isinstance(a, Var))
    if kept.members:
        groups = groups + [kept]
    # A member's result is a kernel output if anything outside its group reads it.
    made_by = {o.id: group_of[i] for i in group_of for o in eqns[i].outputs}
    read_outside = {v.id for v in graph.outputs}
    for i, eqn in enumerate(eqns):
        if i in scalar_arguments and i not in group_of and i not in standalone_broadcasts:
            continue  # copied into the groups that read it
        for a in eqn.inputs:
            if isinstance(a, Var) and a.id in made_by and group_of.get(i) is not made_by[a.id]:
                if i in in_kernel and a.id in scalar_made:
                    continue  # the reading kernel has its own copy
                read_outside.add(a.id)

    replacement: dict[int, Eqn] = {}  # first member index -> fused equation
    skipped: set[int] = set(scalar_arguments) - standalone_broadcasts
    for g in groups:
        if g.id in views_only:
            continue  # nothing to compute: views stay views
        members = [eqns[m] for m in g.members]
        if g is not kept:
            members = _with_scalar_arguments(members, eqns, scalar_made)
        defined = {o.id for e in members for o in e.outputs}
        inputs, seen = [], set()
        for e in members:
            for a in e.inputs:
                if isinstance(a, Var) and a.id not in defined and a.id not in seen:
                    seen.add(a.id)
                    inputs.append(a)
        outputs = [o for e in members for o in e.outputs if o.id in read_outside]
        if not outputs:
            # Dead code (no DCE ran): nothing reads it, so it is dropped. Left unfused, its
            # members would read scalar arguments that only kernels compute.
            skipped.update(g.members)
            continue
        sub = Graph(inputs, members, outputs)
        # The members keep their own source lines; the kernel as a whole has none.
        fused_eqn = Eqn(fused, list(inputs), list(outputs), {"graph": sub, "domain": g.domain, "outer": g.outer})
        replacement[g.members[-1]] = fused_eqn
        skipped.update(g.members)
    ordered = []
    for i, eqn in enumerate(eqns):
        if i in replacement:
            ordered.append(replacement[i])
        elif i not in skipped:
            ordered.append(eqn)
    return Graph(list(graph.inputs), _topological(ordered, graph.inputs), list(graph.outputs),
                 input_names=graph.input_names)


def _topological(eqns, inputs):
    """Order ``eqns`` so each comes after its inputs' producers, keeping the given order
    where it already works (outside users of a group's early results move after the group)."""
    defined = {v.id for v in inputs}
    pending = list(eqns)
    ordered = []
    while pending:
        progress = []
        for eqn in pending:
            if all(not isinstance(a, Var) or a.id in defined for a in eqn.inputs):
                ordered.append(eqn)
                defined.update(o.id for o in eqn.outputs)
            else:
                progress.append(eqn)
        if len(progress) == len(pending):
            raise AssertionError("fusion produced a cycle")
        pending = progress
    return ordered
