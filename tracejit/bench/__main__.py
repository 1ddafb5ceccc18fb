"""``python -m tracejit.bench [WORKLOAD ...] [--quick] [--json FILE] [--markdown FILE] [--plot FILE]
[--peers jax,torch] [--background-load]``: run the standard workloads, show progress on stderr,
print the tables."""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys

from . import workloads as W
from .plot import plot_report
from .results import Report
from .runner import DEFAULT_SYSTEMS, run


def _list(value):
    return [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",") if v.strip()]


def parser():
    p = argparse.ArgumentParser(
        prog="python -m tracejit.bench",
        description="Benchmark tracejit (eager and compiled) against hand-written NumPy and, when installed, "
                    "JAX (jax.jit) and PyTorch (eager, torch.compile). Every system's output is checked against "
                    "NumPy before timing; systems are timed in interleaved rounds.",
        epilog="workloads: " + ", ".join(W.all_names()) + " (a prefix selects several, e.g. 'elementwise'). "
               "The full run for benchmarks/RESULTS.md is: python benchmarks/run.py")
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="workloads to run (default: all, or the quick set)")
    p.add_argument("--quick", action="store_true", help="small set, few rounds: finishes in under a minute "
                                                        "(torch.compile off, 16M elementwise skipped)")
    p.add_argument("--json", metavar="FILE", help="write all results as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the tables and machine info as Markdown")
    p.add_argument("--plot", metavar="FILE", help="write a PNG of the speed-ups (needs matplotlib)")
    p.add_argument("--peers", default="jax,torch", type=_list,
                   help="frameworks to compare with if installed (default: jax,torch; 'none' for none)")
    p.add_argument("--systems", type=_list, default=list(DEFAULT_SYSTEMS),
                   help="columns to run (default: %(default)s; 'graph' adds tracejit's reference interpreter)")
    tc = p.add_mutually_exclusive_group()
    tc.add_argument("--torch-compile", dest="torch_compile", action="store_true", default=None,
                    help="run torch.compile (default: on, off with --quick)")
    tc.add_argument("--no-torch-compile", dest="torch_compile", action="store_false", help="skip torch.compile")
    p.add_argument("--repeat", type=int, help="timed rounds per workload")
    p.add_argument("--warmup", type=int, help="warm-up calls per system")
    p.add_argument("--max-time", type=float, help="seconds of timed rounds per workload (at least 3 rounds)")
    p.add_argument("--timeout", type=float, help="give up on a system whose first call (compilation) takes longer")
    p.add_argument("--fresh-cache", action="store_true",
                   help="compile into an empty temporary TRACEJIT_CACHE_DIR (first calls are cold compiles)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="limit every system to N threads (BLAS, OpenMP, Numba, PyTorch, XLA): steadier numbers on a "
                        "busy machine; the process restarts itself with the settings in its environment")
    p.add_argument("--background-load", action="store_true",
                   help="run the workloads while another process keeps one CPU busy (a busy machine, as in "
                        "practice): tracejit, NumPy and jax.jit side by side under the same load")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke test of the harness, not a benchmark)")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if a system failed or disagreed")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def thread_env(n, environ=None):
    """The environment variables that limit NumPy's BLAS, OpenMP, Numba, PyTorch and XLA to ``n`` threads."""
    environ = os.environ if environ is None else environ
    xla = [f for f in environ.get("XLA_FLAGS", "").split()
           if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    xla += [f"--xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'}", f"intra_op_parallelism_threads={n}"]
    env = {k: str(n) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    env["XLA_FLAGS"] = " ".join(xla)
    return env


@contextlib.contextmanager
def pinned_to_cpus(n):
    """While the block runs, every thread of this process, and every thread or process it starts,
    may run on the first ``n`` of its CPUs only; yields those CPUs (None if ``n`` is None or the
    platform cannot pin). The environment limits of ``thread_env`` are not enough alone:
    jax.jit kept ~1.8 of this machine's 2 cores busy with them set (XLA's CPU runtime splits
    large loops into tasks for its own thread pool), so its one-thread figures used two."""
    available = sorted(os.sched_getaffinity(0)) if n is not None and hasattr(os, "sched_getaffinity") else []
    if not available:
        yield None
        return
    chosen = set(available[:n])
    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    before = {t: os.sched_getaffinity(t) for t in threads}
    for t in threads:
        os.sched_setaffinity(t, chosen)
    try:
        yield sorted(chosen)
    finally:
        for t, cpus in before.items():
            try:
                os.sched_setaffinity(t, cpus)
            except OSError:  # the thread has ended
                pass


#: The busy loop of ``background_load``'s process: pinned to one CPU, it spins until killed.
_SPIN = "import os, sys\nif hasattr(os, 'sched_setaffinity'): os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass\n"


@contextlib.contextmanager
def background_load(cpu=None):
    """While the block runs, a separate process keeps one CPU busy (the last this process may use,
    or ``cpu``); yields that CPU number (None where processes cannot be pinned)."""
    if cpu is None and hasattr(os, "sched_getaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[-1]
    spinner = subprocess.Popen([sys.executable, "-c", _SPIN, str(cpu if cpu is not None else 0)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield cpu
    finally:
        spinner.kill()
        spinner.wait()


def main(argv=None, command=None):
    args = parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("--threads must be at least 1", file=sys.stderr)
            return 2
        wanted = thread_env(args.threads)
        if any(os.environ.get(k) != v for k, v in wanted.items()):
            # BLAS and OpenMP read these when they load, which has happened: start again with them set.
            os.environ.update(wanted)
            os.environ["TRACEJIT_BENCH_COMMAND"] = command or ""
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, "-m", "tracejit.bench",
                                      *(sys.argv[1:] if argv is None else argv)])
        command = command or os.environ.pop("TRACEJIT_BENCH_COMMAND", None) or None
    if args.list:
        for name, wl in W.WORKLOADS.items():
            print(f"{name:16s} {wl.title}" + ("" if wl.sizes.get("quick") else "  (not in --quick)"))
        print(f"{'compile':16s} compile latency, cold and warm disk cache, in new processes")
        print(f"{'trace':16s} tracing time of the MLP's Adam training step (Traced.stats['trace_seconds'])")
        return 0
    unknown = [s for s in args.systems if s not in W.SYSTEMS]
    if unknown:
        print(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(W.SYSTEMS)}", file=sys.stderr)
        return 2
    bad_peers = [p for p in args.peers if p not in ("jax", "torch")]
    if bad_peers:
        print(f"unknown peer(s) {', '.join(bad_peers)}; known: jax, torch", file=sys.stderr)
        return 2
    try:
        names = W.select(args.workloads, quick=args.quick)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    command = command or "python -m tracejit.bench" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    load = background_load() if args.background_load else contextlib.nullcontext()
    with pinned_to_cpus(args.threads) as cpus, load as loaded_cpu:
        report = run(names, quick=args.quick, size="tiny" if args.tiny else None, systems=args.systems,
                     peers=args.peers, torch_compile=args.torch_compile, repeat=args.repeat, warmup=args.warmup,
                     max_time=args.max_time, first_call_timeout=args.timeout, fresh_cache=args.fresh_cache,
                     threads=args.threads,
                     progress=not args.no_progress,
                     command=command)
    if args.background_load:
        on = f" (CPU {loaded_cpu})" if loaded_cpu is not None else ""
        report.notes.append(f"measured under load: another process kept one CPU{on} busy for the whole run "
                            "(--background-load)")
    if args.threads is not None:
        where = f", on CPU(s) {', '.join(map(str, cpus))}" if cpus else ""
        report.notes.append(f"every system was limited to {args.threads} thread(s) (--threads{where})")
    plot_written = False
    if args.plot:
        note = plot_report(report, args.plot)
        if note:
            report.notes.append(note)
        plot_written = note is None
    print(report.details())
    print()
    print(report.table())
    if args.json:
        _write(args.json, report.to_json() + "\n")
    if args.markdown:
        plot_rel = None
        if plot_written:
            plot_rel = os.path.relpath(os.path.abspath(args.plot), os.path.dirname(os.path.abspath(args.markdown)))
        _write(args.markdown, report.to_markdown(plot=plot_rel))
    written = [f for f in (args.json, args.markdown, args.plot if plot_written else None) if f]
    if written:
        print("\nwrote " + ", ".join(written))
    if args.strict and _problems(report):
        return 1
    return 0


def _problems(report: Report):
    return [(r.name, s.name) for r in report.results for s in r.systems.values() if s.status in ("failed", "mismatch")]


def _write(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
