"""Tiered execution: a new signature's first calls answer from the NumPy interpreter while its
program compiles in the background; then the compiled program takes over.

The suite compiles before the first call returns (conftest sets ``TRACEJIT_TIERED=0``); these
tests turn tiering on per function (``tiered=True``) or through the environment. The
mode-equality and in-place tests of ``test_trace.py`` run in the "tiered" pseudo-mode too.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj
from conftest import assert_tree_close, run, tiering
from tracejit import tiers


@pytest.fixture(autouse=True)
def interpreted_first(monkeypatch):
    """Every test here sees the interpreted tier first, even with a program an earlier test
    compiled, which compiled mode would load at once (tested on its own below)."""
    import tracejit.backend
    monkeypatch.setattr(tracejit.backend, "is_compiled", lambda graph, **options: False)


def sgd_step(params, x, y, lr):
    loss, g = tj.value_and_grad(lambda p: tj.nn.cross_entropy(np.tanh(x @ p["W"]) + p["b"], y))(params)
    return {k: params[k] - lr * g[k] for k in params}, loss


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"W": rng.standard_normal((6, 4)) * 0.3, "b": np.zeros(4)}
    return params, rng.standard_normal((5, 6)), rng.integers(0, 4, 5)


def test_the_first_call_is_interpreted_then_the_compiled_program_takes_over():
    params, x, y = _problem()
    want = run(tj.trace(sgd_step), "eager", params, x, y, 0.1)
    f = tj.trace(sgd_step, tiered=True)
    with tj.mode("compiled"):
        first = f(params, x, y, 0.1)
        assert f.stats["interpreted_calls"] == 1 and f.stats["compiled_programs"] == 1
        assert_tree_close(first, want)
        f.wait()
        assert f.stats["kernels"] > 0 and f.stats["compile_seconds"] > 0
        for _ in range(3):  # the full path once, then the fast path
            assert_tree_close(f(params, x, y, 0.1), want)
    assert f.stats["interpreted_calls"] == 1
    assert f.stats["traces"] == 1


def test_in_place_updates_are_the_same_in_both_tiers():
    def update(w, g):
        w -= 0.5 * g
        return (w * w).sum()

    g = np.linspace(-1, 1, 12).reshape(3, 4)
    eager_w, tiered_w = np.ones((3, 4)), np.ones((3, 4))
    f = tj.trace(update, tiered=True)
    for step in range(3):
        want = update(eager_w, g)
        with tj.mode("compiled"):
            got = f(tiered_w, g)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(tiered_w, eager_w, rtol=1e-12)
        if step == 0:
            assert f.stats["interpreted_calls"] == 1
            f.wait()
    assert f.stats["interpreted_calls"] == 1


def _compiled_at_once(f, *args):
    """``f(*args, 0.1)`` in compiled mode, logging compiles, checked to have run compiled code."""
    tj.set_log("compile")
    try:
        with tj.mode("compiled"):
            result = f(*args, 0.1)
    finally:
        tj.set_log("")
    assert f.stats["interpreted_calls"] == 0 and f.stats["kernels"] > 0
    return result


def test_a_program_with_a_collective_compiles_before_its_first_call_returns(capsys):
    # Every process must run the same code at every step: one interpreted step beside a compiled
    # one on another process would round differently and the parameters would drift apart.
    params, x, y = _problem()

    def averaged_step(params, x, y, lr):
        loss, g = tj.value_and_grad(lambda p: tj.nn.cross_entropy(np.tanh(x @ p["W"]) + p["b"], y))(params)
        g = tj.distributed.all_mean(g)
        return {k: params[k] - lr * g[k] for k in params}, loss

    want = run(tj.trace(sgd_step), "eager", params, x, y, 0.1)
    f = tj.trace(averaged_step, tiered=True)
    got = _compiled_at_once(f, params, x, y)
    assert_tree_close(got, want)
    assert "because it calls the collective all_sum" in capsys.readouterr().err
    # without a collective the same step is tiered
    g = tj.trace(sgd_step, tiered=True)
    with tj.mode("compiled"):
        g(params, x, y, 0.1)
    assert g.stats["interpreted_calls"] == 1
    g.wait()


def test_a_program_compiled_already_is_loaded_before_the_first_call_returns(monkeypatch, capsys):
    monkeypatch.undo()  # compiled mode's own check (a new process and the disk cache: test_disk_cache)
    params, x, y = _problem(3)
    with tj.mode("compiled"):
        want = tj.trace(sgd_step, tiered=False)(params, x, y, 0.1)
    f = tj.trace(sgd_step, tiered=True)
    got = _compiled_at_once(f, params, x, y)
    assert "because it is compiled already" in capsys.readouterr().err
    assert_tree_close(got, want)


def test_the_interpreted_tier_warns_about_floating_point_errors_as_compiled_code_does():
    import warnings
    f = tj.trace(lambda x: np.log(x) / x, tiered=True)
    x = np.array([0.0, 1.0, -1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail the call
        with tj.mode("compiled"):
            first = f(x)
            assert f.stats["interpreted_calls"] == 1
            f.wait()
            np.testing.assert_array_equal(f(x), first)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(first, np.log(x) / x)


def test_the_environment_and_the_argument_choose_the_tier():
    x = np.arange(6.0)
    with tiering(on=False):
        f = tj.trace(lambda x: np.exp(x) + 1)
        assert run(f, "compiled", x).shape == (6,)
        assert f.stats["interpreted_calls"] == 0 and f.stats["kernels"] > 0
    with tiering(on=True):
        g = tj.trace(lambda x: np.exp(x) + 2)
        run(g, "compiled", x)
        assert g.stats["interpreted_calls"] == 1
        h = tj.trace(lambda x: np.exp(x) + 3, tiered=False)
        run(h, "compiled", x)
        assert h.stats["interpreted_calls"] == 0
    g.wait()


def test_bad_settings_name_what_is_wrong(monkeypatch):
    with pytest.raises(ValueError, match="tiered must be None, True or False, got 'yes'"):
        tj.trace(np.exp, tiered="yes")
    monkeypatch.setenv("TRACEJIT_TIERED", "sometimes")
    with pytest.raises(ValueError, match="TRACEJIT_TIERED must be 1 .* or 0 .*got 'sometimes'"):
        run(tj.trace(lambda x: x + 1), "compiled", np.ones(2))
    monkeypatch.setenv("TRACEJIT_COMPILE_HELPER", "maybe")
    with pytest.raises(ValueError, match="TRACEJIT_COMPILE_HELPER must be 1 .*, 0 .* or auto .*got 'maybe'"):
        tiers.use_helper_process()


def test_the_helper_compiles_only_when_nobody_waits_and_a_core_is_free(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    for setting, expected in (("1", True), ("0", False), ("auto", True), ("", True)):
        monkeypatch.setenv("TRACEJIT_COMPILE_HELPER", setting)
        assert tiers.helper_wanted() is expected, setting
    with tiers.waiting():  # a caller blocked in wait(): the thread starts compiling at once
        assert tiers.helper_wanted() is False
        monkeypatch.setenv("TRACEJIT_COMPILE_HELPER", "1")
        assert tiers.helper_wanted() is True  # an explicit setting is obeyed
    monkeypatch.setenv("TRACEJIT_COMPILE_HELPER", "auto")
    assert tiers.helper_wanted() is True
    monkeypatch.setattr(os, "getloadavg", lambda: (3.6, 3.0, 3.0))  # no core to spare
    assert tiers.helper_wanted() is False
    monkeypatch.setattr(os, "getloadavg", lambda: (3.4, 3.0, 3.0))
    assert tiers.helper_wanted() is True
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert tiers.helper_wanted() is False


def _waiters_seen_within(seconds=20.0):
    """How many callers ``tiers.waiting`` counts, once it counts one or ``seconds`` passed."""
    import time
    deadline = time.monotonic() + seconds
    while not tiers._waiters and time.monotonic() < deadline:
        time.sleep(0.005)
    return tiers._waiters


def test_wait_and_block_until_compiled_count_as_waiting_while_they_block(monkeypatch):
    import threading
    import tracejit.backend
    seen, compile_graph = [], tracejit.backend.compile_graph

    def compile_when_waited_for(graph, **options):  # the compile job; the caller is in wait() by then
        seen.append(_waiters_seen_within())
        return compile_graph(graph, **options)
    monkeypatch.setattr(tracejit.backend, "compile_graph", compile_when_waited_for)
    f = tj.trace(lambda x: np.sin(x) * 7, tiered=True)
    with tj.mode("compiled"):
        f(np.ones(5))
        f.wait()
        np.testing.assert_allclose(f(np.ones(5)), np.sin(np.ones(5)) * 7)
    assert seen == [1] and f.stats["interpreted_calls"] == 1
    release = threading.Event()
    job = tiers.submit(lambda: (release.wait(20), _waiters_seen_within())[1])
    waiter = threading.Thread(target=tj.block_until_compiled)
    waiter.start()
    release.set()
    waiter.join(30)
    assert job.result() == 1 and tiers._waiters == 0


def test_a_failed_background_compile_raises_on_the_next_call_and_in_wait(monkeypatch):
    import tracejit.backend

    def broken(graph, **options):
        raise tracejit.backend.BackendError("the compiler broke")

    monkeypatch.setattr(tracejit.backend, "compile_graph", broken)
    f = tj.trace(lambda x: np.sin(x) * 3, tiered=True)
    with tj.mode("compiled"):
        np.testing.assert_allclose(f(np.ones(3)), np.sin(np.ones(3)) * 3)  # the interpreter answered
        with pytest.raises(tracejit.backend.BackendError, match="the compiler broke"):
            f.wait()
        for _ in range(2):  # not silently interpreted from now on
            with pytest.raises(tracejit.backend.BackendError, match="the compiler broke"):
                f(np.ones(3))


def test_block_until_compiled_waits_for_every_function():
    fs = [tj.trace(lambda x, k=k: np.cos(x) * k, tiered=True) for k in range(3)]
    with tj.mode("compiled"):
        for f in fs:
            f(np.ones(4))
    tj.block_until_compiled()
    assert tiers.pending_count() == 0
    assert all(f.stats["kernels"] > 0 for f in fs)
    with pytest.raises(TimeoutError):
        slow = tiers.submit(lambda: __import__("time").sleep(1.0))
        tj.block_until_compiled(timeout=0.01)
    slow.result()


def test_a_compile_runs_with_a_short_switch_interval_and_numpys_blas_on_one_thread():
    from tracejit import numpy_blas
    if numpy_blas.threads() is None:
        pytest.skip("NumPy has no OpenBLAS of its own here")
    before_threads, before_interval = numpy_blas.threads(), sys.getswitchinterval()
    numpy_blas.set_threads(2)
    try:
        threads, interval = tiers.submit(lambda: (numpy_blas.threads(), sys.getswitchinterval())).result()
        assert threads == 1 and interval == pytest.approx(tiers.SWITCH_INTERVAL_WHILE_COMPILING)
        assert (numpy_blas.threads(), sys.getswitchinterval()) == (2, before_interval)
    finally:
        numpy_blas.set_threads(before_threads)


def test_check_mode_compares_the_interpreted_tier_too():
    f = tj.trace(lambda x: np.tanh(x).sum(), tiered=True, check=True)
    with tj.mode("compiled"):
        assert np.isclose(f(np.arange(4.0)), np.tanh(np.arange(4.0)).sum())
    f.wait()


def _script(body: str) -> str:
    return textwrap.dedent("""
        import time
        import numpy as np
        import tracejit as tj

        @tj.trace
        def f(x):
            return np.tanh(x @ x.T).sum(axis=0) * 2
    """) + textwrap.dedent(body)


def _run_script(source, tmp_path, **env):
    environment = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path / "cache"), TRACEJIT_TIERED="1", **env)
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, env=environment,
                          timeout=600)


def test_a_program_that_ends_before_its_compile_exits_at_once_and_cleanly(tmp_path):
    done = _run_script(_script("""
        print(f(np.ones((30, 20))).shape, f.stats["interpreted_calls"])
    """), tmp_path, TRACEJIT_COMPILE_HELPER="0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(30,)", "1"]
    assert done.stderr == ""


@pytest.mark.long
def test_a_helper_process_compiles_into_the_disk_cache_and_this_process_loads_it(tmp_path):
    source = _script("""
        x = np.linspace(-1, 1, 600).reshape(30, 20)
        first = f(x)
        f.wait()
        entry = next(iter(f._cache.values()))
        print(entry.compiled.origin)
        print(np.allclose(f(x), first, rtol=1e-12), np.allclose(first, np.tanh(x @ x.T).sum(axis=0) * 2))
    """)
    done = _run_script(source, tmp_path, TRACEJIT_COMPILE_HELPER="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["compiled by a helper process", "True True"]
    again = _run_script(source, tmp_path, TRACEJIT_COMPILE_HELPER="1")  # a new process: from the disk cache
    assert again.stdout.splitlines() == ["loaded from the disk cache", "True True"], again.stderr


_AS_IF_IDLE_MACHINE = textwrap.dedent("""
    import os
    os.getloadavg = lambda: (0.0, 0.0, 0.0)  # whatever else this machine runs: a core to spare
    os.cpu_count = lambda: 4
""")


@pytest.mark.long
def test_by_default_a_helper_compiles_while_the_caller_keeps_calling_and_stays_for_the_next(tmp_path):
    source = _AS_IF_IDLE_MACHINE + _script("""
        from tracejit.backend import compiler

        @tj.trace
        def g(x):
            return np.exp(x.T @ x).max(axis=1) - 1

        helpers = set()
        for fn, expected in ((f, lambda x: np.tanh(x @ x.T).sum(axis=0) * 2),
                             (g, lambda x: np.exp(x.T @ x).max(axis=1) - 1)):
            x = np.linspace(-1, 1, 600).reshape(30, 20)
            end = time.time() + 300
            while not fn.stats["kernels"] and time.time() < end:  # a training loop: never waits
                assert np.allclose(fn(x), expected(x), rtol=1e-12)
                if compiler.helper_running():
                    helpers.add(compiler._helper[0].pid)
            print(next(iter(fn._cache.values())).compiled.origin)
            print(fn.stats["interpreted_calls"] > 1, np.allclose(fn(x), expected(x), rtol=1e-12))
        print(len(helpers))
    """)
    done = _run_script(source, tmp_path, TRACEJIT_COMPILE_HELPER="auto")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["compiled by a helper process", "True True"] * 2 + ["1"], done.stderr


def test_a_process_that_has_compiled_compiles_here_unless_its_helper_runs(monkeypatch):
    import time
    from tracejit.backend import compiler
    monkeypatch.setenv("TRACEJIT_COMPILE_HELPER", "auto")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    new_constant = lambda: float(np.random.default_rng().integers(1, 10**9))  # noqa: E731 - not in the disk cache
    k = new_constant()
    warm = tj.trace(lambda x: np.cos(x) * k, tiered=False)
    with tj.mode("compiled"):
        warm(np.ones(3))  # compiled here: Numba is warm in this process now
    assert next(iter(warm._cache.values())).compiled.origin == "compiled" and compiler._numba_set_up
    assert not compiler.helper_running()
    k2 = new_constant()
    f = tj.trace(lambda x: np.arctan(x) * k2, tiered=True)
    with tj.mode("compiled"):
        deadline = time.monotonic() + 300
        while not f.stats["kernels"] and time.monotonic() < deadline:  # calling, not waiting
            np.testing.assert_allclose(f(np.ones(4)), np.arctan(np.ones(4)) * k2)
    assert next(iter(f._cache.values())).compiled.origin == "compiled"


def test_whether_a_program_is_compiled_is_answered_while_another_compiles():
    """The first call of a function asks whether its program is compiled; a compile of another
    function holds the program cache's lock until it ends, and the question must not wait."""
    import threading
    from tracejit.backend import compiler
    f = tj.trace(lambda x: np.sqrt(x) + 1)
    graph = f.graph(np.ones(3))
    held, release = threading.Event(), threading.Event()

    def compiling():
        with compiler._cache_lock:
            held.set()
            release.wait(30)
    other = threading.Thread(target=compiling)
    other.start()
    try:
        assert held.wait(30)
        answer = []
        asking = threading.Thread(target=lambda: answer.append(compiler.is_compiled(graph)))
        asking.start()
        asking.join(10)
        assert answer in ([True], [False])
    finally:
        release.set()
        other.join()


@pytest.mark.long
def test_a_helper_still_starting_gives_way_to_this_process_when_the_caller_waits(tmp_path):
    source = _AS_IF_IDLE_MACHINE + _script("""
        import threading
        from tracejit.backend import compiler
        compiler.HELPER_START_SECONDS = 120  # however slow this machine: the helper is "starting"
        started, by_helper = threading.Event(), compiler._compiled_by_helper

        def helper_started(job, still_wanted):
            started.set()
            return by_helper(job, still_wanted)
        compiler._compiled_by_helper = helper_started
        x = np.linspace(-1, 1, 600).reshape(30, 20)
        first = f(x)
        assert started.wait(120)
        f.wait()
        print(next(iter(f._cache.values())).compiled.origin)
        print(np.allclose(f(x), first, rtol=1e-12), np.allclose(first, np.tanh(x @ x.T).sum(axis=0) * 2))
    """)
    done = _run_script(source, tmp_path, TRACEJIT_COMPILE_HELPER="auto", TRACEJIT_LOG="compile")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["compiled", "True True"], done.stderr
    assert "compiling in this process instead of the helper, which was still starting" in done.stderr


def _origin_with_helper_script(monkeypatch, script, ufunc):
    """Compiles ``ufunc(x) * k`` (a new program) with the helper process started as ``python -c
    script``, checks the program's values against NumPy and returns how it was obtained."""
    from tracejit.backend import compiler
    monkeypatch.setattr(compiler, "_HELPER_COMMAND", [sys.executable, "-c", textwrap.dedent(script)])
    monkeypatch.setattr(compiler, "_helper", None)
    k = float(np.random.default_rng().integers(1, 10**9))  # a new program: not in the disk cache
    f = tj.trace(lambda x: ufunc(x) * k)
    x = np.linspace(-1, 1, 7)
    try:
        program = compiler.compile_graph(f.graph(x), helper_process=True)
        np.testing.assert_allclose(program([x])[0], ufunc(x) * k, rtol=1e-12)
        return program.origin
    finally:
        if compiler._helper is not None:
            compiler._stop_helper("test over")


@pytest.mark.long
def test_a_helper_that_ended_before_it_read_the_job_is_replaced(tmp_path, monkeypatch):
    """The helper ends when no job came for a while; a job written just as it ended goes to a
    new helper, not to a compile in this process."""
    marker = tmp_path / "ended-once"
    ends_first = f"""
        import os, runpy, sys
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            sys.exit(0)  # as a helper whose idle time ran out
        runpy.run_module("tracejit.backend.compile_helper", run_name="__main__")
    """
    assert _origin_with_helper_script(monkeypatch, ends_first, np.sinh) == "compiled by a helper process"
    assert marker.exists()


@pytest.mark.long
def test_lines_that_are_not_the_jobs_reply_do_not_answer_it(monkeypatch):
    """The reply to a job is the line with the job's key: a stray line on the helper's standard
    output (or a late reply to a job given up) is passed over, not taken for the answer."""
    strays = """
        import runpy
        print("ok")
        print("0123456789abcdef ok", flush=True)  # another job's reply
        runpy.run_module("tracejit.backend.compile_helper", run_name="__main__")
    """
    assert _origin_with_helper_script(monkeypatch, strays, np.cosh) == "compiled by a helper process"


@pytest.mark.long
def test_a_compile_unfinished_at_exit_is_finished_by_a_helper_for_the_next_run(tmp_path):
    """A program that ends while its step compiles does not wait, and the next run finds the
    program in the disk cache all the same (a helper process finished the compile)."""
    import glob
    import time
    source = _script("""
        x = np.linspace(-1, 1, 600).reshape(30, 20)
        f(x)
        end = time.time() + 60
        while time.time() < end and not f.stats["kernels"]:  # until the compile is in Numba's hands
            from tracejit.backend import compiler
            if compiler._compiling:
                break
            time.sleep(0.01)
        print(f.stats["kernels"])
    """)
    done = _run_script(source, tmp_path, TRACEJIT_COMPILE_HELPER="0", TRACEJIT_LOG="compile")
    assert done.returncode == 0, done.stderr
    if done.stdout.split() != ["0"]:
        pytest.skip("the compile finished before the program ended")
    assert "a helper process finishes it into the disk cache" in done.stderr
    machine_code = str(tmp_path / "cache" / "kernels" / "__pycache__" / "*.nbi")
    deadline = time.time() + 300
    while not glob.glob(machine_code) and time.time() < deadline:
        time.sleep(0.2)
    assert glob.glob(machine_code)
    time.sleep(1)  # the index is written last
    again = _run_script(_script("""
        x = np.linspace(-1, 1, 600).reshape(30, 20)
        f(x)
        f.wait()
        print(next(iter(f._cache.values())).compiled.origin)
    """), tmp_path, TRACEJIT_COMPILE_HELPER="0")
    assert again.stdout.split("\n")[0] == "loaded from the disk cache", again.stderr
