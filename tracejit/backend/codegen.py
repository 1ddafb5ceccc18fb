"""Lowering a ``Graph`` to the source text of a Python function for ``numba.njit``.

Layer: backend, below the transforms. ``lower(graph)`` walks the equations in order and
writes, for each, a comment with its SSA text (and the user's line) followed by the code
that computes it, through a ``lowering.Lowering``:

- elementwise equations become one loop nest over the output shape whose body is the
  primitive's ``scalar_src`` (float exp/log/tanh/... call the branch-free, vectorisable
  functions of ``vecmath`` instead of libm; see ``scalar``);
- reductions (``identity`` + ``combine``) become a loop nest with an accumulator;
- every other primitive is written by its emitter in ``emitters.EMITTERS`` (matmul goes to
  NumPy's BLAS through ``blas.gemm``, or ``np.dot``, narrow products to loops; ``broadcast_to``,
  ``transpose`` and ``slice`` are *views*: they emit no loop, later loops index their input
  through the view's index map; fused kernels are written by ``fused_kernels``).

Shapes are static: every loop bound is a literal. Values are named after their SSA names
(``c``, ``d`` ...), so the code reads like ``str(graph)``. 0-d constants are inlined with
their dtype (``np.float32(2.0)``); constant arrays become extra arguments (``const0`` ...).
A program with more than twice ``PART_KERNELS`` loop nests is split into part functions that
the main one calls in order (Numba's compile time grows faster than the size of a function).

Then the program is assembled: ``memory.plan_memory`` decides which arrays are temporaries and
where in the workspace each lives, the outputs become parameters, and the header, the shape
guard and the part functions are written around the equations' code.

``generate_source`` returns only the text; ``compiler.compile_graph`` turns a ``Lowered``
into a callable.
"""
from __future__ import annotations

import ast
import re
import textwrap

from ..core import Graph, Var, dtype_short
from .emitters import emitter_for
from .lowering import (ArrayRef, BackendError, Lowered, Lowering, Ref, ViewRef, allocation_src, dtype_src,
                       eqn_comment, shape_src)
from .memory import plan_memory

__all__ = ["lower", "generate_source", "PART_KERNELS", "NOGIL_MIN_ELEMENTS", "OUTPUT_ARG_MIN_BYTES"]

# Programs whose inputs and equation results have this many elements in all release the GIL
# (Numba's nogil).
NOGIL_MIN_ELEMENTS = 1 << 14


# Numba's compile time grows faster than linearly with the size of one function (its
# data-flow passes and LLVM's run over the whole body), so a program with more than twice this
# many loop nests is split into part functions of about this many, called in order by the main
# function. Splitting has a cost of its own, the arrays passed between parts: measured on this
# project's machine, a 500-kernel chain compiled in 24 s in parts of 32 or 64 (61 s unsplit,
# 34 s in parts of 128), while Adam steps of MLPs with 52, 69 and 105 kernels compiled in 6,
# 10 and 20 s unsplit, against 8, 13 and 22 s in parts of 32.
PART_KERNELS = 64


def lower(graph: Graph, *, fastmath=False, parallel=None, name="fn", write_back=None) -> Lowered:
    """Generate the program for ``graph`` (see the module docstring).

    ``write_back`` maps output positions to input positions: the program writes those outputs
    into the input arrays (a traced function's in-place updates of its arguments) after
    everything else, instead of returning them."""
    write_back = dict(write_back or {})
    L = Lowering(graph, name, parallel)
    input_ids = {}
    for k, var in enumerate(graph.inputs):
        dtype_src(var.aval.dtype)  # reject unsupported dtypes early
        L.bind(var, ArrayRef(L.var_name(var), var.aval.shape, var.aval.dtype, "input"))
        input_ids.setdefault(var.id, k)

    units = []  # (first line, kernels) of each equation's code, for splitting into parts
    for u, eqn in enumerate(graph.eqns):
        emitter = emitter_for(eqn.prim)
        if emitter is None:
            raise BackendError(f"the Numba backend has no emitter for primitive {eqn.prim.name!r}")
        for v in eqn.outputs:
            dtype_src(v.aval.dtype)
        units.append((len(L.lines), L.kernels))
        L.eqn, L.unit = eqn, u
        L.emit("")
        L.comment(eqn_comment(L, eqn))
        emitter(L, eqn)
    L.eqn, L.unit = None, len(graph.eqns)

    # Outputs: fresh arrays, never an alias of an input or of another output. Outputs that
    # are graph inputs are returned by the runtime as the input object itself.
    units.append((len(L.lines), L.kernels))
    passthrough, returned, roots = {}, [], set()
    started = False
    for pos, atom in enumerate(graph.outputs):
        if isinstance(atom, Var) and atom.id in input_ids:
            passthrough[pos] = input_ids[atom.id]
            continue
        if pos in write_back:
            continue
        ref = L.ref(atom)
        if isinstance(ref, ArrayRef) and ref.root != "input" and ref.root not in roots:
            arr = ref
        else:
            if not started:
                started = True
                L.emit("")
                L.comment("outputs: views, literals and aliases of inputs or other outputs become fresh arrays")
            arr = L.array(atom) if not isinstance(ref, ArrayRef) else ref
            if arr.root == "input" or arr.root in roots:
                name_ = L.fresh("out")
                L.emit(f"{name_} = {arr.name}.copy()")
                L.kernels += 1
                arr = ArrayRef(name_, arr.shape, arr.dtype, name_)
        roots.add(arr.root)
        returned.append(arr.name)
    write_back = {pos: k for pos, k in write_back.items() if pos not in passthrough}
    in_place = {}
    if not any(_reads_inputs(L.ref(graph.outputs[pos])) for pos in write_back):
        for pos, k in write_back.items():
            if _compute_in_place(L, units, graph.outputs[pos], graph.inputs[k]):
                in_place[pos] = k
    for pos, k in write_back.items():
        if pos not in in_place:
            _emit_write_back(L, graph.outputs[pos], graph.inputs[k])
    units.append((len(L.lines), L.kernels))

    plan = plan_memory(L.buffers, [L.lines[a:b] for (a, _), (b, _) in zip(units, units[1:])],
                       _aliases(L), roots)
    workspace = _use_workspace(L, plan)
    output_args = _pass_outputs(L, plan, returned)
    passed = {b.name for b in output_args}
    # The function returns only what it does not write into a passed-in array (copies of views).
    kept = [n for n in returned if n not in passed]
    args = [L.var_name(v) for v in graph.inputs] + [n for n, _ in L.const_values] + workspace + \
        [b.name for b in output_args]
    in_names = graph.input_names or [f"in{k}" for k in range(len(graph.inputs))]
    # A program returns what it does not write into passed-in arrays (copies of views), and an
    # empty tuple when it has no outputs of its own (they are all inputs or written back), as
    # the runtime expects. When every output is passed in, it returns True, after a check of
    # the input shapes that returns False instead: the runtime's shortest call path leaves the
    # check of types to Numba's dispatcher and that of shapes to the program (``Traced``).
    guard = []
    if passed and not kept:
        ret = "return True"
        guard = _shape_guard(L, graph.inputs)
    else:
        ret = "return (" + ", ".join(kept) + ("," if len(kept) == 1 else "") + ")"
    # Only functions with a prange loop are compiled with parallel=True (Numba warns otherwise).
    njit_parallel = L.uses_prange
    # Releasing the GIL costs a call about 50 ns: only calls long enough for other threads to
    # run meanwhile release it.
    nogil = sum(v.aval.size for v in graph.inputs) + sum(
        v.aval.size for eqn in graph.eqns for v in eqn.outputs) >= NOGIL_MIN_ELEMENTS
    if L.uses_prange:
        L.require("from numba import prange")
    header = [
        f"# tracejit: generated program for {name!r}",
        f"# numba.njit(fastmath={bool(fastmath)}, parallel={njit_parallel}, error_model='numpy', nogil={nogil})",
        "import numpy as np",
        *L.imports,
        "",
        "",
        f"def {L.fn_name}({', '.join(args)}):",
    ]
    for v, user_name in zip(graph.inputs, in_names):
        header.append(f"    # input  {L.var_name(v)}:{v.aval.strong()} = {user_name}")
    for n, value in L.const_values:
        dims = ",".join(map(str, value.shape))
        header.append(f"    # const  {n}:{dtype_short(value.dtype)}[{dims}] (constant array)")
    if workspace:
        header.append(f"    # {workspace[0]}: the workspace, {plan.temp_bytes} bytes for the temporaries")
    for k, (start, size) in enumerate(zip(plan.offsets, plan.slots)):
        held = ", ".join(b.name for b in plan.temporaries if plan.slot_of[b.name] == k)
        header.append(f"    #   [{start}:{start + size}] holds {held}")
    chunks = _split(units)
    if len(chunks) == 1:
        body, parts = guard + L.lines + ["", "    " + ret], []
        parallel_functions = [L.fn_name] if L.uses_prange else []
    else:
        body, parts = _parts(L, chunks, args, kept, ret)
        body = guard + body
        parallel_functions = [part for part, (a, b) in zip(parts, chunks)
                              if any("prange(" in line for line in L.lines[a:b])]
    source = "\n".join(header + body) + "\n"
    return Lowered(source=source, fn_name=L.fn_name, n_inputs=len(graph.inputs),
                   in_avals=[v.aval for v in graph.inputs], const_values=[v for _, v in L.const_values],
                   passthrough=passthrough, n_returned=len(returned), kernels=L.kernels, fused_ops=L.fused_ops,
                   workspace_bytes=plan.temp_bytes, write_back=write_back, memory=plan,
                   output_args=[(b.shape, b.dtype) for b in output_args],
                   output_positions=[returned.index(b.name) for b in output_args],
                   flags={"fastmath": bool(fastmath), "parallel": njit_parallel, "nogil": nogil}, parts=parts,
                   parallel_functions=parallel_functions, locations=L.locations)


def _emit_write_back(L: Lowering, atom, target_var):
    """``target[...] = value`` for an argument the traced function updates in place. It runs
    after every other read of the inputs; a value that reads an input itself (``x[...] =
    x[::-1]``, or another argument that may share the same memory) is copied out first."""
    ref = L.ref(atom)
    L.emit("")
    L.comment(f"in-place update of the argument {L.var_name(target_var)}")
    if _reads_inputs(ref):
        ref = L.copy_into(L.fresh("tmp"), ref)
    target = L.ref(target_var)
    L.kernels += 1
    with L.loops(target.shape, parallel=True) as idx:
        L.emit(f"{target.at(idx)} = {ref.at(idx)}")


def _compute_in_place(L: Lowering, units, atom, target_var) -> bool:
    """Let the kernel that computes an argument's new value write it into the argument itself
    (``W -= lr * g`` then makes one pass over ``W``, not two), when the generated code shows
    that this cannot change a result: the kernel stores the value once, at its loop index,
    reading the argument only at that same index earlier in the same loop body; and nothing
    after the kernel reads the argument or the value. Returns whether it did."""
    ref = L.ref(atom)
    buffer = next((b for b in L.buffers if isinstance(ref, ArrayRef) and b.name == ref.name), None)
    target = L.ref(target_var)
    if buffer is None or buffer.init != "empty" or buffer.unit >= len(units) - 1 or \
            (buffer.shape, buffer.dtype) != (target.shape, target.dtype):
        return False
    start, end = units[buffer.unit][0], units[buffer.unit + 1][0]
    names = {buffer.name, target.name} | _aliases(L).get(buffer.name, set())
    mentions = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    if any(mentions.search(line.split("#", 1)[0]) for line in L.lines[end:]):
        return False
    body = [line.split("#", 1)[0] for line in L.lines[start:end]]
    # A kernel may read and write through flat views (``a_c0 = reshaped(a, (12,))``): each
    # name stands for (array, view shape).
    views = {buffer.name: (buffer.name, None), target.name: (target.name, None)}
    for i, line in enumerate(body):
        m = re.match(r"\s*(\w+) = reshaped\((\w+), (\(.*\))\)\s*$", line)
        if m and m.group(2) in views:
            views[m.group(1)] = (views[m.group(2)][0], m.group(3))
            body[i] = ""
    word = re.compile(r"\b(" + "|".join(map(re.escape, views)) + r")\b(?:\[([^\]]*)\])?")
    stores = [(i, views[m.group(1)][1], m.group(2)) for i, line in enumerate(body)
              for m in [word.match(line.lstrip())] if m and m.group(2) is not None
              and views[m.group(1)][0] == buffer.name and line.lstrip()[m.end():].startswith(" = ")]
    if len(stores) != 1:
        return False
    at, shape, index = stores[0]
    loop_start = max((i for i in range(at) if body[i].lstrip().startswith("for ")), default=-1)
    for i, line in enumerate(body):
        for m in word.finditer(line):
            if views[m.group(1)][0] == target.name and \
                    ((views[m.group(1)][1], m.group(2)) != (shape, index) or not loop_start < i < at):
                return False
    L.lines[buffer.line] = L.lines[buffer.line].split("=", 1)[0] + f"= {target.name}  # computed in place"
    L.buffers.remove(buffer)
    return True


def _reads_inputs(ref: Ref) -> bool:
    while isinstance(ref, ViewRef):
        ref = ref.base
    return isinstance(ref, ArrayRef) and ref.root == "input"


def _aliases(L: Lowering) -> dict:
    """``{array: other names of its memory}``: the reshapes bound to graph values."""
    aliases = {}
    for ref in L.refs.values():
        if isinstance(ref, ArrayRef) and ref.root not in ("input", ref.name):
            aliases.setdefault(ref.root, set()).add(ref.name)
    return aliases


# Outputs at least this large are recycled by the runtime once the caller has dropped them: a
# fresh array of this size costs more in page faults (one per 4 KB touched) than the runtime's
# bookkeeping; smaller ones are new arrays on every call.
OUTPUT_ARG_MIN_BYTES = 1 << 18


def _pass_outputs(L: Lowering, plan, returned) -> list:
    """Turn the allocation of each output the program returns under its own name into a
    parameter; the Buffers concerned. The runtime passes the arrays in (new or recycled, see
    ``compiler.Outputs``), and the function returns nothing for them: handing an array back
    from compiled code costs more than making it in NumPy and passing it in. In the order of
    ``returned``."""
    passed = sorted((b for b in plan.outputs if b.name in returned), key=lambda b: returned.index(b.name))
    for b in passed:
        recycled = " (recycled once the caller has dropped it)" if b.nbytes >= OUTPUT_ARG_MIN_BYTES else ""
        _rewrite_allocation(L, b, f"# {b.name}: an output array passed in{recycled}")
    return passed


def _use_workspace(L: Lowering, plan) -> list:
    """Rewrite each temporary's allocation into an array over its workspace slot; the name of
    the workspace argument (none without temporaries)."""
    if not plan.temporaries:
        return []
    ws = L.unique("ws")
    L.require("from tracejit.backend.intrinsics import workspace_array")
    offsets = plan.offsets
    for b in plan.temporaries:
        start = offsets[plan.slot_of[b.name]]
        _rewrite_allocation(L, b, f"{b.name} = workspace_array({ws}, {start}, {shape_src(b.shape)}, "
                                  f"{dtype_src(b.dtype)})")
    return [ws]


def _rewrite_allocation(L: Lowering, b, first_line: str):
    """Replace ``b``'s allocation (an entry of ``L.lines``) by ``first_line`` at the same
    indentation, with its zero or fill loops."""
    line = L.lines[b.line]
    indent = line[:len(line) - len(line.lstrip())]
    L.lines[b.line] = "\n".join(indent + text for text in allocation_src(b, first_line, L.fresh))


def _split(units):
    """Group consecutive equations into chunks of about ``PART_KERNELS`` loop nests (one chunk
    for at most twice that many): a list of (first line, end line) ranges of ``Lowering.lines``."""
    if units[-1][1] - units[0][1] <= 2 * PART_KERNELS:
        return [(units[0][0], units[-1][0])]
    chunks, first, first_kernels = [], units[0][0], units[0][1]
    for (line, kernels), (end, end_kernels) in zip(units, units[1:]):
        if end_kernels - first_kernels > PART_KERNELS and line > first:
            chunks.append((first, line))
            first, first_kernels = line, kernels
    chunks.append((first, units[-1][0]))
    return chunks


def _names(lines):
    """(names assigned, names read but not assigned) by a block of generated statements.
    Names a block both assigns and reads (loop indices, accumulators) are its own: every
    generated block assigns such a name before reading it."""
    tree = ast.parse(textwrap.dedent("\n".join(lines)) or "pass")
    stored, loaded = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                stored.append(node.id)
            else:
                loaded.add(node.id)
    return list(dict.fromkeys(stored)), loaded - set(stored)


def _shape_guard(L: Lowering, inputs) -> list:
    """Lines returning False from the program when an input's shape is not the traced one."""
    checks = [f"shape_is({L.var_name(v)}, {tuple(v.aval.shape)})" for v in inputs if v.aval.shape]
    if not checks:
        return []
    L.require("from tracejit.backend.intrinsics import shape_is")
    return ["    # called with other shapes: False tells the caller to look for the program compiled for them",
            "    if not (" + "\n            and ".join(checks) + "):",
            "        return False"]


def _parts(L: Lowering, chunks, args, returned, ret):
    """The main function calls one part function per chunk; each part takes the arrays it
    reads that earlier parts (or the arguments) made, and returns those later code reads."""
    blocks = [L.lines[a:b] for a, b in chunks]
    info = [_names(block) for block in blocks]
    part_names = [L.unique(f"{L.fn_name}_part{k + 1}") for k in range(len(blocks))]
    available = list(args)
    params, results = [], []
    for k, (stored, loaded) in enumerate(info):
        params.append([n for n in available if n in loaded])
        later = set(returned).union(*(info[j][1] for j in range(k + 1, len(info))))
        results.append([n for n in stored if n in later and n not in available])
        available += results[-1]
    body = []
    for part, ps, rs in zip(part_names, params, results):
        call = f"{part}({', '.join(ps)})"
        body.append(f"    {', '.join(rs)}{',' if len(rs) == 1 else ''} = {call}" if rs else f"    {call}")
    body += ["    " + ret]
    for k, (part, ps, rs, block) in enumerate(zip(part_names, params, results, blocks)):
        body += ["", "", f"def {part}({', '.join(ps)}):",
                 f"    # part {k + 1} of {len(blocks)} of {L.fn_name}"] + block
        body += ["", f"    return ({', '.join(rs)}{',' if len(rs) == 1 else ''})"]
    return body, part_names


def generate_source(graph: Graph, *, fastmath=False, parallel=None, name="fn", write_back=None) -> str:
    """The generated Numba source for ``graph`` (what ``compile_graph`` compiles)."""
    return lower(graph, fastmath=fastmath, parallel=parallel, name=name, write_back=write_back).source
