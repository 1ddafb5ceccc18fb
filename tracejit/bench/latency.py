"""Compile latency: how long a new process takes to its first result, cold and warm.

Each run is a new Python process (``_child.py``) with its own cache folder: *cold* runs start
with an empty folder (``TRACEJIT_CACHE_DIR``, JAX's persistent compilation cache and
TorchInductor's cache all point into it); *warm* runs reuse the folder a cold run filled, as a
second run of a training script would. The time is taken from just before the process is
started to the moment the child has its first result, so it includes interpreter start-up and
imports. Systems are interleaved per round like the in-process timings.

Python's bytecode cache is on in the children, and filled before the first timed run, as it is
for any installed package (pip writes the ``.pyc`` files when it installs): an environment that
sets ``PYTHONDONTWRITEBYTECODE`` would otherwise have every run compile the sources of a source
checkout again (73 ms of tracejit's import on this project's machine), which no second run of a
user's script does.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from .results import Result, SystemResult, format_time
from .workloads import LATENCY_TARGET, PEER_SYSTEMS, get

__all__ = ["LATENCY_SYSTEMS", "run_latency"]

LATENCY_SYSTEMS = ("numpy", "compiled", "jax.jit", "torch.compile")
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")


def _child_env(cache_dir):
    import tracejit
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(tracejit.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TRACEJIT_CACHE_DIR"] = cache_dir
    env.pop("TRACEJIT_MODE", None)
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache_dir, "inductor")
    env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    env["TRITON_CACHE_DIR"] = os.path.join(cache_dir, "triton")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _fill_bytecode_cache(cache_dir):
    """Import what the children import once, untimed, so their ``.pyc`` files exist."""
    subprocess.run([sys.executable, "-c", "import tracejit, tracejit.bench.workloads, tracejit.backend.compiler"],
                   env=_child_env(cache_dir), capture_output=True, timeout=600)


def _run_child(workload, size, system, cache_dir, timeout):
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, _CHILD, workload, size, system], env=_child_env(cache_dir),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "note": f"no result within {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "note": f"child exited with {proc.returncode}: {tail}"}
    out = json.loads(lines[-1])
    if out.get("status") == "ok":
        out["latency"] = out["t_result"] - t0
        out["compiled_latency"] = out.get("t_compiled", out["t_result"]) - t0
    return out


def _installed(system):
    import importlib.util
    module = PEER_SYSTEMS.get(system)
    return module is None or importlib.util.find_spec(module) is not None


EPOCH_TARGET = "one epoch of MNIST softmax regression (batch 128, SGD), data loading included"


def run_latency(size="full", systems=LATENCY_SYSTEMS, cold_runs=2, warm_runs=3, timeout=600.0, skip=None,
                progress=None, epoch=False):
    """Two ``Result``s, ``compile_cold`` and ``compile_warm``, of kind ``"latency"``.

    ``size`` picks the target from ``workloads.LATENCY_TARGET`` (full: the softmax-regression SGD step);
    ``skip`` maps system names to a reason for not running them. ``epoch=True``: the time to
    train one epoch of MNIST from process start instead (``epoch_cold`` and ``epoch_warm``;
    MNIST from ``$TRACEJIT_DATA``).
    """
    report = progress or (lambda *a: None)
    skip = dict(skip or {})
    if epoch:
        workload, wsize, target = "mnist_epoch", "full", EPOCH_TARGET
    else:
        workload, wsize = LATENCY_TARGET[size]
        wl = get(workload)
        target = f"{workload} ({wl.describe(wl.sizes[wsize])})"
    runs = {"cold": {s: [] for s in systems}, "warm": {s: [] for s in systems}}
    status = {"cold": {}, "warm": {}}  # per phase: system -> (status, note) when it cannot run
    for s in systems:
        if s in skip:
            status["cold"][s] = status["warm"][s] = ("skipped", skip[s])
        elif not _installed(s):
            status["cold"][s] = status["warm"][s] = ("not installed", f"{PEER_SYSTEMS[s]} is not installed")
    dirs = {}
    base = tempfile.mkdtemp(prefix="tracejit-bench-latency-")
    try:
        _fill_bytecode_cache(tempfile.mkdtemp(prefix="bytecode-", dir=base))
        for phase, n in (("cold", cold_runs), ("warm", warm_runs)):
            for r in range(n):
                for s in systems:
                    if s in status[phase]:
                        continue
                    if phase == "warm" and (s not in dirs or s in status["cold"]):
                        status["warm"][s] = ("skipped", "the cold run did not finish")
                        continue
                    report(s, phase, r + 1, n)
                    if phase == "cold":
                        if s in dirs:
                            shutil.rmtree(dirs[s], ignore_errors=True)
                        dirs[s] = tempfile.mkdtemp(prefix=s.replace(".", "_") + "-", dir=base)
                    out = _run_child(workload, wsize, s, dirs[s], timeout)
                    if out.get("status") != "ok":
                        status[phase][s] = (out.get("status", "failed"), out.get("note", ""))
                        if phase == "cold" and out.get("status") in ("unavailable", "not installed"):
                            status["warm"][s] = status[phase][s]
                        continue
                    runs[phase][s].append(out)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    results = []
    what, prefix = ("time to train one epoch", "epoch") if epoch else ("compile latency", "compile")
    for phase, title in (("cold", f"{what}, cold: new process, empty cache"),
                         ("warm", f"{what}, warm: new process, cache filled by a cold run")):
        systems_out = {}
        for s in systems:
            if s in status[phase] and not runs[phase][s]:
                systems_out[s] = SystemResult(s, status=status[phase][s][0], note=status[phase][s][1])
                continue
            xs = [o["latency"] for o in runs[phase][s]]
            if not xs:
                systems_out[s] = SystemResult(s, status="skipped", note="no runs")
                continue
            last = runs[phase][s][-1]
            parts = _median_parts(runs[phase][s])
            interpreted = [o["interpreted_calls"] for o in runs[phase][s] if o.get("interpreted_calls")]
            note = f"steps run by the interpreter while the step compiled: {_spread(interpreted)}" \
                if epoch and interpreted else ""
            systems_out[s] = SystemResult(
                s, note=note, median=statistics.median(xs), min=min(xs), max=max(xs), rounds=len(xs), batch=1, samples=xs,
                first_call=statistics.median(o["first_call"] for o in runs[phase][s]),
                compile_seconds=last.get("compile_seconds"), kernels=last.get("kernels"),
                extra={"startup": statistics.median(o["startup"] for o in runs[phase][s]),
                       "compiled_tier": statistics.median(o["compiled_latency"] for o in runs[phase][s]),
                       **({"loss": last["loss"]} if "loss" in last else {}),
                       **({"compile_parts": parts} if parts else {})})
        results.append(Result(name=f"{prefix}_{phase}", title=title, kind="latency", baseline="numpy",
                              systems=systems_out, params={"target": target, "size_desc": target},
                              notes=[f"process start to the end of {target}; start-up = interpreter and "
                                     "imports; first call = the epoch" if epoch else
                                     f"process start to first result of {target}; start-up = interpreter, "
                                     "imports and inputs; first call = tracing and compiling (or loading), or with "
                                     "tiered execution tracing and interpreting; compiled tier = process start to "
                                     "the compiled program's first result"]
                              + (["kernels = 0: the compiled tier never ran (the epoch ended first)"]
                                 if epoch and any(r.ok and r.kernels == 0 for r in systems_out.values()) else [])
                              + [f"{s}'s compile by part (medians): "
                                 + ", ".join(f"{part} {format_time(seconds)}" for part, seconds in r.extra["compile_parts"].items())
                                 for s, r in systems_out.items() if r.ok and r.extra.get("compile_parts")]))
    return results


def _spread(counts) -> str:
    """``counts`` as "n" when all are equal, else "lowest-highest"."""
    return str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def _median_parts(runs) -> dict:
    """The median over ``runs`` of each part of tracejit's compile (``stats["compile_parts"]``)."""
    names = dict.fromkeys(part for o in runs for part in (o.get("compile_parts") or {}))
    return {part: statistics.median((o.get("compile_parts") or {}).get(part, 0.0) for o in runs) for part in names}
