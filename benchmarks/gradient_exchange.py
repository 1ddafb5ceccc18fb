"""How two processes of one machine can exchange the MNIST MLP's gradient, and what each costs.

    python benchmarks/gradient_exchange.py              # starts itself under mpiexec -n 2
    python benchmarks/gradient_exchange.py --rounds 9

Each process runs a loop shaped like the data-parallel training step at batch 128 per process:
the largest gradient product (``x.T @ d``, 784x512, into the process's shared segment, as a
compiled step writes its packed gradients there) and the other gradients (a fill of the rest of
the segment), the exchange, and the SGD update of all
535,818 parameters into a new buffer. The exchanges, over the same segments:

- ``tracejit``: ``communicator.all_sum_in_place`` of the segment, the native sum a compiled
  step calls (``shared_memory``): the ``push`` below, with spinning barriers and one pass.
- ``push``: the same in NumPy between MPI barriers: each process adds its half of both
  segments and writes the sum into both; one barrier before, one after.
- ``pull``: each adds its half into its own segment; after a barrier it copies the other
  half from the other segment; a third barrier keeps the next product from overwriting a half
  that is still being copied.
- ``in the update``: no exchange; after a barrier the update reads both segments and adds
  them as it goes; a barrier after it.
- ``sharded update``: each adds its half and updates that half of the parameters, writing them
  into its segment and its new buffer; after a barrier it copies the other half of the new
  parameters from the other segment; a third barrier. Each process updates half the
  parameters, which is only right when both processes hold equal parameters.

Printed by the first process: for each exchange, the median time per step of the loop and of
its parts, over ``--rounds`` rounds of ``--steps`` steps, the exchanges alternating within each
round so that the machine's drift hits all alike. Needs the ``distributed`` extra and exactly
two processes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PARAMETERS = 535_818          # the 784-512-256-10 MLP's weights and biases
PRODUCT = (784, 128, 512)     # x.T @ d at batch 128: the largest gradient, written into the segment
LR = 0.03


def relaunch(argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [shutil.which("mpiexec") or "mpiexec", "-n", "2", sys.executable, __file__] + argv
    return subprocess.run(command, env=env).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each running every exchange (default 5)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per exchange and round (default 300)")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO)
    from tracejit import communicator
    if communicator.size() == 1:
        return relaunch(sys.argv[1:] if argv is None else argv)
    if communicator.size() != 2 or not communicator.shared_sums_possible():
        sys.exit("gradient_exchange.py needs two processes on one machine with /dev/shm")

    import numba
    import numpy as np
    from mpi4py import MPI

    comm, me = communicator.world(), communicator.rank()
    from tracejit import shared_memory
    sums = communicator._shared_sums()
    if not sums.usable():
        sys.exit("the processes cannot share memory")
    own = communicator.shared_buffer(PARAMETERS, np.float32)
    communicator.all_sum_in_place(own)  # the first sum maps the other process's segment
    other = np.frombuffer(sums.peers[1 - me, shared_memory.size_class(own.nbytes)], np.float32, count=PARAMETERS)
    first, second = (own, other) if me == 0 else (other, own)
    halves = [slice(0, PARAMETERS // 2), slice(PARAMETERS // 2, PARAMETERS)]
    mine, theirs = halves[me], halves[1 - me]

    rng = np.random.default_rng(me)
    m, k, n = PRODUCT
    x, d = rng.random((k, m), np.float32), rng.random((k, n), np.float32)
    product, rest = own[:m * n].reshape(m, n), own[m * n:]
    params = rng.random(PARAMETERS, np.float32)
    new = [np.empty(PARAMETERS, np.float32) for _ in range(2)]

    @numba.njit(nogil=True)
    def update(grad, p, out):
        for i in range(p.size):
            out[i] = p[i] - np.float32(LR) * grad[i]

    @numba.njit(nogil=True)
    def update_sum(a, b, p, out):
        for i in range(p.size):
            out[i] = p[i] - np.float32(LR) * (a[i] + b[i])

    @numba.njit(nogil=True)
    def update_sum_into_two(a, b, p, out, shared):
        for i in range(p.size):
            value = p[i] - np.float32(LR) * (a[i] + b[i])
            out[i] = value
            shared[i] = value

    def native(out):
        communicator.all_sum_in_place(own)
        update(own, params, out)

    def push(out):
        comm.Barrier()
        np.add(first[mine], second[mine], out=own[mine])
        other[mine] = own[mine]
        comm.Barrier()
        update(own, params, out)

    def pull(out):
        comm.Barrier()
        np.add(first[mine], second[mine], out=own[mine])
        comm.Barrier()
        own[theirs] = other[theirs]
        comm.Barrier()
        update(own, params, out)

    def in_the_update(out):
        comm.Barrier()
        update_sum(first, second, params, out)
        comm.Barrier()

    def sharded(out):
        comm.Barrier()
        update_sum_into_two(first[mine], second[mine], params[mine], out[mine], own[mine])
        comm.Barrier()
        out[theirs] = other[theirs]
        comm.Barrier()

    ways = {"tracejit": native, "push": push, "pull": pull, "in the update": in_the_update,
            "sharded update": sharded}

    def gradients():
        np.matmul(x.T, d, out=product)
        rest.fill(1.0)

    for way in ways.values():  # compiles the loops, maps the pages
        for i in range(20):
            gradients()
            way(new[i % 2])
    times = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            comm.Barrier()
            steps, products = [], []
            for i in range(args.steps):
                start = time.perf_counter()
                gradients()
                middle = time.perf_counter()
                way(new[i % 2])
                steps.append(time.perf_counter() - start)
                products.append(middle - start)
            times[name].append((statistics.median(steps), statistics.median(products)))
    everyone = comm.gather(times, root=0)
    if me == 0:
        print(f"two processes, {args.rounds} rounds of {args.steps} steps; milliseconds per step "
              "(slower process's median of each round, then the median over rounds):")
        print("| exchange | step | gradients | exchange and update |")
        print("|---|---|---|---|")
        for name in ways:
            rounds = [max(t[name][r] for t in everyone) for r in range(args.rounds)]
            step = statistics.median(s for s, _ in rounds) * 1e3
            product_ms = statistics.median(p for _, p in rounds) * 1e3
            print(f"| {name} | {step:.3f} | {product_ms:.3f} | {step - product_ms:.3f} |")
    comm.Barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
