"""The native half of sums through shared memory: what runs at every step, without Python.

Layer: base, beside ``communicator`` (of tracejit it imports only ``settings``, for the disk
cache's folder; else NumPy and llvmlite). In: the address, size and element kind of a buffer
that a process sums with the other processes of its machine, and ``TABLE``, which
``communicator.SharedSums`` fills in Python (this process's rank, the control block and the
segments of every process). Out: the buffer summed in place, or what the processes agreed
instead.

Every large sum (``TABLE[MIN_BYTES]`` bytes or more) of every process, once the processes have
agreed to share memory (``TABLE[READY]``), goes through ``sum_in_place``, whether a compiled
program calls it directly (``tracejit_shared_sum``, a symbol registered with LLVM) or Python does
(``communicator.all_sum_in_place``, through ctypes, which lets the GIL go meanwhile), so that the
processes always meet in the same protocol:

    flag[r] = 2 if the buffer is r's segment and r has mapped every other segment of its size,
              1 if it is r's segment only, else 0
    arrive (phase 2s+1); wait for every process
    agreed = min(flag), or 0 if the processes' sizes or element kinds differ
    if agreed == 2: add slice r of every process's segment, in rank order, into all of them
    arrive (phase 2s+2); wait for every process; return agreed

When the processes agree on 1 or 0, Python goes on (``SharedSums.sum_in_place``): it maps the
segments and sums again, or sums through MPI's allreduce. Waiting spins on the other processes'
counters (each process writes only its own control block, with release stores, and reads the
others' with acquire loads), yielding the core after a while for machines with more processes
than cores. Against the same sum run by Python between two MPI barriers, this saves about 0.1 ms
per step of the MNIST MLP with two processes (README, "Data parallelism").

The code is LLVM IR, built below with llvmlite, each function under the pseudo-code it
implements, and compiled for this CPU when this module is first imported on a machine (0.12 s;
its object code is then kept in the disk cache and loads in about 0.01 s). Written with Numba,
loading even its cached code refreshed Numba's target first, which added 0.1 s to the first call
of the data-parallel example.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from . import settings

__all__ = ["TABLE", "READY", "RANK", "SIZE", "MIN_BYTES", "CALLS", "NANOSECONDS", "BYTES",
           "MAX_PROCESSES", "SIZE_CLASSES", "control_slot", "segment_slot", "size_class", "element_kind",
           "sum_in_place", "segment_address"]

#: Processes of one machine that can share sums; more use MPI's allreduce.
MAX_PROCESSES = 64
#: Segments come in sizes of 2**k bytes, k < SIZE_CLASSES.
SIZE_CLASSES = 48
_SMALLEST_CLASS = 16

# TABLE's words. CALLS, NANOSECONDS and BYTES count the sums done here (``communicator.stats``).
READY, RANK, SIZE, MIN_BYTES, SCRATCH, CALLS, NANOSECONDS, BYTES = range(8)
_CONTROL = 8                                  # + q: the address of process q's control block
_SEGMENTS = _CONTROL + MAX_PROCESSES          # + k * MAX_PROCESSES + q: q's segment of class k

#: What the native code knows of the processes; written by ``communicator.SharedSums`` only.
TABLE = np.zeros(_SEGMENTS + SIZE_CLASSES * MAX_PROCESSES, np.int64)

# A control block (one cache line) holds words: the count of phases the process has arrived at,
# its flag, and the size and element kind of its sum (processes that disagree on them go to MPI,
# whose allreduce reports the mismatch).
_ARRIVED, _FLAG, _NBYTES, _KIND = range(4)

# The slice of more than two processes is added up in chunks that stay in the first-level cache,
# in a private scratch array: adding into a segment that is also an operand would keep LLVM from
# vectorising the loop.
_CHUNK = 2048
_scratch = np.zeros(_CHUNK, np.float64)
TABLE[SCRATCH] = _scratch.ctypes.data
_SPINS_BEFORE_YIELDING = 1_000


def control_slot(q: int) -> int:
    """TABLE's word holding the address of process ``q``'s control block."""
    return _CONTROL + q


def segment_slot(k: int, q: int) -> int:
    """TABLE's word holding the address of process ``q``'s segment of size class ``k`` (0: none)."""
    return _SEGMENTS + k * MAX_PROCESSES + q


def size_class(nbytes: int) -> int:
    """The smallest k with 2**k >= nbytes (at least 16): segments come in these sizes."""
    return max(int(nbytes - 1).bit_length(), _SMALLEST_CLASS)


# Element kinds of the native sum: floating-point numbers (complex numbers are pairs of them), the
# gradients of training. Integer sums go through MPI: each kind compiled here adds about 0.05 s to
# the module's import.
_KIND_TYPES = (ir.FloatType(), ir.DoubleType())
_KINDS = {np.dtype(np.float32): 0, np.dtype(np.complex64): 0, np.dtype(np.float64): 1, np.dtype(np.complex128): 1}


def element_kind(dtype) -> int:
    """The native sum's element kind of ``dtype``, -1 for one it does not add."""
    return _KINDS.get(np.dtype(dtype), -1)


# ----------------------------------------------------------------------------- the native code

_I32, _I64 = ir.IntType(32), ir.IntType(64)


class _Builder(ir.IRBuilder):
    """An IR builder with the few shapes this code takes: words at addresses, loops, branches."""

    def int(self, value):
        return ir.Constant(_I64, value)

    def pointer(self, address, element=_I64):
        return self.inttoptr(address, element.as_pointer())

    def word(self, base, index):
        """The address of word ``index`` of the int64 array at pointer ``base``."""
        return self.gep(base, [index if isinstance(index, ir.Value) else self.int(index)], inbounds=True)

    def read(self, base, index):
        return self.load(self.word(base, index))

    def variable(self, value):
        """A mutable local, set to ``value`` here; its slot sits in the entry block, where LLVM
        turns it into a register."""
        with self.goto_entry_block():
            slot = self.alloca(value.type)
        self.store(value, slot)
        return slot

    @contextlib.contextmanager
    def loop(self, start, stop, step=1):
        """``for i in range(start, stop, step)``; yields i."""
        start, stop = (v if isinstance(v, ir.Value) else self.int(v) for v in (start, stop))
        before, head = self.block, self.append_basic_block("loop")
        body, after = self.append_basic_block("body"), self.append_basic_block("done")
        self.branch(head)
        self.position_at_end(head)
        i = self.phi(_I64)
        i.add_incoming(start, before)
        self.cbranch(self.icmp_signed("<", i, stop), body, after)
        self.position_at_end(body)
        yield i
        i.add_incoming(self.add(i, self.int(step)), self.block)
        self.branch(head)
        self.position_at_end(after)

    def min(self, a, b):
        return self.select(self.icmp_signed("<", a, b), a, b)

    def segment_word(self, table, k, q):
        """The address of TABLE[segment_slot(k, q)]: process q's segment of class k."""
        return self.word(table, self.add(self.int(_SEGMENTS), self.add(self.mul(k, self.int(MAX_PROCESSES)), q)))

    def control_block(self, table, q):
        """A pointer to process q's control block (TABLE[control_slot(q)])."""
        return self.pointer(self.read(table, self.add(self.int(_CONTROL), q)))


def _declare(module, name, result, arguments):
    """The external function ``name`` (a C function or an LLVM intrinsic), declared once."""
    return module.globals.get(name) or ir.Function(module, ir.FunctionType(result, arguments), name)


def _function(module, name, result, arguments, internal=True):
    fn = ir.Function(module, ir.FunctionType(result, arguments), name)
    if internal:
        fn.linkage = "internal"
    builder = _Builder(fn.append_basic_block("entry"))
    return fn, builder


def _add_slice(module, kind):
    """add_slice(table, k, rank, size, count): slice ``rank`` of the first ``count`` elements of
    every process's segment of class ``k``: their sum, in rank order, written into all of them."""
    element = _KIND_TYPES[kind]
    fn, b = _function(module, f"add_slice_{kind}", ir.VoidType(), [_I64.as_pointer()] + [_I64] * 4)
    table, k, rank, size, count = fn.args
    lo = b.sdiv(b.mul(count, rank), size)
    hi = b.sdiv(b.mul(count, b.add(rank, b.int(1))), size)

    def segment(q, offset):   # &segment_q[offset]
        return b.gep(b.pointer(b.load(b.segment_word(table, k, q)), element), [offset], inbounds=True)

    with b.if_else(b.icmp_signed("==", size, b.int(2))) as (two, more):
        with two:   # one pass: each element read once and written into both segments
            first, second = segment(b.int(0), lo), segment(b.int(1), lo)
            with b.loop(0, b.sub(hi, lo)) as i:
                x, y = b.gep(first, [i], inbounds=True), b.gep(second, [i], inbounds=True)
                total = b.fadd(b.load(x), b.load(y))
                b.store(total, x)
                b.store(total, y)
        with more:  # in chunks: scratch = s0 + s1 (+ s2 ...), then copied into every segment
            scratch = b.pointer(b.read(table, SCRATCH), element)
            with b.loop(lo, hi, _CHUNK) as start:
                n = b.min(b.int(_CHUNK), b.sub(hi, start))
                first, second = segment(b.int(0), start), segment(b.int(1), start)
                with b.loop(0, n) as i:
                    b.store(b.fadd(b.load(b.gep(first, [i])), b.load(b.gep(second, [i]))), b.gep(scratch, [i]))
                with b.loop(2, size) as q:
                    other = segment(q, start)
                    with b.loop(0, n) as i:
                        b.store(b.fadd(b.load(b.gep(scratch, [i])), b.load(b.gep(other, [i]))), b.gep(scratch, [i]))
                with b.loop(0, size) as q:
                    other = segment(q, start)
                    with b.loop(0, n) as i:
                        b.store(b.load(b.gep(scratch, [i])), b.gep(other, [i]))
    b.ret_void()
    return fn


def _arrive_and_wait(module, table):
    """arrive_and_wait(phase): write ``phase`` to this process's count, then wait until every
    process's count has reached it, pausing while it spins and yielding the core after a while."""
    fn, b = _function(module, "arrive_and_wait", ir.VoidType(), [_I64])
    (phase,) = fn.args
    sched_yield = _declare(module, "sched_yield", _I32, [])
    own = b.control_block(table, b.read(table, RANK))
    b.store_atomic(phase, b.word(own, _ARRIVED), "release", 8)
    with b.loop(0, b.read(table, SIZE)) as q:
        arrived = b.word(b.control_block(table, q), _ARRIVED)
        spins = b.variable(b.int(0))
        check, spin, done = (b.append_basic_block(name) for name in ("check", "spin", "arrived"))
        b.branch(check)
        b.position_at_end(check)
        b.cbranch(b.icmp_signed("<", b.load_atomic(arrived, "acquire", 8), phase), spin, done)
        b.position_at_end(spin)
        count = b.add(b.load(spins), b.int(1))
        b.store(count, spins)
        if platform.machine().lower() in ("x86_64", "amd64"):
            b.call(_declare(module, "llvm.x86.sse2.pause", ir.VoidType(), []), [])
        with b.if_then(b.icmp_signed(">", count, b.int(_SPINS_BEFORE_YIELDING)), likely=False):
            b.call(sched_yield, [])
        b.branch(check)
        b.position_at_end(done)
    b.ret_void()
    return fn


def _clock(module):
    """now(): CLOCK_MONOTONIC in nanoseconds (Linux's clock id; shared sums run on Linux only)."""
    fn, b = _function(module, "now", _I64, [])
    timespec = ir.LiteralStructType([_I64, _I64])
    clock_gettime = _declare(module, "clock_gettime", _I32, [_I32, timespec.as_pointer()])
    now = b.alloca(timespec)
    b.call(clock_gettime, [ir.Constant(_I32, 1), now])
    seconds = b.load(b.gep(now, [ir.Constant(_I32, 0), ir.Constant(_I32, 0)]))
    nanoseconds = b.load(b.gep(now, [ir.Constant(_I32, 0), ir.Constant(_I32, 1)]))
    b.ret(b.add(b.mul(seconds, b.int(1_000_000_000)), nanoseconds))
    return fn


def _size_class_of(b, nbytes):
    """k = max(bit_length(nbytes - 1), 16), as ``size_class``."""
    ctlz = _declare(b.module, "llvm.ctlz.i64", _I64, [_I64, ir.IntType(1)])
    bits = b.sub(b.int(64), b.call(ctlz, [b.sub(nbytes, b.int(1)), ir.Constant(ir.IntType(1), 0)]))
    return b.select(b.icmp_signed("<", bits, b.int(_SMALLEST_CLASS)), b.int(_SMALLEST_CLASS), bits)


def _sum_in_place(module, table):
    """sum_in_place(address, nbytes, kind) -> -1 | agreed: the protocol of the module docstring."""
    fn, b = _function(module, "tracejit_shared_sum", _I64, [_I64] * 3, internal=False)
    address, nbytes, kind = fn.args
    arrive_and_wait, now = _arrive_and_wait(module, table), _clock(module)
    adders = [_add_slice(module, kind) for kind in range(len(_KIND_TYPES))]

    not_ready = b.icmp_signed("==", b.read(table, READY), b.int(0))
    with b.if_then(b.or_(not_ready, b.icmp_signed("<", nbytes, b.read(table, MIN_BYTES))), likely=False):
        b.ret(b.int(-1))
    start = b.call(now, [])
    rank, size, k = b.read(table, RANK), b.read(table, SIZE), _size_class_of(b, nbytes)

    # flag: 2 the buffer is this process's segment, and every other one is mapped; 1 it is; 0 not
    flag = b.variable(b.int(0))
    known_kind = b.and_(b.icmp_signed(">=", kind, b.int(0)), b.icmp_signed("<", kind, b.int(len(_KIND_TYPES))))
    sized = b.and_(b.icmp_signed("<", k, b.int(SIZE_CLASSES)), known_kind)
    with b.if_then(sized):
        with b.if_then(b.icmp_signed("==", b.load(b.segment_word(table, k, rank)), address)):
            b.store(b.int(2), flag)
            with b.loop(0, size) as q:
                with b.if_then(b.icmp_signed("==", b.load(b.segment_word(table, k, q)), b.int(0))):
                    b.store(b.int(1), flag)
    own = b.control_block(table, rank)
    phase = b.add(b.load_atomic(b.word(own, _ARRIVED), "acquire", 8), b.int(1))
    for index, value in ((_FLAG, b.load(flag)), (_NBYTES, nbytes), (_KIND, kind)):
        b.store(value, b.word(own, index))
    b.call(arrive_and_wait, [phase])

    # agreed: the least flag, 0 where a process sums another size or kind
    agreed = b.variable(b.int(2))
    with b.loop(0, size) as q:
        other = b.control_block(table, q)
        b.store(b.min(b.load(agreed), b.read(other, _FLAG)), agreed)
        differs = b.or_(b.icmp_signed("!=", b.read(other, _NBYTES), nbytes),
                        b.icmp_signed("!=", b.read(other, _KIND), kind))
        with b.if_then(differs):
            b.store(b.int(0), agreed)
    summing = b.icmp_signed("==", b.load(agreed), b.int(2))
    with b.if_then(summing):
        for kind_index, adder in enumerate(adders):
            itemsize = 4 if isinstance(_KIND_TYPES[kind_index], ir.FloatType) else 8
            with b.if_then(b.icmp_signed("==", kind, b.int(kind_index))):
                b.call(adder, [table, k, rank, size, b.sdiv(nbytes, b.int(itemsize))])
    b.call(arrive_and_wait, [b.add(phase, b.int(1))])

    elapsed = b.sub(b.call(now, []), start)
    b.store(b.add(b.read(table, NANOSECONDS), elapsed), b.word(table, NANOSECONDS))
    with b.if_then(summing):
        b.store(b.add(b.read(table, CALLS), b.int(1)), b.word(table, CALLS))
        b.store(b.add(b.read(table, BYTES), nbytes), b.word(table, BYTES))
    b.ret(b.load(agreed))


def _segment_address(module, table):
    """segment_address(nbytes) -> this process's segment for sums of ``nbytes``, 0 if none yet."""
    fn, b = _function(module, "tracejit_shared_segment_native", _I64, [_I64], internal=False)
    k = _size_class_of(b, fn.args[0])
    with b.if_then(b.icmp_signed(">=", k, b.int(SIZE_CLASSES)), likely=False):
        b.ret(b.int(0))
    b.ret(b.load(b.segment_word(table, k, b.read(table, RANK))))


def _machine_code():
    """The target machine and the module's object code: compiled for this CPU (about 0.12 s), or read from the disk
    cache (``settings.cache_root()``/native), where it is kept under a hash of its IR and the CPU."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    # "jitdefault" (the large code model on x86-64) reaches TABLE wherever the process has it
    machine = llvm.Target.from_default_triple().create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=2,
        codemodel="jitdefault")
    module = ir.Module("tracejit_shared_memory")
    module.triple = llvm.get_process_triple()
    table = ir.GlobalVariable(module, _I64, _TABLE_SYMBOL)   # declared here, defined by add_symbol
    _sum_in_place(module, table)
    _segment_address(module, table)
    text = str(module)
    key = hashlib.sha256("\n".join([text, llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(),
                                    ".".join(map(str, llvm.llvm_version_info))]).encode()).hexdigest()[:24]
    path = os.path.join(settings.cache_root(), "native", f"shared_memory-{key}.o")
    try:
        with open(path, "rb") as f:
            return machine, f.read()
    except OSError:
        pass
    parsed = llvm.parse_assembly(text)
    parsed.verify()
    passes = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=2))
    passes.getModulePassManager().run(parsed, passes)
    code = machine.emit_object(parsed)
    try:   # several processes may write it at once: each writes its own file, then renames it
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}"
        with open(partial, "wb") as f:
            f.write(code)
        os.replace(partial, path)
    except OSError:
        pass   # a cache that cannot be written: compiled again next time
    return machine, code


def _load():
    machine, code = _machine_code()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    return engine


_TABLE_SYMBOL = "tracejit_shared_sums_table"
llvm.add_symbol(_TABLE_SYMBOL, TABLE.ctypes.data)
_engine = _load()   # kept for the life of the process: it owns the machine code
_SUM_ADDRESS = _engine.get_function_address("tracejit_shared_sum")
_SEGMENT_ADDRESS = _engine.get_function_address("tracejit_shared_segment_native")
llvm.add_symbol("tracejit_shared_sum", _SUM_ADDRESS)
llvm.add_symbol("tracejit_shared_segment_native", _SEGMENT_ADDRESS)

#: ``sum_in_place(address, nbytes, kind)``: the protocol of the module docstring, from Python.
#: Returns -1 when the processes have not agreed to share memory or the buffer is smaller than
#: ``TABLE[MIN_BYTES]`` (nothing done: the caller sums it), else what they agreed: 2 summed,
#: 1 map the segments and sum again, 0 sum through MPI.
sum_in_place = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)(_SUM_ADDRESS)
#: ``segment_address(nbytes)``: this process's segment for sums of ``nbytes``, 0 when it has none yet.
segment_address = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(_SEGMENT_ADDRESS)
