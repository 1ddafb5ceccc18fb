"""The full benchmark run behind benchmarks/RESULTS.md.

    python benchmarks/run.py                 # all workloads, peers if installed -> RESULTS.md, speedup.png, results.json
    python benchmarks/run.py --threads 1     # every system on one thread (steadier on a busy machine)
    python benchmarks/run.py mlp_sgd --repeat 10   # any `python -m tracejit.bench` arguments are passed on

Run it on a quiet machine: every number in RESULTS.md comes from one run of this script.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

if __name__ == "__main__":
    sys.path.insert(0, ROOT)  # a checkout works without installing
    os.chdir(ROOT)
    from tracejit.bench.__main__ import main

    outputs = ["--markdown", "benchmarks/RESULTS.md", "--plot", "benchmarks/speedup.png",
               "--json", "benchmarks/results.json", "--fresh-cache"]
    sys.exit(main(outputs + sys.argv[1:], command="python benchmarks/run.py" +
                  "".join(" " + a for a in sys.argv[1:])))
