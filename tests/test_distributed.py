"""tracejit.distributed: the collectives in one process (identities, in every mode, with their
gradients), the data helpers, and -- marked ``long`` -- programs launched with ``mpiexec -n 2``
that must agree with one process, and a failing rank that must end the job with its error.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit import communicator
from conftest import assert_tree_close, run

dist = tj.distributed
REPO = Path(__file__).resolve().parent.parent


def params_and_batch(dtype=np.float64):
    rng = np.random.default_rng(3)
    params = {"W": rng.standard_normal((5, 3)).astype(dtype), "b": rng.standard_normal(3).astype(dtype)}
    return params, rng.standard_normal((8, 5)).astype(dtype), rng.integers(0, 3, 8)


def loss_fn(params, x, y):
    return tj.nn.cross_entropy(np.tanh(x @ params["W"] + params["b"]), y)


def averaged_grads(params, x, y):
    loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
    grads, loss = dist.all_mean((grads, loss))
    return grads, loss, dist.all_sum({"count": np.int64(1) + y.sum() * 0, "loss": loss})


# --------------------------------------------------------------------------- one process

def test_one_process_is_rank_0_of_1():
    assert (dist.rank(), dist.size(), dist.is_distributed()) == (0, 1, False)


def test_collectives_return_their_input_eagerly():
    params, _, _ = params_and_batch()
    assert dist.all_sum(params) is params
    assert dist.all_mean(params) is params
    assert dist.broadcast(params) is params


def test_collectives_in_every_mode_are_identities_with_their_gradients(mode):
    params, x, y = params_and_batch()
    expected_loss, expected_grads = tj.value_and_grad(loss_fn)(params, x, y)
    grads, loss, summed = run(tj.trace(averaged_grads), mode, params, x, y)
    assert_tree_close(grads, expected_grads)
    assert_tree_close(loss, expected_loss)
    assert summed["count"] == 1 and np.isclose(summed["loss"], expected_loss)


def test_a_traced_step_contains_its_all_sum():
    params, x, y = params_and_batch()
    graph = tj.trace(averaged_grads).graph(params, x, y)
    assert "all_sum" in str(graph)
    tj.verify(graph)


def test_gradient_through_all_sum_is_all_sum_of_the_cotangent():
    """d/dx sum(w * all_sum(x)) = all_sum(w): in one process, w, in every mode (eager tape and graph)."""
    x, w = np.arange(4.0), np.array([1.0, -2.0, 0.5, 3.0])
    for mode in ("eager", "graph", "compiled"):
        g = run(tj.trace(tj.grad(lambda x, w: (w * dist.all_sum(x)).sum())), mode, x, w)
        np.testing.assert_array_equal(g, w)


def test_all_mean_wants_floating_leaves():
    with pytest.raises(TypeError, match="all_mean: leaves must be floating.*int64.*all_sum"):
        dist.all_mean({"n": np.arange(3)})
    with pytest.raises(TypeError, match="all_sum: leaves must be numeric.*bool"):
        dist.all_sum([np.ones(2, bool)])


def test_broadcast_refuses_traced_values_and_a_bad_root():
    with pytest.raises(TypeError, match="broadcast: called on traced values"):
        tj.trace(lambda x: dist.broadcast(x), mode="graph")(np.ones(2))
    with pytest.raises(ValueError, match=r"root must be an int in \[0, 1\); got 1"):
        dist.broadcast(np.ones(2), root=1)


def test_shard_and_batches_in_one_process_are_the_whole_batch():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    xs, ys = dist.shard(x, y)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)
    expected = list(tj.datasets.batches(x, y, 4, seed=7, drop_last=True))
    got = list(dist.batches(x, y, 4, seed=7, drop_last=True))
    assert len(got) == len(expected) == 2
    for (a, b), (c, d) in zip(got, expected):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_batches_of_processes_are_their_shards_of_the_global_batches(monkeypatch, shuffle, drop_last):
    # each process gathers only its part; together, in rank order, the parts are the global batch
    x, y = np.arange(44.0).reshape(22, 2), np.arange(22) * 10
    expected = list(tj.datasets.batches(x, y, 8, shuffle=shuffle, seed=3, drop_last=drop_last))
    monkeypatch.setattr(communicator, "size", lambda: 2)
    parts = []
    for r in range(2):
        monkeypatch.setattr(communicator, "rank", lambda r=r: r)
        parts.append(list(dist.batches(x, y, 8, shuffle=shuffle, seed=3, drop_last=drop_last)))
        for (xs, ys), (xb, yb) in zip(parts[r], expected):
            np.testing.assert_array_equal(xs, dist.shard(xb))
            np.testing.assert_array_equal(ys, dist.shard(yb))
    assert len(parts[0]) == len(parts[1]) == len(expected) == (2 if drop_last else 3)
    for (x0, y0), (x1, y1), (xb, yb) in zip(*parts, expected):
        np.testing.assert_array_equal(np.concatenate([x0, x1]), xb)
        np.testing.assert_array_equal(np.concatenate([y0, y1]), yb)


def test_data_helpers_check_their_arguments(monkeypatch):
    x, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(TypeError, match="seed must be an int >= 0, the same on every process; got None"):
        dist.batches(x, y, 4, seed=None)
    with pytest.raises(ValueError, match="argument 1 has 9"):
        dist.shard(x, y[:9])
    monkeypatch.setattr(communicator, "size", lambda: 4)
    monkeypatch.setattr(communicator, "rank", lambda: 1)
    with pytest.raises(ValueError, match=r"batch_size \(6\) must be divisible by the number of processes \(4\)"):
        dist.batches(x, y, 6)
    with pytest.raises(ValueError, match="the last batch has 2 samples.*drop_last=True"):
        dist.batches(x, y, 8)
    with pytest.raises(ValueError, match=r"the batch size \(10\) must be divisible .* \(4\)"):
        dist.shard(x)
    np.testing.assert_array_equal(dist.shard(np.arange(8)), [2, 3])  # rank 1 of 4: the second quarter


def run_python(code, env=None, timeout=120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def test_import_and_collectives_work_without_mpi4py():
    done = run_python("""
        import sys
        sys.modules["mpi4py"] = None                  # `import mpi4py` now fails
        import numpy as np, tracejit as tj
        x = np.ones(3)
        assert tj.distributed.size() == 1 and tj.distributed.all_mean(x) is x
        assert (tj.trace(tj.distributed.all_sum)(x) == x).all()
        assert "mpi4py.MPI" not in sys.modules
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_process_started_for_mpi_without_mpi4py_says_so():
    done = run_python("""
        import sys
        sys.modules["mpi4py"] = None
        import tracejit as tj
        tj.distributed.size()
    """, env={"PMI_SIZE": "2", "PMI_RANK": "0"})
    assert done.returncode != 0
    assert "started for MPI (PMI_SIZE=2) but mpi4py cannot be imported" in done.stderr
    assert "tracejit[distributed]" in done.stderr


# --------------------------------------------------------------------------- several processes

AGREEMENT_PROGRAM = """
import sys
import numpy as np
import tracejit as tj
sys.path.insert(0, {tests!r})
from test_distributed import averaged_grads, loss_fn

dist = tj.distributed
r, n = dist.rank(), dist.size()
rng = np.random.default_rng(11)
x_all, y_all = rng.standard_normal((64, 5)), rng.integers(0, 3, 64)
results = {{}}
for mode in ("eager", "graph", "compiled"):
    # ranks start from different parameters: the broadcast gives them rank 0's
    params = {{"W": np.full((5, 3), float(r)), "b": np.zeros(3)}} if r else \\
        {{"W": np.random.default_rng(5).standard_normal((5, 3)), "b": np.full(3, 0.1)}}
    params = dist.broadcast(params)
    step = tj.trace(averaged_grads, mode=mode)
    losses = []
    for xb, yb in dist.batches(x_all, y_all, 16, seed=2):
        grads, loss, summed = step(params, xb, yb)
        assert summed["count"] == n, summed
        params = {{k: params[k] - 0.5 * grads[k] for k in params}}
        losses.append(float(loss))
    if mode == "compiled" and n > 1:  # the gradients are made where the allreduce reads them
        assert "written in their places by the equations that made them" in step.source(params, xb, yb)
    # gradients flow through a collective: d/dx sum(w_r * all_sum(x)) = all_sum(w_r)
    w = np.arange(4.0) * (r + 1)
    g = tj.trace(tj.grad(lambda x, w: (w * dist.all_sum(x)).sum()), mode=mode)(np.ones(4), w)
    summed_ranks = dist.all_sum({{"rank": np.array([r], np.int32), "one": np.ones((2, 2), np.float32)}})
    results[mode] = dict(losses=np.array(losses), W=params["W"], b=params["b"], g=g,
                         ranks=summed_ranks["rank"], one=summed_ranks["one"])
np.savez({out!r} + f".{{r}}.npz", **{{f"{{m}}_{{k}}": v for m, d in results.items() for k, v in d.items()}})
print("rank", r, "of", n, "done")
"""


def mpiexec():
    """The launcher command, or a skip naming what is missing."""
    launcher = shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed: pip install -e '.[distributed]' (mpi4py and the mpich wheel)")
    if launcher is None:
        pytest.skip("no mpiexec on PATH: pip install -e '.[distributed]' installs MPICH's")
    return [launcher]


def launch(n, program, tmp_path, timeout=240, args=()):
    """Run ``program`` (source text, or the path of a script given ``args``) with ``mpiexec -n n``,
    or as a plain process for ``n == 0``."""
    if isinstance(program, str):
        path = tmp_path / "program.py"
        path.write_text(program)
    else:
        path = program
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    python = [sys.executable, str(path), *args]
    command = mpiexec() + ["-n", str(n)] + python if n else python
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


@pytest.mark.long
def test_two_processes_agree_with_one(tmp_path):
    results = {}
    for n in (0, 2):  # 0: plain python, no mpiexec
        out = tmp_path / f"n{n}"
        done = launch(n, AGREEMENT_PROGRAM.format(tests=str(REPO / "tests"), out=str(out)), tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        results[n] = [dict(np.load(f"{out}.{r}.npz")) for r in range(max(n, 1))]
    single, (rank0, rank1) = results[0][0], results[2]
    for key, value in single.items():
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=f"{key}: ranks differ")
        if key.endswith("_ranks"):
            assert value.tolist() == [0] and rank0[key].tolist() == [1]  # 0 + 1
        elif key.endswith("_one"):
            np.testing.assert_array_equal(rank0[key], 2 * value)
        elif key.endswith("_g"):
            np.testing.assert_array_equal(value, np.arange(4.0))
            np.testing.assert_array_equal(rank0[key], np.arange(4.0) * 3)  # w_0 + w_1
        else:
            np.testing.assert_allclose(rank0[key], value, rtol=1e-12, err_msg=key)
    assert len(single["compiled_losses"]) == 4


SHARED_SUMS_PROGRAM = """
import os
import numpy as np
import tracejit as tj
from tracejit import communicator

dist = tj.distributed
r, n = dist.rank(), dist.size()
big = (300, 300)   # 360 KB of float32: summed through shared memory
assert communicator.shared_sums_possible() and 4 * 300 * 300 >= communicator.SHARED_SUM_MIN_BYTES


def step(w, x):
    g = dist.all_sum({{"w": w * x, "s": x.sum()}})
    return w - g["w"] * 0.5, g["s"] * 2


for dtype in (np.float32, np.float64, np.int64):
    w, x = np.arange(90000, dtype=dtype).reshape(big), np.full(big, r + 1, dtype)
    compiled = tj.trace(step, mode="compiled", tiered=False)
    want = step(w, x)    # eager: the same sums
    for _ in range(3):   # the shared segment is reused from call to call
        got = compiled(w, x)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(want[0], w - w * (n * (n + 1) // 2) * 0.5 if dtype != np.int64 else want[0])
    assert "shared_segment_address" in compiled.source(w, x), compiled.source(w, x)
    assert communicator._shared.sums >= 3
    # a program that returns the sums keeps its own buffer: MPI sums it
    returned = tj.trace(lambda w: dist.all_sum(w), mode="compiled", tiered=False)
    first = returned(w)
    before = communicator._shared.sums
    second = returned(w + 1)
    assert "shared_segment_address" not in returned.source(w) and communicator._shared.sums == before
    np.testing.assert_array_equal(first, n * w)
    np.testing.assert_array_equal(second, n * (w + 1))

# one process's buffer in its segment, the other's not (tiers switching at different calls): MPI
segment = communicator.shared_buffer(90000, np.float32)
buffer = segment if r == 0 else np.zeros(90000, np.float32)
buffer[:] = r + 1
communicator.all_sum_in_place(buffer)
assert (buffer == n * (n + 1) / 2).all()
# the same, with process 0 in a compiled step (its native sum) and the others eager (theirs, from Python)
w, x = np.arange(90000, dtype=np.float32).reshape(big), np.full(big, r + 1, np.float32)
mixed = tj.trace(step, mode="compiled" if r == 0 else "eager", tiered=False)
for _ in range(2):
    got = mixed(w, x)
    np.testing.assert_array_equal(got[0], w - w * (n * (n + 1) // 2) * 0.5)
print("prefix", communicator._shared.prefix, flush=True)
"""


@pytest.mark.long
@pytest.mark.parametrize("n", [2, 3])   # 3: the sum of more than two, added in rank order
def test_large_sums_go_through_shared_memory_and_leave_nothing_behind(tmp_path, n):
    done = launch(n, SHARED_SUMS_PROGRAM.format(), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    prefixes = re.findall(r"tracejit-\d+-[0-9a-f]{8}", done.stdout)  # the lines of the ranks may mix
    assert len(prefixes) == n
    left = [f for f in os.listdir("/dev/shm") if f.startswith(tuple(prefixes))]
    assert left == [], left


FAILING_PROGRAM = """
import numpy as np
import tracejit as tj
dist = tj.distributed
if dist.rank() == 1:
    raise ValueError("rank one cannot go on")
dist.all_sum(np.ones(3))   # rank 0 would wait here for ever
print("rank 0 passed the collective")
"""


@pytest.mark.long
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    start = time.perf_counter()
    done = launch(2, FAILING_PROGRAM, tmp_path, timeout=120)
    assert done.returncode != 0
    assert "ValueError: rank one cannot go on" in done.stderr
    assert "rank 1 of 2 failed" in done.stderr
    assert "passed the collective" not in done.stdout
    assert time.perf_counter() - start < 60


@pytest.mark.long
def test_the_example_trains_on_two_ranks_like_one(tmp_path):
    data = os.environ.get("TRACEJIT_DATA") or str(REPO.parent / "shared" / "data")
    if not (Path(data) / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("the MNIST files are not here (set TRACEJIT_DATA)")
    losses = {}
    for n in (1, 2):
        args = ["--steps", "20", "--limit", "5120", "--data", data + "/mnist", "--losses", str(tmp_path / f"l{n}.npy")]
        done = launch(n, REPO / "examples" / "mnist_data_parallel.py", tmp_path, args=args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("parameters identical to rank 0's") == n
        assert "global:" in done.stdout and re.search(r"allreduce [\d.]+ s", done.stdout)
        losses[n] = np.load(tmp_path / f"l{n}.npy")
    np.testing.assert_allclose(losses[2], losses[1], rtol=1e-4)
