"""The benchmark harness on tiny workloads: result fields, output checks, JSON round trips,
missing peers, the CLI and the compile-latency child processes. No timing is asserted."""
from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
import time

import numpy as np
import pytest

import tracejit as tj
import tracejit.bench as bench
from tracejit.bench import latency, plot, timing, workloads
from tracejit.bench.__main__ import main as cli_main
from tracejit.bench.progress import Progress
from tracejit.bench.results import Report, Result, SystemResult, format_ratio, format_time

FAST = dict(repeat=3, warmup=1, min_sample_time=1e-4, max_time=0.2)


def _backend_available():
    try:
        from tracejit.backend import compile_graph  # noqa: F401
    except ImportError:
        return False
    return True


def chain(x, a):
    return np.tanh(a * x) * np.exp(-x * x) + 0.5


X = np.linspace(-2, 2, 64, dtype=np.float32)


@pytest.fixture
def no_peers(monkeypatch):
    """Simulate a machine without JAX and PyTorch (an import of either fails)."""
    for name in ("jax", "jax.numpy", "torch", "torch.nn.functional"):
        monkeypatch.setitem(sys.modules, name, None)


def _check_timed(s: SystemResult):
    assert s.status == "ok", s.note
    assert s.rounds >= timing.MIN_ROUNDS and len(s.samples) == s.rounds
    assert s.batch >= 1
    assert 0 < s.min <= s.median <= s.max
    assert s.min == min(s.samples) and s.max == max(s.samples)
    assert s.first_call > 0


# ------------------------------------------------------------------------------------ compare
def test_compare_fields_and_stats():
    r = bench.compare(chain, X, 0.5, modes=("numpy", "eager", "graph"), **FAST)
    assert isinstance(r, Result) and r.kind == "time" and r.baseline == "numpy"
    assert list(r.systems) == ["numpy", "eager", "graph"]
    for s in r:
        _check_timed(s)
        assert s.max_error is not None and s.max_error <= 1
    assert r.speedup("numpy") == 1.0
    assert math.isclose(r.speedup("graph"), r["numpy"].median / r["graph"].median)
    numpy_, eager, graph = r["numpy"], r["eager"], r["graph"]
    assert numpy_.traces is None and numpy_.overhead is None and numpy_.kernels is None
    # each mode runs on its own fresh trace cache: graph traced once, never retraced
    assert graph.traces == 1 and graph.retraces == 0
    assert graph.cache_hits >= graph.rounds * graph.batch
    assert eager.traces == 0 and eager.retraces == 0
    # the cache-hit overhead is measured for tracejit modes, and is part of a call
    for s in (eager, graph):
        assert s.overhead is not None and 0 <= s.overhead < s.max
    assert eager.kernels is None and graph.kernels is None  # kernels belong to compiled mode


def test_compare_keeps_traced_options_and_uses_fresh_caches():
    @tj.trace(static_argnums=(1,))
    def scaled(x, n):
        return x * n

    with tj.mode("graph"):
        scaled(X, 3)
    r = bench.compare(scaled, X, 3, modes=("graph", "eager"), **FAST)
    assert r["graph"].ok and r["graph"].traces == 1 and r["graph"].retraces == 0
    assert scaled.stats["traces"] == 1  # the user's own cache and stats are untouched


def test_compare_flags_wrong_and_failing_systems():
    def boom(x, a):
        raise RuntimeError("nope\nsecond line")

    r = bench.compare(chain, X, 0.5, modes=("numpy",), others={"off by one": lambda x, a: chain(x, a) + 1,
                                                               "boom": boom}, **FAST)
    assert r["numpy"].ok
    wrong, failed = r["off by one"], r["boom"]
    assert wrong.status == "mismatch" and wrong.median is None and "differs" in wrong.note
    assert failed.status == "failed" and failed.note == "RuntimeError: nope" and failed.median is None
    assert r.speedup("off by one") is None
    text = str(r)
    assert "mismatch" in text and "RuntimeError: nope" in text


def test_compare_shape_mismatch_and_bad_mode():
    r = bench.compare(chain, X, 0.5, modes=("numpy",), others={"short": lambda x, a: chain(x, a)[:-1]}, **FAST)
    assert r["short"].status == "mismatch" and "shape" in r["short"].note
    with pytest.raises(ValueError, match="unknown mode"):
        bench.compare(chain, X, 0.5, modes=("fast",))


def test_compare_compiled_mode():
    r = bench.compare(chain, X, 0.5, modes=("eager", "compiled"), **FAST)
    if not _backend_available():
        assert r["compiled"].status == "unavailable" and "backend" in r["compiled"].note
        return
    c = r["compiled"]
    _check_timed(c)
    assert c.kernels >= 1 and c.traces == 1 and c.retraces == 0
    assert c.compile_seconds is not None and c.compile_seconds <= c.first_call
    assert c.overhead is not None and 0 <= c.overhead < c.max
    # all-array arguments take the runtime's fast path: its overhead is measured too
    add = bench.compare(lambda a, b: a + b, X, X, modes=("compiled",), **FAST)["compiled"]
    assert add.ok and add.overhead is not None and 0 <= add.overhead < add.max


def test_result_json_round_trip_and_tables():
    r = bench.compare(chain, X, 0.5, modes=("numpy", "eager"), others={"bad": lambda x, a: x}, **FAST)
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain JSON types only
    back = Result.from_json(r.to_json())
    assert back.to_dict() == d and back == r
    assert set(d["systems"]["eager"]) >= {"median", "min", "max", "first_call", "overhead", "kernels",
                                          "retraces", "status"}
    assert d["speedups"]["numpy"] == 1.0
    table = r.table()
    lines = table.splitlines()
    assert lines[0] == "chain" and lines[1].split()[:3] == ["system", "median", "min"]
    assert all(name in table for name in ("numpy", "eager", "bad"))
    md = r.to_markdown()
    assert "| system | median |" in md and "| eager |" in md


def test_format_helpers():
    assert format_time(None) == "-"
    assert format_time(4.2e-7) == "420 ns"
    assert format_time(3.214e-6) == "3.21 µs" and format_time(3.214e-6, unicode=False) == "3.21 us"
    assert format_time(0.01234) == "12.3 ms" and format_time(152.0) == "152 s"
    assert format_ratio(1.0) == "1.00x" and format_ratio(12.34) == "12.3x" and format_ratio(0.0123) == "0.012x"
    assert format_ratio(None) == "-"


def test_compare_outputs_tolerance():
    ref = {"b": np.ones(3, np.float32), "a": (np.float32(2.0), np.arange(3))}
    close = {"a": (np.float32(2.0 + 1e-5), np.arange(3)), "b": np.ones(3, np.float32)}
    ok, err, _ = timing.compare_outputs(close, ref, rtol=1e-4, atol=1e-6)
    assert ok and 0 < err <= 1
    ok, _, msg = timing.compare_outputs(close, ref, rtol=1e-7, atol=0)
    assert not ok and "differs" in msg
    ok, _, msg = timing.compare_outputs({"a": (2.0, np.arange(1, 4)), "b": ref["b"]}, ref, 1e-4, 1e-6)
    assert not ok  # integers compare exactly
    ok, _, msg = timing.compare_outputs([ref["b"]], ref, 1e-4, 1e-6)
    assert not ok and "returned 1 arrays, the baseline 3" in msg


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    bench.compare(chain, X, 0.5, modes=("numpy", "eager"), progress=False, **FAST)
    p = Progress(stream=out)
    p.workload(2, 5, "dispatch")
    p("numpy", "first call")
    assert p.bar.postfix == "numpy: first call"
    p("numpy", "round", 1, 3)
    p("eager", "round", 1, 3)  # same round: the same status
    p("numpy", "round", 2, 3)
    p.message("a note")
    p.clear()
    text = out.getvalue()
    assert "[2/5 dispatch] 1/5" in text and "round 2/3" in text and "a note\n" in text


# ------------------------------------------------------------------------------------ workloads
def test_workload_selection():
    assert workloads.select(["elementwise"]) == ["elementwise_1m", "elementwise_16m"]
    assert workloads.select(["dispatch", "dispatch"]) == ["dispatch"]
    assert "elementwise_16m" not in workloads.select(quick=True) and "compile" in workloads.select(quick=True)
    assert workloads.select() == list(workloads.WORKLOADS) + ["compile", "trace", "mnist_epoch"]
    # the latency results' names select the benchmark that measures them (cold and warm together)
    assert workloads.select(["compile_cold", "compile_warm"]) == ["compile"]
    assert workloads.select(["epoch_warm", "softmax_sgd"]) == ["mnist_epoch", "softmax_sgd"]
    with pytest.raises(KeyError, match="unknown workload"):
        workloads.select(["nope"])


def test_every_workload_agrees_at_tiny_size_without_peers(no_peers):
    """Each standard workload, tiny: tracejit (eager, graph) matches the hand-written NumPy,
    and missing peers are reported as such rather than failing the run."""
    names = list(workloads.WORKLOADS)
    report = bench.run(names, size="tiny", systems=("numpy", "eager", "graph", "jax.jit", "torch",
                                                    "torch.compile", "copy limit"),
                       torch_compile=True, progress=False, **FAST)
    assert [r.name for r in report.results] == names
    for r in report.results:
        assert r["numpy"].ok
        for mode in ("eager", "graph"):
            s = r[mode]
            if s.status == "unavailable":  # a tracejit piece this workload needs has not landed
                continue
            _check_timed(s)
            assert s.max_error <= 1, (r.name, mode)
        for peer in ("jax.jit", "torch", "torch.compile"):
            if peer not in workloads.get(r.name).systems:  # no version of this workload for that peer
                continue
            assert r[peer].status == "not installed" and r[peer].median is None
            assert r[peer].note in ("jax is not installed", "torch is not installed")
    copy = report["elementwise_1m"]["copy limit"]
    assert copy.ok and copy.max_error is None and "GB/s" in copy.note
    table = report.table()
    assert "not installed" in table and "softmax_sgd" in table
    assert Report.from_json(report.to_json()).to_dict() == report.to_dict()
    assert report.machine["cores"] >= 1 and "numpy" in report.machine["versions"]


def test_peer_columns_left_out_when_not_asked(no_peers):
    report = bench.run(["dispatch"], size="tiny", peers=(), progress=False, **FAST)
    assert set(report["dispatch"].systems) == {"numpy", "eager", "compiled"}
    report = bench.run(["dispatch"], size="tiny", peers=("jax",), quick=True, progress=False, **FAST)
    assert report["dispatch"]["jax.jit"].status == "not installed"
    assert "torch" not in report["dispatch"].systems


def test_torch_compile_skip_flag(no_peers):
    report = bench.run(["dispatch"], size="tiny", systems=("numpy", "torch.compile"), torch_compile=False,
                       progress=False, **FAST)
    assert report["dispatch"]["torch.compile"].status == "skipped"


def test_tracing_benchmark_reports_trace_seconds():
    """The trace benchmark records the MLP's Adam step in fresh traces: the median of
    stats['trace_seconds'], the equations recorded and the passes' time."""
    (result,) = bench.run(["trace"], size="tiny", progress=False).results
    c = result["compiled"]
    assert result.name == "trace" and result.kind == "latency" and c.ok and c.rounds == 2
    assert c.min <= c.median <= c.max and c.extra["equations"] > 50 and c.extra["pass_seconds"] > 0
    assert "equations" in c.note and "trace" in result.table()


def test_compile_latency_in_new_processes(no_peers):
    cold, warm = latency.run_latency(size="tiny", systems=("numpy", "compiled", "jax.jit"), cold_runs=1,
                                     warm_runs=1, timeout=120)
    assert (cold.name, warm.name) == ("compile_cold", "compile_warm") and cold.kind == "latency"
    for r in (cold, warm):
        n = r["numpy"]
        assert n.ok and n.rounds == 1 and 0 < n.extra["startup"] < n.median and n.first_call < n.median
        assert r["jax.jit"].status == "not installed"
        c = r["compiled"]
        if _backend_available():
            assert c.ok and c.kernels >= 1 and c.first_call < c.median
        else:
            assert c.status == "unavailable"
    assert "start-up" in str(cold)
    assert Result.from_json(cold.to_json()) == cold


# ------------------------------------------------------------------------------------ CLI
def test_cli_writes_json_markdown_and_notes_missing_matplotlib(tmp_path, capsys, monkeypatch, no_peers):
    monkeypatch.setattr(plot, "have_matplotlib", lambda: False)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")  # recorded and reported, not changed
    js, md, png = tmp_path / "r.json", tmp_path / "out" / "R.md", tmp_path / "p.png"
    code = cli_main(["dispatch", "--tiny", "--systems", "numpy,eager,jax.jit", "--no-progress", "--repeat", "3",
                     "--json", str(js), "--markdown", str(md), "--plot", str(png)])
    assert code == 0
    out = capsys.readouterr().out
    assert "median time per call" in out and "dispatch" in out and "not installed" in out
    assert "matplotlib is not installed" in out and "OPENBLAS_CORETYPE=Haswell" in out
    assert not png.exists()
    report = Report.from_json(js.read_text())
    assert report["dispatch"]["eager"].ok and report.machine["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert report.params["command"].startswith("python -m tracejit.bench dispatch --tiny")
    text = md.read_text()
    for fragment in ("# tracejit benchmarks", "## Summary", "## Machine", "| CPU |", "| numpy |", "## Method",
                     "matplotlib is not installed", "| jax |"):
        assert fragment in text, fragment


def test_cli_rejects_unknown_names(capsys):
    assert cli_main(["nope", "--no-progress"]) == 2
    assert cli_main(["dispatch", "--systems", "numba", "--no-progress"]) == 2
    assert cli_main(["dispatch", "--peers", "tensorflow", "--no-progress"]) == 2
    assert cli_main(["--list"]) == 0
    assert "softmax_sgd" in capsys.readouterr().out


@pytest.mark.skipif(not plot.have_matplotlib(), reason="matplotlib is not installed")
def test_plot_written(tmp_path, no_peers):
    report = bench.run(["dispatch", "elementwise_1m"], size="tiny", peers=(), progress=False, **FAST)
    assert plot.plot_report(report, tmp_path / "p.png") is None
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_fresh_cache_is_temporary(monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "/somewhere/else")
    wl = workloads.WORKLOADS["dispatch"]
    seen = []
    make_inputs = wl.make_inputs

    def spy(size):
        seen.append(os.environ["TRACEJIT_CACHE_DIR"])
        return make_inputs(size)

    monkeypatch.setattr(wl, "make_inputs", spy)
    report = bench.run(["dispatch"], size="tiny", systems=("numpy",), fresh_cache=True, progress=False, **FAST)
    assert report["dispatch"]["numpy"].ok and report.params["fresh_cache"] is True
    assert len(seen) == 1 and "tracejit-bench-cache-" in seen[0] and not os.path.exists(seen[0])
    assert os.environ["TRACEJIT_CACHE_DIR"] == "/somewhere/else"


def test_cli_threads_limit(monkeypatch, capsys, tmp_path):
    from tracejit.bench.__main__ import thread_env
    env = thread_env(1, {"XLA_FLAGS": "--xla_dump_to=/tmp/x intra_op_parallelism_threads=4"})
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "1"
    assert env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", "--xla_cpu_multi_thread_eigen=false",
                                        "intra_op_parallelism_threads=1"]
    # with the limits already in the environment the run goes ahead in this process
    for k, v in thread_env(1).items():
        monkeypatch.setenv(k, v)
    js = tmp_path / "r.json"
    assert cli_main(["dispatch", "--tiny", "--systems", "numpy", "--threads", "1", "--no-progress",
                     "--json", str(js)]) == 0
    report = Report.from_json(js.read_text())
    assert report.params["threads"] == 1 and report.machine["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert any("limited to 1 thread" in n for n in report.notes)
    assert cli_main(["dispatch", "--threads", "0"]) == 2


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_threads_pins_every_thread_to_that_many_cpus_and_restores_them():
    import threading
    from tracejit.bench.__main__ import pinned_to_cpus
    before = os.sched_getaffinity(0)
    seen = {}
    with pinned_to_cpus(1) as cpus:
        assert cpus == [min(before)] and os.sched_getaffinity(0) == {min(before)}
        worker = threading.Thread(target=lambda: seen.update(cpus=os.sched_getaffinity(0)))
        worker.start()
        worker.join()
    assert seen["cpus"] == {min(before)}  # threads started inside inherit the limit
    assert os.sched_getaffinity(0) == before
    with pinned_to_cpus(None) as cpus:
        assert cpus is None and os.sched_getaffinity(0) == before


def test_the_busy_machine_note_compares_the_load_with_every_cpu():
    from tracejit.bench.machine import environment_notes
    pinned = {"load_average": [1.5, 1.0, 1.0], "cores": 2, "usable_cores": 1}
    assert any("load average 1.5 on 2 cores" in n for n in environment_notes(pinned))
    assert not environment_notes({"load_average": [0.9, 1.0, 1.0], "cores": 2, "usable_cores": 1})
    assert any("load average 0.6 on 1 core)" in n for n in environment_notes({"load_average": [0.6], "cores": 1}))


def _cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_background_load_keeps_one_cpu_busy_and_stops(monkeypatch):
    from tracejit.bench import __main__ as cli
    started = []
    real_popen = cli.subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]
    monkeypatch.setattr(cli.subprocess, "Popen", popen)
    with cli.background_load() as cpu:
        time.sleep(1.0)
        (spinner,) = started
        deadline = time.monotonic() + 20  # on a busy machine the spinner gets its CPU time late
        while _cpu_seconds(spinner.pid) <= 0.3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert spinner.poll() is None and _cpu_seconds(spinner.pid) > 0.3  # it spins
        if cpu is not None:
            assert os.sched_getaffinity(spinner.pid) == {cpu}
    assert spinner.poll() is not None  # stopped with the block


def test_cli_background_load_runs_numpy_and_tracejit_side_by_side(capsys, no_peers):
    assert cli_main(["dispatch", "--tiny", "--systems", "numpy,compiled,jax.jit", "--background-load",
                     "--no-progress", "--repeat", "3"]) == 0
    out = capsys.readouterr().out
    assert "measured under load: another process kept one CPU" in out
    assert "numpy" in out and "compiled" in out and "jax.jit" in out
def test_machine_table_names_the_instruction_set():
    from tracejit.bench.machine import describe_markdown, instruction_set, machine_info
    assert instruction_set(flags={"avx", "avx2", "fma", "avx512f"}, numba_features="") == "AVX-512"
    assert instruction_set(flags={"avx", "avx2", "fma"}, numba_features="") == "AVX2 + FMA"
    assert instruction_set(flags={"sse4_2"}, numba_features="") == "SSE4.2"
    # Numba's target, when set, is what the compiled code uses
    assert instruction_set(flags={"avx512f", "avx2", "fma"}, numba_features="+avx,+avx2,+fma") == "AVX2 + FMA"
    info = machine_info()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert info["instruction_set"] is not None
        assert any(f"| instruction set | {info['instruction_set']} |" == row for row in describe_markdown(info))


@pytest.mark.skipif(not _backend_available(), reason="Numba is not installed")
@pytest.mark.parametrize("mode", ["compiled", "graph", "eager"])
def test_timing_inner_records_the_time_inside_each_call_and_leaves_calls_as_they_were(mode):
    # the runtime's hook the overhead column uses: one record per call in the block, none after
    f = tj.trace(chain, mode=mode)
    expected = chain(X, np.float32(2))
    if mode != "eager":
        with pytest.raises(ValueError, match="call the function first"):
            with f.timing_inner():
                pass
    for _ in range(3):  # the fast paths are built
        f(X, np.float32(2))
    ticks = iter(range(0, 10 ** 6, 5))
    with f.timing_inner(clock=lambda: next(ticks)) as inner:
        for _ in range(4):
            np.testing.assert_allclose(f(X, np.float32(2)), expected, rtol=1e-5, atol=1e-6)
    assert inner == [5] * 4  # one reading before and one after each call of what it runs
    hits = f.stats["cache_hits"]
    np.testing.assert_allclose(f(X, np.float32(2)), expected, rtol=1e-5, atol=1e-6)
    assert len(inner) == 4
    if mode != "eager":
        assert f.stats["cache_hits"] == hits + 1 and f.stats["traces"] == 1


@pytest.mark.long
def test_the_mnist_epoch_from_a_cold_start(no_peers, monkeypatch):
    """The epoch benchmark's children train one MNIST epoch with each system from the same
    start, and reach the same loss."""
    if not os.environ.get("TRACEJIT_DATA"):
        pytest.skip("needs MNIST under $TRACEJIT_DATA")
    monkeypatch.setenv("TRACEJIT_TIERED", "1")  # as users run it (the suite turns tiering off)
    cold, warm = latency.run_latency(systems=("numpy", "compiled"), cold_runs=1, warm_runs=1, epoch=True)
    assert (cold.name, warm.name) == ("epoch_cold", "epoch_warm")
    for result in (cold, warm):
        assert all(s.ok for s in result.systems.values()), result.table()
    losses = [result.systems[s].extra["loss"] for result in (cold, warm) for s in ("numpy", "compiled")]
    np.testing.assert_allclose(losses, losses[0], rtol=1e-4)
    # from a cold cache the first steps ran in the interpreter; the table says how many
    compiled = cold.systems["compiled"]
    assert compiled.note.startswith("steps run by the interpreter while the step compiled: "), compiled.note
    assert int(compiled.note.rsplit(" ", 1)[1]) > 0
    assert ("kernels = 0" in " ".join(cold.notes)) == (compiled.kernels == 0)
