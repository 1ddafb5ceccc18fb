"""Memory of a function retraced with many shapes, and what ``backend.clear_cache()`` gives back.

    python benchmarks/retrace_memory.py                 # 1,000 shapes, in a new empty cache folder
    python benchmarks/retrace_memory.py --shapes 200 --cache-dir DIR   # DIR warm: programs loaded from disk

Calls ``f(x) = tanh(x) * 2 + sum(x)`` once (the baseline: imports, Numba's start-up, one program),
then with ``--shapes`` new shapes, each a new trace and a new compiled program, and prints the
process's resident memory (RSS, from /proc) before the retraces, every 100 retraces, after
``del f`` and after ``backend.clear_cache()``; ``TRACEJIT_CACHE_SIZE`` (default 64) bounds the
programs tracejit keeps, and ``TRACEJIT_COMPILE_LIMIT`` (default 8) the programs one function
compiles (later shapes are interpreted). ``--tracemalloc`` also prints the memory Python's allocator holds
(traced programs, sources, modules, Numba's Python objects): what tracejit can release, as
opposed to the machine code Numba's LLVM engine keeps for every program it compiles. Linux only.
"""
import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # a checkout works without installing


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", type=int, default=1000)
    parser.add_argument("--cache-dir", help="TRACEJIT_CACHE_DIR (default: a new empty folder)")
    parser.add_argument("--tracemalloc", action="store_true", help="also measure Python's heap (slower)")
    args = parser.parse_args()

    def python_heap() -> str:
        return f", Python heap {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB" if args.tracemalloc else ""
    os.environ["TRACEJIT_CACHE_DIR"] = args.cache_dir or tempfile.mkdtemp(prefix="tj-retrace-")
    import tracejit as tj
    from tracejit import backend
    warnings.simplefilter("ignore")  # the retrace warning

    f = tj.trace(lambda x: np.tanh(x) * 2 + x.sum())
    f(np.ones(1))
    if args.tracemalloc:
        tracemalloc.start()
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    size = getattr(backend.compiler, "cache_size", lambda: "unbounded")()  # unbounded before it existed
    print(f"cache size {size}, folder {os.environ['TRACEJIT_CACHE_DIR']}")
    print(f"before the retraces: {before:8.1f} MiB{python_heap()}")
    for n in range(2, args.shapes + 2):
        f(np.ones(n))
        if (n - 1) % 100 == 0:
            print(f"{n - 1:5d} retraces:      {rss_mib():8.1f} MiB  (+{rss_mib() - before:.1f}, "
                  f"{time.perf_counter() - start:.0f} s, {len(f._cache)} signatures kept{python_heap()})", flush=True)
    after, heap_after = rss_mib(), python_heap()
    del f
    gc.collect()
    deleted, heap_deleted = rss_mib(), python_heap()
    backend.clear_cache()
    gc.collect()
    cleared, heap_cleared = rss_mib(), python_heap()
    print(f"after the retraces:  {after:8.1f} MiB  (+{after - before:.1f}; {(after - before) / args.shapes * 1024:.0f} "
          f"KiB per retrace{heap_after})")
    print(f"after del f:         {deleted:8.1f} MiB  (+{deleted - before:.1f}{heap_deleted})")
    print(f"after clear_cache(): {cleared:8.1f} MiB  (+{cleared - before:.1f}, {(cleared - before) / before:+.1%} of the "
          f"value before{heap_cleared})")


if __name__ == "__main__":
    main()
