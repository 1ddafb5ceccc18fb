"""The op-spec table (tests/op_specs.py) run in every mode, and the primitive registry.

For each spec:
- eager mode returns exactly what plain NumPy returns;
- graph and compiled modes return the same structure, shapes and dtypes as eager, and values
  within float64 rtol 1e-12 / float32 rtol 1e-5 (exact for integers and booleans);
- every equation of its graph: the primitive's ``abstract_eval`` gives the shape and dtype its
  ``impl`` really produces, and the graph's outputs have the eager result's shapes and dtypes.

Every registered primitive must be exercised by some spec and carry all of its facets.
One ``tj.trace`` object per spec is shared by all tests, so each spec traces once and
compiles once.
"""
from __future__ import annotations

import contextlib
import types

import numpy as np
import pytest

import tracejit as tj
from conftest import TRACED_MODES, assert_leaf_close, assert_tree_close, copy_args, run
from op_specs import SPECS
from tracejit import pytree
from tracejit.core import Const, Graph, verify
from tracejit.primitives import KINDS, abstract_eval_list, registry
from tracejit.rules.batching import batching_rules
from tracejit.rules.jvp import jvp_rules
from tracejit.rules.vjp import vjp_rules

_TRACED: dict = {}


def traced(spec):
    """The one shared ``tj.trace`` of a spec."""
    t = _TRACED.get(spec.name)
    if t is None:
        t = _TRACED[spec.name] = tj.trace(spec.fn, static_argnums=spec.static_argnums)
    return t


def spec_id(spec):
    return spec.name


def fp_errors(spec):
    """NumPy's floating-point warnings are expected for specs fed NaN, inf and zero divisors."""
    return np.errstate(all="ignore") if "specials" in spec.tags else contextlib.nullcontext()


def leaves_of(tree):
    return pytree.flatten(tree)[0]


def assert_args_untouched(args, spec):
    for i, (a, b) in enumerate(zip(leaves_of(args), leaves_of(spec.args))):
        np.testing.assert_array_equal(a, b, err_msg=f"{spec.name}: argument leaf {i} was modified")


def all_eqns(graph: Graph):
    for eqn in graph.eqns:
        yield eqn
        sub = eqn.params.get("graph")
        if isinstance(sub, Graph):
            yield from all_eqns(sub)


# ----------------------------------------------------------------------------- the table


def test_spec_names_are_unique():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_eager_matches_numpy(spec):
    with fp_errors(spec):
        check_eager_matches_numpy(spec)


def check_eager_matches_numpy(spec):
    expected = spec.fn(*copy_args(spec.args))
    args = copy_args(spec.args)
    actual = run(traced(spec), "eager", *args)
    assert_tree_close(actual, expected, spec.name)
    assert_args_untouched(args, spec)


def _spec_and_mode_params():
    """Every spec in graph and compiled mode; the compiled programs of the "slow_compile" specs
    (LAPACK, sorting, FFT, large complex specs: about ten seconds or more of compiling each) run
    among the long checks, and the default suite compiles those primitives in smaller specs and in
    ``test_backend``, ``test_linalg``, ``test_lstsq``, ``test_scans``, ``test_sorting`` and ``test_fft``."""
    return [pytest.param(s, mode, id=f"{s.name}-{mode}",
                         marks=pytest.mark.long if mode == "compiled" and "slow_compile" in s.tags else ())
            for s in SPECS for mode in TRACED_MODES]


@pytest.mark.parametrize("spec, mode", _spec_and_mode_params())
def test_traced_matches_eager(spec, mode):
    with fp_errors(spec):
        check_traced_matches_eager(spec, mode)


def check_traced_matches_eager(spec, mode):
    t = traced(spec)
    expected = run(t, "eager", *copy_args(spec.args))
    args = copy_args(spec.args)
    actual = run(t, mode, *args)
    assert_tree_close(actual, expected, f"{spec.name} ({mode})")
    assert_args_untouched(args, spec)
    again = run(t, mode, *args)  # a cache hit: same answer, no new trace
    assert_tree_close(again, expected, f"{spec.name} ({mode}, second call)")
    assert t.stats["traces"] == 1 and t.stats["retraces"] == []


def with_namespace(fn, namespace):
    """``fn`` with the name ``np`` bound to ``namespace`` instead of NumPy."""
    scope = dict(fn.__globals__, np=namespace)
    return types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


@pytest.mark.parametrize("spec", [s for s in SPECS if "ufunc_methods" not in s.tags], ids=spec_id)
def test_tj_numpy_namespace_matches_numpy(spec):
    """The same specs written against ``tj.numpy``: on arrays they are NumPy, traced they agree."""
    fn = with_namespace(spec.fn, tj.numpy)
    with fp_errors(spec):
        expected = spec.fn(*copy_args(spec.args))
        assert_tree_close(fn(*copy_args(spec.args)), expected, f"{spec.name} (tj.numpy on arrays)")
        traced_fn = tj.trace(fn, static_argnums=spec.static_argnums)
        assert_tree_close(run(traced_fn, "graph", *copy_args(spec.args)), expected, f"{spec.name} (tj.numpy, graph)")


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_abstract_eval_matches_impl(spec):
    """Run the graph as traced one equation at a time, checking each primitive's shape rule
    against what its NumPy implementation returns, then the outputs against eager."""
    with fp_errors(spec):
        check_abstract_eval(spec)


def check_abstract_eval(spec):
    t = traced(spec)
    args = copy_args(spec.args)
    key, leaves = t._key(args, {})
    entry = t._entry_for(args, {})
    graph = verify(entry.raw_graph)
    verify(entry.program.graph)
    values = [np.asarray(leaf, dtype=var.aval.dtype) for leaf, var in zip(leaves, graph.inputs)]
    values += [np.asarray(v) for v in entry.program.captured]
    assert len(values) == len(graph.inputs)
    env = {}
    for var, value in zip(graph.inputs, values):
        assert (var.aval.shape, var.aval.dtype) == (value.shape, value.dtype)
        env[var.id] = value

    def read(atom):
        return atom.value if isinstance(atom, Const) else env[atom.id]

    for eqn in graph.eqns:
        prim = eqn.prim
        outs = prim.impl(*[read(a) for a in eqn.inputs], **eqn.params)
        outs = outs if prim.extra.get("multiple_results") else (outs,)
        avals = abstract_eval_list(prim, [a.aval for a in eqn.inputs], eqn.params)
        assert len(avals) == len(outs) == len(eqn.outputs)
        for out, aval, var in zip(outs, avals, eqn.outputs):
            out = np.asarray(out)
            inputs = ", ".join(str(a.aval) for a in eqn.inputs)
            assert (out.shape, out.dtype) == (aval.shape, aval.dtype), (
                f"{prim.name}({inputs}; {eqn.params}): abstract_eval gives {aval}, impl gives "
                f"{out.dtype}{list(out.shape)}")
            assert (var.aval.shape, var.aval.dtype) == (aval.shape, aval.dtype)
            env[var.id] = out

    expected = leaves_of(run(t, "eager", *copy_args(spec.args)))
    n = entry.program.n_results
    assert n == len(expected)
    for var, e in zip(graph.outputs[:n], expected):
        e = np.asarray(e)
        assert (var.aval.shape, var.aval.dtype) == (e.shape, e.dtype)
        assert_leaf_close(read(var), e, f"{spec.name}: stepwise result")


# ----------------------------------------------------------------------------- the registry

_PRIMS_BY_SPEC: dict = {}


def prims_of(spec) -> dict:
    """Primitive name -> example equations, over the spec's graph as traced and optimised."""
    found = _PRIMS_BY_SPEC.get(spec.name)
    if found is None:
        t = traced(spec)
        entry = t._entry_for(copy_args(spec.args), {})
        found = {}
        for graph in (entry.raw_graph, entry.program.graph):
            for eqn in all_eqns(graph):
                found.setdefault(eqn.prim.name, []).append(eqn)
        _PRIMS_BY_SPEC[spec.name] = found
    return found


def coverage() -> dict:
    covered: dict = {}
    for spec in SPECS:
        try:
            found = prims_of(spec)
        except Exception:  # noqa: BLE001 - a spec that cannot trace fails in its own tests
            continue
        for name, eqns in found.items():
            covered.setdefault(name, []).extend(eqns)
    return covered


def missing_primitives() -> list:
    return sorted(set(registry) - set(coverage()))


def test_every_primitive_has_a_spec():
    missing = missing_primitives()
    assert not missing, f"primitives no op spec exercises: {missing}; add specs to tests/op_specs.py"


def test_registry_checks_catch_a_new_primitive():
    """A primitive registered without a spec, or without its facets, fails the checks above."""
    from tracejit.core import Aval

    with pytest.raises(TypeError, match=r"vjp= is no longer a facet.*defvjp"):
        tj.defop("test_only_old", "elementwise", impl=lambda x: x * 2, abstract_eval=lambda x: x, vjp=lambda ct: ct)
    prim = tj.defop("test_only_double", "elementwise", impl=lambda x: x * 2, abstract_eval=lambda x: x)
    try:
        assert "test_only_double" in missing_primitives()
        with pytest.raises(AssertionError, match="no vjp rule"):
            check_facets(prim, [])
        vjp_rules[prim] = lambda ct, x, out: (ct * 2,)
        with pytest.raises(AssertionError, match="no jvp rule"):
            check_facets(prim, [])
        jvp_rules[prim] = lambda primals, tangents, out: tangents[0] * 2
        with pytest.raises(AssertionError, match="no batching rule"):
            check_facets(prim, [])
        batching_rules[prim] = lambda values, batched, size: (prim(*values), True)
        with pytest.raises(AssertionError, match="without scalar_src"):
            check_facets(prim, [])
        prim.scalar_src = "{0} * 2"
        with pytest.raises(AssertionError, match="no spec exercises it"):
            check_facets(prim, [])
        prim.kind, prim.scalar_src = "reduce", None
        with pytest.raises(AssertionError, match="without an identity"):
            check_facets(prim, [])
        assert prim.abstract_eval(Aval((2,), np.float32)).dtype == np.float32
    finally:
        del registry["test_only_double"]
        for table in (vjp_rules, jvp_rules, batching_rules):
            table.pop(prim, None)


# Reductions the backend writes by hand instead of from ``identity`` + ``combine``: an index
# search keeps (value, index) pairs, which one accumulator expression cannot express.
DEDICATED_EMITTERS = {"argmax", "argmin"}


@pytest.mark.parametrize("name", sorted(registry))
def test_primitive_has_every_facet(name):
    prim = registry[name]
    assert prim.name == name
    check_facets(prim, coverage().get(name, []))


def check_facets(prim, examples):
    """impl, abstract_eval; scalar_src (elementwise) or identity + combine (reductions); vjp and
    jvp rules when differentiable, and a batching rule. ``examples``: equations from the specs, to render scalar_src."""
    name = prim.name
    assert prim.kind in KINDS
    assert callable(prim.impl), f"{name}: no impl"
    assert callable(prim.abstract_eval), f"{name}: no abstract_eval"
    if prim.differentiable:
        assert callable(vjp_rules.get(prim)), f"{name}: differentiable but has no vjp rule"
        assert callable(jvp_rules.get(prim)), f"{name}: differentiable but has no jvp rule"
    if name != "fused":  # a fusion group exists only after the passes, which run after every transformation
        assert callable(batching_rules.get(prim)), f"{name}: no batching rule"
    if prim.kind == "elementwise":
        assert prim.scalar_src is not None, f"{name}: elementwise without scalar_src"
        assert examples, f"{name}: no spec exercises it"
        for eqn in examples[:3]:
            src = prim.scalar_src(**eqn.params) if callable(prim.scalar_src) else prim.scalar_src
            assert isinstance(src, str), f"{name}: scalar_src must be (or give) a string"
            expr = src.format(*[f"v{i}" for i in range(len(eqn.inputs))])
            compile(expr, f"<{name} scalar_src>", "eval")  # a valid Python expression
    if prim.kind == "reduce" and name not in DEDICATED_EMITTERS:
        assert prim.identity is not None, f"{name}: reduction without an identity"
        assert isinstance(prim.combine, str) and "{acc}" in prim.combine and "{x}" in prim.combine, (
            f"{name}: reduction without a combine expression in {{acc}} and {{x}}")
        compile(prim.combine.format(acc="acc", x="x"), f"<{name} combine>", "eval")


def test_registry_is_in_the_public_api():
    assert tj.primitives is registry
    # NumPy breadth (LAPACK, sorting, complex parts, scans) grew the set; the front end still composes
    # most of its ~300 functions from these
    assert 25 <= len(registry) <= 90, f"{len(registry)} primitives: the design asks for a small set"


@pytest.mark.parametrize("name", sorted(registry))
def test_compiled_backend_emits_every_primitive(name):
    from tracejit.backend.emitters import emitter_for

    prim = registry[name]
    assert emitter_for(prim) is not None, f"{name}: the Numba backend has no way to emit it"
    if name in DEDICATED_EMITTERS:
        from tracejit.backend.emitters import EMITTERS
        assert prim in EMITTERS
