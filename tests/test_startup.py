"""Start-up cost: what ``import tracejit`` leaves out until it is used, and what a new process
skips when the disk cache already holds its program.

Each check runs in a new interpreter, since this test process has imported everything already.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np


def imported_after(program):
    """``sys.modules`` names (of the ones checked) present after running ``program``."""
    checked = ["tracejit.bench", "tracejit.datasets", "http.client", "urllib.request", "tqdm"]
    code = program + f"\nimport json, sys\nprint(json.dumps([m for m in {checked!r} if m in sys.modules]))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_leaves_out_the_harness_and_the_dataset_loaders():
    assert imported_after("import tracejit") == []


def test_the_lazy_submodules_are_there_when_used():
    program = textwrap.dedent("""
        import tracejit as tj
        assert callable(tj.bench.compare) and callable(tj.datasets.mnist)
        assert {"bench", "datasets"} <= set(dir(tj))
        from tracejit import bench, datasets
        assert bench is tj.bench and datasets is tj.datasets
        try:
            tj.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("tj.no_such_name did not raise")
    """)
    assert imported_after(program) == ["tracejit.bench", "tracejit.datasets", "http.client", "urllib.request", "tqdm"]


def test_star_import_still_gives_every_public_name():
    program = "from tracejit import *\nassert bench.compare and datasets.mnist and trace and grad\n"
    assert "tracejit.bench" in imported_after(program)


# A new process's first compiled call (the programs below go on from it)
FIRST_CALL = textwrap.dedent("""
    import json, sys
    import numpy as np, tracejit as tj

    @tj.trace
    def f(x, y):
        return np.tanh(x @ y).sum(axis=0) * 2

    x, y = np.ones((3, 4), np.float32), np.full((4, 5), 0.25, np.float32)
    out = f(x, y).tolist()
""")

WARM_PROGRAM = FIRST_CALL + textwrap.dedent("""
    fn = next(iter(f._cache.values())).compiled.fn
    refreshed = "numba.np.npyimpl" in sys.modules  # imported only by Numba's target refresh
    try:
        fn(x.astype(np.float64), y)
        frozen = False
    except TypeError:
        frozen = True

    offset = float(sys.argv[1])  # part of the generated source: a program no cache holds yet

    @tj.trace
    def g(x):
        return np.exp(x) + offset

    print(json.dumps(dict(out=out, disk_hits=sum(fn.stats.cache_hits.values()), refreshed=refreshed,
                          frozen=frozen, g=g(np.arange(3.0)).tolist())))
""")


def run_warm_program(cache_dir, offset):
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", WARM_PROGRAM, str(offset)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_warm_cache_loads_machine_code_without_numbas_target_refresh(tmp_path):
    x, y = np.ones((3, 4), np.float32), np.full((4, 5), 0.25, np.float32)
    expected = (np.tanh(x @ y).sum(axis=0) * 2).tolist()
    cold = run_warm_program(tmp_path, 1.0)
    np.testing.assert_allclose(cold["out"], expected, rtol=1e-5)
    assert cold["disk_hits"] == 0 and cold["refreshed"] and cold["frozen"]
    warm = run_warm_program(tmp_path, 2.0)
    np.testing.assert_allclose(warm["out"], expected, rtol=1e-5)
    assert warm["disk_hits"] == 1 and not warm["refreshed"] and warm["frozen"]
    # and a program compiled after the load (Numba refreshes then) is right too
    np.testing.assert_allclose(warm["g"], np.exp(np.arange(3.0)) + 2.0, rtol=1e-12)


def test_a_cold_compile_leaves_scipy_out_until_numba_needs_its_blas(tmp_path):
    # Numba's first compile would import scipy.linalg only to ask whether a BLAS is there; the
    # backend answers that itself, and Numba code that does call SciPy's BLAS still gets it
    program = FIRST_CALL + textwrap.dedent("""
        before = "scipy.linalg" in sys.modules
        import numba
        from numba.np import arraymath, linalg

        dot = numba.njit(lambda a, b: np.dot(a, b))
        a = np.arange(6.0).reshape(2, 3)
        print(json.dumps(dict(out=out, before=before, have_blas=arraymath._HAVE_BLAS,
                              restored=linalg.ensure_blas.__name__ == "ensure_blas",
                              dot=dot(a, a.T).tolist(), after="scipy.linalg" in sys.modules)))
    """)
    env = dict(os.environ, TRACEJIT_CACHE_DIR=str(tmp_path), TRACEJIT_TIERED="0")
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["out"], (np.tanh(np.ones((3, 4)) @ np.full((4, 5), 0.25)).sum(axis=0) * 2), rtol=1e-5)
    assert not got["before"] and got["have_blas"] and got["restored"]
    a = np.arange(6.0).reshape(2, 3)
    assert got["dot"] == (a @ a.T).tolist() and got["after"]


def test_the_backend_turns_numbas_error_colouring_off_without_changing_the_environment():
    program = textwrap.dedent("""
        import json, os
        import tracejit.backend
        from numba.core import errors
        print(json.dumps([type(errors.termcolor()).__name__,
                          "NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING" in os.environ]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING"}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["NOPColorScheme", False]
