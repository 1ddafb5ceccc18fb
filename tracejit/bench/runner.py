"""Running the standard workloads (``tj.bench.run``) and one-off comparisons (``tj.bench.compare``)."""
from __future__ import annotations

import os
import tempfile

import numpy as np

from . import workloads as W
from .latency import LATENCY_SYSTEMS, run_latency
from .machine import environment_notes, machine_info
from .progress import Progress
from .results import Report, Result
from .timing import System, measure
from .tracing import run_tracing

__all__ = ["compare", "run", "SETTINGS", "DEFAULT_SYSTEMS"]

# Timing settings per size: "full" (the committed RESULTS.md), "quick" (under a minute),
# "tiny" (tests and smoke runs).
SETTINGS = {
    "full": dict(repeat=30, warmup=3, max_time=40.0, min_sample_time=5e-3, first_call_timeout=900.0,
                 cold_runs=2, warm_runs=3, child_timeout=900.0),
    "quick": dict(repeat=5, warmup=1, max_time=2.0, min_sample_time=1e-3, first_call_timeout=120.0,
                  cold_runs=1, warm_runs=1, child_timeout=120.0),
    "tiny": dict(repeat=3, warmup=1, max_time=0.5, min_sample_time=2e-4, first_call_timeout=60.0,
                 cold_runs=1, warm_runs=1, child_timeout=120.0),
}
DEFAULT_SYSTEMS = ("numpy", "eager", "compiled", "jax.jit", "torch", "torch.compile", "copy limit")


def _backend_problem():
    try:
        from ..backend import compile_graph  # noqa: F401
    except ImportError as e:
        return f"the compiled backend is not available ({e})"
    return None


def _for_mode(fn, mode):
    """A fresh ``Traced`` of ``fn`` pinned to ``mode`` (own cache and stats), keeping the options
    of ``fn`` if it already is one."""
    from ..jit import Traced, trace
    if isinstance(fn, Traced):
        opts = dict(static_argnums=tuple(sorted(getattr(fn, "_static_nums", ()))),
                    static_argnames=tuple(sorted(getattr(fn, "_static_names", ()))),
                    fastmath=fn.fastmath, parallel=fn.parallel, passes=fn.passes)
        return trace(fn.fn, mode=mode, **opts)
    return trace(fn, mode=mode)


def compare(fn, *args, modes=("eager", "compiled"), repeat=20, warmup=3, kwargs=None, baseline=None, others=None,
            check=True, rtol=1e-4, atol=1e-6, min_sample_time=2e-3, max_time=60.0, first_call_timeout=None,
            name=None, progress=False) -> Result:
    """Time ``fn(*args, **kwargs)`` in several modes, interleaved, and return a ``Result``.

    ``fn`` is a plain function or a ``tj.trace`` object (its options are kept). ``modes`` are
    tracejit modes (``"eager"``, ``"graph"``, ``"compiled"``) and ``"numpy"`` (the undecorated
    function called directly). ``others`` maps extra names to callables taking the same arguments
    (e.g. a hand-written version). Each mode runs on a fresh trace cache, so its first call
    includes tracing and compiling. Outputs are checked against ``baseline`` (default: the first
    mode) before timing when ``check`` is true. ``repeat``: rounds; ``warmup``: calls before them.

    >>> r = tj.bench.compare(f, x, modes=("eager", "compiled"))   # doctest: +SKIP
    >>> print(r); r["compiled"].median; r.speedup("compiled"); r.to_json()  # doctest: +SKIP
    """
    from ..jit import Traced
    from ..modes import MODES
    kwargs = dict(kwargs or {})
    base_fn = fn.fn if isinstance(fn, Traced) else fn
    systems = []
    for m in modes:
        if m == "numpy":
            systems.append(System("numpy", lambda: base_fn(*args, **kwargs), check=check))
            continue
        if m not in MODES:
            raise ValueError(f"tj.bench.compare: unknown mode {m!r}; use 'numpy' or one of {', '.join(MODES)}")
        problem = _backend_problem() if m == "compiled" else None
        if problem:
            systems.append(System(m, status="unavailable", note=problem))
            continue
        traced = _for_mode(fn, m)
        systems.append(System(m, (lambda t: lambda: t(*args, **kwargs))(traced), traced=traced, mode=m,
                              check=check))
    for label, other in (others or {}).items():
        systems.append(System(label, (lambda o: lambda: o(*args, **kwargs))(other), check=check))
    if not systems:
        raise ValueError("tj.bench.compare: nothing to compare (modes and others are empty)")
    baseline = baseline or systems[0].name
    label = name or getattr(base_fn, "__name__", "fn")
    prog = Progress(enabled=bool(progress))
    prog.workload(1, 1, label)
    results = measure(systems, baseline=baseline, repeat=repeat, warmup=warmup, min_sample_time=min_sample_time,
                      max_time=max_time, first_call_timeout=first_call_timeout, rtol=rtol, atol=atol,
                      progress=prog)
    prog.clear()
    return Result(name=label, systems=results, baseline=baseline,
                  params=dict(repeat=repeat, warmup=warmup, min_sample_time=min_sample_time, max_time=max_time,
                              rtol=rtol, atol=atol))


def _build(wl, name, args):
    try:
        impl = wl.build(name, args)
    except W.NotInstalled as e:
        return System(name, status="not installed", note=f"{e} is not installed")
    except W.Unavailable as e:
        return System(name, status="unavailable", note=str(e))
    except Exception as e:
        return System(name, status="failed", note=f"{type(e).__name__}: {e}")
    return System(name, impl.call, traced=impl.traced, mode=impl.mode, check=impl.check)


def run(workloads=None, *, quick=False, size=None, systems=DEFAULT_SYSTEMS, peers=("jax", "torch"),
        torch_compile=None, repeat=None, warmup=None, max_time=None, min_sample_time=None,
        first_call_timeout=None, fresh_cache=False, threads=None, progress=True, command=None) -> Report:
    """Run the standard workloads and return a ``Report``.

    ``workloads``: names or prefixes (default: all, or the quick set); ``"compile"`` is the
    compile-latency benchmark, ``"trace"`` the tracing-time one. ``size``: ``"full"``, ``"quick"`` or ``"tiny"`` (default from
    ``quick``). ``systems``: which columns to run (add ``"graph"`` for the reference
    interpreter). ``peers``: which of ``"jax"``, ``"torch"`` to try (missing ones show
    "not installed"). ``torch_compile``: run ``torch.compile`` (default: not with ``quick``, as
    it compiles for tens of seconds). ``threads`` is only recorded: the thread limits must be in
    the environment before NumPy loads (``python -m tracejit.bench --threads N`` does that). ``fresh_cache``: compile into an empty temporary
    ``TRACEJIT_CACHE_DIR``, so first calls are cold compiles rather than disk-cache loads.
    The other arguments override ``SETTINGS[size]``.
    """
    if fresh_cache:
        saved = os.environ.get("TRACEJIT_CACHE_DIR")
        with tempfile.TemporaryDirectory(prefix="tracejit-bench-cache-") as tmp:
            os.environ["TRACEJIT_CACHE_DIR"] = tmp
            try:
                report = run(workloads, quick=quick, size=size, systems=systems, peers=peers,
                             torch_compile=torch_compile, repeat=repeat, warmup=warmup, max_time=max_time,
                             min_sample_time=min_sample_time, first_call_timeout=first_call_timeout,
                             threads=threads, progress=progress, command=command)
            finally:
                if saved is None:
                    os.environ.pop("TRACEJIT_CACHE_DIR", None)
                else:
                    os.environ["TRACEJIT_CACHE_DIR"] = saved
        report.params["fresh_cache"] = True
        report.machine.setdefault("env", {}).pop("TRACEJIT_CACHE_DIR", None)
        return report
    size = size or ("quick" if quick else "full")
    cfg = dict(SETTINGS[size])
    for k, v in dict(repeat=repeat, warmup=warmup, max_time=max_time, min_sample_time=min_sample_time,
                     first_call_timeout=first_call_timeout).items():
        if v is not None:
            cfg[k] = v
    if torch_compile is None:
        torch_compile = size == "full"
    peers = tuple(peers or ())
    wanted = [s for s in systems if W.PEER_SYSTEMS.get(s) in (None, *peers)]
    skip = {} if torch_compile else {"torch.compile": "off (it compiles for tens of seconds; use --torch-compile)"}
    names = W.select(workloads, quick=quick)
    prog = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    info = machine_info()
    results = []
    for i, name in enumerate(names, start=1):
        prog.workload(i, len(names), name)
        if name in ("compile", "mnist_epoch"):
            lat_systems = [s for s in LATENCY_SYSTEMS if s in ("numpy", "compiled") or s in wanted]
            if name == "mnist_epoch":
                lat_systems = [s for s in lat_systems if s != "torch.compile"]
            results += run_latency(size=size, systems=lat_systems, cold_runs=cfg["cold_runs"],
                                   warm_runs=cfg["warm_runs"], timeout=cfg["child_timeout"], skip=skip, progress=prog,
                                   epoch=name == "mnist_epoch")
            continue
        if name == "trace":
            results += run_tracing(size=size, progress=prog)
            continue
        wl = W.get(name)
        args = wl.make_inputs(wl.sizes[size])
        built = []
        for s in wl.systems:
            if s not in wanted:
                continue
            built.append(System(s, status="skipped", note=skip[s]) if s in skip else _build(wl, s, args))
        res = measure(built, baseline="numpy", repeat=cfg["repeat"], warmup=cfg["warmup"],
                      min_sample_time=cfg["min_sample_time"], max_time=cfg["max_time"],
                      first_call_timeout=cfg["first_call_timeout"], rtol=wl.rtol, atol=wl.atol, progress=prog)
        copy = res.get("copy limit")
        if copy is not None and copy.ok:
            nbytes = 2 * sum(a.nbytes for a in args if isinstance(a, np.ndarray))
            copy.note = f"{nbytes / copy.median / 1e9:.1f} GB/s read + write"
        results.append(Result(name=name, title=wl.title, systems=res, baseline="numpy",
                              params={"size": size, "size_desc": wl.describe(wl.sizes[size])}))
        del args, built
    prog.clear()
    notes = environment_notes(info)
    return Report(results=results, machine=info, notes=notes,
                  params=dict(cfg, size=size, systems=list(wanted), peers=list(peers),
                              torch_compile=bool(torch_compile), threads=threads, command=command))

