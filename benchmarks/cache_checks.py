"""What the compile cache's checks cost on a warm start, per program.

    python benchmarks/cache_checks.py [--repeat 30]

Compiles an MLP training step into a new cache folder, then times (median of ``--repeat``) the two
steps of loading it in a new process, with the checks (``tracejit.backend.disk_cache``: folder and
file ownership and mode, the module's checksum and code against its key, bytecode bound to the
text's hash; machine code files checked on the open file) and without them (Python's import of the
same module from its ``.pyc``; Numba's own cache reading the same machine code).
"""
import argparse
import glob
import importlib.util
import os
import py_compile
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # a checkout works without installing


def median_ms(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    os.environ["TRACEJIT_CACHE_DIR"] = root = tempfile.mkdtemp(prefix="tj-checks-")
    import tracejit as tj
    from numba.core.caching import FunctionCache

    from tracejit.backend import disk_cache
    from tracejit.bench import workloads  # noqa: F401  (the same imports a training script has)

    rng = np.random.default_rng(0)
    p = {"W1": rng.standard_normal((64, 32)).astype(np.float32), "b1": np.zeros(32, np.float32),
         "W2": rng.standard_normal((32, 10)).astype(np.float32), "b2": np.zeros(10, np.float32)}
    x, y = rng.standard_normal((16, 64)).astype(np.float32), rng.integers(0, 10, 16)

    def loss(p, x, y):
        return tj.nn.cross_entropy(np.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], y)

    @tj.trace
    def step(p, x, y):
        value, g = tj.value_and_grad(loss)(p, x, y)
        return {k: p[k] - 0.1 * g[k] for k in p}, value
    step(p, x, y)

    (py_path,) = glob.glob(os.path.join(root, "kernels", "tj_*.py"))
    module = os.path.basename(py_path)[:-3]
    source = open(py_path).read()
    key = module[3:] + "0" * 24  # load_program takes the module name from the key's first 40 digits

    def checked_module():
        disk_cache.forget_module(module)
        disk_cache.load_program(source, key)

    plain_dir = tempfile.mkdtemp(prefix="tj-plain-")
    plain_py = os.path.join(plain_dir, "plain_" + module + ".py")
    shutil.copy(py_path, plain_py)
    py_compile.compile(plain_py, cfile=importlib.util.cache_from_source(plain_py))

    def plain_module():
        spec = importlib.util.spec_from_file_location("plain_" + module, plain_py)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))

    checked_module()
    fn = sys.modules[module].step
    ours, numbas = disk_cache.machine_code_cache(fn), FunctionCache(fn)
    (index_key,) = list(ours._cache_file._load_index())
    rows = [("module (checked load vs import from .pyc)", median_ms(checked_module, args.repeat),
             median_ms(plain_module, args.repeat)),
            ("machine code (checked read vs Numba's)", median_ms(lambda: ours._cache_file.load(index_key), args.repeat),
             median_ms(lambda: numbas._cache_file.load(index_key), args.repeat))]
    print(f"program: {len(source.splitlines())} lines, median of {args.repeat}")
    for name, checked, plain in rows:
        print(f"{name:45s} {checked:7.3f} ms  {plain:7.3f} ms  ({checked - plain:+.3f} ms)")
    print(f"{'total per program':45s} {sum(r[1] for r in rows):7.3f} ms  {sum(r[2] for r in rows):7.3f} ms  "
          f"({sum(r[1] - r[2] for r in rows):+.3f} ms)")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(plain_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
