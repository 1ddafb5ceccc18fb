"""np.fft on traced values, beyond the op specs: the compiled program calls NumPy for the
transform (a host call, visible in its source) and its disk-cache entry loads in a new process;
refusals say what is wrong."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracejit as tj


def test_the_compiled_program_calls_numpy_for_the_transform():
    f = tj.trace(lambda x: np.abs(np.fft.rfft(x)).sum())
    source = f.source(np.arange(8.0))
    assert "with numba.objmode():" in source and "np.fft.fft(" in source


def test_a_program_with_a_host_call_loads_from_the_disk_cache(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, tracejit as tj
        f = tj.trace(lambda x: np.abs(np.fft.rfft(x * 2.0)).sum(), tiered=False)
        with tj.mode("compiled"):
            print(repr(float(f(np.arange(8.0)))), f.stats["kernels"])
    """)
    env = {"TRACEJIT_CACHE_DIR": str(tmp_path), "TRACEJIT_LOG": "compile", "PATH": "/usr/bin:/bin"}
    import os
    env = {**os.environ, **env}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout
    assert float(runs[0].stdout.split()[0]) == pytest.approx(np.abs(np.fft.rfft(np.arange(8.0) * 2)).sum())
    assert "compiled" in runs[0].stderr and "loaded from the disk cache" in runs[1].stderr


def test_refusals():
    with tj.mode("graph"):
        with pytest.raises(TypeError, match="the input must be real"):
            tj.trace(lambda z: np.fft.rfft(z))(np.ones(4, np.complex128))
        with pytest.raises(ValueError, match="invalid norm value 'sideways'"):
            tj.trace(lambda x: np.fft.fft(x, norm="sideways"))(np.ones(4))
        with pytest.raises(ValueError, match="invalid number of data points \\(0\\)"):
            tj.trace(lambda x: np.fft.fft(x, n=0))(np.ones(4))
        with pytest.raises(tj.UnsupportedError, match="out="):
            tj.trace(lambda x: np.fft.fft(x, out=np.empty(4, complex)))(np.ones(4))


def test_a_large_program_that_calls_the_fft_keeps_the_gil_and_compiles_without_warnings():
    # The long fuzzer's seed 100028: a program of more than NOGIL_MIN_ELEMENTS elements was
    # compiled with nogil=True around the objmode block that calls NumPy's FFT, and Numba warned.
    import warnings

    x = np.random.default_rng(0).standard_normal((64, 512))
    f = tj.trace(lambda x: np.abs(np.fft.rfft(x * 2.0, axis=1)) + 1.0, mode="compiled", tiered=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = f(x)
    np.testing.assert_allclose(got, np.abs(np.fft.rfft(x * 2.0, axis=1)) + 1.0, rtol=1e-12, atol=1e-12)
    assert "nogil=False" in f.source(x)
