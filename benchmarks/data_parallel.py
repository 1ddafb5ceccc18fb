"""Data-parallel scaling: the MNIST MLP example under ``mpiexec -n 1`` and ``-n N``, one thread a rank.

    python benchmarks/data_parallel.py --ranks 2              # epoch time, allreduce share, speed-up
    python benchmarks/data_parallel.py --ranks 2 --repeat 7   # more runs (medians are reported)
    python benchmarks/data_parallel.py --ranks 2 --allreduce  # also time the allreduce alone

Runs ``examples/mnist_data_parallel.py`` (global batch 256, one epoch unless ``--steps``) with
``-n 1`` and ``-n N`` alternately, ``--repeat`` times each, every rank limited to one thread
(BLAS, OpenMP and Numba); compiled programs come from a shared cache after the first run. It
reports, as medians over the runs: time per epoch, time per step, the share of each rank's
time spent in the allreduce (waiting for the slower rank included), the speed-up of ``-n N``
over ``-n 1`` and the scaling efficiency (speed-up / N). ``--allreduce`` adds the allreduce of
the MLP's gradient (535,818 float32) alone: ``all_sum`` called eagerly, from a compiled program
(which calls back into Python for it), MPI's allreduce in place in one buffer, and the sum
through shared memory in the process's shared segment (what a training step does on one
machine), median and minimum of 200 calls; and the cost of the call back alone, in one process.
The machine's load average is printed before and after: on a shared machine it says how many
cores the ranks really had.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXAMPLE = os.path.join(REPO, "examples", "mnist_data_parallel.py")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

ALLREDUCE_PROGRAM = textwrap.dedent("""
    import time
    import numpy as np
    import tracejit as tj
    from tracejit import communicator
    dist = tj.distributed
    size = {size}
    grads = np.ones(size, np.float32)
    step = tj.trace(lambda g: dist.all_sum(g))
    step(grads)  # compiles
    shared = communicator.shared_buffer(size, np.float32)
    shared[:] = 0
    results = {{}}
    # A training step sums its gradients in place in the same buffer (its workspace) at every
    # step; a new buffer at every call costs more (MPICH maps the other rank's pages anew).
    for name, call in (("tj.distributed.all_sum, eager (a new buffer each call)", lambda: dist.all_sum(grads)),
                       ("all_sum in a compiled program (a new buffer each call)", lambda: step(grads)),
                       ("MPI allreduce in place in one buffer",
                        lambda: communicator.all_sum_in_place(grads)),
                       ("through shared memory, in place in the shared segment, as a training step does",
                        lambda: communicator.all_sum_in_place(shared))):
        times = []
        for _ in range(20):  # warm-up: the first allreduces set up MPI's shared buffers
            call()
        for _ in range({repeat}):
            communicator.world().Barrier()
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        results[name] = np.median(times), np.min(times)
    if dist.rank() == 0:
        for name, (median, least) in results.items():
            print(f"{{name}}: median {{median * 1e6:.0f}} us, min {{least * 1e6:.0f}} us", flush=True)
""")


def callback_cost(calls=20_000, repeat=5):
    """Seconds per call of the compiled code's call back into Python for a collective, in this
    process (one rank, so the communicator returns at once): what calling MPI directly from
    Numba code could save at most, per collective."""
    import numba
    import numpy as np

    sys.path.insert(0, REPO)
    from tracejit.backend.collectives import all_sum_in_place

    @numba.njit
    def call_back(buffer, n):
        status = 0
        for _ in range(n):
            status += all_sum_in_place(buffer)
        return status

    buffer = np.ones(535_818, np.float32)
    call_back(buffer, 1)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call_back(buffer, calls)
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def launch(n, args, env):
    command = [shutil.which("mpiexec") or "mpiexec", "-n", str(n), sys.executable] + args
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def parse(output):
    epoch = float(re.search(r"([\d.]+) s per epoch", output).group(1))
    steps = [float(v) for v in re.findall(r"([\d.]+) ms/step", output)]
    shares = [float(v) / 100 for v in re.findall(r"allreduce [\d.]+ s \(([\d.]+)% of the time", output)]
    return epoch, max(steps), statistics.mean(shares)


def load_average():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2, help="N, compared with one rank (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--steps", type=int, help="steps per run (default: one epoch, 234)")
    parser.add_argument("--allreduce", action="store_true", help="also time the allreduce alone")
    parser.add_argument("--data", metavar="PATH", help="folder holding the MNIST .gz files")
    args = parser.parse_args(argv)
    if args.ranks < 2:
        parser.error("--ranks must be at least 2")

    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.setdefault("TRACEJIT_CACHE_DIR", tempfile.mkdtemp(prefix="tracejit-dp-"))
    example_args = [EXAMPLE] + (["--steps", str(args.steps)] if args.steps else []) \
        + (["--data", args.data] if args.data else [])
    print(f"load average before: {load_average()}  (cores: {os.cpu_count()})", flush=True)
    for n in (1, args.ranks):  # compile once per world size, untimed
        launch(n, example_args + ["--steps", "2"], env)
    runs = {1: [], args.ranks: []}
    for r in range(args.repeat):
        for n in runs:
            runs[n].append(parse(launch(n, example_args, env)))
            epoch, step, share = runs[n][-1]
            print(f"run {r + 1}/{args.repeat}  -n {n}: {epoch:.3f} s/epoch, {step:.2f} ms/step, "
                  f"allreduce {share:.1%}", flush=True)
    print(f"load average after: {load_average()}")
    med = {n: [statistics.median(v[i] for v in values) for i in range(3)] for n, values in runs.items()}
    print(f"\nmedians of {args.repeat} runs, one thread a rank, global batch 256:")
    print("| ranks | s / epoch | ms / step | allreduce share |")
    print("|---|---|---|---|")
    for n, (epoch, step, share) in med.items():
        print(f"| {n} | {epoch:.3f} | {step:.2f} | {share:.1%} |")
    speedup = med[1][0] / med[args.ranks][0]
    print(f"speed-up of -n {args.ranks} over -n 1: {speedup:.2f}x; scaling efficiency {speedup / args.ranks:.0%}")
    if args.allreduce:
        program = os.path.join(tempfile.mkdtemp(), "allreduce.py")
        with open(program, "w") as f:
            f.write(ALLREDUCE_PROGRAM.format(size=535_818, repeat=200))
        print(f"\nthe MLP's gradient (535,818 float32, 2.14 MB), -n {args.ranks}:")
        print(launch(args.ranks, [program], env).strip())
        print(f"the call back from compiled code alone (one process, median of 5 x 20,000): "
              f"{callback_cost() * 1e6:.1f} us per collective")


if __name__ == "__main__":
    main()
