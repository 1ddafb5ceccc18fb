"""Shared test helpers: running a traced function in a given mode, and comparing results.

NumPy is the oracle. ``assert_tree_close`` checks that two results have the same pytree
structure, and leaf by leaf the same kind (array or scalar), shape and dtype, and values
within the contract's tolerances: float64 rtol 1e-12, float32 rtol 1e-5, exact for integers
and booleans. A value that cancels to nearly zero is held to a few units in the last place of
the array's largest value, since that is how far any other summation order may take it.

Unless ``TRACEJIT_CACHE_DIR`` is set, the suite's compile cache is a temporary folder, removed
when the run ends (``TEMPORARY_CACHE``).

The ``mode`` fixture runs a test once per execution mode; test ids carry the mode name, so
``-k "not compiled"`` skips the Numba backend.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile

# The compile cache: the suite compiles a few hundred programs (~40 MB); unless the caller chose
# a folder with TRACEJIT_CACHE_DIR, they go to a temporary one removed at the end, not into the
# user's ~/.cache/tracejit. Set before tracejit is imported; subprocesses inherit it. In a
# parallel run (pytest-xdist) the controlling process makes the folder, its workers inherit
# both variables and share the folder, and only the controller removes it.
_INHERITED = os.environ.get("TRACEJIT_TESTS_TEMPORARY_CACHE")
TEMPORARY_CACHE = _INHERITED if _INHERITED and _INHERITED == os.environ.get("TRACEJIT_CACHE_DIR") else None
if not TEMPORARY_CACHE and not os.environ.get("TRACEJIT_CACHE_DIR"):
    TEMPORARY_CACHE = tempfile.mkdtemp(prefix="tracejit-tests-")
    os.environ["TRACEJIT_CACHE_DIR"] = os.environ["TRACEJIT_TESTS_TEMPORARY_CACHE"] = TEMPORARY_CACHE
# Compiled mode compiles before the first call returns, so that tests of compiled mode test
# compiled code; the "tiered" mode (``run``) and the tests of tiering turn tiering on. Compiles
# in the background stay on a thread of the test process (a helper process per program would
# start Python and Numba for each of a few hundred programs).
os.environ.setdefault("TRACEJIT_TIERED", "0")
os.environ.setdefault("TRACEJIT_COMPILE_HELPER", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tracejit as tj  # noqa: E402
from tracejit import pytree  # noqa: E402

MODES = ("eager", "graph", "compiled")
TRACED_MODES = ("graph", "compiled")

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 1e-3,
        np.dtype(np.complex128): 1e-12, np.dtype(np.complex64): 1e-5}


@pytest.fixture(params=MODES)
def mode(request):
    """Each of "eager", "graph" and "compiled"."""
    return request.param


@pytest.fixture(params=TRACED_MODES)
def traced_mode(request):
    """Each of the modes that trace: "graph" and "compiled"."""
    return request.param


@contextlib.contextmanager
def tiering(on=True):
    """Compiled mode tiers (``TRACEJIT_TIERED``) inside the block, even for a program compiled
    already (which compiled mode loads at once otherwise, ``backend.is_compiled``): the suite's
    programs land in one cache, and the tiered runs are there to test the interpreted tier."""
    before = os.environ.get("TRACEJIT_TIERED")
    os.environ["TRACEJIT_TIERED"] = "1" if on else "0"
    import tracejit.backend as backend
    is_compiled = backend.is_compiled
    backend.is_compiled = lambda graph, **options: False
    try:
        yield
    finally:
        os.environ["TRACEJIT_TIERED"] = before if before is not None else "0"
        backend.is_compiled = is_compiled


def run(fn, mode, *args, **kwargs):
    """Call ``fn`` (usually a ``tj.trace`` object) with ``mode`` in force. The pseudo-mode
    "tiered" is compiled mode with tiering on: a first call answers from the interpreter while
    the program compiles in the background, and is then waited for, so that later calls in
    compiled mode run the compiled program."""
    if mode == "tiered":
        with tj.mode("compiled"), tiering():
            result = fn(*args, **kwargs)
        if isinstance(fn, tj.Traced):
            fn.wait()
        return result
    with tj.mode(mode):
        return fn(*args, **kwargs)


def copy_args(args):
    """Fresh copies of array leaves, so a call cannot disturb the shared examples."""
    return copy.deepcopy(args)


def tolerance(dtype) -> float:
    return RTOL.get(np.dtype(dtype), 0.0)


def assert_leaf_close(actual, expected, where="result"):
    assert isinstance(actual, np.ndarray) == isinstance(expected, np.ndarray), (
        f"{where}: got a {type(actual).__name__}, expected a {type(expected).__name__}")
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.dtype == e.dtype, f"{where}: dtype {a.dtype}, expected {e.dtype}"
    assert a.shape == e.shape, f"{where}: shape {a.shape}, expected {e.shape}"
    rtol = tolerance(e.dtype)
    if rtol == 0.0:
        np.testing.assert_array_equal(a, e, err_msg=where, strict=True)
    else:
        finite = e[np.isfinite(e)]
        # the larger part of complex values: |z| of the largest finite parts overflows to inf
        finite = np.maximum(np.abs(finite.real), np.abs(finite.imag)) if e.dtype.kind == "c" else np.abs(finite)
        scale = float(finite.max()) if finite.size else 1.0
        # rtol relative to each value; a value that cancels to ~0 is held to the rounding of
        # the sum it came from, whose terms and partial sums are up to the array's scale: a few
        # units in the last place of that scale (float32: rtol * 1e-3 alone is 1/12 of one).
        cancelled = max(rtol * 1e-3, 4 * float(np.finfo(e.dtype).eps)) * max(scale, 1.0)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=cancelled, err_msg=where)


def assert_tree_close(actual, expected, where="result"):
    """Same pytree structure, and every leaf close (see the module docstring)."""
    a_leaves, a_tree = pytree.flatten(actual)
    e_leaves, e_tree = pytree.flatten(expected)
    assert a_tree == e_tree, f"{where}: structure {a_tree}, expected {e_tree}"
    for i, (a, e) in enumerate(zip(a_leaves, e_leaves)):
        assert_leaf_close(a, e, f"{where} leaf {i}" if len(e_leaves) > 1 else where)


def assert_message(excinfo, *fragments):
    """The exception's message contains every fragment (case-sensitive)."""
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in the message:\n{message}"


def pytest_unconfigure(config):
    is_worker = hasattr(config, "workerinput")
    if TEMPORARY_CACHE and not is_worker and os.environ.get("TRACEJIT_CACHE_DIR") == TEMPORARY_CACHE:
        shutil.rmtree(TEMPORARY_CACHE, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False, help="also run tests marked long")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="slow; run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
