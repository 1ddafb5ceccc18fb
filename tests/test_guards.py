"""Guards on the Python values tracing read from globals and closures.

A flag, number, string, None or tuple of them that a traced function reads from outside is a
constant of the traced program. Changing it must retrace (never silently run the old program),
in graph and compiled mode, also after the compiled fast path has taken over; the retrace
reason names the changed name; rebinding an equal value does not retrace.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import run

DEBUG = True
SCALE = 0.5
ACTIVATION = "relu"
OFFSETS = (1.0, 2.0)
BIAS = None


def _scaled(x):
    return x * SCALE


def step(x):
    y = _scaled(x)  # SCALE is read by a helper
    if DEBUG:
        y = y + 1
    y = np.maximum(y, 0) if ACTIVATION == "relu" else np.tanh(y)
    y = y + OFFSETS[1]
    return y if BIAS is None else y + BIAS


def expected(x):
    return step(x)  # plain NumPy with the current globals


@pytest.fixture
def restore_globals():
    saved = dict(DEBUG=DEBUG, SCALE=SCALE, ACTIVATION=ACTIVATION, OFFSETS=OFFSETS, BIAS=BIAS)
    yield
    globals().update(saved)


X = np.array([-2.0, 0.5, 3.0])


@pytest.mark.parametrize("name, value", [("DEBUG", False), ("SCALE", 2.0), ("ACTIVATION", "tanh"),
                                         ("OFFSETS", (1.0, -3.0)), ("BIAS", 10.0)])
def test_changing_a_global_retraces_and_names_it(traced_mode, restore_globals, name, value):
    f = tj.trace(step)
    for _ in range(3):  # the third call runs on the compiled fast path
        np.testing.assert_array_equal(run(f, traced_mode, X), expected(X))
    old = globals()[name]
    globals()[name] = value
    np.testing.assert_array_equal(run(f, traced_mode, X), expected(X))
    np.testing.assert_array_equal(run(f, traced_mode, X), expected(X))
    assert f.stats["traces"] == 2
    assert f.stats["retraces"] == [f"global {name!r} changed: {old!r} -> {value!r}"]


def test_changing_a_closure_variable_retraces(traced_mode):
    lr = 0.1

    def update(w, g):
        return w - lr * g

    f = tj.trace(update)
    w, g = np.ones(3), np.full(3, 2.0)
    for _ in range(3):
        np.testing.assert_allclose(run(f, traced_mode, w, g), 0.8)
    lr = 0.25  # noqa: F841 - read through the closure
    np.testing.assert_allclose(run(f, traced_mode, w, g), 0.5)
    assert f.stats["retraces"] == ["closure variable 'lr' changed: 0.1 -> 0.25"]


def test_an_equal_value_does_not_retrace(restore_globals):
    global SCALE, DEBUG
    f = tj.trace(step)
    run(f, "compiled", X)
    run(f, "compiled", X)
    SCALE = float("0.5")  # a new object, the same value
    DEBUG = bool(1)
    np.testing.assert_array_equal(run(f, "compiled", X), expected(X))
    np.testing.assert_array_equal(run(f, "compiled", X), expected(X))
    assert f.stats["traces"] == 1 and f.stats["retraces"] == []


def test_a_changed_sign_of_zero_or_type_retraces(restore_globals):
    global SCALE
    f = tj.trace(lambda x: x / SCALE)
    SCALE = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        assert run(f, "compiled", np.ones(2))[0] == np.inf
        SCALE = -0.0
        assert run(f, "compiled", np.ones(2))[0] == -np.inf
        SCALE = 2
        assert run(f, "compiled", np.ones(2)).tolist() == [0.5, 0.5]
    assert f.stats["traces"] == 3


def test_retrace_log_names_the_global_and_the_fix(restore_globals, capsys):
    global DEBUG
    f = tj.trace(step)
    run(f, "compiled", X)
    tj.set_log("retrace")
    try:
        DEBUG = False
        run(f, "compiled", X)
    finally:
        tj.set_log("")
    err = capsys.readouterr().err
    assert "global 'DEBUG' changed: True -> False" in err
    assert "pass values that change between calls as arguments" in err
    assert "batch" not in err


def test_a_function_reading_no_outside_values_has_no_guard():
    f = tj.trace(lambda a, b: a + b)
    a = np.ones(4)
    run(f, "compiled", a, a)
    run(f, "compiled", a, a)
    assert f._guard is None


WEIGHTS = np.ones(3)


def _weighted(x):
    return x * WEIGHTS


def test_rebinding_a_helpers_global_array_retraces_on_the_fast_path():
    global WEIGHTS
    saved = WEIGHTS
    f = tj.trace(lambda x: _weighted(x) + 1)
    try:
        for _ in range(3):
            np.testing.assert_array_equal(run(f, "compiled", X), X + 1)
        WEIGHTS = WEIGHTS * 2  # a new array under the same name
        np.testing.assert_array_equal(run(f, "compiled", X), 2 * X + 1)
        WEIGHTS[:] = 3  # in place: seen without a retrace
        np.testing.assert_array_equal(run(f, "compiled", X), 3 * X + 1)
    finally:
        WEIGHTS = saved
    assert f.stats["retraces"] == ["global 'WEIGHTS' was rebound to a different array"]
    assert f.stats["traces"] == 2


# Arrays that NumPy consumes while the function is traced (no traced value involved) leave only
# their results in the program; changing them must retrace, not run the old numbers.
TABLE = np.array([1.0, 2.0, 3.0])
PENALTY = np.array([0.5])


def _scaled_table():
    return TABLE * 2.0  # computed by NumPy while tracing


@pytest.fixture
def restore_arrays():
    saved = TABLE.copy(), PENALTY.copy()
    yield
    TABLE[:], PENALTY[:] = saved


@pytest.mark.parametrize("change", ["in place", "rebound"])
def test_an_array_numpy_computed_with_while_tracing_retraces_when_it_changes(traced_mode, restore_arrays, change):
    global TABLE
    f = tj.trace(lambda x: x + _scaled_table() + float(PENALTY[0]))
    saved = TABLE
    try:
        for _ in range(3):
            np.testing.assert_array_equal(run(f, traced_mode, X), X + TABLE * 2.0 + 0.5)
        if change == "in place":
            TABLE += 10
        else:
            TABLE = TABLE + 10
        np.testing.assert_array_equal(run(f, traced_mode, X), X + TABLE * 2.0 + 0.5)
        PENALTY[0] = -1.5  # an element read as a Python float
        np.testing.assert_array_equal(run(f, traced_mode, X), X + TABLE * 2.0 - 1.5)
        np.testing.assert_array_equal(run(f, traced_mode, X), X + TABLE * 2.0 - 1.5)
    finally:
        TABLE = saved
    reason = "changed in place, and tracing had used its values" if change == "in place" else "was rebound"
    assert f.stats["retraces"][0].startswith(f"global 'TABLE' {reason}")
    assert f.stats["retraces"][1] == "global 'PENALTY' changed in place, and tracing had used its values"
    assert f.stats["traces"] == 3


def test_an_array_used_with_traced_values_and_by_numpy_is_right_after_a_change(restore_arrays):
    # TABLE is captured by reference (x * TABLE) and also summed by NumPy while tracing
    f = tj.trace(lambda x: x * TABLE + (TABLE ** 2).sum())
    for _ in range(2):
        np.testing.assert_array_equal(run(f, "compiled", X), X * TABLE + (TABLE ** 2).sum())
    TABLE[1] = -4.0
    np.testing.assert_array_equal(run(f, "compiled", X), X * TABLE + (TABLE ** 2).sum())
    assert f.stats["traces"] == 2


def test_a_closure_array_computed_with_while_tracing_retraces_when_it_changes(traced_mode):
    mean = np.array([1.0, 2.0, 3.0])

    def normalise(x):
        return x - mean.mean()

    f = tj.trace(normalise)
    np.testing.assert_array_equal(run(f, traced_mode, X), X - 2.0)
    mean[:] = 0
    np.testing.assert_array_equal(run(f, traced_mode, X), X)
    assert f.stats["retraces"] == ["closure variable 'mean' changed in place, and tracing had used its values"]


def test_an_array_used_only_with_traced_values_changes_without_a_retrace(restore_arrays):
    f = tj.trace(lambda x: x * TABLE.T[::-1] + TABLE.shape[0])  # views of TABLE, and its shape
    for _ in range(3):
        np.testing.assert_array_equal(run(f, "compiled", X), X * TABLE[::-1] + 3)
    TABLE[:] = [4.0, 5.0, 6.0]
    np.testing.assert_array_equal(run(f, "compiled", X), X * TABLE[::-1] + 3)
    assert f.stats["traces"] == 1


def test_the_gradient_sees_a_changed_global_array(restore_arrays):
    f = tj.trace(tj.grad(lambda w: (w * _scaled_table()).sum()))
    w = np.ones(3)
    np.testing.assert_array_equal(run(f, "compiled", w), TABLE * 2.0)
    TABLE[0] = 7.0
    np.testing.assert_array_equal(run(f, "compiled", w), TABLE * 2.0)


COUNTER = 0


def test_globals_assigned_while_tracing_reach_the_module():
    global COUNTER

    def counted(x):
        global COUNTER
        COUNTER += 1
        return x * TABLE.sum()

    COUNTER = 0
    f = tj.trace(counted)
    run(f, "compiled", X)
    assert COUNTER == 1  # traced once: the body ran once, and its assignment stands
    run(f, "compiled", X)
    assert COUNTER == 1


def test_retrace_log_explains_a_changed_array(restore_arrays, capsys):
    f = tj.trace(lambda x: x + _scaled_table())
    run(f, "compiled", X)
    tj.set_log("retrace")
    try:
        TABLE[0] = 0.0
        run(f, "compiled", X)
    finally:
        tj.set_log("")
    err = capsys.readouterr().err
    assert "global 'TABLE' changed in place, and tracing had used its values" in err
    assert "pass the array as an argument" in err


BIG = np.ones(300_000)  # 2.3 MiB


def test_computing_with_a_large_global_array_while_tracing_warns():
    f = tj.trace(lambda x: x * BIG.mean())
    with pytest.warns(RuntimeWarning, match=r"global 'BIG' \(2.3 MiB\) while it was traced.*as an argument"):
        run(f, "graph", X)
    g = tj.trace(lambda x: x * BIG[:3])  # read only through a view: captured, nothing to compare
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(g, "graph", X)
