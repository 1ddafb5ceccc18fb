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
the main one calls in order (Numba's compile time grows faster than the size of a function); in
one of more than ``PARALLEL_APART_MIN_KERNELS`` the steps with a ``prange`` loop are parts of
their own, the only functions compiled with ``parallel=True``.

Then the program is assembled from the lowering's records (``lowering.Step``: what each
equation's code allocates, reads and defines), never from its text: ``memory.plan_memory``
decides which arrays are temporaries and where in the workspace each lives, each allocation
placeholder is written as a new array, a view of a workspace slot, an output passed in or an
argument computed in place, and the header, the shape guard and the part functions (whose
parameters and results are the arrays the records say cross them) are written around the
equations' code.

``generate_source`` returns only the text; ``compiler.compile_graph`` turns a ``Lowered``
into a callable.
"""
from __future__ import annotations

from .. import communicator
from ..core import Graph, Var, dtype_short
from .emitters import ALLOCATION_FREE, emitter_for, place_all_sum_operands
from .lowering import (Allocation, ArrayRef, BackendError, Lowered, Lowering, Ref, ViewRef, dtype_src, eqn_comment,
                       shape_src)
from .memory import plan_memory

__all__ = ["lower", "generate_source", "PART_KERNELS", "PARALLEL_APART_MIN_KERNELS", "NOGIL_MIN_ELEMENTS",
           "OUTPUT_ARG_MIN_BYTES"]

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

# A program with more loop nests than this, and a ``prange`` loop among them, compiles the steps
# with one as parts of their own, the only functions compiled with ``parallel=True``: Numba's
# parfor passes analyse the whole function they are given. The LeNet SGD step (61 loop nests,
# five of them parallel: conv1's layer and its gradient, 1.15M elements each) compiled in 26.0 s
# instead of 33.0 s and ran at the same speed (64.5 ms against 65.0 ms, interleaved in one
# process); the gradient of softmax cross-entropy over (4096, 1000) (a handful of loop nests)
# compiled 0.4 s slower in parts.
PARALLEL_APART_MIN_KERNELS = 16


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
        L.arguments.add(L.var_name(var))
        input_ids.setdefault(var.id, k)

    place_all_sum_operands(L, graph)
    for u, eqn in enumerate(graph.eqns):
        emitter = emitter_for(eqn.prim)
        if emitter is None:
            raise BackendError(f"the Numba backend has no emitter for primitive {eqn.prim.name!r}")
        for v in eqn.outputs:
            dtype_src(v.aval.dtype)
        L.begin_step(eqn, u)
        L.emit("")
        L.comment(eqn_comment(L, eqn))
        emitter(L, eqn)

    # Outputs: fresh arrays, never an alias of an input or of another output. Outputs that
    # are graph inputs are returned by the runtime as the input object itself.
    L.begin_step(None, len(graph.eqns))
    passthrough, returned, roots = {}, [], set()
    started = False
    for pos, atom in enumerate(graph.outputs):
        if isinstance(atom, Var) and atom.id in input_ids:
            passthrough[pos] = input_ids[atom.id]
            continue
        if pos in write_back:
            continue
        ref = L.lookup(atom)
        if isinstance(ref, ArrayRef) and ref.root != "input" and ref.root not in roots:
            arr = ref  # returned as it is: no code reads it
        else:
            if not started:
                started = True
                L.emit("")
                L.comment("outputs: views, literals and aliases of inputs or other outputs become fresh arrays")
            arr = L.array(atom) if not isinstance(ref, ArrayRef) else ref
            if arr.root == "input" or arr.root in roots:
                name_ = L.fresh("out")
                L.reads(arr)
                L.emit(f"{name_} = {arr.name}.copy()")
                L.define(name_)
                L.kernels += 1
                arr = ArrayRef(name_, arr.shape, arr.dtype, name_)
        roots.add(arr.root)
        returned.append(arr.name)
    write_back = {pos: k for pos, k in write_back.items() if pos not in passthrough}
    in_place = {}
    if not any(_reads_inputs(L.lookup(graph.outputs[pos])) for pos in write_back):
        for pos, k in write_back.items():
            if _compute_in_place(L, graph.outputs[pos], graph.inputs[k]):
                in_place[pos] = k
    for pos, k in write_back.items():
        if pos not in in_place:
            _emit_write_back(L, graph.outputs[pos], graph.inputs[k])

    _share_sum_pack(L, roots)
    plan = plan_memory(L.buffers, [step.reads for step in L.steps], _aliases(L), roots)
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
    chunks = _split(L.steps, L.kernels)
    # Only functions with a prange loop are compiled with parallel=True (Numba warns otherwise);
    # in a program of parts, those are parts.
    njit_parallel = L.uses_prange and len(chunks) == 1
    # Releasing the GIL costs a call about 50 ns: only calls long enough for other threads to
    # run meanwhile release it. A program that calls back into the interpreter (an objmode
    # block) keeps it: Numba warns that such code cannot run in parallel despite nogil.
    nogil = not L.uses_objmode and sum(v.aval.size for v in graph.inputs) + sum(
        v.aval.size for eqn in graph.eqns for v in eqn.outputs) >= NOGIL_MIN_ELEMENTS
    if L.uses_prange:
        L.require("from numba import prange")
    # Numba's runtime counts the references of every array a function makes, views included
    # (calls at each one, and a pass to prune them). A program that makes no array itself (its
    # temporaries in the workspace, its outputs passed in, nothing returned) is compiled
    # without it: the softmax-regression step's cold compile takes 50-60 ms less. Parallel
    # loops are scheduled through arrays of the runtime's, and an objmode block needs it.
    allocated = {b.name for b in plan.temporaries} | passed
    nrt = bool(kept) or len(chunks) > 1 or L.uses_prange or L.uses_objmode or L.uses_runtime or \
        any(b.name not in allocated for b in L.buffers) or \
        any(emitter_for(eqn.prim) not in ALLOCATION_FREE for eqn in graph.eqns)
    header = [
        f"# tracejit: generated program for {name!r}",
        f"# numba.njit(fastmath={bool(fastmath)}, parallel={njit_parallel}, error_model='numpy', nogil={nogil}"
        f"{'' if nrt else ', _nrt=False'})",
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
    if len(chunks) == 1:
        body, parts = guard + _text(L.lines) + ["", "    " + ret], []
        parallel_functions = [L.fn_name] if L.uses_prange else []
    else:
        body, parts = _parts(L, chunks, args, kept, ret)
        body = guard + body
        parallel_functions = [part for part, chunk in zip(parts, chunks) if any(step.parallel for step in chunk)]
    source = "\n".join(header + body) + "\n"
    bounds = [step.first_line for step in L.steps] + [len(L.lines)]
    for step, a, b in zip(L.steps, bounds, bounds[1:]):
        step.code = "\n".join(_text(L.lines[a:b]))
    return Lowered(source=source, fn_name=L.fn_name, n_inputs=len(graph.inputs),
                   in_avals=[v.aval for v in graph.inputs], const_values=[v for _, v in L.const_values],
                   passthrough=passthrough, n_returned=len(returned), kernels=L.kernels, fused_ops=L.fused_ops,
                   workspace_bytes=plan.temp_bytes, write_back=write_back, memory=plan,
                   output_args=[(b.shape, b.dtype) for b in output_args],
                   output_positions=[returned.index(b.name) for b in output_args],
                   flags={"fastmath": bool(fastmath), "parallel": njit_parallel, "nogil": nogil, "nrt": nrt}, parts=parts,
                   parallel_functions=parallel_functions, locations=L.locations, steps=L.steps)


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


def _compute_in_place(L: Lowering, atom, target_var) -> bool:
    """Let the kernel that computes an argument's new value write it into the argument itself
    (``W -= lr * g`` then makes one pass over ``W``, not two), when the steps' records show
    that this cannot change a result: the step stores each element of the value once, reading
    the argument only at that element earlier in the same iteration (``Step.elementwise``), and
    no later step reads the argument or the value. Returns whether it did."""
    ref = L.lookup(atom)
    allocation = L.allocations.get(ref.name) if isinstance(ref, ArrayRef) else None
    target = L.lookup(target_var)
    if allocation is None or allocation.buffer not in L.buffers:
        return False
    buffer = allocation.buffer
    if buffer.init != "empty" or buffer.unit >= len(L.steps) - 1 or \
            (buffer.shape, buffer.dtype) != (target.shape, target.dtype):
        return False
    step = L.steps[buffer.unit]
    same_element = step.elementwise.get(buffer.name)
    if same_element is None or (target.name in step.reads and target.name not in same_element):
        return False
    names = {buffer.name, target.name} | _aliases(L).get(buffer.name, set())
    if any(names.intersection(later.reads) for later in L.steps[buffer.unit + 1:]):
        return False
    allocation.first_line = f"{buffer.name} = {target.name}  # computed in place"
    step.reads.setdefault(target.name, None)
    L.buffers.remove(buffer)
    return True


def _share_sum_pack(L: Lowering, roots):
    """Make the buffer of the program's one ``all_sum`` in this process's shared segment, when
    sums of its size go through shared memory (``communicator.shared_sums_possible``): the sum
    then copies nothing in or out. Not when the program returns it (or a view of it): the next
    sum overwrites the segment. A program with several sums keeps its own buffers, since they
    would all be the same segment."""
    if len(L.packs) != 1 or not communicator.shared_sums_possible():
        return
    (ref,) = L.packs.values()
    allocation = L.allocations[ref.name]
    buffer = allocation.buffer
    if buffer.nbytes < communicator.SHARED_SUM_MIN_BYTES or ref.root in roots or buffer not in L.buffers:
        return
    L.require("from tracejit.backend.collectives import shared_segment_address")
    L.require("from tracejit.backend.intrinsics import array_at")
    address = f"{buffer.name}_address"
    message = f"all_sum: the shared memory for the sum could not be made (its error is printed above){L.where()}"
    allocation.first_line = "\n".join([
        f"{address} = shared_segment_address({buffer.nbytes})  # this process's shared segment, "
        "which the other processes read",
        f"if {address} == 0:",
        f"    raise RuntimeError({message!r})",
        f"{buffer.name} = array_at({address}, {shape_src(buffer.shape)}, {dtype_src(buffer.dtype)})"])
    L.buffers.remove(buffer)


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
        L.allocations[b.name].first_line = f"# {b.name}: an output array passed in{recycled}"
        step = L.steps[b.unit]  # the array is a parameter: the step reads it rather than making it
        step.defines.remove(b.name)
        step.reads.setdefault(b.name, None)
    return passed


def _use_workspace(L: Lowering, plan) -> list:
    """Make each temporary's allocation an array over its workspace slot; the name of the
    workspace argument (none without temporaries)."""
    if not plan.temporaries:
        return []
    ws = L.unique("ws")
    L.require("from tracejit.backend.intrinsics import workspace_array")
    offsets = plan.offsets
    for b in plan.temporaries:
        start = offsets[plan.slot_of[b.name]]
        L.allocations[b.name].first_line = (f"{b.name} = workspace_array({ws}, {start}, {shape_src(b.shape)}, "
                                            f"{dtype_src(b.dtype)})")
        L.steps[b.unit].reads.setdefault(ws, None)
    return [ws]


def _text(lines) -> list[str]:
    """``Lowering.lines`` with each allocation written out."""
    return [line.lines() if isinstance(line, Allocation) else line for line in lines]


def _split(steps, kernels):
    """Group consecutive steps into chunks (a list of lists of steps); ``kernels`` is the
    program's number of loop nests. In a program of more than ``PARALLEL_APART_MIN_KERNELS``,
    each run of steps with a ``prange`` loop is a chunk of its own; the other steps form chunks
    of about ``PART_KERNELS`` loop nests (one chunk for at most twice that many)."""
    if kernels <= PARALLEL_APART_MIN_KERNELS or not any(step.parallel for step in steps):
        return _split_by_size(steps, kernels)
    runs, run = [], [steps[0]]
    for step in steps[1:]:
        # a step that starts on its run's first line cannot begin a chunk of its own
        if step.parallel != run[0].parallel and step.first_line > run[0].first_line:
            runs.append(run)
            run = [step]
        else:
            run.append(step)
    runs.append(run)
    ends = [run[0].kernels for run in runs[1:]] + [kernels]
    return [chunk for run, end in zip(runs, ends)
            for chunk in ([run] if any(step.parallel for step in run) else _split_by_size(run, end))]


def _split_by_size(steps, end):
    """``steps``, whose loop nests end at number ``end``, in chunks of about ``PART_KERNELS``."""
    if end - steps[0].kernels <= 2 * PART_KERNELS:
        return [steps]
    chunks, first = [], 0
    ends = [step.kernels for step in steps[1:]] + [end]
    for k in range(1, len(steps)):
        if ends[k] - steps[first].kernels > PART_KERNELS and steps[k].first_line > steps[first].first_line:
            chunks.append(steps[first:k])
            first = k
    chunks.append(steps[first:])
    return chunks


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
    """The main function calls one part function per chunk of steps; each part takes the
    arrays its steps read that earlier parts (or the arguments) made, and returns those later
    code reads."""
    bounds = [chunk[0].first_line for chunk in chunks] + [len(L.lines)]
    blocks = [_text(L.lines[a:b]) for a, b in zip(bounds, bounds[1:])]
    defined = [[n for step in chunk for n in step.defines] for chunk in chunks]
    read = [{n for step in chunk for n in step.reads} - set(names) for chunk, names in zip(chunks, defined)]
    part_names = [L.unique(f"{L.fn_name}_part{k + 1}") for k in range(len(blocks))]
    available = list(args)
    params, results = [], []
    for k in range(len(chunks)):
        params.append([n for n in available if n in read[k]])
        later = set(returned).union(*read[k + 1:])
        results.append([n for n in defined[k] if n in later and n not in available])
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
