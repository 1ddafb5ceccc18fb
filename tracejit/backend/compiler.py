"""Compiling generated programs with ``numba.njit``, and calling them.

Layer: backend, under the runtime (``jit.py``). ``compile_graph(graph)`` lowers the graph
(``codegen.lower``), then looks the source up in an in-memory cache keyed by a hash of the
source's code (its comments left out), the Numba version and the flags; only on a miss is it
compiled. Identical graphs (from different ``Traced`` objects, or tests) therefore share one
compiled function, also when their equations come from other lines of the user's files: the
comments name those lines, and messages the code raises carry marks that ``CompiledProgram``
replaces by them (``relocate``). Machine code that Numba's disk cache holds (see
``disk_cache``) is loaded without setting up Numba's typing and lowering, which a new process
otherwise spends much of its first call on.

The source is registered in ``linecache`` under a pseudo-filename (``<tracejit fn 1a2b...>``)
before it is compiled, so Python tracebacks and Numba's error reports show its lines. A
Numba typing or lowering failure is re-raised as ``BackendError`` naming the generated line;
there is no fallback to NumPy.

The in-memory cache holds the ``TRACEJIT_CACHE_SIZE`` (default 64) most recently compiled or
used programs; beyond those it only finds programs that live ``CompiledProgram`` objects still
hold (a weak reference), so a program's module, lines and compiled function are released once
no traced function uses it. ``clear_cache()`` releases what it holds. Numba itself keeps part
of each compiled program's memory (the machine code added to its LLVM engine) until the
process ends.

``TRACEJIT_LOG`` (a comma list, see ``tracejit.log``): ``source`` prints each program's source
to stderr as it is compiled, ``compile`` its compile time, ``cache`` in-memory cache hits.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import linecache
import os
import re
import sys
import threading
import time
import weakref

import numpy as np

from ..settings import cache_size
from . import disk_cache
from .codegen import OUTPUT_ARG_MIN_BYTES, lower
from .lowering import BackendError, Lowered
from .memory import ALIGN

__all__ = ["compile_graph", "compile_into_disk_cache", "hand_off_unfinished", "CompiledProgram", "cache_info",
           "clear_cache", "log_enabled"]

_cache_lock = threading.RLock()
_counts = {"hits": 0, "compiles": 0}

class _ProgramCache:
    """Compiled functions by key: the ``cache_size()`` most recently used ones held, the others
    found while something else holds them (a weak reference)."""

    def __init__(self):
        self.recent = collections.OrderedDict()
        self.alive = weakref.WeakValueDictionary()

    def get(self, key):
        fn = self.recent.get(key)
        if fn is not None:
            self.recent.move_to_end(key)
            return fn
        fn = self.alive.get(key)
        if fn is not None:
            self.put(key, fn)
        return fn

    def put(self, key, fn):
        self.recent[key] = fn
        self.recent.move_to_end(key)
        self.alive[key] = fn
        size = cache_size()
        while len(self.recent) > size:
            self.recent.popitem(last=False)

    def __len__(self):
        return len(self.alive)

    def clear(self):
        self.recent.clear()


_cache = _ProgramCache()


def log_enabled(topic: str) -> bool:
    """Whether ``TRACEJIT_LOG`` / ``tj.set_log`` asks for ``topic`` (see ``tracejit.log``)."""
    from .. import log
    return log.enabled(topic)


def _log(topic: str, message: str) -> None:
    from .. import log
    log.log(topic, message)


def cache_info() -> dict:
    """``{"size", "hits", "compiles"}`` of the in-memory cache of compiled programs (``size``:
    those it can still find, held by it or in use)."""
    with _cache_lock:
        return {"size": len(_cache), **_counts}


def clear_cache() -> None:
    """Forget the compiled programs kept in memory (programs that traced functions still use
    keep working, and are found again while they do), and give the memory back: the programs'
    modules, source lines and compiled functions, and the C heap's free pages."""
    import gc
    with _cache_lock:
        _cache.clear()
    gc.collect()  # the finalizers of compiled functions free their modules (_forget)
    _trim_heap()


def _trim_heap() -> None:
    # glibc keeps freed memory in its heap; malloc_trim returns the free pages to the system
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _numba_array(dtype: str, ndim: int, readonly: bool):
    from numba import types
    from numba.np.numpy_support import from_dtype
    return types.Array(from_dtype(np.dtype(dtype)), ndim, "C", readonly=readonly)


def _signature_spec(lowered: Lowered) -> list:
    """Argument types as ``(dtype, ndim, readonly)``: C-contiguous arrays, read-only except the
    inputs the program updates in place (writable arrays convert to read-only ones, so one
    compiled signature serves both), then the workspace (a writable 1-d ``uint8`` array) if
    there is one, then the outputs."""
    written = set(lowered.write_back.values())
    spec = [(a.dtype.newbyteorder("=").str, len(a.shape), k not in written) for k, a in enumerate(lowered.in_avals)]
    spec += [(v.dtype.newbyteorder("=").str, v.ndim, True) for v in lowered.const_values]
    if lowered.workspace_bytes:
        spec.append(("|u1", 1, False))
    spec += [(np.dtype(dtype).newbyteorder("=").str, len(shape), False) for shape, dtype in lowered.output_args]
    return spec


def _signature(lowered: Lowered):
    return tuple(_numba_array(*t) for t in _signature_spec(lowered))


# Modules whose compiled functions and intrinsics generated programs call: Numba's disk cache
# checks only the program's own file, so their text is part of the key (a changed intrinsic
# must not be served from machine code compiled before the change). ``shared_memory`` sets the
# element kinds that programs pass to its native sum.
_HELPER_MODULES = ("intrinsics.py", "vecmath.py", "blas.py", "collectives.py",
                   os.path.join("..", "shared_memory.py"))


@functools.lru_cache(maxsize=1)
def _helpers_hash() -> str:
    digest = hashlib.sha256()
    for name in _HELPER_MODULES:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _numba_version() -> str:
    # from the package's metadata: looking a program up in the cache does not import Numba
    from importlib import metadata
    return metadata.version("numba")


def _cache_key(lowered: Lowered, signature) -> str:
    """The program's key; ``signature`` is its arguments' types (``_signature_spec``)."""
    text = (f"numba {_numba_version()}\nhelpers {_helpers_hash()}\n{sorted(lowered.flags.items())}\n"
            f"llvm passes -O{FUNCTION_PASS_LEVEL} -O{MODULE_PASS_LEVEL}\n"  # machine code made with other passes differs
            f"{signature}\n{disk_cache.code_of(lowered.source)}")
    return hashlib.sha256(text.encode()).hexdigest()


def is_compiled(graph, *, fastmath=False, parallel=None, name="fn", write_back=None) -> bool:
    """Whether the program of ``graph`` (options as ``compile_graph``'s) is compiled already,
    in this process or in the disk cache, so that ``compile_graph`` only loads it (about 0.2 s
    in a new process, most of it Numba's import). Costs a lowering (milliseconds) and computes
    the key without Numba; the runtime asks only when ``settings.machine_code_cached``, since
    importing the backend imports Numba."""
    lowered = lower(graph, fastmath=fastmath, parallel=parallel, name=name, write_back=write_back)
    key = _cache_key(lowered, _signature_spec(lowered))
    # Without ``_cache_lock``: a compile holds it until it ends, and the caller (a first call)
    # must not wait for another function's compile to answer. A look at the weak dictionary
    # is safe under the GIL, and an answer that is already stale only means a tiered call.
    if _cache.alive.get(key) is not None:
        return True
    return disk_cache.has_machine_code(key)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _explain(exc, lowered: Lowered, filename: str) -> BackendError:
    message = _ANSI.sub("", str(exc))
    lines = lowered.source.splitlines()
    where = ""
    found = re.findall(re.escape(f'File "{filename}", line ') + r"(\d+)", message)
    if not found:
        found = re.findall(re.escape(filename) + r"\s*\((\d+)\)", message)
    if found:
        lineno = int(found[0])  # Numba reports the innermost location (inside a part function) first
        lo = max(0, lineno - 1)
        # the equation comment above the failing line says which equation it was
        eqn = next((lines[j].strip() for j in range(lo, -1, -1) if lines[j].strip().startswith("# ")
                    and " = " in lines[j]), "")
        where = (f"\n  at {filename}, line {lineno}:\n    {lines[lo].strip() if lo < len(lines) else ''}"
                 + (f"\n  generated for the equation:\n    {eqn}" if eqn else ""))
    return BackendError(
        f"tracejit internal error: Numba could not compile the generated program "
        f"{lowered.fn_name!r}.{where}\n  (TRACEJIT_LOG=source prints the whole program.)\n"
        f"Numba reported:\n{message}")


def _filename(lowered: Lowered, key: str) -> str:
    return f"<tracejit {lowered.fn_name} {key[:12]}>"


_registered: dict = {}  # key -> the pseudo-filenames registered in linecache for it


def _register_source(lowered: Lowered, key: str) -> str:
    """Make the generated text visible to tracebacks under its pseudo-filename."""
    filename = _filename(lowered, key)
    _registered.setdefault(key, set()).add(filename)
    linecache.cache[filename] = (len(lowered.source), None, lowered.source.splitlines(True), filename)
    return filename


def _load_machine_code(dispatcher, signature) -> bool:
    """Give ``dispatcher`` its machine code for ``signature`` from Numba's disk cache, and
    freeze it as ``njit(signature)`` would; False if the cache has none.

    This is ``Dispatcher.compile`` on a cache hit, minus the first step of Numba's
    ``Cache.load_overload``: refreshing the target context imports every implementation module
    Numba has (its NumPy and linear-algebra support, typed containers, cffi ...), a large part of
    a new process's first call, though only typing and lowering use them. Loaded code needs the
    runtime (NRT) and the symbols those modules register with LLVM: only ``hashing`` registers
    any, and parallel code starts its threads itself (the entry's ``reload_init``). The symbols
    of our own helpers (``blas``) are registered when the program's module imports them, before
    this runs. Compiling still refreshes first. Without these Numba internals it reports a miss.
    """
    try:
        cache, context = dispatcher._cache, dispatcher.targetctx
        load, guard, hits = cache._load_overload, cache._guard_against_spurious_io_errors, dispatcher._cache_hits
        import numba.cpython.hashing  # noqa: F401  (registers the hash secret's symbols)
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.runtime import rtsys
    except (AttributeError, ImportError):
        return False
    with global_compiler_lock:
        rtsys.initialize(context)
        cres = None
        with guard():
            cres = load(signature, context)
        if cres is None:
            return False
        context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        dispatcher.add_overload(cres)
        hits[signature] += 1
    dispatcher.disable_compile()
    return True


@functools.cache
def _program_pipeline():
    """Numba's compiler for generated programs: its nopython pipeline without passes that find
    nothing to do in them, which took 0.2 s of the softmax-regression step's 1.33 s cold
    compile. ``InlineClosureLikes`` inlines closures and comprehensions, and generated code
    defines none; ``NopythonRewrites`` rewrites whole-array arithmetic into loops and indexing
    by string literals, and generated code writes its own loops over elements;
    ``ReconstructSSA`` (with ``PreLowerStripPhis``, which undoes its phis) lets one variable
    take values of different types, and generated code gives each variable one dtype (LLVM
    makes the same machine code from either form). Functions with parallel loops keep the whole
    pipeline, whose parfor passes expect it."""
    from numba.core.compiler import CompilerBase, DefaultPassBuilder
    from numba.core.compiler_machinery import PassManager
    from numba.core.typed_passes import NopythonRewrites, PreLowerStripPhis
    from numba.core.untyped_passes import InlineClosureLikes, ReconstructSSA

    class ProgramPipeline(CompilerBase):
        def define_pipelines(self):
            default = DefaultPassBuilder.define_nopython_pipeline(self.state)
            if self.state.flags.auto_parallel.enabled:
                return [default]
            pipeline = PassManager("tracejit program")
            for pass_class, description in default.passes:
                if pass_class not in (InlineClosureLikes, NopythonRewrites, ReconstructSSA, PreLowerStripPhis):
                    pipeline.add_pass(pass_class, description)
            pipeline.finalize()
            return [pipeline]
    return ProgramPipeline


def _dispatcher(job: dict):
    """The program of ``job`` (see ``_job``) as Numba dispatchers, its parts included, and
    where its module lives: ``(dispatcher, from_disk, on_disk, filename)``. The program becomes a
    module file in the disk cache so that Numba can cache its machine code too (see disk_cache);
    if the cache folder is unusable it runs from memory (``on_disk`` False)."""
    import numba
    from numba.core.dispatcher import Dispatcher
    namespace, from_disk, filename = disk_cache.load_program(job["source"], job["key"], log=_log)
    on_disk = not filename.startswith("<")

    def jit(fn_name, py_func):
        # no_cfunc_wrapper: the runtime calls programs through their Python entry point; the C
        # one Numba would also make costs 15 ms of a cold compile
        dispatcher = numba.njit(fastmath=job["flags"]["fastmath"], parallel=fn_name in job["parallel_functions"],
                                error_model="numpy", nogil=job["flags"]["nogil"], no_cfunc_wrapper=True,
                                _nrt=job["flags"].get("nrt", True),
                                pipeline_class=_program_pipeline())(py_func)
        if on_disk:  # machine code kept beside the module, with the cache's checks
            dispatcher._cache = disk_cache.machine_code_cache(py_func)
        return dispatcher
    for part in job["parts"]:  # compiled when the main function's call to them is typed
        # Compiling again a program whose module was loaded before (an interrupted compile,
        # or after clear_cache) finds its parts already compiled: they are used as they are.
        if not isinstance(namespace[part], Dispatcher):
            namespace[part] = jit(part, namespace[part])
    return jit(job["fn_name"], namespace[job["fn_name"]]), from_disk, on_disk, filename


def _job(lowered: Lowered, key: str) -> dict:
    """What compiling ``lowered`` needs, as plain data (a helper process gets it as JSON)."""
    return {"source": lowered.source, "key": key, "fn_name": lowered.fn_name, "parts": list(lowered.parts),
            "parallel_functions": list(lowered.parallel_functions), "flags": dict(lowered.flags),
            "signature": _signature_spec(lowered)}


#: LLVM's optimisation level for the per-function passes Numba runs on each function of a
#: program as it is added (``NUMBA_OPT``, 3, otherwise). With ``-O1`` here the softmax-regression
#: step's cold compile took 1.30 s instead of 1.41, its LLVM passes 0.25 s instead of 0.32, and
#: the machine code of the benchmark's programs is the same but for a few instructions.
FUNCTION_PASS_LEVEL = 1

#: LLVM's optimisation level for the pipeline Numba then runs on the program's whole module
#: (``NUMBA_OPT``, 3, otherwise): the one that inlines and vectorises, and decides the program's
#: speed. Loop and SLP vectorisation are on at every level (Numba asks for them). ``-O2`` leaves
#: out what ``-O3`` adds (argument promotion, aggressive instruction combining, more
#: unswitching), which finds little in generated loops: the softmax-regression step's cold
#: compile takes 0.1-0.25 s less, and in one-thread A/B runs (fresh process and cache each,
#: alternating) its step took 48-50 us at both levels, the elementwise chain 0.79 ms at both,
#: the MLP step 0.89-0.91 ms against 0.90-0.93, and softmax plus cross-entropy 1.61-1.63 ms
#: against 2.01-2.05 ms at ``-O3``.
MODULE_PASS_LEVEL = 2


@contextlib.contextmanager
def _llvm_passes_at(function_level: int, module_level: int):
    """Numba's LLVM passes at these levels while this thread compiles (under Numba's compiler
    lock, so no other compile sees them): the per-function passes, and the full pipeline on the
    module. Numba offers no setting for these alone (``NUMBA_OPT`` sets every pass manager,
    its cheap module pass at ``-O0`` included): its code generator's pass-manager factories are
    wrapped, and a level Numba passes itself (the cheap pass's) is kept. Where a factory is
    missing, compiling is left as it is."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    with global_compiler_lock:
        codegen = cpu_target.target_context.codegen()
        factories = {"_function_pass_manager": function_level, "_module_pass_manager": module_level}
        makers = {name: getattr(type(codegen), name, None) for name in factories}
        if None in makers.values() or any(name in vars(codegen) for name in factories):
            yield
            return
        for name, level in factories.items():
            setattr(codegen, name, functools.partial(_at_level, makers[name], codegen, level))
        try:
            yield
        finally:
            for name in factories:
                delattr(codegen, name)


def _at_level(make, codegen, level: int, **options):
    return make(codegen, **{"opt": level, **options})


@contextlib.contextmanager
def _old_objects_frozen():
    """Python's cycle collector leaves the objects that exist when a compile starts alone until
    it ends (``gc.freeze``), and still collects the young ones. The objects Numba makes while
    it compiles set off full collections, which otherwise scan every object of the process
    (NumPy's, Numba's, the user's) each time: in the softmax-regression step's cold compile two
    of them took 71-74 ms, against one of 12 ms with the old objects frozen, and its compiled tier
    came 1.14-1.20 s after process start instead of 1.26-1.33 s (``_child.py``, three runs each).
    Under Numba's compiler lock, so compiles do not interleave; left as it is when something
    else has frozen objects (``gc.get_freeze_count``), which unfreezing would undo."""
    import gc

    from numba.core.compiler_lock import global_compiler_lock
    with global_compiler_lock:
        if gc.get_freeze_count():
            yield
            return
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()


def compile_into_disk_cache(job: dict) -> None:
    """Compile ``job`` (from ``_job``) so that its machine code lands in the disk cache: what the
    helper process (``compile_helper``) does for a program another process will load."""
    fn, _, on_disk, _ = _dispatcher(job)
    if not on_disk:
        raise RuntimeError(f"the disk cache is not usable: {disk_cache.disabled_reason()}")
    with _old_objects_frozen(), _llvm_passes_at(FUNCTION_PASS_LEVEL, MODULE_PASS_LEVEL):
        fn.compile(tuple(_numba_array(*t) for t in job["signature"]))


def _compiled_by_helper(job: dict, still_wanted=None) -> bool:
    """Compile ``job`` in the helper process (``compile_helper``, started the first time and
    kept for the next jobs, whose compiles find Numba warm there), which leaves the machine
    code in the disk cache, this thread waiting without holding the GIL; False (logged) when it
    did not. While the helper is still starting (its first ``HELPER_START_SECONDS``),
    ``still_wanted()`` is asked every few milliseconds; when it turns false (someone now waits
    for the compile, which this thread does sooner than a helper still importing Numba) the
    helper is stopped and False returned, so that this process compiles."""
    import json
    start = time.perf_counter()
    with _helper_lock:
        for attempt in range(2):
            helper = _running_helper()
            if helper is None:
                return False
            process, replies, started = helper
            try:
                process.stdin.write(json.dumps(job) + "\n")
                process.stdin.flush()
            except OSError:
                reply = None  # it has just ended (it ends when no job came for a while)
            else:
                reply = _helper_reply(job, replies, started, still_wanted)
            if reply is None and process.wait() == 0 and attempt == 0:
                continue  # it had ended before it read the job: start another
            break
        if reply is False:
            return False
        if reply is None:
            _stop_helper(f"{job['fn_name']}: the helper process ended (status {process.poll()}); "
                         "compiling in this process")
            return False
        if reply != "ok":
            _log("compile", f"{job['fn_name']}: the helper process failed ({reply[len('error '):]}); "
                            "compiling in this process")
            return False
        _log("compile", f"{job['fn_name']}: compiled by a helper process in {time.perf_counter() - start:.3f} s")
        return True


def _helper_reply(job, replies, started, still_wanted):
    """The helper's reply to ``job`` (``ok`` or ``error ...``, from the line that starts with the
    job's key; other lines, such as the reply to a job given up earlier, are passed over), None
    when it ended first, False when it was stopped (it took too long, or someone waits for the
    compile while the helper is still starting)."""
    import queue
    while True:
        starting = still_wanted is not None and time.perf_counter() - started < HELPER_START_SECONDS
        try:
            line = replies.get(timeout=_HELPER_POLL_SECONDS if starting else _HELPER_TIMEOUT)
            if line is None:
                return None
            key, _, reply = line.partition(" ")
            if key == job["key"]:
                return reply
        except queue.Empty:
            if not starting:
                _stop_helper(f"{job['fn_name']}: the helper process took over {_HELPER_TIMEOUT:g} s; "
                             "compiling in this process")
                return False
            if not still_wanted():
                _stop_helper(f"{job['fn_name']}: the compile is waited for; compiling in this process "
                             "instead of the helper, which was still starting")
                return False


def _running_helper():
    """The helper process, its replies (a queue of lines; None once it ended) and when it
    started: the one running, or a new one; None (logged) when none can be started."""
    global _helper
    import queue
    import subprocess
    if _helper is not None and _helper[0].poll() is None:
        return _helper
    try:
        process = subprocess.Popen(_HELPER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=_helper_environment(), text=True)
    except OSError as exc:
        _log("compile", f"no helper process ({exc}); compiling in this process")
        return None
    replies = queue.Queue()

    def read_replies():
        for line in process.stdout:
            replies.put(line.strip())
        replies.put(None)
    threading.Thread(target=read_replies, name="tracejit-helper-replies", daemon=True).start()
    _helper = (process, replies, time.perf_counter())
    return _helper


def _stop_helper(message: str) -> None:
    global _helper
    if _helper is not None:
        _helper[0].kill()
        _helper[0].wait()
        _helper = None
    _log("compile", message)


def helper_running() -> bool:
    """Whether this process has a helper process (``compile_helper``) that is still running."""
    return _helper is not None and _helper[0].poll() is None


_helper = None  # (Popen, replies, start time) of the helper process, once started
_helper_lock = threading.Lock()

#: Seconds after its start during which a helper is given up for a compile in this process as
#: soon as someone waits for the compile: about the time the helper takes to start Python,
#: NumPy and Numba on this project's machine, after which it has the head start.
HELPER_START_SECONDS = 0.5
_HELPER_POLL_SECONDS = 0.01
_HELPER_TIMEOUT = 1800.0
_HELPER_COMMAND = [sys.executable, "-m", "tracejit.backend.compile_helper"]


def _helper_environment() -> dict:
    """This process's environment for a helper: the same cache folder, this tracejit, and no MPI."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, TRACEJIT_CACHE_DIR=disk_cache.cache_root())
    env["TRACEJIT_MPI"] = "0"  # a process of its own, never a rank of this process's MPI job
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_compiling: dict = {}  # key -> the job of a program this process is compiling into the disk cache now


def hand_off_unfinished() -> int:
    """For a process that is ending: start a helper process for each program it is still
    compiling into the disk cache, which finishes the compile there (for the next run) without
    this process waiting for it. Returns how many were handed off."""
    import json
    import subprocess
    jobs = list(_compiling.values())
    for job in jobs:
        try:
            helper = subprocess.Popen(_HELPER_COMMAND, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=_helper_environment(), text=True,
                                      start_new_session=True)
            helper.stdin.write(json.dumps(job))
            helper.stdin.close()
        except OSError as exc:
            _log("compile", f"{job['fn_name']}: no helper process to finish its compile ({exc})")
            continue
        _log("compile", f"{job['fn_name']}: unfinished at exit; a helper process finishes it into the disk cache")
    return len(jobs)


_numba_set_up = False


def _set_up_numba() -> float:
    """Numba's one-time set-up in this process (its target's registries of implementations,
    which its first compile loads), done here to time it apart; 0 once done. A program loaded
    from the disk cache does not need it (``_load_machine_code``)."""
    global _numba_set_up
    if _numba_set_up:
        return 0.0
    from numba.core.registry import cpu_target
    start = time.perf_counter()
    cpu_target.target_context.refresh()
    _numba_set_up = True
    return time.perf_counter() - start


def _numba_pass_seconds(dispatcher) -> dict:
    """Numba's time in its front end (bytecode to typed IR, the parts it compiles as it types
    calls to them included) and in lowering (LLVM IR, LLVM's passes and machine code), from the
    pass timings it keeps with the compiled overload. Nothing where Numba found the machine
    code in its own cache after all (an interrupted write of ours), which keeps no timings."""
    (compiled,) = dispatcher.overloads.values()
    pipelines = (compiled.metadata or {}).get("pipeline_times") or {}
    if not pipelines:
        return {}
    timings = [item for pipeline in pipelines.values() for item in pipeline.items()]
    split = next((i for i, (name, _) in enumerate(timings) if name.endswith("native_lowering")), len(timings))

    def seconds(items):
        return sum(t.init + t.run + t.finalize for _, t in items)
    return {"Numba front end": seconds(timings[:split]), "lowering and LLVM": seconds(timings[split:])}


def _compile(lowered: Lowered, signature, key: str, helper_process=False):
    """The Numba function of ``lowered``, how it was obtained: "compiled", "compiled by a
    helper process" (``helper_process``: the helper process compiles it into the disk cache
    while this thread waits; only with a usable disk cache; a callable decides when the compile
    is about to start, after the disk cache was looked at, unless this process has compiled
    before and has no helper running), or "loaded from the disk cache"
    (machine code an earlier process compiled), and for a compile here its parts' seconds."""
    import numba
    filename = _filename(lowered, key)
    job = _job(lowered, key)
    try:
        fn, from_disk, on_disk, filename = _dispatcher(job)
        pseudo = _register_source(lowered, key)  # CompiledProgram.filename, on disk or not
        if not on_disk:
            filename = pseudo
        # from disk, Numba probably has its machine code (inside it are the parts' too)
        if from_disk and _load_machine_code(fn, signature):
            _log("cache", f"{lowered.fn_name}: machine code loaded from {os.path.dirname(filename)}")
            return fn, "loaded from the disk cache", {}
        still_wanted = helper_process if callable(helper_process) else None
        if still_wanted is not None:  # decided now, when the compile is about to start
            # Once this process has compiled, Numba is warm here and a compile costs a fraction of
            # a cold one (the runtime helpers every program calls are compiled already), which a
            # new helper would pay again; a helper already running is as warm.
            helper_process = on_disk and (helper_running() or not _numba_set_up) and still_wanted()
        if helper_process and on_disk and _compiled_by_helper(job, still_wanted) \
                and _load_machine_code(fn, signature):
            return fn, "compiled by a helper process", {}
        if on_disk:
            _compiling[key] = job
        try:
            with _old_objects_frozen():
                setup = _set_up_numba()
                with _llvm_passes_at(FUNCTION_PASS_LEVEL, MODULE_PASS_LEVEL):
                    fn.compile(signature)
        finally:
            _compiling.pop(key, None)
        fn.disable_compile()
        return fn, "compiled", {"Numba set-up": setup, **_numba_pass_seconds(fn)}
    except numba.core.errors.NumbaError as exc:
        raise _explain(exc, lowered, filename) from None


def _forget(key: str, module: str, namespace_id: int) -> None:
    """A compiled function was freed: drop its module unless a newer one for its key is alive."""
    if _cache.alive.get(key) is None:
        disk_cache.forget_module(module, namespace_id)
        for filename in _registered.pop(key, ()):
            linecache.cache.pop(filename, None)


def new_workspace(nbytes: int) -> np.ndarray:
    """A ``uint8`` array of ``nbytes`` that starts on a ``memory.ALIGN``-byte boundary, so that
    every temporary in it is aligned for the widest vector loads (NumPy only aligns to 16)."""
    buffer = np.empty(nbytes + ALIGN, np.uint8)
    start = -buffer.ctypes.data % ALIGN
    return buffer[start:start + nbytes]


def _unheld(arrays) -> bool:
    """Whether nothing but their pool refers to ``arrays`` (no result, view or slice of them
    is alive anywhere)."""
    return all(sys.getrefcount(a) <= _POOL_ONLY for a in arrays)


def _pool_only_count() -> int:
    pool = [(np.empty(0),)]
    return max(sys.getrefcount(a) for a in pool[0])  # as counted inside _unheld's loop


_POOL_ONLY = _pool_only_count()


class Outputs:
    """The output arrays a program writes into, made for each call: fresh arrays, and, for a
    program with large outputs (``codegen.OUTPUT_ARG_MIN_BYTES``), sets recycled from earlier
    calls: ``take()`` returns a set whose arrays nobody holds any more (the caller dropped the
    results of that call) or new ones. A set is out of the pool while a call runs, so concurrent
    calls never share one; ``give_back`` returns it after the call (still held by its caller).
    ``recycles`` says whether there is a pool (``give_back`` is needed); ``new()`` makes a set.

    ``merge(outs, returned)`` puts the arrays passed in and those the program returned (copies
    of views) in the order of the program's outputs."""

    MAX_SETS = 4  # sets kept; a caller holding on to more results gets fresh arrays

    def __init__(self, specs, positions, n_outputs):
        self.specs = tuple((shape, np.dtype(dtype)) for shape, dtype in specs)
        self.recycles = any(int(np.prod(shape)) * dtype.itemsize >= OUTPUT_ARG_MIN_BYTES
                            for shape, dtype in self.specs)
        self.sets = []
        self.lock = threading.Lock()
        self.new = _array_maker(self.specs)
        if not self.recycles:
            self.take = self.new
        positions = tuple(positions)
        self.passes_all = positions == tuple(range(n_outputs))  # the program returns nothing itself
        if self.passes_all:
            self.merge = _outs_only
        else:
            self.merge = functools.partial(_interleave, positions, n_outputs)

    def take(self) -> tuple:
        with self.lock:
            for k, arrays in enumerate(self.sets):
                if _unheld(arrays):
                    return self.sets.pop(k)
        return self.new()

    def give_back(self, arrays) -> None:
        with self.lock:
            if len(self.sets) < self.MAX_SETS:
                self.sets.append(arrays)


def _array_maker(specs):
    """A function making one new array per ``(shape, dtype)`` of ``specs``, as a tuple; the
    one-array case (most programs) without a loop, as it runs on every call."""
    empty = np.empty
    if len(specs) == 1:
        (shape, dtype), = specs
        return lambda: (empty(shape, dtype),)
    return lambda: tuple([empty(shape, dtype) for shape, dtype in specs])


def _outs_only(outs, returned):
    return outs


def _interleave(positions, n_outputs, placed, rest):
    """``n_outputs`` values: ``placed[i]`` at ``positions[i]``, the values of ``rest`` in order
    at the other positions."""
    merged = [None] * n_outputs
    for pos, array in zip(positions, placed):
        merged[pos] = array
    it = iter(rest)
    return tuple(next(it) if m is None else m for m in merged)


# What generated code raises (bounds checks, integer powers): their messages carry marks.
_RAISED = (IndexError, ValueError)


class CompiledProgram:
    """A compiled graph: ``program(arrays) -> list of arrays``, one per graph output.

    ``arrays`` holds one array per graph input (0-d arrays for scalars); any layout and
    read-only arrays are accepted. Outputs are fresh arrays, except an output that is a graph
    input, which is returned as that very input object, and an output written back into an
    input (``write_back``), which is returned as that input after the call has updated it.

    ``origin`` says how the machine code was obtained: "compiled", "loaded from the disk cache"
    or "found in memory" (an identical program compiled earlier in this process).
    ``compile_parts`` says where the time to obtain it went, in seconds: "source" (generating
    it), and for a compile in this process "Numba set-up" (its first compile's), "Numba front
    end", "lowering and LLVM" and "other" (Numba's caching and what its timings leave out); or
    "loading" from the disk cache, or "compile" by a helper process.

    Temporaries live in a *workspace* (see ``memory``): one ``uint8`` array, allocated on the
    first call and reused by later ones. Calls running at the same time (threads) each take
    a workspace from a pool, so they never share one.
    """

    __slots__ = ("fn", "source", "kernels", "fused_ops", "name", "filename", "key", "_consts", "_expect",
                 "_passthrough", "_n_out", "_written", "temp_bytes", "memory", "_pool", "entry", "outputs",
                 "locations", "origin", "compile_parts")

    def __init__(self, fn, lowered: Lowered, key: str):
        self.fn = fn
        # The compiled function's own wrapper, without the dispatcher's type checks: only for
        # callers that guarantee the compiled argument types (the runtime's fast path).
        self.entry = fn.overloads[fn.signatures[0]].entry_point
        self.source = lowered.source
        self.kernels = lowered.kernels
        self.fused_ops = lowered.fused_ops
        self.name = lowered.fn_name
        self.key = key
        self.filename = _filename(lowered, key)
        self._consts = tuple(lowered.const_values)
        # the program reads native byte order (``_signature_spec``): other arrays are converted
        self._expect = tuple((a.shape, a.dtype.newbyteorder("=")) for a in lowered.in_avals)
        self._passthrough = sorted({**lowered.passthrough, **lowered.write_back}.items())
        self._n_out = lowered.n_returned + len(self._passthrough)
        self._written = frozenset(lowered.write_back.values())
        self.temp_bytes = lowered.workspace_bytes  # peak temporary memory of a call: one workspace
        self.memory = lowered.memory
        self._pool = []
        self.outputs = (Outputs(lowered.output_args, lowered.output_positions, lowered.n_returned)
                        if lowered.output_args else None)
        self.locations = lowered.locations

    def relocate(self, exc: BaseException) -> None:
        """Replace the equation marks in the message of ``exc``, raised by this program, by the
        user's lines of those equations (the ones this program was generated for: a compiled
        function shared with a program from other lines carries the same marks)."""
        if self.locations and exc.args and isinstance(exc.args[0], str):
            message = exc.args[0]
            for mark, where in self.locations.items():
                message = message.replace(mark, where)
            exc.args = (message, *exc.args[1:])

    def __repr__(self):
        return f"<CompiledProgram {self.name}: {self.kernels} kernels>"

    def call(self, args, fn=None):
        """``fn(*args, *constants, workspace, *outputs)`` with a workspace from the pool
        (list.pop and append are atomic, so concurrent calls never get the same one) and the
        output arrays (``Outputs``); the tuple of the program's outputs."""
        fn = fn or self.fn
        pool, outputs = self._pool, self.outputs
        ws = ((pool.pop() if pool else new_workspace(self.temp_bytes)),) if self.temp_bytes else ()
        outs = outputs.take() if outputs is not None else ()
        try:
            returned = fn(*args, *self._consts, *ws, *outs)
        except _RAISED as exc:
            self.relocate(exc)
            raise
        finally:
            if ws:
                pool.append(ws[0])
            if outs and outputs.recycles:
                outputs.give_back(outs)
        return outputs.merge(outs, returned) if outputs is not None else returned

    def __call__(self, arrays):
        if len(arrays) != len(self._expect):
            raise TypeError(f"{self.name}: the program takes {len(self._expect)} arrays, got {len(arrays)}")
        args, converted = [], []
        for k, (a, (shape, dtype)) in enumerate(zip(arrays, self._expect)):
            given = a
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.dtype != dtype:
                if not np.can_cast(a.dtype, dtype, "equiv"):
                    raise TypeError(f"{self.name}: input {k} has dtype {a.dtype}, the program was compiled for {dtype}")
                a = a.astype(dtype)
            if a.shape != shape:
                raise ValueError(f"{self.name}: input {k} has shape {a.shape}, the program was compiled for {shape}")
            if not a.flags.c_contiguous:
                a = np.ascontiguousarray(a)
            if k in self._written and a is not given:
                converted.append((given, a))
            args.append(a)
        outs = self.call(args)
        for given, written in converted:  # the program updated a converted copy
            np.copyto(given, written, casting="unsafe")
        if not self._passthrough:
            return list(outs)
        return list(_interleave([pos for pos, _ in self._passthrough], self._n_out,
                                [arrays[k] for _, k in self._passthrough], outs))


# the part of ``CompiledProgram.compile_parts`` that takes the time ``_compile``'s own parts leave
_REST_OF = {"compiled": "other", "loaded from the disk cache": "loading", "compiled by a helper process": "compile"}


def compile_graph(graph, *, fastmath=False, parallel=None, name="fn", write_back=None,
                  helper_process=False) -> CompiledProgram:
    """Generate, compile (or fetch from the cache) and wrap the program for ``graph``.
    ``write_back``: ``{output position: input position}`` of outputs the program writes into
    its input arrays (see ``codegen.lower``). ``helper_process``: compile in the helper process,
    which fills the disk cache, then load from there (for compiles in the background, which
    then take no CPU time from this process's threads); True, False, or a function without
    arguments that says which when the compile is about to start (``tiers.helper_wanted``)."""
    start = time.perf_counter()
    lowered = lower(graph, fastmath=fastmath, parallel=parallel, name=name, write_back=write_back)
    parts = {"source": time.perf_counter() - start}
    signature = _signature(lowered)
    key = _cache_key(lowered, _signature_spec(lowered))
    with _cache_lock:
        fn = _cache.get(key)
        hit = fn is not None
        if hit:
            _counts["hits"] += 1
            _register_source(lowered, key)
        else:
            if log_enabled("source"):
                _log("source", f"{lowered.fn_name} ({len(graph.eqns)} equations):\n{lowered.source}")
            compile_start = time.perf_counter()
            fn, origin, numba_parts = _compile(lowered, signature, key, helper_process)
            parts.update(numba_parts)
            parts[_REST_OF[origin]] = time.perf_counter() - compile_start - sum(numba_parts.values())
            _cache.put(key, fn)
            weakref.finalize(fn, _forget, key, f"tj_{key[:40]}", id(fn.py_func.__globals__))
            _counts["compiles"] += 1
    seconds = time.perf_counter() - start
    if hit:
        origin = "found in memory"
        _log("cache", f"{lowered.fn_name}: compiled program found in memory ({key[:12]}), nothing compiled")
    elif origin.startswith("compiled"):
        _log("compile", f"{lowered.fn_name}: {lowered.kernels} kernels {origin} in {seconds:.3f} s")
    else:
        _log("compile", f"{lowered.fn_name}: {lowered.kernels} kernels loaded from the disk cache in {seconds:.3f} s, "
                        "nothing compiled")
    program = CompiledProgram(fn, lowered, key)
    program.origin = origin
    program.compile_parts = parts
    return program
