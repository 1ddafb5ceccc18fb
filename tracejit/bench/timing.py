"""Interleaved timing of several systems running the same computation.

Method (the same for ``tj.bench.compare`` and the standard workloads):

1. **First call.** Each system runs once; its wall time is the *first-call* time (for tracejit's
   compiled mode: tracing, the passes and compilation or loading from the disk cache; with
   tiered execution, tracing and the interpreter, after which the compile is waited for so
   that the timed calls run the compiled program).
2. **Check.** Every output is compared with the baseline's output (shapes, dtypes kinds and values
   within ``rtol``/``atol``). A system that disagrees is reported as ``mismatch`` and not timed.
3. **Warm-up and batching.** ``warmup`` more calls per system; from them each system gets a batch
   size so that one timed sample lasts at least ``min_sample_time`` (microsecond workloads are
   timed over many calls, so the timer's resolution does not matter).
4. **Rounds.** The systems are timed in turn, A B C A B C ..., one sample each per round, so that
   slow drift of the machine (frequency, other load) hits all of them equally. The garbage
   collector is off while a sample runs. Rounds stop after ``repeat`` or when ``max_time`` is used
   up (never fewer than ``MIN_ROUNDS``).
5. **Cache-hit overhead** (tracejit systems): the time of a call minus the time spent inside the
   program it runs (the generated Numba function, the interpreter, or, in eager mode, the Python
   body), so it is the cost of checking the arguments, finding the cached program and unpacking
   its results.

Reported per system: the median, min and max of the per-call sample times, and tracejit's
``Traced.stats`` (traces, cache hits, retraces, compile seconds, kernels).
"""
from __future__ import annotations

import contextlib
import gc
import math
import signal
import statistics
import threading
import time

import numpy as np

from .results import SystemResult

__all__ = ["System", "measure", "flatten_output", "compare_outputs", "MIN_ROUNDS"]

MIN_ROUNDS = 3
_now = time.perf_counter_ns


class System:
    """One contender: ``call()`` runs the computation once and returns its output.

    ``traced``: the ``tj.trace`` object behind it (for stats and the cache-hit overhead);
    ``check=False``: a reference point whose output is not compared (the copy limit);
    ``status``/``note``: set for systems that cannot run ("not installed", "unavailable", ...).
    """

    def __init__(self, name, call=None, *, traced=None, mode=None, check=True, status="ok", note=""):
        self.name = name
        self.call = call
        self.traced = traced
        self.mode = mode
        self.check = check
        if call is None and status == "ok":
            raise ValueError(f"system {name!r} has nothing to call; give a status saying why")
        self.status = status
        self.note = note


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds):
    """Interrupt the block after ``seconds`` (main thread on POSIX only; elsewhere no limit)."""
    if (not seconds or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------ output checks
def _leaf_to_numpy(x):
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def flatten_output(out):
    """The leaves of an output pytree (dicts in sorted key order) as NumPy arrays."""
    if isinstance(out, dict):
        leaves = []
        for k in sorted(out):
            leaves += flatten_output(out[k])
        return leaves
    if isinstance(out, (tuple, list)):
        leaves = []
        for v in out:
            leaves += flatten_output(v)
        return leaves
    if out is None:
        return []
    return [_leaf_to_numpy(out)]


def compare_outputs(out, ref, rtol, atol):
    """``(ok, max_error, message)``: ``max_error`` is ``max |out - ref| / (atol + rtol * |ref|)``
    over all leaves (agreement means <= 1)."""
    a, b = flatten_output(out), flatten_output(ref)
    if len(a) != len(b):
        return False, math.inf, f"returned {len(a)} arrays, the baseline {len(b)}"
    worst = 0.0
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            return False, math.inf, f"output {i} has shape {x.shape}, the baseline {y.shape}"
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            x64, y64 = x.astype(np.float64), y.astype(np.float64)
            if not np.array_equal(np.isfinite(x64), np.isfinite(y64)):
                return False, math.inf, f"output {i} has non-finite values where the baseline has none"
            fin = np.isfinite(y64)
            err = np.abs(x64 - y64)[fin] / (atol + rtol * np.abs(y64)[fin]) if fin.any() else np.zeros(1)
            e = float(err.max()) if err.size else 0.0
        else:
            e = 0.0 if np.array_equal(x, y) else math.inf
        worst = max(worst, e)
    if worst > 1:
        return False, worst, f"output differs from the baseline: error {worst:.3g}x the tolerance " \
                             f"(rtol={rtol:g}, atol={atol:g})"
    return True, worst, ""


# ----------------------------------------------------------------------------------- timing
def _timed_batch(call, k):
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = _now()
        for _ in range(k):
            call()
        return (_now() - t0) / k * 1e-9
    finally:
        if gc_was_on:
            gc.enable()


def _stats_of(traced):
    s = getattr(traced, "stats", None) or {}
    return dict(traces=s.get("traces"), cache_hits=s.get("cache_hits"),
                retraces=len(s.get("retraces") or ()), compile_seconds=s.get("compile_seconds"),
                kernels=s.get("kernels"), fused_ops=s.get("fused_ops"))


def _cache_hit_overhead(system, per_call, budget=0.25):
    """Median of (call time - time inside the program) over a few calls, in seconds, from the
    runtime's ``Traced.timing_inner``; None for systems without it."""
    timing_inner = getattr(system.traced, "timing_inner", None)
    if timing_inner is None:
        return None
    n = int(min(300, max(5, budget / max(per_call, 1e-9))))
    outer = []
    try:
        with timing_inner(system.mode, clock=_now) as inner:
            out = system.call()  # the first call rebuilds the fast path around the timed program: not counted
            del out
            inner.clear()
            for _ in range(n):
                t0 = _now()
                out = system.call()
                outer.append(_now() - t0)
                del out  # freeing the result is not part of the call path
    except ValueError:  # nothing ran in this mode for these arguments
        return None
    if len(inner) != len(outer):  # the call did not go through the timed program
        return None
    return statistics.median(o - i for o, i in zip(outer, inner)) * 1e-9


def measure(systems, *, baseline=None, repeat=20, warmup=3, min_sample_time=2e-3, max_time=60.0,
            first_call_timeout=None, rtol=1e-4, atol=1e-6, overhead=True, progress=None):
    """Time ``systems`` (a list of ``System``) by the method in the module docstring.

    ``baseline``: the name of the system whose output the others are checked against (default:
    the first one that runs). ``progress(system_name, phase, round_i, rounds)`` is called as it goes.
    Returns ``{name: SystemResult}`` in the order given.
    """
    report = progress or (lambda *a: None)
    results = {s.name: SystemResult(s.name, status=s.status, note=s.note) for s in systems}
    live = [s for s in systems if s.status == "ok"]

    # 1. first call
    outputs = {}
    for s in list(live):
        report(s.name, "first call", 0, 0)
        r = results[s.name]
        try:
            with _deadline(first_call_timeout):
                t0 = _now()
                outputs[s.name] = s.call()
                r.first_call = (_now() - t0) * 1e-9
                # with tiered execution the interpreter may have answered: time the compiled tier
                wait = getattr(s.traced, "wait", None)
                if wait is not None:
                    wait()
        except _Timeout:
            r.status, r.note = "timeout", f"first call took longer than {first_call_timeout:g} s"
            live.remove(s)
        except Exception as e:  # a failing system is reported, not fatal to the others
            r.status, r.note = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            live.remove(s)

    # 2. check outputs against the baseline
    ref_name = baseline if baseline in outputs else next((s.name for s in live if s.check), None)
    if ref_name is not None:
        for s in list(live):
            if not s.check or s.name == ref_name:
                continue
            ok, err, msg = compare_outputs(outputs[s.name], outputs[ref_name], rtol, atol)
            results[s.name].max_error = err if math.isfinite(err) else None
            if not ok:
                results[s.name].status, results[s.name].note = "mismatch", msg + f" ({ref_name})"
                live.remove(s)
        if ref_name in results:
            results[ref_name].max_error = 0.0
    del outputs

    # 3. warm-up and batch sizes
    batch = {}
    for s in live:
        report(s.name, "warm-up", 0, 0)
        times = [_timed_batch(s.call, 1) for _ in range(max(1, warmup))]
        per_call = max(min(times), 1e-9)
        batch[s.name] = max(1, min(1_000_000, math.ceil(min_sample_time / per_call)))
        # a second estimate at the chosen batch size (cheap calls are dominated by cold caches at first)
        if batch[s.name] > 1:
            per_call = max(_timed_batch(s.call, batch[s.name]), 1e-9)
            batch[s.name] = max(1, min(1_000_000, math.ceil(min_sample_time / per_call)))

    # 4. interleaved rounds
    samples = {s.name: [] for s in live}
    gc.collect()
    start = time.perf_counter()
    rounds = 0
    for r in range(max(1, repeat)):
        for s in live:
            report(s.name, "round", r + 1, repeat)
            samples[s.name].append(_timed_batch(s.call, batch[s.name]))
        rounds += 1
        if rounds >= MIN_ROUNDS and time.perf_counter() - start > max_time:
            break

    # 5. summaries, stats, cache-hit overhead
    for s in live:
        r = results[s.name]
        xs = samples[s.name]
        r.samples = xs
        r.rounds = len(xs)
        r.batch = batch[s.name]
        r.median, r.min, r.max = statistics.median(xs), min(xs), max(xs)
        if s.traced is not None:
            for k, v in _stats_of(s.traced).items():
                setattr(r, k, v)
            if s.mode != "compiled":  # only compiled mode has kernels
                r.kernels = r.fused_ops = None
            if overhead:
                report(s.name, "overhead", 0, 0)
                r.overhead = _cache_hit_overhead(s, r.median)
    return results
