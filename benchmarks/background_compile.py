"""Where a background compile should run: a thread of the training process, or a helper process.

    python benchmarks/background_compile.py                   # softmax step, 3 rounds
    python benchmarks/background_compile.py --workload mlp_sgd --repeat 5

Each round starts, for each way (``thread``: ``TRACEJIT_COMPILE_HELPER=0``; ``process``: ``=1``;
``auto``: the default, which chooses when the compile starts), a new Python process with an
empty cache folder. It calls the workload's tracejit step once
(tiered: the interpreter answers while the program compiles in the background) and then either
keeps calling it until the compiled program has taken over (``busy``, a training loop) or waits
for it (``idle``). Printed per way, medians over the rounds: the time from the first call to the
first compiled call, and for ``busy`` the mean time of the interpreted calls meanwhile (compare it
with the same step in graph mode, the interpreter alone, printed first). The ways alternate within
a round, so drift of the machine hits both alike.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = r"""
import json, sys, time
import tracejit as tj
from tracejit.bench import workloads
wl = workloads.get(sys.argv[1])
args = wl.make_inputs(wl.sizes["full"])
step = tj.trace(wl.tracejit_fn(tj))
if sys.argv[2] == "interpreter":
    with tj.mode("graph"):
        step(*args)
        start = time.perf_counter()
        for _ in range(200):
            step(*args)
    print(json.dumps({"interpreted_call": (time.perf_counter() - start) / 200}))
    sys.exit()
with tj.mode("compiled"):
    start = time.perf_counter()
    step(*args)
    if sys.argv[2] == "idle":
        step.wait()
    else:
        while not step.stats["kernels"]:
            step(*args)
    step(*args)
    compiled_after = time.perf_counter() - start
calls = step.stats["interpreted_calls"]
print(json.dumps({"compiled_after": compiled_after, "interpreted_calls": calls,
                  "interpreted_call": (compiled_after / calls) if calls > 1 else None}))
"""


def child(workload, how, helper, cache):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=cache, TRACEJIT_TIERED="1", TRACEJIT_COMPILE_HELPER=helper,
               PYTHONPATH=ROOT + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    done = subprocess.run([sys.executable, "-c", CHILD, workload, how], env=env, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        sys.exit(f"the child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="softmax_sgd", help="a tracejit.bench workload (default softmax_sgd)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        alone = child(args.workload, "interpreter", "0", cache)["interpreted_call"]
    print(f"{args.workload}: an interpreted call alone (graph mode) takes {alone * 1e3:.2f} ms")
    ways = (("thread", "0"), ("process", "1"), ("auto", "auto"))
    runs = {(how, way): [] for how in ("busy", "idle") for way, _ in ways}
    for r in range(args.repeat):
        for how in ("busy", "idle"):
            for way, helper in ways:
                with tempfile.TemporaryDirectory() as cache:
                    runs[(how, way)].append(child(args.workload, how, helper, cache))
        print(f"round {r + 1}/{args.repeat} done", file=sys.stderr)
    print(f"medians of {args.repeat} rounds, a new process and an empty cache each:")
    for (how, way), results in runs.items():
        after = statistics.median(x["compiled_after"] for x in results)
        line = f"  {how:4s} {way:7s}: compiled program from {after:.2f} s after the first call"
        calls = [x["interpreted_call"] for x in results if x["interpreted_call"]]
        if how == "busy" and calls:
            line += (f"; interpreted calls meanwhile {statistics.median(calls) * 1e3:.2f} ms each "
                     f"({statistics.median(x['interpreted_calls'] for x in results):.0f} of them)")
        print(line)


if __name__ == "__main__":
    main()
