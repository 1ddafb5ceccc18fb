"""Memory and graph size of the MLP training step (784-256-10 tanh, batch 128, float32, SGD).

    python benchmarks/memory.py            # the table below, for the benchmark's own step
    python benchmarks/memory.py --repeat 5 # peaks measured over more calls (the maximum is shown)

Prints the number of equations as traced, after the passes without fusion and after all
passes; the compiled program's kernels and temporaries (with and without buffer reuse); and
the peak memory of one step measured with ``tracemalloc``, which sees NumPy's allocations and
Numba's (its runtime allocates through Python's allocator):

- hand-written NumPy step and tracejit eager: the peak above what was allocated before the call;
- tracejit compiled: the workspace (allocated once, held between calls), the large output arrays
  it recycles from earlier calls, and the call's own peak (its small outputs), on a cache hit.

Inputs and parameters are not counted for any system: they exist before the step.
"""
import argparse
import os
import sys
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # a checkout works without installing

import tracejit as tj  # noqa: E402
from tracejit.bench import workloads  # noqa: E402
from tracejit.transforms import DEFAULT_PASSES, run_passes  # noqa: E402


def call_peak(fn, repeat):
    """The largest extra memory one call allocates at its peak, over ``repeat`` calls."""
    fn()  # warm: traces, compiles, allocates the workspace
    peaks = []
    for _ in range(repeat):
        tracemalloc.start()
        fn()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return max(peaks)


def mib(n):
    return f"{n / 2**20:.2f} MiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="calls measured per system")
    args = parser.parse_args(argv)

    params, x, y, lr = workloads._sgd_inputs((784, 256, 10), 128)
    numpy_step = workloads._numpy_mlp_sgd()
    step = tj.trace(workloads._tracejit_mlp_sgd(tj))

    entry = step._entry_for((params, x, y, lr), {})
    unfused = [p for p in DEFAULT_PASSES if getattr(p, "__name__", "") != "fuse"]
    n_traced = len(entry.raw_graph.eqns)
    n_unfused = len(run_passes(entry.raw_graph, unfused).eqns)
    n_final = len(entry.program.graph.eqns)

    numpy_peak = call_peak(lambda: numpy_step(params, x, y, lr), args.repeat)
    with tj.mode("eager"):
        eager_peak = call_peak(lambda: step(params, x, y, lr), args.repeat)
    with tj.mode("compiled"):
        step(params, x, y, lr)
        step.wait()  # the compiled tier, not the interpreter that answers while it compiles
        call = call_peak(lambda: step(params, x, y, lr), args.repeat)
    program = entry.compiled
    # large outputs are recycled arrays (allocated by an earlier call, not during this one)
    recycled = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for shape, dtype in
                   (program.outputs.specs if program.outputs is not None else ()))
    compiled_peak = program.temp_bytes + recycled + call

    print("MLP 784-256(tanh)-10 SGD step, batch 128, float32 (traced with tj.value_and_grad)")
    print(f"  equations: {n_traced} traced, {n_unfused} after the passes without fusion, "
          f"{n_final} after all passes ({program.kernels} kernels)")
    plan = program.memory
    print(f"  temporaries: {len(plan.temporaries)} arrays, {mib(plan.unplanned_bytes)} one array each, "
          f"{mib(program.temp_bytes)} in {len(plan.slots)} reused slots")
    print("  peak memory of one step (inputs and parameters excluded):")
    print(f"    hand-written NumPy        {mib(numpy_peak)}")
    print(f"    tracejit eager            {mib(eager_peak)}")
    print(f"    tracejit compiled         {mib(compiled_peak)}  (workspace {mib(program.temp_bytes)} "
          f"+ recycled outputs {mib(recycled)} + allocated by the call {mib(call)})")
    print(f"  compiled / hand-written NumPy: {compiled_peak / numpy_peak:.2f}x")


if __name__ == "__main__":
    main()
