"""Speed and accuracy of ``tracejit.backend.vecmath``.

Speed (default): for N float32 (1M unless ``--n``) and each function, the median time of
``out[i] = f(x[i])`` in a Numba loop with the vecmath function, the same loop calling NumPy's
scalar function (libm: what Numba does without a vector math library), and NumPy's own ufunc;
whether the vecmath loop is vectorised (packed FMA on ymm/zmm registers in its assembly); and
the fused chain ``tanh(a*x+b)*exp(-x*x)+0.5*sqrt(abs(x))`` against NumPy eager.

Accuracy (``--exhaustive``): every one of the 2**32 float32 bit patterns through each float32
function, compared with the float64 libm result rounded to float32; reports the largest
distance in ulps (distance between the two float32 values in the ordered bit space, so a
correctly rounded result scores 0) and the first input where it occurs. Takes minutes.

    python benchmarks/vecmath_bench.py                 # speed, N = 1M
    python benchmarks/vecmath_bench.py --n 16384       # speed, cache-resident
    python benchmarks/vecmath_bench.py --exhaustive exp log tanh
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import time

import numba
import numpy as np
from numba import prange

from tracejit.backend import vecmath as vm

F32_FUNCS = ["exp", "log", "tanh", "sigmoid", "log1p", "expm1", "sin", "cos"]


def _np_sigmoid(x, out=None):
    return np.divide(1, 1 + np.exp(-x), out=out)


NUMPY_UFUNC = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "log1p": np.log1p,
               "expm1": np.expm1, "sin": np.sin, "cos": np.cos, "sigmoid": _np_sigmoid}


def _sig_libm(x):
    return 1 / (1 + np.exp(-x))


LIBM_SCALAR = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "log1p": np.log1p,
               "expm1": np.expm1, "sin": np.sin, "cos": np.cos,
               "sigmoid": numba.njit(_sig_libm)}


def _make_loop(f, wide=False):
    if wide:
        @numba.njit(error_model="numpy")
        def loop(x, out):
            vm.prefer_vector_width_512()
            for i in range(x.shape[0]):
                out[i] = f(x[i])
    else:
        @numba.njit(error_model="numpy")
        def loop(x, out):
            for i in range(x.shape[0]):
                out[i] = f(x[i])
    return loop


def _median_time(fn, reps):
    """(median, min) of reps timed calls, in seconds. On a shared machine the minimum is the
    better estimate of the code's own speed; the median includes time slices lost to others."""
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(np.min(ts))


def _row(name, t_ours, t_wide, t_np, t_libm, n, width):
    ns = 1e9 / n
    return (f"{name:8s} {t_ours[0] * ns:6.3f} ({t_ours[1] * ns:5.3f}) {t_wide[0] * ns:6.3f} "
            f"({t_wide[1] * ns:5.3f}) {t_np[0] * ns:6.3f} ({t_np[1] * ns:5.3f}) "
            f"{t_libm[0] * ns:7.2f}  {t_np[0] / t_ours[0]:5.2f}x {t_np[0] / t_wide[0]:5.2f}x "
            f"{t_libm[0] / t_ours[0]:6.1f}x  {width}")


def _vector_width(loop, sig):
    asm = loop.inspect_asm(sig)
    if re.search(r"v\w+ps\s.*%zmm", asm):
        return "zmm"
    if re.search(r"v\w+ps\s.*%ymm", asm):
        return "ymm"
    return "scalar"


def _input(name, n, rng):
    lo, hi = {"log": (1e-3, 100.0), "log1p": (-0.9, 100.0), "sin": (-10.0, 10.0),
              "cos": (-10.0, 10.0)}.get(name, (-10.0, 10.0))
    return rng.uniform(lo, hi, n).astype(np.float32)


def bench_speed(n, reps):
    rng = np.random.default_rng(0)
    print(f"N = {n} float32, single thread; ns per element, median of {reps} (min).")
    print("vm: vecmath loop; vm512: the same with prefer_vector_width_512(); libm: np.f in the "
          "Numba loop;\nnp/vm, np/vm512, libm/vm: speed-ups from the medians")
    print(f"{'function':8s} {'vm':>14s} {'vm512':>14s} {'numpy':>14s} {'libm':>7s}  "
          f"{'np/vm':>6s} {'np/vm512':>6s} {'libm/vm':>7s}  vectorised")
    for name in F32_FUNCS:
        x = _input(name, n, rng)
        out = np.empty_like(x)
        ours = _make_loop(getattr(vm, vm.VECTOR_MATH[(name, "float32")]))
        wide = _make_loop(getattr(vm, vm.VECTOR_MATH[(name, "float32")]), wide=True)
        libm = _make_loop(LIBM_SCALAR[name])
        ours(x, out)
        wide(x, out)
        libm(x, out)
        t_ours = _median_time(lambda: ours(x, out), reps)
        t_wide = _median_time(lambda: wide(x, out), reps)
        t_libm = _median_time(lambda: libm(x, out), max(3, reps // 4))
        t_np = _median_time(lambda: NUMPY_UFUNC[name](x, out=out), reps)
        print(_row(name, t_ours, t_wide, t_np, t_libm, n, _vector_width(ours, ours.signatures[0])))
    # pow: x ** y with both operands arrays
    x = rng.uniform(0.01, 10.0, n).astype(np.float32)
    y = rng.uniform(-5.0, 5.0, n).astype(np.float32)
    out = np.empty_like(x)

    @numba.njit(error_model="numpy")
    def pow_ours(x, y, out):
        for i in range(x.shape[0]):
            out[i] = vm.pow_f32(x[i], y[i])

    @numba.njit(error_model="numpy")
    def pow_wide(x, y, out):
        vm.prefer_vector_width_512()
        for i in range(x.shape[0]):
            out[i] = vm.pow_f32(x[i], y[i])

    @numba.njit(error_model="numpy")
    def pow_libm(x, y, out):
        for i in range(x.shape[0]):
            out[i] = x[i] ** y[i]
    pow_ours(x, y, out)
    pow_wide(x, y, out)
    pow_libm(x, y, out)
    t_ours = _median_time(lambda: pow_ours(x, y, out), reps)
    t_wide = _median_time(lambda: pow_wide(x, y, out), reps)
    t_libm = _median_time(lambda: pow_libm(x, y, out), max(3, reps // 4))
    t_np = _median_time(lambda: np.power(x, y, out=out), reps)
    print(_row("pow", t_ours, t_wide, t_np, t_libm, n,
               _vector_width(pow_ours, pow_ours.signatures[0])))
    bench_chain(n, reps, rng)


def bench_chain(n, reps, rng):
    a = np.float32(1.3)
    b = np.float32(-0.2)
    x = rng.uniform(-3.0, 3.0, n).astype(np.float32)
    out = np.empty_like(x)
    half = np.float32(0.5)

    @numba.njit(error_model="numpy")
    def chain_ours(x, out):
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = vm.tanh_f32(a * v + b) * vm.exp_f32(-v * v) + half * np.sqrt(abs(v))

    @numba.njit(error_model="numpy")
    def chain_wide(x, out):
        vm.prefer_vector_width_512()
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = vm.tanh_f32(a * v + b) * vm.exp_f32(-v * v) + half * np.sqrt(abs(v))

    @numba.njit(error_model="numpy")
    def chain_libm(x, out):
        for i in range(x.shape[0]):
            v = x[i]
            out[i] = np.tanh(a * v + b) * np.exp(-v * v) + half * np.sqrt(abs(v))

    def chain_numpy():
        return np.tanh(a * x + b) * np.exp(-x * x) + half * np.sqrt(np.abs(x))

    chain_wide(x, out)
    chain_ours(x, out)
    chain_libm(x, out)
    ref = chain_numpy()
    err = float(np.max(np.abs(out - ref)))
    t_ours = _median_time(lambda: chain_ours(x, out), reps)
    t_wide = _median_time(lambda: chain_wide(x, out), reps)
    t_libm = _median_time(lambda: chain_libm(x, out), max(3, reps // 4))
    t_np = _median_time(chain_numpy, reps)
    print(f"\nfused tanh(a*x+b)*exp(-x*x)+0.5*sqrt(abs(x)), N = {n}, ms, median (min): "
          f"vecmath loop {t_ours[0] * 1e3:.3f} ({t_ours[1] * 1e3:.3f}), "
          f"with 512-bit vectors {t_wide[0] * 1e3:.3f} ({t_wide[1] * 1e3:.3f}), "
          f"libm loop {t_libm[0] * 1e3:.3f} ({t_libm[1] * 1e3:.3f}), "
          f"NumPy eager {t_np[0] * 1e3:.3f} ({t_np[1] * 1e3:.3f}); "
          f"{_vector_width(chain_ours, chain_ours.signatures[0])}, max abs diff vs NumPy {err:.1e}")


# ------------------------------------------------------------------------------------------
# exhaustive accuracy
# ------------------------------------------------------------------------------------------

def _ref_sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


REFERENCE_F64 = {"exp": math.exp, "log": np.log, "tanh": math.tanh, "log1p": np.log1p,
                 "expm1": math.expm1, "sin": math.sin, "cos": math.cos,
                 "sigmoid": numba.njit(_ref_sigmoid)}


@numba.njit
def _ordered(b):
    """Map float32 bits (as int64) to integers ordered like the floats (-0 and +0 equal)."""
    return -(b & 0x7FFFFFFF) if b & 0x80000000 else b


def _make_exhaustive(f, ref):
    @numba.njit(parallel=True, error_model="numpy")
    def run(nchunks, chunk):
        worst = np.zeros(nchunks, np.int64)
        where = np.zeros(nchunks, np.int64)
        for c in prange(nchunks):
            w = 0
            wi = 0
            for j in range(chunk):
                b = np.int64(c) * chunk + j
                x = vm.u32_as_f32(b)
                got = f(x)
                want = np.float32(ref(np.float64(x)))
                if got != got or want != want:
                    d = 0 if (got != got and want != want) else 1 << 40
                else:
                    d = abs(_ordered(np.int64(vm.f32_as_u32(got))) -
                            _ordered(np.int64(vm.f32_as_u32(want))))
                if d > w:
                    w = d
                    wi = b
            worst[c] = w
            where[c] = wi
        return worst, where
    return run


def exhaustive(names):
    print("exhaustive over all 2**32 float32 inputs, against float64 libm rounded to float32")
    nchunks, chunk = 1 << 12, 1 << 20
    for name in names:
        f = getattr(vm, vm.VECTOR_MATH[(name, "float32")])
        run = _make_exhaustive(f, REFERENCE_F64[name])
        t = time.perf_counter()
        worst, where = run(nchunks, chunk)
        i = int(np.argmax(worst))
        x = np.array([where[i]], np.uint32).view(np.float32)[0]
        with np.errstate(all="ignore"):
            got = np.float32(f(x))
            want = np.float32(REFERENCE_F64[name](np.float64(x)))
        print(f"{name:8s} max {int(worst[i])} ulp at x = {x!r} (bits 0x{int(where[i]):08x}): "
              f"got {got!r}, correctly rounded {want!r}   [{time.perf_counter() - t:.0f} s]",
              flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1 << 20)
    p.add_argument("--reps", type=int, default=21)
    p.add_argument("--exhaustive", nargs="*", metavar="FUNC",
                   help=f"exhaustive float32 accuracy for these functions (default: all of "
                        f"{' '.join(F32_FUNCS)})")
    args = p.parse_args(argv)
    print(f"numba {numba.__version__}, numpy {np.__version__}, CPU "
          f"{numba.config.CPU_NAME or __import__('llvmlite.binding').binding.get_host_cpu_name()}")
    if args.exhaustive is not None:
        exhaustive(args.exhaustive or F32_FUNCS)
    else:
        bench_speed(args.n, args.reps)


if __name__ == "__main__":
    sys.exit(main())
