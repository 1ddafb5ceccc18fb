"""Matrix products on one and on two BLAS threads, idle and with one CPU kept busy.

    python benchmarks/blas_threads.py          # the machine as it is
    python benchmarks/blas_threads.py --load   # with another process spinning on one CPU

The figures behind ``tracejit.backend.blas.SERIAL_WORK``: for each product shape, the median
time of ``a @ b`` (float32, NumPy's OpenBLAS, 5 rounds) with the library set to 1 and to 2
threads. OpenBLAS's threads spin while they wait, so on a machine whose cores are busy a
product split over threads waits for a descheduled one.
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout works as is

from tracejit.backend.blas import numpy_blas_library  # noqa: E402
from tracejit.bench.__main__ import background_load  # noqa: E402

SHAPES = [((128, 784), (784, 10)), ((784, 128), (128, 10)), ((128, 784), (784, 512)), ((128, 512), (512, 256)),
          ((512, 512), (512, 512)), ((1024, 1024), (1024, 1024))]


def median_us(a, b, calls, rounds=5):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        times.append((time.perf_counter() - start) / calls * 1e6)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", action="store_true", help="keep one CPU busy while measuring")
    args = p.parse_args()
    library = ctypes.CDLL(numpy_blas_library())
    set_threads = library.scipy_openblas_set_num_threads64_
    rng = np.random.default_rng(0)
    with background_load() if args.load else open(os.devnull) as _:
        print(f"{'product':28s} {'multiply-adds':>14s} {'1 thread':>10s} {'2 threads':>10s}")
        for sa, sb in SHAPES:
            a, b = rng.random(sa, dtype=np.float32), rng.random(sb, dtype=np.float32)
            work = sa[0] * sa[1] * sb[1]
            calls = max(3, min(200, int(2e9 / work)))
            times = []
            for n in (1, 2):
                set_threads(n)
                times.append(median_us(a, b, calls))
            print(f"{str(sa) + ' @ ' + str(sb):28s} {work / 1e6:13.1f}M {times[0]:8.0f}us {times[1]:8.0f}us")


if __name__ == "__main__":
    main()
