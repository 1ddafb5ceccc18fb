"""Tracing, the cache and the errors users see.

Covers: one trace per signature and a recorded reason for every retrace, the warning after 8
retraces, static arguments, Python scalars as traced weak values, pytrees in and out, the
graph text, side effects, in-place updates of arguments, closures and globals captured by
reference, and every refusal: concretization, unsupported functions, data-dependent shapes
and bad arguments -- each naming the user's file and line.
"""
from __future__ import annotations

import inspect
import os
import warnings

import numpy as np
import pytest

import tracejit as tj
from conftest import assert_message, assert_tree_close, copy_args, run
from tracejit.primitives import trace_stack

THIS_FILE = os.path.abspath(__file__)


def first_body_line(fn) -> int:
    """The line number of the first statement of ``fn``'s body (after any decorators)."""
    fn = getattr(fn, "fn", fn)  # a tj.trace object: its function
    lines, start = inspect.getsourcelines(fn)
    def_line = next(i for i, text in enumerate(lines) if text.lstrip().startswith("def "))
    return start + def_line + 1


def location(line: int) -> str:
    return f'File "{THIS_FILE}", line {line}'


def all_modes(fn, *args, **kwargs):
    """Run ``fn`` in every mode on fresh copies of ``args``; returns {mode: (result, args)}."""
    import copy
    out = {}
    for m in ("eager", "graph", "compiled"):
        a = copy.deepcopy(args)
        out[m] = (run(fn, m, *a, **kwargs), a)
    return out


@pytest.fixture(params=("eager", "graph", "tiered", "compiled"))
def mode(request):
    """The modes, and "tiered" (compiled mode's first call answered by the interpreter, see
    conftest.run): these tests check that results and in-place updates do not depend on the
    tier."""
    return request.param


@pytest.fixture(params=("graph", "tiered", "compiled"))
def traced_mode(request):
    return request.param


X3 = np.array([1.0, -2.0, 3.0])
X3_32 = X3.astype(np.float32)


# ----------------------------------------------------------------------------- the cache


def test_one_trace_per_signature(traced_mode):
    calls = []

    @tj.trace
    def f(x):
        calls.append(1)
        return np.exp(x) * 2

    for _ in range(3):
        np.testing.assert_allclose(run(f, traced_mode, X3), np.exp(X3) * 2, rtol=1e-12)
    assert f.stats["traces"] == 1
    assert f.stats["cache_hits"] == 2
    assert f.stats["retraces"] == []
    assert len(calls) == 1  # the Python body ran once, at trace time


def test_stats_time_tracing_per_equation():
    """trace_seconds and pass_seconds grow with each trace only; traced_equations counts the
    equations recorded, those of the graph as traced."""
    @tj.trace(mode="graph")
    def f(x, y):
        return np.tanh(x * y + 1).sum()

    f(X3, X3)
    first = dict(f.stats)
    assert first["trace_seconds"] > 0 and first["pass_seconds"] > 0
    assert first["traced_equations"] == len(f.graph(X3, X3, optimize=False).eqns) >= 4
    f(X3, X3)  # a cache hit: no tracing
    assert f.stats["trace_seconds"] == first["trace_seconds"]
    f(X3.astype(np.float32), X3.astype(np.float32))  # a retrace
    assert f.stats["trace_seconds"] > first["trace_seconds"]
    assert f.stats["traced_equations"] == 2 * first["traced_equations"]


def test_eager_mode_never_traces():
    calls = []

    @tj.trace
    def f(x):
        calls.append(1)
        return x + 1

    for _ in range(2):
        run(f, "eager", X3)
    assert f.stats["traces"] == 0 and len(calls) == 2


def test_shape_change_retraces_and_names_the_argument():
    @tj.trace
    def f(x, y):
        return x * y

    run(f, "graph", X3_32, X3_32)
    run(f, "graph", np.ones(4, np.float32), X3_32[0])
    assert f.stats["traces"] == 2
    (reason,) = f.stats["retraces"]
    assert reason == "argument 'x' changed: f32[3] -> f32[4]; argument 'y' changed: f32[3] -> f32[]"


def test_dtype_change_retraces_with_old_and_new_signature():
    @tj.trace
    def f(x):
        return x + 1

    run(f, "graph", X3)
    run(f, "graph", X3_32)
    assert f.stats["retraces"] == ["argument 'x' changed: f64[3] -> f32[3]"]


def test_retrace_reason_names_a_leaf_inside_a_pytree():
    @tj.trace
    def f(params, x):
        return x @ params["W"] + params["b"]

    params = {"W": np.ones((3, 2)), "b": np.zeros(2)}
    run(f, "graph", params, X3)
    run(f, "graph", {"W": np.ones((3, 2)), "b": np.zeros(2, np.float32)}, X3)
    assert f.stats["retraces"] == ["argument params['b'] changed: f64[2] -> f32[2]"]


def test_retrace_reason_compares_with_the_closest_cached_signature():
    @tj.trace
    def f(x, s):
        return x * s

    run(f, "graph", X3, 1.0)
    run(f, "graph", np.ones(5), 1.0)  # x changed
    run(f, "graph", X3, 1)  # against the first entry only s changed
    assert f.stats["retraces"] == ["argument 'x' changed: f64[3] -> f64[5]",
                                   "argument 's' changed: Python float -> Python int"]


def test_structure_change_retraces():
    @tj.trace
    def f(xs):
        return sum(x.sum() for x in xs)

    run(f, "graph", [X3, X3])
    assert run(f, "graph", [X3, X3, X3]) == pytest.approx(3 * X3.sum())
    (reason,) = f.stats["retraces"]
    assert "structure changed" in reason and "2 leaves -> 3 leaves" in reason and "xs[2]" in reason


def test_returning_to_an_old_signature_hits_the_cache():
    f = tj.trace(lambda x: x * 2)
    for x in (X3, np.ones(4), X3, np.ones(4)):
        run(f, "graph", x)
    assert f.stats["traces"] == 2 and f.stats["cache_hits"] == 2 and len(f.stats["retraces"]) == 1


def test_graph_and_compiled_share_one_trace():
    f = tj.trace(lambda x: np.tanh(x) + 1)
    g = run(f, "graph", X3)
    c = run(f, "compiled", X3)
    assert_tree_close(c, g)
    assert f.stats["traces"] == 1


def test_warns_once_after_8_retraces_naming_the_cause_and_the_fix():
    f = tj.trace(lambda x: x.sum())
    with warnings.catch_warnings(record=True) as caught, tj.mode("graph"):
        warnings.simplefilter("always")
        for n in range(1, 9):  # 8 traces: 7 retraces
            f(np.ones(n))
        assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
        f(np.ones(9))  # the 8th retrace
        for n in range(10, 14):  # and more: still one warning
            f(np.ones(n))
    found = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(found) == 1
    message = str(found[0].message)
    assert "retraced 8 times" in message
    assert "argument 'x' changed: f64[8] -> f64[9]" in message  # the cause
    assert "Keep shapes and dtypes fixed" in message and "static" in message  # the fix
    assert os.path.abspath(found[0].filename) == THIS_FILE  # points at the caller
    assert len(f.stats["retraces"]) == 12


# ----------------------------------------------------------------------------- static arguments


def test_static_argnums_are_python_values_and_part_of_the_key(mode):
    @tj.trace(static_argnums=(1,))
    def power(x, n):
        out = np.ones_like(x)
        for _ in range(n):  # Python control flow on a static value: unrolled at trace time
            out = out * x
        return out

    np.testing.assert_allclose(run(power, mode, X3, 2), X3 ** 2, rtol=1e-12)
    np.testing.assert_allclose(run(power, mode, X3, 3), X3 ** 3, rtol=1e-12)
    if mode != "eager":
        assert power.stats["traces"] == 2
        assert power.stats["retraces"] == ["static argument 'n' changed: 2 -> 3"]


def test_static_argnames_by_keyword_and_by_position(mode):
    @tj.trace(static_argnames=("axis", "activation"))
    def f(x, axis, activation="tanh"):
        y = x.sum(axis=axis)
        return np.tanh(y) if activation == "tanh" else np.maximum(y, 0)

    x = np.arange(6.0).reshape(2, 3) - 2
    np.testing.assert_allclose(run(f, mode, x, axis=0), np.tanh(x.sum(0)), rtol=1e-12)
    np.testing.assert_allclose(run(f, mode, x, 1, activation="relu"), np.maximum(x.sum(1), 0), rtol=1e-12)
    np.testing.assert_allclose(run(f, mode, x, axis=1, activation="relu"), np.maximum(x.sum(1), 0), rtol=1e-12)
    if mode != "eager":
        assert f.stats["traces"] == 2


def test_varargs_and_keyword_arguments_are_named():
    @tj.trace
    def f(y, *xs, scale=1.0, **extra):
        return sum(xs) * scale + y + extra.get("bias", 0)

    run(f, "graph", X3, X3, X3)
    run(f, "graph", X3, X3, X3.astype(np.float32))
    run(f, "graph", X3, X3, X3, scale=2.0, bias=np.float32(1))
    assert f.stats["retraces"][0] == "argument xs[1] changed: f64[3] -> f32[3]"
    assert "(now y, xs[0], xs[1], bias, scale)" in f.stats["retraces"][1]
    with pytest.raises(TypeError) as e:
        run(f, "graph", X3, X3, "relu")
    assert_message(e, "argument xs[1] is a string", "static_argnums=(2,)")


def test_unhashable_static_argument_is_a_clear_error():
    f = tj.trace(lambda x, sizes: x * len(sizes), static_argnums=1)
    with pytest.raises(TypeError) as e:
        run(f, "graph", X3, [1, 2])
    assert_message(e, "static argument 'sizes' must be hashable", "list")
    g = tj.trace(lambda x, sizes=(): x, static_argnames="sizes")
    with pytest.raises(TypeError) as e:
        run(g, "graph", X3, sizes={"a": 1})
    assert_message(e, "static argument 'sizes' must be hashable", "dict")


def test_static_argnames_must_name_a_parameter():
    with pytest.raises(ValueError) as e:
        tj.trace(lambda x: x, static_argnames=("n",))
    assert_message(e, "'n'", "not a parameter")


# ----------------------------------------------------------------------------- Python scalars


def test_lists_of_python_numbers_are_arrays_of_numpys_default_dtypes(traced_mode):
    # Passed as a list, Python numbers are traced one by one, as weak scalars; but NumPy makes a
    # list an array of float64 (int64, bool) first, so float32 + [1.0, ...] is float64.
    add = tj.trace(lambda a, b: a + b)
    a = np.ones((2, 3), np.float32)
    for b in ([[1.0] * 3] * 2, [0.5, 1.5, 2.5], [1, 2, 3], (True, False, True)):
        want = a + b
        got = run(add, traced_mode, a, b)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype, b


def test_python_scalars_are_traced_not_frozen(traced_mode):
    f = tj.trace(lambda x, lr: x - lr * x)
    np.testing.assert_allclose(run(f, traced_mode, X3, 0.5), X3 * 0.5, rtol=1e-12)
    np.testing.assert_allclose(run(f, traced_mode, X3, 0.25), X3 * 0.75, rtol=1e-12)
    assert f.stats["traces"] == 1 and f.stats["cache_hits"] == 1


def test_python_scalar_arguments_are_weak(mode):
    f = tj.trace(lambda x, s: x * s)
    out = run(f, mode, X3_32, 0.5)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, X3_32 * 0.5, rtol=1e-6)
    i8 = np.array([1, -2, 3], np.int8)
    out = run(f, mode, i8, 3)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, i8 * 3)


def test_nep50_promotion_in_every_mode(mode):
    i32 = np.array([1, 2, 3], np.int32)
    i8 = np.array([1, -2, 3], np.int8)
    f = tj.trace(lambda x, i, j: (x * 0.5, j + 1, i / 2, x + np.float64(1), i + 1.5, j * True))
    out = run(f, mode, X3_32, i32, i8)
    assert [o.dtype for o in out] == [np.float32, np.int8, np.float64, np.float64, np.float64, np.int8]
    np.testing.assert_allclose(out[2], i32 / 2, rtol=1e-12)


def test_scalar_only_computation_returns_numpy_scalars(mode):
    f = tj.trace(lambda a, b: (a * b, a + 1.5))
    out = run(f, mode, 3, 0.5)
    assert_tree_close(out, (np.float64(1.5), np.float64(4.5)) if mode != "eager" else (1.5, 4.5))
    assert float(out[0]) == 1.5 and float(out[1]) == 4.5


def test_python_numbers_returned_stay_python_numbers(mode):
    f = tj.trace(lambda x: (x + 1, 2.0, 3, True, 1j, {"lr": 0.5}))
    for _ in range(3):  # the compiled fast path too
        out = run(f, mode, np.ones(2))
        assert [type(v) for v in out[1:5]] == [float, int, bool, complex] and type(out[5]["lr"]) is float
        assert out[1:] == (2.0, 3, True, 1j, {"lr": 0.5})
    g = tj.trace(lambda x: 2.5)
    for _ in range(3):
        assert type(run(g, mode, np.ones(2))) is float


def test_scalar_inputs_print_as_weak_in_the_graph():
    f = tj.trace(lambda x, s: x * s)
    text = str(f.graph(X3_32, 0.5))
    assert "f64[]~" in text and "f32[3]" in text


def test_numpy_scalars_are_strongly_typed(mode):
    f = tj.trace(lambda x, s: x * s)
    out = run(f, mode, X3_32, np.float64(0.5))
    assert out.dtype == np.float64
    out = run(f, mode, X3_32, np.float32(0.5))
    assert out.dtype == np.float32


def test_python_scalar_kind_change_retraces():
    f = tj.trace(lambda x, s: x * s)
    run(f, "graph", X3, 2)
    run(f, "graph", X3, 2.0)
    run(f, "graph", X3, True)
    assert f.stats["retraces"] == ["argument 's' changed: Python int -> Python float",
                                   "argument 's' changed: Python float -> Python bool"]


# ----------------------------------------------------------------------------- pytrees


def test_pytrees_in_and_out(mode):
    @tj.trace
    def f(tree, scale):
        a, (b, none) = tree["pair"]
        assert none is None
        c = tree["rest"][0]
        return {"sum": a + b, "nested": (a * scale, [c.sum(), None]), "list": [b], "tuple": (c,)}

    tree = {"pair": (X3, (X3 * 2, None)), "rest": [np.ones((2, 2))]}
    out = run(f, mode, tree, 2.0)
    expected = {"sum": X3 * 3, "nested": (X3 * 2.0, [np.float64(4.0), None]), "list": [X3 * 2],
                "tuple": (np.ones((2, 2)),)}
    assert_tree_close(out, expected)
    assert isinstance(out["nested"], tuple) and isinstance(out["nested"][1], list)


def test_pytree_outputs_match_eager_in_traced_modes(traced_mode):
    f = tj.trace(lambda xs: [x * 2 for x in xs] + [None, (xs[0].max(), xs[1].argmax())])
    xs = [X3, np.array([4, 7, 1])]
    assert_tree_close(run(f, traced_mode, xs), run(f, "eager", xs))


def test_function_returning_none_or_its_input(mode):
    f = tj.trace(lambda x: None)
    assert run(f, mode, X3) is None
    g = tj.trace(lambda x, y: (x, y))
    out = run(g, mode, X3, 1.5)
    assert_tree_close(out, run(g, "eager", X3, 1.5) if mode == "eager" else (X3, np.float64(1.5)))


def test_dict_outputs_keep_their_keys(mode):
    f = tj.trace(lambda x: {"b": x, "a": x + 1})
    out = run(f, mode, X3)
    assert set(out) == {"a", "b"}
    np.testing.assert_array_equal(out["a"], X3 + 1)


# ----------------------------------------------------------------------------- graph text


def test_graph_text_and_optimize_false():
    @tj.trace
    def f(x, y):
        unused = np.exp(x)  # noqa: F841 -- dead code, removed by the passes
        return np.tanh(x @ y).sum(axis=0)

    x, y = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    optimized = f.graph(x, y)
    raw = f.graph(x, y, optimize=False)
    assert isinstance(optimized, tj.Graph) and isinstance(raw, tj.Graph)
    text = str(optimized)
    assert text.startswith("{ lambda a:f32[2,3] b:f32[3,4] .")
    assert "matmul" in text and "tanh" in text and "reduce_sum[axes=(0,)]" in text and "f32[4]" in text
    assert "exp" not in text
    assert "exp" in str(raw) and raw.count("exp") == 1 and optimized.count("exp") == 0
    tj.verify(raw)
    tj.verify(optimized)
    assert f.stats["traces"] == 1
    run(f, "graph", x, y)  # the graph was traced already: a cache hit
    assert f.stats["traces"] == 1 and f.stats["cache_hits"] == 1


def test_graph_runs_nothing_in_place():
    @tj.trace
    def f(x):
        x += 1

    x = X3.copy()
    graph = f.graph(x)
    np.testing.assert_array_equal(x, X3)  # tracing alone never writes
    assert len(graph.outputs) == 1  # the new value of x, written back when the function runs


# ----------------------------------------------------------------------------- side effects


def test_side_effects_happen_at_trace_time(traced_mode):
    seen = []

    @tj.trace
    def f(x):
        seen.append(x.shape)
        print("tracing f")
        return x + 1

    for _ in range(3):
        run(f, traced_mode, X3)
    assert seen == [(3,)]


def test_nested_traced_functions_inline(mode):
    inner = tj.trace(lambda x: np.sin(x) * 2)
    outer = tj.trace(lambda x: inner(x) + inner(x * 2))
    np.testing.assert_allclose(run(outer, mode, X3), np.sin(X3) * 2 + np.sin(X3 * 2) * 2, rtol=1e-12)
    if mode != "eager":
        assert inner.stats["traces"] == 0  # inlined into outer's graph


def test_traced_function_reading_an_outer_traced_value_through_a_closure(mode):
    def outer(x):
        @tj.trace
        def scale(y):
            return y * x  # x is the outer function's (traced) argument

        return scale(np.ones(3)) + 1

    np.testing.assert_array_equal(run(tj.trace(outer), mode, X3), X3 + 1)


# ----------------------------------------------------------------------------- in-place updates


def test_inplace_add_on_an_argument_updates_the_caller(mode):
    @tj.trace
    def bump(x):
        x += 1

    x = X3.copy()
    assert run(bump, mode, x) is None
    np.testing.assert_array_equal(x, X3 + 1)
    run(bump, mode, x)  # again, through the cache
    np.testing.assert_array_equal(x, X3 + 2)


def test_sgd_update_on_a_params_dict(mode):
    @tj.trace
    def sgd(params, grads, lr):
        for k in params:
            params[k] -= lr * grads[k]
        return sum(np.sum(g * g) for g in grads.values())

    params = {"W": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    grads = {"W": np.full((3, 2), 2.0, np.float32), "b": np.array([1.0, -1.0], np.float32)}
    W, b = params["W"], params["b"]
    norm = run(sgd, mode, params, grads, 0.5)
    assert params["W"] is W and params["b"] is b  # the same arrays, updated
    np.testing.assert_allclose(W, np.zeros((3, 2)), atol=0)
    np.testing.assert_allclose(b, [-0.5, 0.5], rtol=1e-6)
    assert W.dtype == np.float32 and np.asarray(norm).dtype == np.float32
    assert float(norm) == pytest.approx(26.0)
    np.testing.assert_array_equal(grads["W"], np.full((3, 2), 2.0))  # not touched


def test_setitem_and_indexed_inplace_update_arguments(mode):
    @tj.trace
    def f(x, out, v):
        x[0] = v
        x[1:, 1] *= 2
        x[-1][0] += 10
        out[...] = x.sum(axis=0)
        return x.max()

    x0 = np.arange(9.0).reshape(3, 3)
    x, out = x0.copy(), np.zeros(3)
    m = run(f, mode, x, out, -1.0)
    expected = x0.copy()
    expected[0] = -1.0
    expected[1:, 1] *= 2
    expected[-1][0] += 10
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(out, expected.sum(axis=0))
    assert float(m) == expected.max()


def test_out_arguments_update_in_place(mode):
    @tj.trace
    def decay(W, b):
        np.multiply(W, 0.9, out=W)
        np.clip(b, -1.0, 1.0, out=b)
        return np.add(W, 1, out=W).sum()

    W, b = np.ones((2, 2), np.float32), np.array([-3.0, 0.5, 2.0])
    total = run(decay, mode, W, b)
    np.testing.assert_allclose(W, np.full((2, 2), 1.9, np.float32), rtol=1e-6)
    np.testing.assert_array_equal(b, [-1.0, 0.5, 1.0])
    assert np.asarray(total).dtype == np.float32 and float(total) == pytest.approx(7.6)


def test_assignment_through_traced_indices_and_masks(mode):
    @tj.trace
    def backprop(dscores, y, h):
        n = dscores.shape[0]
        dscores[range(n), y] -= 1  # the classic softmax gradient, on the argument
        h[h < 0] = 0  # ReLU backward
        return dscores / n

    scores = np.arange(6.0).reshape(3, 2)
    h = np.array([[-1.0, 2.0], [3.0, -4.0]])
    y = np.array([1, 0, 1])
    out = run(backprop, mode, scores, y, h)
    expected = np.arange(6.0).reshape(3, 2)
    expected[range(3), y] -= 1
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_array_equal(out, expected / 3)
    np.testing.assert_array_equal(h, [[0.0, 2.0], [3.0, 0.0]])


def test_traced_mask_assignment_needs_a_single_value(traced_mode):
    def f(x):
        x[x > 0] = np.array([1.0, 2.0])

    with pytest.raises(tj.UnsupportedError) as e:
        run(tj.trace(f), traced_mode, X3.copy())
    assert_message(e, "works for a mask of x's shape (3,) and a single value", "np.where",
                   location(first_body_line(f)))


def test_updating_a_copy_leaves_the_argument_alone(mode):
    @tj.trace
    def f(x):
        y = x.copy()
        y[0] = 100.0
        z = np.copy(x)
        z += 1
        return y + z

    x = X3.copy()
    out = run(f, mode, x)
    np.testing.assert_array_equal(x, X3)
    np.testing.assert_array_equal(out, np.array([100.0, -2.0, 3.0]) + X3 + 1)


def test_inplace_update_of_a_reshaped_view_is_refused(traced_mode):
    @tj.trace
    def f(x):
        flat = x.reshape(-1)
        flat += 1

    x = np.ones((2, 3))
    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, x)
    assert_message(e, "in-place update of a view", location(first_body_line(f) + 1))
    np.testing.assert_array_equal(x, np.ones((2, 3)))


def test_inplace_update_of_a_slice_view_writes_through(mode):
    @tj.trace
    def f(x):
        row = x[1]
        row -= 5
        return row * 1

    x = np.arange(6.0).reshape(2, 3)
    out = run(f, mode, x)
    np.testing.assert_array_equal(x, [[0, 1, 2], [-2, -1, 0]])
    np.testing.assert_array_equal(out, [-2, -1, 0])


def test_augmented_assignment_through_integer_array_indices(mode):
    # NumPy's integer-array indexing copies, so t[:, idx] += w reads t[:, idx], adds, and
    # writes back (a repeated index keeps the last write); it is not an update of a view
    @tj.trace
    def f(t, idx, w):
        t[:, idx] += w
        picked = np.take_along_axis(t, np.broadcast_to(idx[None, :2], (3, 2)), 1)
        picked *= 2  # a copy too: t is not changed
        return picked

    t = np.arange(12.0).reshape(3, 4)
    idx = np.array([3, 1, 3])
    w = np.arange(9.0).reshape(3, 3)
    expected_t = t.copy()
    expected_t[:, idx] += w
    out = run(f, mode, t, idx, w)
    np.testing.assert_array_equal(t, expected_t)
    np.testing.assert_array_equal(out, 2 * expected_t[:, [3, 1]])


def test_inplace_update_of_a_stale_view_is_refused(traced_mode):
    @tj.trace
    def f(x):
        row = x[0]
        x *= 2  # row, a view, would see this in NumPy
        row += 1

    x = X3.reshape(1, 3).copy()
    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, x)
    assert_message(e, "a view is read after its array was changed in place", location(first_body_line(f) + 2))
    np.testing.assert_array_equal(x, X3.reshape(1, 3))


def test_reading_a_stale_view_is_refused(traced_mode):
    # It used to return the view's older values (a sum of 1.0 where NumPy gives 6.0).
    @tj.trace
    def f(x):
        head = x[0:2]
        x[0] = 5.0
        return head.sum()

    @tj.trace
    def taken_again(x):
        head = x[0:2]
        x[0] = 5.0
        head = x[0:2]
        return head.sum() + x.reshape(2, 2)[1].sum()

    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, np.arange(4.0))
    assert_message(e, "a view is read after its array was changed in place", location(first_body_line(f) + 2))
    assert run(taken_again, traced_mode, np.arange(4.0)) == taken_again.fn(np.arange(4.0)) == 11.0


def test_inplace_cast_errors_like_numpy(mode):
    @tj.trace
    def f(x):
        x += 0.5

    x = np.array([1, 2, 3], np.int32)
    with pytest.raises(TypeError, match="Cannot cast ufunc"):
        run(f, mode, x)
    np.testing.assert_array_equal(x, [1, 2, 3])


def test_inplace_update_of_a_read_only_argument(mode):
    @tj.trace
    def f(x):
        x *= 2

    x = X3.copy()
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        run(f, mode, x)
    np.testing.assert_array_equal(x, X3)


def test_inplace_update_of_a_read_only_argument_names_it(traced_mode):
    @tj.trace
    def step(params, lr):
        params["W"] -= lr

    params = {"W": X3.copy()}
    params["W"].flags.writeable = False
    with pytest.raises(ValueError, match=r"argument params\['W'\] is updated in place but is read-only"):
        run(step, traced_mode, params, 0.5)


ALIASED_PROGRAMS = {
    # name: (function, arguments made from one array x)
    "update then read through the other name": (lambda a, b: (a.__imul__(2.0), a.__iadd__(b), a.sum())[-1],
                                                 lambda x: (x, x)),
    "both names updated": (lambda a, b: (a.__isub__(1.0), b.__isub__(1.0), a + b)[-1], lambda x: (x, x)),
    "second name updated": (lambda a, b: (b.__imul__(3.0), a * 1.0)[-1], lambda x: (x, x)),
    "inside a dict": (lambda p, s: (p["W"].__isub__(s), p["V"] * 2.0)[-1], lambda x: ({"V": x, "W": x}, 0.5)),
    "three names, one array": (lambda a, b, c: (c.__iadd__(1.0), a + b + c)[-1], lambda x: (x, x, x)),
}


@pytest.mark.parametrize("name", sorted(ALIASED_PROGRAMS))
def test_one_array_passed_as_several_arguments_and_updated_in_place_acts_as_in_numpy(name, traced_mode):
    fn, make_args = ALIASED_PROGRAMS[name]
    x_numpy, x = np.arange(4.0), np.arange(4.0)
    want = fn(*make_args(x_numpy))
    traced = tj.trace(fn)
    assert_tree_close(run(traced, traced_mode, *make_args(x)), want, f"{traced_mode} mode")
    np.testing.assert_array_equal(x, x_numpy, err_msg="the array after the call")
    # separate arrays of the same signature still get the program traced for them
    separate = tuple(copy_args(a) for a in make_args(np.arange(4.0)))
    want = fn(*copy_args(separate))
    assert_tree_close(run(traced, traced_mode, *separate), want, f"{traced_mode} mode, separate arrays")
    again = np.arange(4.0)
    assert_tree_close(run(traced, traced_mode, *make_args(again)), fn(*make_args(np.arange(4.0))),
                      f"{traced_mode} mode, aliased again")
    assert any("the same array" in r for r in traced.stats["retraces"])


def test_overlapping_arguments_updated_in_place_are_refused(traced_mode):
    @tj.trace
    def shift(a, b):
        a += b

    x = np.arange(5.0)
    with pytest.raises(ValueError, match="arguments 'a' and 'b' overlap in memory and 'a' is updated in place"):
        run(shift, traced_mode, x[1:], x[:-1])
    np.testing.assert_array_equal(x, np.arange(5.0))
    y = np.arange(4.0)
    run(shift, traced_mode, y, np.ones(4))  # separate arrays: fine
    np.testing.assert_array_equal(y, np.arange(4.0) + 1)


GLOBAL_ARRAY = np.arange(3.0)


def test_an_argument_updated_in_place_that_is_a_global_the_function_reads_is_refused(traced_mode):
    @tj.trace
    def f(a):
        a += 1.0
        return GLOBAL_ARRAY * a

    run(f, traced_mode, np.zeros(3))
    with pytest.raises(ValueError, match="argument 'a' is updated in place and shares memory with an array"):
        run(f, traced_mode, GLOBAL_ARRAY)
    np.testing.assert_array_equal(GLOBAL_ARRAY, np.arange(3.0))


def test_one_array_as_two_arguments_without_updates_needs_no_second_program(traced_mode):
    f = tj.trace(lambda a, b: a * b + 1.0)
    x = np.arange(4.0)
    assert_tree_close(run(f, traced_mode, x, x), x * x + 1.0)
    assert f.stats["traces"] == 1 and not f.stats["retraces"]


def test_inplace_update_of_a_numpy_array_with_a_traced_value_is_refused(traced_mode):
    buffer = np.zeros(3)

    @tj.trace
    def f(x):
        np.add(buffer, x, out=buffer)  # a closure array is not an argument: its update cannot be recorded

    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, X3)
    assert_message(e, "in-place update of a NumPy array with a traced value", location(first_body_line(f)))
    np.testing.assert_array_equal(buffer, 0)


def test_nothing_is_half_updated_when_tracing_fails(traced_mode):
    @tj.trace
    def f(x, y):
        x += 1
        return x + y  # shapes (3,) and (4,) do not broadcast

    x = X3.copy()
    with pytest.raises(ValueError):
        run(f, traced_mode, x, np.ones(4))
    np.testing.assert_array_equal(x, X3)


# ----------------------------------------------------------------------------- closures and globals

GLOBAL_SCALE = np.array([1.0, 2.0, 3.0])


def test_closure_arrays_are_captured_by_reference(mode):
    weights = np.ones(3)

    @tj.trace
    def f(x):
        return x * weights

    np.testing.assert_array_equal(run(f, mode, X3), X3)
    weights *= 4  # in place: seen by the next call, no retrace
    np.testing.assert_array_equal(run(f, mode, X3), X3 * 4)
    if mode != "eager":
        assert f.stats["traces"] == 1


def test_global_arrays_are_captured_by_reference(mode):
    @tj.trace
    def f(x):
        return x + GLOBAL_SCALE

    saved = GLOBAL_SCALE.copy()
    try:
        np.testing.assert_array_equal(run(f, mode, X3), X3 + saved)
        GLOBAL_SCALE[:] = -1
        np.testing.assert_array_equal(run(f, mode, X3), X3 - 1)
    finally:
        GLOBAL_SCALE[:] = saved
    if mode != "eager":
        assert f.stats["traces"] == 1


def test_rebinding_a_global_or_closure_array_retraces(mode):
    global GLOBAL_WEIGHTS
    bias = np.zeros(3)

    @tj.trace
    def f(x):
        return x * GLOBAL_WEIGHTS + bias

    GLOBAL_WEIGHTS = np.ones(3)
    np.testing.assert_array_equal(run(f, mode, X3), X3)
    GLOBAL_WEIGHTS = GLOBAL_WEIGHTS * 3  # a new array under the same name, as in W = W - lr * g
    np.testing.assert_array_equal(run(f, mode, X3), X3 * 3)
    bias = np.ones(3)  # noqa: F841 -- read by f through its closure
    np.testing.assert_array_equal(run(f, mode, X3), X3 * 3 + 1)
    if mode != "eager":
        assert f.stats["retraces"] == ["global 'GLOBAL_WEIGHTS' was rebound to a different array",
                                       "closure variable 'bias' was rebound to a different array"]
        run(f, mode, X3)
        assert f.stats["traces"] == 3 and f.stats["cache_hits"] == 1


GLOBAL_WEIGHTS = None


# ----------------------------------------------------------------------------- concretization


def _concretization_cases():
    def use_bool(x):
        return bool(x.sum())

    def use_if(x):
        if x.sum() > 0:
            return x
        return -x

    def use_while(x):
        while x.max() > 1:
            x = x / 2
        return x

    def use_and(x):
        return (x > 0).all() and x

    def use_float(x):
        return float(x[0])

    def use_int(x):
        return int(x.sum())

    def use_item(x):
        return x.sum().item()

    def use_tolist(x):
        return x.tolist()

    def use_asarray(x):
        return np.asarray(x) + 1

    def use_array(x):
        return np.array(x)

    def use_range(x):
        return [x for _ in range(x.shape[0] + x.sum().astype(int))]

    return [use_bool, use_if, use_while, use_and, use_float, use_int, use_item, use_tolist, use_asarray,
            use_array, use_range]


@pytest.mark.parametrize("fn", _concretization_cases(), ids=lambda f: f.__name__)
def test_concretization_error_names_the_line_and_the_fixes(fn, traced_mode):
    f = tj.trace(fn)
    with pytest.raises(tj.ConcretizationError) as e:
        run(f, traced_mode, X3)
    assert isinstance(e.value, tj.TracerError)
    assert_message(e, location(first_body_line(fn)), "np.where", "static_argnames", "eager")
    assert trace_stack() == []  # the failed trace was unwound
    assert f.stats["traces"] == 0
    run(f, "eager", X3.copy())  # and the function still runs eagerly


def test_concretization_error_names_the_argument_and_the_static_fix():
    def f(x, params, training):
        if training:
            return x * params["scale"]
        return x

    with pytest.raises(tj.ConcretizationError) as e:
        run(tj.trace(f), "graph", X3, {"scale": 2.0}, True)
    assert_message(e, "bool[]~ (argument training: Python numbers passed as arguments are traced",
                   "static_argnames=('training',)", location(first_body_line(f)))
    g = tj.trace(f, static_argnames="training")
    np.testing.assert_array_equal(run(g, "graph", X3, {"scale": 2.0}, True), X3 * 2)
    with pytest.raises(tj.ConcretizationError) as e:
        run(tj.trace(lambda p: float(p["W"])), "graph", {"W": np.ones(())})
    assert_message(e, "f64[] (argument p['W'])", "static_argnames=('p',)")


def test_indexing_a_numpy_array_with_a_traced_index(traced_mode):
    def one_hot(y):
        return np.eye(4)[y]

    with pytest.raises(tj.ConcretizationError) as e:
        run(tj.trace(one_hot), traced_mode, np.array([1, 3]))
    assert_message(e, "tj.numpy.take(array, y, axis=0)", "tj.nn.one_hot", "argument y",
                   location(first_body_line(one_hot)))
    fixed = tj.trace(lambda y: (tj.numpy.take(np.eye(4), y, axis=0), tj.nn.one_hot(y, 4)))
    for out in run(fixed, traced_mode, np.array([1, 3])):
        np.testing.assert_array_equal(out, np.eye(4)[[1, 3]])


def test_concretization_error_line_is_the_callers_line():
    f = tj.trace(lambda x: float(x.sum()))
    with pytest.raises(tj.ConcretizationError) as e:
        run(f, "graph", X3)
    line = inspect.getsourcelines(test_concretization_error_line_is_the_callers_line)[1] + 1
    assert_message(e, location(line), "float() of a traced array", "f64[]")


# ----------------------------------------------------------------------------- unsupported NumPy


@pytest.mark.parametrize("call, name", [
    (lambda x: np.convolve(x, x), "np.convolve"),
    (lambda x: np.lexsort((x, x)), "np.lexsort"),
    (lambda x: np.linalg.eig(np.outer(x, x)), "np.linalg.eig"),
    (lambda x: np.fft.hfft(x), "np.fft.hfft"),
    (lambda x: np.spacing(x), "np.spacing"),
    (lambda x: np.subtract.accumulate(x), "np.subtract.accumulate"),
    (lambda x: x.resize(4), "ndarray.resize"),
    (lambda x: np.pad(x, 1, mode="reflect"), "np.pad(mode='reflect'"),
], ids=["convolve", "lexsort", "linalg.eig", "hfft", "spacing", "accumulate", "method", "pad-mode"])
def test_unsupported_numpy_is_refused_by_name(call, name, traced_mode):
    f = tj.trace(call)
    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, X3)
    assert isinstance(e.value, tj.TracerError)
    assert_message(e, name, f'File "{THIS_FILE}"')
    if "(" not in name:
        assert_message(e, "not supported")


def test_unsupported_error_names_the_line():
    def f(x):
        return np.convolve(x, x)

    with pytest.raises(tj.UnsupportedError) as e:
        run(tj.trace(f), "graph", X3)
    assert_message(e, location(first_body_line(f)), "np.convolve(x, x)", "eager")


def test_round_needs_its_decimals_while_tracing():
    with pytest.raises(tj.UnsupportedError) as e:
        run(tj.trace(lambda x, d: np.round(x, d)), "graph", X3, 2)
    assert_message(e, "np.round(..., decimals=)", "a traced value", "static argument")
    with pytest.raises(tj.UnsupportedError) as e:
        run(tj.trace(lambda x: np.round(x, 1.5)), "graph", X3)
    assert_message(e, "decimals must be an integer", "got float")
    rounded = tj.trace(lambda x, d: np.round(x, d), static_argnums=(1,))
    np.testing.assert_array_equal(run(rounded, "graph", X3 * 1.2345, 2), np.round(X3 * 1.2345, 2))


@pytest.mark.parametrize("call, name", [
    (lambda x: np.nonzero(x), "np.nonzero"),
    (lambda x: np.unique(x), "np.unique"),
    (lambda x: np.where(x > 0), "np.nonzero"),
    (lambda x: np.argwhere(x), "np.argwhere"),
    (lambda x: np.flatnonzero(x > 0), "np.flatnonzero"),
    (lambda x: x[x > 0], "boolean-mask indexing"),
], ids=["nonzero", "unique", "where-1-arg", "argwhere", "flatnonzero", "mask"])
def test_data_dependent_shapes_are_refused(call, name, traced_mode):
    f = tj.trace(call)
    with pytest.raises(tj.UnsupportedError) as e:
        run(f, traced_mode, X3)
    assert_message(e, name, "data", "np.where", f'File "{THIS_FILE}"')
    assert "static graph cannot express" in str(e.value)


# ----------------------------------------------------------------------------- bad arguments


def test_string_argument_names_the_argument():
    f = tj.trace(lambda x, activation: x)
    with pytest.raises(TypeError) as e:
        run(f, "graph", X3, "relu")
    assert_message(e, "argument 'activation' is a string", "static_argnames=('activation',)")


def test_object_array_argument_names_the_argument():
    f = tj.trace(lambda params: params["W"])
    with pytest.raises(TypeError) as e:
        run(f, "graph", {"W": np.array([1, "a"], dtype=object)})
    assert_message(e, "argument params['W'] has dtype object")


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_and_masked_arguments_are_refused():
    f = tj.trace(lambda x: x * x)
    for bad, kind in [(np.matrix([[1.0, 2.0]]), "matrix"), (np.ma.masked_array([1.0, 2.0], [0, 1]), "MaskedArray")]:
        with pytest.raises(TypeError) as e:
            run(f, "graph", bad)
        assert_message(e, f"argument 'x' is a {kind}", "np.asarray")


def test_memmap_arguments_are_traced_and_updated_in_place(mode, tmp_path):
    @tj.trace
    def f(x):
        x += 1
        return x.sum()

    mm = np.memmap(tmp_path / "data.bin", dtype=np.float32, mode="w+", shape=(4,))
    mm[:] = 1.0
    assert float(run(f, mode, mm)) == 8.0
    np.testing.assert_array_equal(np.asarray(mm), np.full(4, 2.0, np.float32))


def test_other_python_objects_name_the_argument():
    f = tj.trace(lambda x, opts: x)
    with pytest.raises(TypeError) as e:
        run(f, "graph", X3, {1, 2})
    assert_message(e, "argument 'opts' is a set", "static_argnums/static_argnames")


def test_returning_a_non_array_is_refused():
    f = tj.trace(lambda x: (x, "done"))
    with pytest.raises(TypeError) as e:
        run(f, "graph", X3)
    assert_message(e, "returned a str (output 1)")


def test_ragged_list_argument_through_np_asarray_is_refused(traced_mode):
    def f(x, rows):
        return x[:2] * np.asarray(rows)

    with pytest.raises(tj.ConcretizationError) as e:
        run(tj.trace(f), traced_mode, X3, [[1.0, 2.0], [3.0]])
    assert_message(e, location(first_body_line(f)), "np.stack", "pass list arguments as arrays",
                   "argument rows[0][0]")
    with pytest.raises(ValueError):  # eager: NumPy's own error
        run(tj.trace(f), "eager", X3, [[1.0, 2.0], [3.0]])


def test_broadcast_mismatch_names_the_shapes(traced_mode):
    def f(x, y):
        return x + y

    with pytest.raises(ValueError) as e:
        run(tj.trace(f), traced_mode, np.ones((2, 3)), np.ones(4))
    assert isinstance(e.value, tj.TracerError)
    assert_message(e, "could not be broadcast together with shapes (2, 3) (4,) (arguments x and y)",
                   location(first_body_line(f)))


def test_matmul_mismatch_names_the_shapes(traced_mode):
    def f(x, y):
        return x @ y

    with pytest.raises(ValueError) as e:
        run(tj.trace(f), traced_mode, np.ones((2, 3)), np.ones((4, 2)))
    assert_message(e, "(2, 3) @ (4, 2) (arguments x and y)", location(first_body_line(f)))


def test_out_of_bounds_constant_index(traced_mode):
    def f(x):
        return x[[0, 5]]

    with pytest.raises(IndexError) as e:
        run(tj.trace(f), traced_mode, X3)
    assert_message(e, "index 5 is out of bounds for axis 0 with size 3", location(first_body_line(f)))


# ----------------------------------------------------------------------------- modes


def test_mode_selection():
    f = tj.trace(lambda x: x + 1)
    pinned = tj.trace(lambda x: x + 1, mode="eager")
    with tj.mode("graph"):
        assert tj.get_mode() == "graph"
        f(X3)
        pinned(X3)
        with tj.mode("eager"):
            assert tj.get_mode() == "eager"
    assert f.stats["traces"] == 1 and pinned.stats["traces"] == 0
    with pytest.raises(ValueError, match="mode must be one of"):
        with tj.mode("fast"):
            pass
    with pytest.raises(ValueError, match="mode must be one of"):
        tj.trace(lambda x: x, mode="jit")


def test_traced_out_of_range_indices_raise_in_every_traced_mode(traced_mode):
    f = tj.trace(lambda x, i: x[i])
    x = np.arange(3.0)
    np.testing.assert_array_equal(run(f, traced_mode, x, np.array([-1, 2])), [2.0, 2.0])
    for bad in ([-4], [3], [-6]):
        with pytest.raises(IndexError):
            run(f, traced_mode, x, np.array(bad))
    g = tj.trace(lambda x, i, j: x[i, j])
    m = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(run(g, traced_mode, m, np.array([0, -1]), np.array([1, -4])), m[[0, -1], [1, -4]])
    with pytest.raises(IndexError):
        run(g, traced_mode, m, np.array([0]), np.array([4]))  # would alias row 1 without the check


def test_array_made_at_trace_time_and_returned_is_fresh_each_call(traced_mode):
    g = tj.trace(lambda x: (x + 1, np.arange(3.0) * 2))
    first = run(g, traced_mode, np.ones(2))[1]
    first[0] = 100.0
    np.testing.assert_array_equal(run(g, traced_mode, np.ones(2))[1], [0.0, 2.0, 4.0])


def test_fast_path_for_pytree_arguments_never_takes_a_wrong_program():
    # After the first compiled call, calls with the same structure skip flattening and lookup
    # (a generated matcher); anything different -- a dict key, a shape, a dtype, a scalar's
    # kind, a layout -- must still reach its own program, with its own result.
    @tj.trace(mode="compiled")
    def step(params, x, lr):
        return {k: v - lr * x.sum() for k, v in params.items()}

    def expected(params, x, lr):
        return {k: v - lr * x.sum() for k, v in params.items()}

    params = {"W": np.ones((2, 3)), "b": np.zeros(3)}
    x = np.arange(4.0)
    calls = [
        (params, x, 0.5),
        (params, x, 0.25),                                        # same structure: the fast path
        ({"W": np.ones((2, 3)), "c": np.zeros(3)}, x, 0.5),       # another key
        ({"W": np.ones((2, 4)), "b": np.zeros(3)}, x, 0.5),       # another shape
        ({"W": np.ones((2, 3), np.int64), "b": np.zeros(3)}, x, 0.5),  # another dtype, same strides
        (params, x, 1),                                           # an int, not a float
        ({"W": np.asfortranarray(np.ones((3, 3)))[:2], "b": np.zeros(3)}, x, 0.5),  # another layout
        ({"W": np.ones((2, 3)), "b": np.zeros(3), "d": 1.0}, x, 0.5),  # an extra key
    ]
    for args in calls * 2:
        out = step(*args)
        want = expected(*args)
        assert out.keys() == want.keys()
        for k in want:
            np.testing.assert_allclose(out[k], want[k], rtol=1e-6)
            assert out[k].dtype == want[k].dtype
    hits_before = step.stats["cache_hits"]
    step(params, x, 0.125)
    assert step.stats["cache_hits"] == hits_before + 1


class _Rate:
    """A static argument whose hash follows its value, which can be changed in place."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return hash(self.value)

    def __eq__(self, other):
        return isinstance(other, _Rate) and other.value == self.value


def test_fast_path_with_static_arguments_never_takes_a_wrong_program():
    # Calls with static arguments (an optimiser object, say) take the fast path too: the
    # static must be the same object with the same hash, else the call goes the full way to
    # the program for its value.
    @tj.trace(mode="compiled", static_argnames=("rate", "axis"))
    def step(rate, params, x, axis):
        step.traces += 1
        return {k: v - rate.value * x.sum(axis=axis) for k, v in params.items()}

    step.traces = 0
    params = {"W": np.ones(3), "b": np.zeros(3)}
    x = np.arange(6.0).reshape(2, 3)
    half = _Rate(0.5)
    for _ in range(3):
        out = step(half, params, x, 0)
        np.testing.assert_allclose(out["W"], 1 - 0.5 * x.sum(axis=0))
    assert step.traces == 1
    hits = step.stats["cache_hits"]
    step(half, params, x, 0)
    assert step.stats["cache_hits"] == hits + 1
    # an equal object: the program of that value, no retrace
    out = step(_Rate(0.5), params, x, 0)
    np.testing.assert_allclose(out["b"], -0.5 * x.sum(axis=0))
    assert step.traces == 1
    # the same object changed in place: its new value, not the program of the old one
    half.value = 2.0
    for _ in range(2):
        out = step(half, params, x, 0)
        np.testing.assert_allclose(out["W"], 1 - 2.0 * x.sum(axis=0))
    assert step.traces == 2
    # another static value of a tuple-free kind: its own program
    out = step(half, {"W": np.ones(2), "b": np.zeros(2)}, x, 1)
    np.testing.assert_allclose(out["W"], 1 - 2.0 * x.sum(axis=1))


def _armed_add():
    """``a + b`` traced for (2, 3) float32 arrays, called twice so that its later calls with
    those arrays take the shortest call path (one layout, one array result)."""
    @tj.trace
    def add(a, b):
        add.bodies += 1
        return a + b

    add.bodies = 0
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    with tj.mode("compiled"):
        add(a, a)
        add(a, a)
    return add, a


@pytest.mark.parametrize("other", ["shape", "dtype", "layout", "read-only", "scalar"])
def test_shortest_call_path_never_takes_a_wrong_program(other):
    # Numba's dispatcher checks dtypes, dimensions and layout there and the program the shapes:
    # whatever differs must reach its own program, with its own result, and the first
    # layout must still give the right one afterwards.
    add, a = _armed_add()
    b = {"shape": np.ones((3, 3), np.float32), "dtype": np.ones((2, 3)),
         "layout": np.ones((3, 2), np.float32).T, "scalar": 2.0,
         "read-only": np.ones((2, 3), np.float32)}[other]
    if other == "read-only":
        b.flags.writeable = False
    a_other = np.ones_like(b, dtype=np.asarray(b).dtype) if other in ("shape", "dtype") else a
    with tj.mode("compiled"):
        hits = add.stats["cache_hits"]
        out = add(a_other, b)
        want = a_other + b
        np.testing.assert_array_equal(out, want)
        assert out.dtype == want.dtype
        for _ in range(2):
            np.testing.assert_array_equal(add(a, a), a + a)
            assert add(a, a).dtype == np.float32
        assert add.stats["cache_hits"] >= hits + 4


def test_shortest_call_path_counts_hits_and_leaves_other_modes_and_traces_alone():
    add, a = _armed_add()
    hits = add.stats["cache_hits"]
    with tj.mode("compiled"):
        np.testing.assert_array_equal(add(a, a), a + a)
    assert add.stats["cache_hits"] == hits + 1 and add.bodies == 1  # traced once, never run since
    with tj.mode("eager"):
        np.testing.assert_array_equal(add(a, a), a + a)
    assert add.bodies == 2  # the Python body ran
    with tj.mode("compiled"):  # called while another function is differentiated: traced inline
        np.testing.assert_array_equal(tj.grad(lambda x: add(x, x).sum())(a), np.full((2, 3), 2.0))
        np.testing.assert_array_equal(add(a, a), a + a)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_shortest_call_path_refuses_matrices_as_the_others_do():
    add, a = _armed_add()
    m = np.matrix(a)  # Numba's dispatcher takes it for a 2-D array; its operators differ
    with tj.mode("compiled"), pytest.raises(TypeError, match="operators differ"):
        add(m, m)


def test_shape_error_is_exported_and_is_a_value_error():
    assert tj.ShapeError is tj.numpy.ShapeError and "ShapeError" in tj.__all__
    with pytest.raises(tj.ShapeError, match="could not be broadcast"):
        tj.trace(lambda a, b: a + b, mode="graph")(np.ones(3), np.ones(4))
    assert issubclass(tj.ShapeError, ValueError) and issubclass(tj.ShapeError, tj.TracerError)
