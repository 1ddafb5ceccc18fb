"""Diagnostics: TRACEJIT_LOG topics, Graph.to_dot, tj.explain, check=True, errors at user lines."""
import inspect
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tracejit as tj


@pytest.fixture
def logging_on():
    def enable(spec):
        tj.set_log(spec)
    yield enable
    tj.set_log("")


def test_retrace_and_graph_topics_print_as_they_happen(logging_on, capsys):
    logging_on("retrace,graph")
    f = tj.trace(lambda x: np.exp(x) + 1, mode="graph")
    f(np.ones(3))
    f(np.ones(4))
    err = capsys.readouterr().err
    assert "[tracejit:graph] <lambda> as traced" in err and "= exp" in err
    assert "after passes" in err
    assert re.search(r"\[tracejit:retrace\] <lambda>: retrace #1 because argument 'x' changed: f64\[3\] -> f64\[4\]; "
                     r"keep shapes and dtypes fixed", err)


def test_source_compile_and_cache_topics(logging_on, capsys, tmp_path, monkeypatch):
    logging_on("source,compile,cache")
    f = tj.trace(lambda x: np.tanh(x) * 3.5)
    f(np.ones(5, np.float32))
    err = capsys.readouterr().err
    assert "[tracejit:source]" in err and "_vm.tanh_f32" in err
    assert re.search(r"\[tracejit:compile\] .* compiled in [0-9.]+ s", err)
    g = tj.trace(lambda x: np.tanh(x) * 3.5)  # the same program: found in the in-memory cache
    g(np.ones(5, np.float32))
    err = capsys.readouterr().err
    assert "[tracejit:cache]" in err and "found in memory" in err and "kernels compiled" not in err


def test_compile_topic_says_when_a_program_was_loaded_from_disk(logging_on, capsys, monkeypatch):
    from tracejit.backend import compiler
    f = tj.trace(lambda x: np.sinh(x) * 2.5 - 1)
    f(np.ones(7))
    monkeypatch.setattr(compiler, "_cache", compiler._ProgramCache())  # as in a new process: only the disk cache has it
    logging_on("compile")
    g = tj.trace(lambda x: np.sinh(x) * 2.5 - 1)
    g(np.ones(7))
    err = capsys.readouterr().err
    assert re.search(r"\[tracejit:compile\] .*: 1 kernels loaded from the disk cache in [0-9.]+ s, nothing compiled",
                     err), err
    assert "kernels compiled" not in err
    text = tj.explain(g, np.ones(7))
    assert "compiled program: loaded from the disk cache; 1 kernel(s)" in text


def test_retrace_hint_fits_a_0d_array_turning_into_a_numpy_scalar(logging_on, capsys):
    f = tj.trace(lambda s: s + 1, mode="graph")
    f(np.zeros((), np.int64))
    logging_on("retrace")
    f(np.int64(0))
    err = capsys.readouterr().err
    assert "i64[] (a 0-d array) -> i64[] (a NumPy scalar)" in err
    assert "alternates between a 0-d array and a NumPy scalar" in err and "drop_last" not in err


def test_unknown_log_topic_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown log topic.*bogus.*retrace, graph, source, compile, cache"):
        tj.set_log("graph,bogus")


def test_log_environment_variable_is_read_at_import():
    code = "import numpy as np, tracejit as tj; tj.trace(lambda x: x * 2, mode='graph')(np.ones(2))"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TRACEJIT_LOG="graph"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "[tracejit:graph]" in done.stderr


def test_to_dot_is_graphviz_text_with_every_equation_and_edge():
    f = tj.trace(lambda x, w: np.tanh(x @ w).sum(), passes=[])
    graph = f.graph(np.ones((2, 3)), np.ones((3, 4)))
    dot = graph.to_dot()
    assert dot.startswith("digraph tracejit {") and dot.rstrip().endswith("}")
    assert dot.count("shape=box") == len(graph.eqns)
    assert 'label="a = x\\nf64[2,3]"' in dot and "in0 -> e0;" in dot and "e2 -> out0;" in dot


def test_explain_describes_key_cache_and_kernels(capsys):
    f = tj.trace(lambda x, n: np.tanh(x) * n, static_argnames="n")
    x = np.ones((2, 3), np.float32)
    text = tj.explain(f, x, n=2)
    assert "a new signature, traced now" in text and "x: f32[2,3]" in text and "n (static): 2" in text
    assert "compiled program: none yet" in text
    text = tj.explain(f, x, n=2)  # traced, never compiled: says both, without contradiction
    assert "traced before for this signature" in text and "compiled program: none yet" in text
    assert "cache hit" not in text
    f(x, n=2)
    text = tj.explain(f, x, n=2)
    assert "traced before for this signature" in text
    assert re.search(r"compiled program: (compiled|loaded from the disk cache|found in memory); 1 kernel\(s\)", text)
    assert capsys.readouterr().out.count("traced before for this signature") == 2
    with pytest.raises(TypeError, match="decorated with @tj.trace"):
        tj.explain(lambda x: x, x)


def test_check_mode_raises_on_a_wrong_compiled_result():
    def exp_becomes_sin(graph):
        for eqn in graph.eqns:
            for inner in (eqn.params["graph"].eqns if "graph" in eqn.params else [eqn]):
                if inner.prim.name == "exp":
                    inner.prim = tj.primitives["sin"]
        return graph

    good = tj.trace(lambda x: {"y": np.exp(x) * 2}, check=True)
    np.testing.assert_allclose(good(np.ones(3))["y"], np.exp(np.ones(3)) * 2)
    bad = tj.trace(lambda x: {"y": np.exp(x) * 2}, check=True,
                   passes=tj.transforms.DEFAULT_PASSES + [exp_becomes_sin])
    with pytest.raises(tj.MismatchError, match=r"result\['y'\]: traced and eager results differ at index \(0,\)"):
        bad(np.ones(3))


def test_check_compares_arguments_updated_in_place():
    def step(w, g):
        w -= 0.5 * g
        return np.sum(w)

    w = np.ones(3)
    out = tj.trace(step, check=True)(w, np.ones(3))
    np.testing.assert_allclose(w, 0.5)
    assert out == pytest.approx(1.5)


def test_index_error_in_compiled_code_names_the_users_line():
    def pick(x, i):
        return x[i]  # the line the error must name

    line = inspect.getsourcelines(pick)[1] + 1
    f = tj.trace(pick)
    with pytest.raises(IndexError, match=rf"test_diagnostics.py:{line}"):
        f(np.arange(4.0), np.array([1, 7]))


@pytest.mark.parametrize("mode", ["graph", "compiled"])
def test_drawing_from_np_random_while_traced_warns_that_the_numbers_are_frozen(mode):
    def dropout(x):
        return x * (np.random.rand(*x.shape) > 0.5)

    x = np.ones(64)
    f = tj.trace(dropout, mode=mode)
    with pytest.warns(RuntimeWarning, match=r"dropout drew numbers from np\.random while it was traced") as w:
        first = f(x)
    assert w[0].filename == __file__  # points at the call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(f(x), first)  # frozen: the same mask again, and no second warning
        tj.trace(lambda x: x * 2.0, mode=mode)(x)  # a function without np.random: no warning
        eager = tj.trace(dropout, mode="eager")
        assert not np.array_equal(eager(x), eager(x))  # eager mode draws afresh, and says nothing
