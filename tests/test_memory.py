"""Memory planning (``tracejit/backend/memory.py``): liveness, buffer reuse, the workspace
shared by calls, in-place writes into arguments, and what a compiled call allocates.

Values are always checked against NumPy; the plan itself is checked by counting slots and
bytes for graphs whose liveness is known by hand.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import tracejit as tj
from conftest import MODES, run
from tracejit.backend import blas
from tracejit.backend.codegen import lower
from tracejit.backend.compiler import new_workspace
from tracejit.backend.memory import ALIGN, Buffer, plan_memory
from tracejit.transforms import DEFAULT_PASSES

UNFUSED = [p for p in DEFAULT_PASSES if getattr(p, "__name__", "") != "fuse"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _buffer(name, nbytes, unit):
    return Buffer(name, (nbytes // 4,), np.dtype(np.float32), "empty", None, line=unit, unit=unit)


# --------------------------------------------------------------------------- the planner alone

def test_a_slot_is_reused_only_after_the_last_use_of_what_it_holds():
    # a: units 0-1, b: 1-2, c: 2-3, d: 3-3 -> a and c share, b and d share
    buffers = [_buffer("a", 256, 0), _buffer("b", 256, 1), _buffer("c", 256, 2), _buffer("d", 256, 3)]
    reads = [{"a"}, {"a", "b"}, {"b", "c"}, {"c", "d"}]  # the names each step reads or writes
    plan = plan_memory(buffers, reads, {}, output_roots=set())
    assert plan.live == {"a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 3)}
    assert plan.slot_of["a"] == plan.slot_of["c"] != plan.slot_of["b"] == plan.slot_of["d"]
    assert plan.slots == [256, 256] and plan.temp_bytes == 512 and plan.unplanned_bytes == 1024


def test_an_equation_never_writes_into_a_buffer_it_reads():
    # b is allocated in the unit that reads a for the last time: they must not share
    plan = plan_memory([_buffer("a", 64, 0), _buffer("b", 64, 1)], [{"a"}, {"a", "b"}], {}, set())
    assert plan.slot_of["a"] != plan.slot_of["b"]


def test_a_read_through_an_alias_is_a_use():
    buffers = [_buffer("a", 64, 0), _buffer("b", 64, 0)]
    reads = [{"a", "b"}, {"a"}, {"r"}, set()]
    plan = plan_memory(buffers, reads, {"a": {"r"}}, set())
    assert plan.live["a"] == (0, 2)  # read through its reshape r in step 2
    assert plan.live["b"] == (0, 0)


def test_outputs_are_not_placed_and_slots_are_aligned_and_grow_when_needed():
    buffers = [_buffer("a", 100, 0), _buffer("out", 4000, 1), _buffer("b", 1000, 2)]
    plan = plan_memory(buffers, [{"a"}, {"a", "out"}, {"out", "b"}, {"b"}], {}, {"out"})
    assert [b.name for b in plan.outputs] == ["out"]
    # a is dead when b is allocated: its slot grows to b's size, rounded up to ALIGN bytes
    assert plan.slot_of == {"a": 0, "b": 0} and plan.slots == [-(-1000 // ALIGN) * ALIGN]
    assert all(size % ALIGN == 0 for size in plan.slots)


# --------------------------------------------------------------------------- lowered programs

def _chain(x):
    return np.sqrt(np.abs(np.sin(np.cos(np.exp(x) + 1.0) * 2.0)) + 3.0)


def test_an_unfused_chain_ping_pongs_between_two_buffers():
    x = np.linspace(-1, 1, 1000)
    graph = tj.trace(_chain, passes=UNFUSED).graph(x)
    computed = [e for e in graph.eqns if e.prim.name != "broadcast_to"]  # the constants' broadcasts are views
    assert len(computed) == 8  # each one writes a (1000,) float64 array
    lowered = lower(graph)
    plan = lowered.memory
    assert len(plan.temporaries) == 7 and len(plan.outputs) == 1
    assert plan.slots == [8000, 8000] and lowered.workspace_bytes == 16000
    assert plan.unplanned_bytes == 7 * 8000
    compiled = tj.trace(_chain, passes=UNFUSED, mode="compiled")
    for _ in range(2):  # the second call reuses the workspace with the first call's values in it
        np.testing.assert_allclose(compiled(x), _chain(x), rtol=1e-12)
    assert compiled.stats["temp_bytes"] == 16000


def test_a_reused_slot_is_zeroed_for_a_buffer_that_starts_at_zero():
    def f(x):
        a = np.exp(x)         # a temporary that dies at the next line
        b = a * 2.0 + 1.0     # ... its slot is free again after this one
        c = np.pad(b, 2)      # pad fills a zeroed array: it may take a's slot, full of old values
        return c.sum(axis=0) * b[0, 0]

    x = np.linspace(-1, 1, 12).reshape(3, 4)
    graph = tj.trace(f, passes=UNFUSED).graph(x)
    plan = lower(graph).memory
    zeroed = [b for b in plan.temporaries if b.init == "zeros"]
    assert zeroed and any(plan.slot_of[z.name] == plan.slot_of[t.name] for z in zeroed
                          for t in plan.temporaries if t is not z)
    compiled = tj.trace(f, passes=UNFUSED, mode="compiled")
    for _ in range(2):
        np.testing.assert_allclose(compiled(x), f(x), rtol=1e-12)


def test_source_shows_the_workspace_layout():
    source = tj.trace(_chain, passes=UNFUSED).source(np.ones(10))  # 80-byte temporaries in 128-byte slots
    assert "# ws: the workspace, 256 bytes for the temporaries" in source
    assert "#   [0:128] holds b, e, h, k" in source and "#   [128:256] holds d, g, i" in source
    assert "b = workspace_array(ws, 0, (10,), np.float64)" in source


@pytest.mark.parametrize("nbytes", [1, 64, 1000, 1 << 20])
def test_workspaces_start_on_a_cache_line(nbytes):
    ws = new_workspace(nbytes)
    assert ws.ctypes.data % ALIGN == 0 and ws.shape == (nbytes,) and ws.dtype == np.uint8
    assert ws.flags.c_contiguous and ws.flags.writeable


def test_a_program_without_temporaries_takes_no_workspace():
    lowered = lower(tj.trace(lambda a, b: a + b).graph(np.ones(8), np.ones(8)))
    assert lowered.workspace_bytes == 0 and "ws" not in lowered.source.split("def ", 1)[1].split(")")[0]


def test_matmul_reads_transposed_operands_without_copying_them():
    def f(x, w):
        return x.T @ np.tanh(x @ w), w.T @ w

    # 20 columns: BLAS (narrower products are loops, see test_backend)
    x, w = np.random.default_rng(0).standard_normal((6, 4)), np.random.default_rng(1).standard_normal((4, 20))
    source = tj.trace(f).source(x, w)
    if blas.NUMPY_GEMM:
        assert "gemm(a, True," in source and "gemm(b, True, b, False," in source
    else:
        assert "np.dot(a.T," in source and "np.dot(b.T, b," in source
    out = run(tj.trace(f), "compiled", x, w)
    np.testing.assert_allclose(out[0], x.T @ np.tanh(x @ w), rtol=1e-12)
    np.testing.assert_allclose(out[1], w.T @ w, rtol=1e-12)


# --------------------------------------------------------------------------- the lowering's records

def _records_programs():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0, 2])
    m = rng.integers(-5, 5, (4, 7)).astype(np.int32)

    def sgd(w, x, y, lr):
        loss, g = tj.value_and_grad(lambda w: tj.nn.cross_entropy(np.tanh(x @ w), y))(w)
        w -= lr * g
        return loss, w.T * 2.0, w[::-1].copy()

    def misc(a, i, m):
        return (a.sum(axis=0), a[i], np.concatenate([a, a * 2], axis=1), np.pad(a, 1).sum(),
                np.argmax(a, axis=1), m.sum(axis=0), (m // 3).min(axis=0), a.reshape(-1), a.T)

    def conv(x, k):
        return tj.nn.max_pool2d(tj.nn.conv2d(x, k), 2).sum()
    xc, kc = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((2, 3, 3, 3))
    return [(sgd, (w, x, y, 0.1)), (misc, (x, np.array([0, 2]), m)), (tj.grad(conv, argnums=(0, 1)), (xc, kc)),
            (_chain, (np.ones(10),))]


@pytest.mark.parametrize("part_kernels", [64, 2])
@pytest.mark.parametrize("fused", [True, False])
def test_each_steps_records_name_exactly_the_arrays_its_code_uses(monkeypatch, part_kernels, fused):
    # memory planning, part splitting and in-place updates trust the records: every array a
    # step's code names is among its reads or definitions, and nothing else is
    import re

    from tracejit.backend import codegen
    monkeypatch.setattr(codegen, "PART_KERNELS", part_kernels)
    for fn, args in _records_programs():
        graph = tj.trace(fn, passes=None if fused else UNFUSED).graph(*args)
        lowered = lower(graph, write_back={0: 0} if fn.__name__ == "sgd" else None)
        params = re.search(rf"^def {lowered.fn_name}\((.*)\):$", lowered.source, re.M).group(1).split(", ")
        arrays = set(params).union(*(step.defines for step in lowered.steps))
        for k, step in enumerate(lowered.steps):
            code = "\n".join(line.split("#", 1)[0] for line in step.code.splitlines())
            # a name starts after neither a word character nor a dot (not the e of 1e+38)
            named = set(re.findall(r"(?<![\w.])[A-Za-z_]\w*", code)) & arrays
            assert named == set(step.reads) | set(step.defines), (fn.__name__, k, step.code)
            assert not set(step.defines) & set(params)


# --------------------------------------------------------------------------- in-place updates

def test_inplace_updates_are_written_by_the_program_into_the_argument(mode):
    @tj.trace
    def sgd(w, x, lr):
        g = x.T @ np.tanh(x @ w)
        w -= lr * g
        return np.sum(g * g)

    rng = np.random.default_rng(0)
    w0, x = rng.standard_normal((4, 3)), rng.standard_normal((5, 4))
    expected_w = w0.copy()
    expected = sgd.fn(expected_w, x, 0.1)
    w = w0.copy()
    same_object = w
    out = run(sgd, mode, w, x, 0.1)
    assert w is same_object
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    if mode == "compiled":  # the update kernel writes into w itself: no temporary, no copy
        source = sgd.source(w, x, 0.1)
        assert "= a  # computed in place" in source and "# in-place update of the argument" not in source


@pytest.mark.parametrize("update", [
    lambda w: w.T * 2.0,                                 # reads w at another index than it writes
    lambda w: w.mean(axis=1, keepdims=True),             # reads w in an earlier loop of its kernel
    lambda w: w[::-1],                                   # a view of w itself
    lambda w: w.sum(),                                   # w is read after the update's kernel
])
def test_updates_that_cannot_be_computed_in_place_are_copied_in_at_the_end(mode, update):
    @tj.trace
    def f(w):
        w -= update(w)

    w = np.arange(16.0).reshape(4, 4) / 7
    expected = w.copy()
    f.fn(expected)
    run(f, mode, w)
    np.testing.assert_allclose(w, expected, rtol=1e-12)


def test_an_update_by_a_gather_that_does_not_read_the_argument_is_computed_in_place(mode):
    @tj.trace
    def take(w, x, i):
        w[...] = x[i]

    w, x, i = np.zeros((3, 4)), np.arange(20.0).reshape(5, 4), np.array([4, 0, 2])
    run(take, mode, w, x, i)
    np.testing.assert_array_equal(w, x[i])
    if mode == "compiled":
        assert "= a  # computed in place" in take.source(w, x, i)


def test_inplace_update_from_a_view_of_the_same_array(mode):
    @tj.trace
    def flip(x):
        x[...] = x[::-1] * 2.0  # reads and writes the same memory: copied out before writing

    x = np.arange(6.0)
    run(flip, mode, x)
    np.testing.assert_array_equal(x, [10, 8, 6, 4, 2, 0])


def test_inplace_update_of_a_non_contiguous_argument(mode):
    @tj.trace
    def bump(x):
        x += 1.0

    base = np.zeros((4, 6))
    view = base[:, ::2]  # the program gets a contiguous copy; the update must reach the view
    run(bump, mode, view)
    run(bump, mode, view)
    np.testing.assert_array_equal(base[:, ::2], 2.0)
    np.testing.assert_array_equal(base[:, 1::2], 0.0)


# --------------------------------------------------------------------------- allocations and peak memory

_MLP = textwrap.dedent("""
    import numpy as np
    import tracejit as tj

    def loss_fn(params, x, y):
        h = np.tanh(x @ params["W1"] + params["b1"])
        return tj.nn.cross_entropy(h @ params["W2"] + params["b2"], y)

    @tj.trace
    def step(params, x, y):
        loss, g = tj.value_and_grad(loss_fn)(params, x, y)
        return {k: params[k] - 0.1 * g[k] for k in params}, loss

    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((784, 256)).astype(np.float32) * 0.05, "b1": np.zeros(256, np.float32),
              "W2": rng.standard_normal((256, 10)).astype(np.float32) * 0.05, "b2": np.zeros(10, np.float32)}
    x = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
""")


def test_a_cache_hit_allocates_nothing_but_its_outputs():
    # Numba's runtime counts its allocations only with NUMBA_NRT_STATS=1, set before import:
    # hence a new process. Any temporary would be one.
    script = _MLP + textwrap.dedent("""
        import tracemalloc
        from numba.core.runtime import rtsys
        with tj.mode("compiled"):
            step(params, x, y)
            step(params, x, y)
            program = next(iter(step._cache.values())).compiled
            before = rtsys.get_allocation_stats()
            tracemalloc.start()
            new_params, loss = step(params, x, y)
            python_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            after = rtsys.get_allocation_stats()
        output_bytes = sum(a.nbytes for a in new_params.values()) + loss.nbytes
        runtime = "_nrt=False" not in program.source.splitlines()[1]
        print(after.alloc - before.alloc, python_peak, output_bytes, program.temp_bytes, int(runtime))
    """)
    env = {**os.environ, "NUMBA_NRT_STATS": "1", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    allocations, peak, output_bytes, temp_bytes, runtime = map(int, out.stdout.split())
    assert temp_bytes > 100_000  # the step has temporaries (activations, gradients) ...
    # ... but allocates none of them on a cache hit; it makes no array itself, so it is
    # compiled without Numba's runtime, whose wrappers of the arguments are not made either
    assert not runtime
    assert allocations == 0
    # tracemalloc sees Numba's allocations too: the new W1 (800 KB) is recycled from an earlier
    # call whose results were dropped, so the call allocates only its small outputs
    assert peak < 20_000 < output_bytes


def test_large_outputs_are_recycled_once_the_caller_has_dropped_them():
    f = tj.trace(lambda x: (np.exp(x) + 1.0, x.sum()), mode="compiled")
    x = np.linspace(0, 1, 1 << 16)  # 512 KB outputs: passed in by the runtime
    assert "an output array passed in" in f.source(x)
    first, _ = f(x)
    first_id, expected = id(first), first.copy()
    held, _ = f(x)  # first is held by the caller: the second call gets a new array
    assert held is not first
    view = first[::2]
    del first
    again, _ = f(x)  # a view of first is alive: first must not be reused
    assert id(again) != first_id
    np.testing.assert_array_equal(view, expected[::2])
    del view, held, again
    recycled, _ = f(x)
    assert id(recycled) == first_id  # the oldest set in the pool is free again
    np.testing.assert_allclose(recycled, np.exp(x) + 1.0, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_a_training_loop_leaves_no_reference_cycles_so_old_parameters_are_freed_at_once(mode):
    # A cycle per call (a recursive closure in pytree.flatten once was one) keeps the dropped
    # parameters alive until the garbage collector runs: about a hundred steps' worth, and
    # the compiled program cannot recycle them, so every step touches fresh pages.
    import gc

    @tj.trace(static_argnames="lr")  # a static argument: the call takes the path that flattens
    def step(params, x, lr=0.1):
        grads = tj.grad(lambda p: np.sum(np.tanh(x @ p["W"] + p["b"]) ** 2))(params)
        return {k: params[k] - lr * grads[k] for k in params}

    rng = np.random.default_rng(0)
    start = {"W": rng.standard_normal((64, 1024)), "b": np.zeros(1024)}
    x = rng.standard_normal((8, 64))
    with tj.mode(mode):
        params = step(step(start, x, lr=0.1), x, lr=0.1)  # traced and compiled
        gc.collect()
        gc.disable()
        try:
            seen = set()
            for _ in range(2):
                params = step(params, x, lr=0.1)
                seen.add(id(params["W"]))
            assert gc.collect() == 0
        finally:
            gc.enable()
        params = step(params, x, lr=0.1)
    if mode == "compiled":
        assert len(seen) == 2 and id(params["W"]) in seen  # W (512 KB) is a recycled array
    expected = start
    with tj.mode("eager"):
        for _ in range(5):
            expected = step(expected, x)
    for k in expected:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-12)


def test_small_outputs_are_new_arrays_on_every_call():
    # Outputs are passed into the compiled function; small ones are made anew for each call,
    # on the fast path too, so a result the caller holds never changes.
    f = tj.trace(lambda a, b: (a + b, a.T @ b, (a * b).sum()), mode="compiled")
    a, b = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    assert "an output array passed in" in f.source(a, b)
    first = f(a, b)
    kept = [np.array(r) for r in first]
    for k in range(3):  # the later calls take the fast path
        again = f(a * (k + 2), b)
        assert all(x is not y and not np.shares_memory(x, y) for x, y in zip(first, again[:2]))
        np.testing.assert_array_equal(again[0], a * (k + 2) + b)
    for r, expected in zip(first, kept):
        np.testing.assert_array_equal(r, expected)
    np.testing.assert_allclose(first[1], a.T @ b, rtol=1e-12)
    assert first[2] == (a * b).sum() and np.ndim(first[2]) == 0


def test_threads_never_share_a_workspace_or_a_recycled_output():
    # Compiled programs release the GIL, so two threads really run them at the same time.
    import threading

    @tj.trace(mode="compiled")
    def f(x, k):
        t = np.tanh(x * k)                       # a temporary (the workspace) ...
        return t[::-1] + k                       # ... and a 2 MB output (recycled)

    xs = [np.linspace(-1, 1, 1 << 18) * (i + 1) for i in range(2)]
    f(xs[0], 1.0)
    barrier, errors = threading.Barrier(2), []

    def work(i):
        barrier.wait()
        for k in range(40):
            out = f(xs[i], float(k))
            if not np.allclose(out, np.tanh(xs[i] * k)[::-1] + k, rtol=1e-12):
                errors.append((i, k))
            del out  # free for recycling, perhaps by the other thread

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"wrong results in (thread, call): {errors[:5]}"


def test_compiled_mlp_step_peak_memory_is_below_the_eager_step():
    namespace = {}
    exec(_MLP, namespace)  # noqa: S102 - the test's own source
    step, params, x, y = (namespace[k] for k in ("step", "params", "x", "y"))
    with tj.mode("eager"):
        step(params, x, y)
        tracemalloc.start()
        step(params, x, y)
        eager_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    with tj.mode("compiled"):
        new_params, loss = step(params, x, y)
    output_bytes = sum(a.nbytes for a in new_params.values()) + np.asarray(loss).nbytes
    compiled_peak = step.stats["temp_bytes"] + output_bytes
    assert compiled_peak <= eager_peak, (compiled_peak, eager_peak)


@pytest.mark.parametrize("mode", MODES)
def test_temp_bytes_in_stats(mode):
    f = tj.trace(_chain, passes=UNFUSED)
    run(f, mode, np.ones(96))
    assert f.stats["temp_bytes"] == (2 * 96 * 8 if mode == "compiled" else 0)


# --------------------------------------------------------------------------- retracing

def test_retraced_programs_are_bounded_and_released(monkeypatch):
    # A function called with ever new shapes kept every program it compiled (and their modules
    # and source lines) for good, also after `del f` and backend.clear_cache().
    import gc
    import linecache
    import weakref

    from tracejit import backend
    from tracejit.backend import disk_cache
    backend.clear_cache()
    monkeypatch.setenv("TRACEJIT_CACHE_SIZE", "3")
    f = tj.trace(lambda x: x * 2.5 - 1)
    dispatchers, modules, filenames = [], set(), set()
    for n in range(1, 8):
        np.testing.assert_array_equal(f(np.arange(n, dtype=np.float32)), np.arange(n, dtype=np.float32) * 2.5 - 1)
        compiled = f._cache[next(reversed(f._cache))].compiled
        fn = compiled.fn
        dispatchers.append(weakref.ref(fn))
        modules.add(fn.py_func.__module__)
        filenames |= {compiled.filename, fn.py_func.__code__.co_filename}
    del fn, compiled
    assert len(f._cache) == 3  # the three most recently used shapes
    np.testing.assert_array_equal(f(np.ones(1, np.float32)), np.full(1, 1.5, np.float32))  # evicted: traced again
    gc.collect()
    alive = [r() for r in dispatchers if r() is not None]  # programs of dropped shapes are freed already
    assert 1 <= len(alive) <= 3
    assert {fn.py_func.__module__ for fn in alive} <= set(disk_cache.loaded_modules()) & set(sys.modules)
    del alive
    del f
    gc.collect()  # the function is gone: only the backend's three most recent programs are kept
    assert sum(r() is not None for r in dispatchers) <= 3
    backend.clear_cache()
    assert [r() for r in dispatchers] == [None] * len(dispatchers)
    assert not set(modules) & set(sys.modules)
    assert not filenames & set(linecache.cache)


def test_a_function_compiles_at_most_its_limit_then_interprets_new_signatures(monkeypatch):
    # Numba keeps every compiled program's machine code until the process ends: a function
    # called with ever new shapes grew the process by about 1 MiB per shape without bound.
    monkeypatch.setenv("TRACEJIT_COMPILE_LIMIT", "3")
    f = tj.trace(lambda x: np.tanh(x) * 2 + x.sum())
    shapes = range(1, 7)
    with pytest.warns(RuntimeWarning, match="has compiled 3 programs.*TRACEJIT_COMPILE_LIMIT"):
        for n in shapes:
            x = np.linspace(-1, 1, n)
            np.testing.assert_allclose(run(f, "compiled", x), np.tanh(x) * 2 + x.sum(), rtol=1e-13)
    assert f.stats["compiled_programs"] == 3 and f.stats["interpreted_calls"] == 3
    np.testing.assert_allclose(run(f, "compiled", np.ones(2)), np.tanh(1.0) * 2 + 2, rtol=1e-13)  # compiled before
    np.testing.assert_allclose(run(f, "compiled", np.ones(6)), np.tanh(1.0) * 2 + 6, rtol=1e-13)
    assert f.stats["interpreted_calls"] == 4
    assert [e.compiled is not None for e in f._cache.values()] == [True] * 3 + [False] * 3


def test_the_compile_limit_must_be_a_whole_number(monkeypatch):
    monkeypatch.setenv("TRACEJIT_COMPILE_LIMIT", "many")
    with pytest.raises(ValueError, match="TRACEJIT_COMPILE_LIMIT .* got 'many'"):
        run(tj.trace(lambda x: x + 1), "compiled", np.ones(2))
    monkeypatch.setenv("TRACEJIT_COMPILE_LIMIT", "0")  # no limit
    assert tj.jit.compile_limit() == 0
