"""Matrix products through NumPy's own BLAS (``tracejit.backend.blas``)."""
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import tracejit as tj
from tracejit.backend import blas

needs_numpy_gemm = pytest.mark.skipif(not blas.NUMPY_GEMM, reason="NumPy is not built with its bundled OpenBLAS")


@numba.njit
def _all_transposes(a, at, b, bt, out):
    blas.gemm(a, False, b, False, out[0])
    blas.gemm(at, True, b, False, out[1])
    blas.gemm(a, False, bt, True, out[2])
    blas.gemm(at, True, bt, True, out[3])


@needs_numpy_gemm
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("m, k, n", [(7, 5, 3), (1, 9, 1), (4, 1, 6), (33, 130, 17)])
def test_gemm_with_every_transpose_flag_matches_numpy(dtype, rtol, m, k, n):
    rng = np.random.default_rng(m * k * n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    out = np.full((4, m, n), np.nan, dtype)
    _all_transposes(a, np.ascontiguousarray(a.T), b, np.ascontiguousarray(b.T), out)
    for product in out:
        np.testing.assert_allclose(product, a @ b, rtol=rtol, atol=rtol * 10)


def test_the_library_is_numpys_when_it_is_found():
    path = blas.numpy_blas_library()
    assert blas.NUMPY_GEMM == (path is not None and "openblas64" in os.path.basename(path))
    if path is not None:  # numpy/.dylibs or numpy.libs
        assert path.startswith(os.path.dirname(np.__file__))


PROGRAM = textwrap.dedent("""
    import numpy as np, tracejit as tj
    @tj.trace
    def f(x, w):
        return np.tanh(x @ w).T @ x
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    w = np.arange(60, dtype=np.float32).reshape(3, 20) / 100  # wide enough for BLAS
    print(repr(f(x, w).tolist()))
""")


@needs_numpy_gemm
def test_a_program_calling_gemm_is_loaded_from_the_disk_cache_in_a_new_process(tmp_path):
    """The cached machine code names the BLAS entry point, which the new process must have
    registered before Numba links it."""
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    w = np.arange(60, dtype=np.float32).reshape(3, 20) / 100  # wide enough for BLAS
    expected = np.tanh(x @ w).T @ x
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_LOG="cache")
    printed = []
    for logged in ("written to", "found on disk"):
        done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert logged in done.stderr
        printed.append(done.stdout.strip())
        np.testing.assert_allclose(np.array(eval(printed[-1]), np.float32), expected, rtol=1e-5)
    assert printed[0] == printed[1]  # the same machine code, loaded from the cache
    assert "gemm(" in tj.trace(lambda x, w: np.tanh(x @ w).T @ x).source(x, w)


def _openblas_threads():
    return blas._library.scipy_openblas_get_num_threads64_()


@needs_numpy_gemm
def test_thread_count_follows_the_product_size():
    """A small product (a training step's) runs on one BLAS thread whatever the ceiling; a product
    of SERIAL_WORK multiply-adds per thread fans out, never past the ceiling."""
    saved = blas._max_threads.value
    f = tj.trace(lambda a, b: a @ b, mode="compiled")
    # wider than 16 columns: narrower products are loops of their own, not BLAS calls
    x, w = np.ones((128, 784), np.float32), np.ones((784, 32), np.float32)
    big = np.ones((1 << 13, 256), np.float32), np.ones((256, 256), np.float32)  # 2**29 multiply-adds
    try:
        assert blas.set_max_threads(2) == 2
        assert blas.threads_for(128, 10, 784) == 1 and blas.threads_for(128, 512, 784) == 1
        assert blas.threads_for(1024, 1024, 1024) == 2 and blas.threads_for(512, 512, 512) == 1
        blas._library.scipy_openblas_set_num_threads64_(2)
        np.testing.assert_array_equal(f(x, w), x @ w)
        assert _openblas_threads() == 1
        np.testing.assert_array_equal(f(*big), big[0] @ big[1])
        assert _openblas_threads() == 2
        blas.set_max_threads(1)  # the ceiling holds for big products too
        f(*big)
        assert _openblas_threads() == 1
    finally:
        blas._max_threads.value = saved
        blas.set_max_threads(None)


def test_the_default_ceiling_never_exceeds_the_cores_or_numbas_threads():
    ceiling = blas.set_max_threads(None)
    assert 1 <= ceiling <= numba.config.NUMBA_NUM_THREADS
    if hasattr(os, "sched_getaffinity"):
        assert ceiling <= len(os.sched_getaffinity(0))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive int or None"):
            blas.set_max_threads(bad)
