"""Differential fuzzing: seeded random NumPy programs give the same results in every mode.

Each test case is one *group*: ``tests/fuzzing.py`` writes several small random programs
into one function (one trace, and one Numba program for all of them) and runs it

- eagerly (plain NumPy: the reference, which must not warn);
- in graph mode under every pass configuration: no passes, the default pipeline, each pass
  alone, the pipeline without each pass, and all of them (fusion included even when it is not
  in the default pipeline); every resulting graph must pass ``tj.verify``;
- compiled with the default pipeline (in CI for every ``COMPILE_EVERY``-th group, see below;
  in the long run for every group, plus one more pass configuration taking turns by seed).

Gradient groups (float64) differentiate ``sum(out_k * w_k)`` with ``tj.value_and_grad``: the
eager gradient must match central finite differences along random directions, and every mode
and pass configuration must match eager (loss, outputs and gradients).

Tolerances (see ``fuzzing.py``): the contract's rtol -- float64 1e-12, float32 1e-5 -- per
element, plus an atol for elements near 0 of ``rtol / eps`` times the rounding-error bound
the generator carries for each output; integers and booleans exactly; the kind of each result
(array or NumPy scalar), its dtype and shape exactly. Gradients between modes: rtol 1e-12 plus
an atol of 1e-10 times the largest component of that gradient (the backward pass sums
products whose cancellation the generator does not track), and at least 64 eps times the
largest component of any of the loss's gradients, the rounding noise of a gradient that is
exactly zero (an output that cancels to zero). Finite differences: 1e-5 of
``sum |g * v|`` plus the loss's rounding bound over the step.

On a failure the message gives the seed, the failing program's source, the group's source, a
command that prints a stand-alone reproduction (``python tests/fuzzing.py SEED ...``), and
that reproduction; the failing program is found by running each program of the group alone.

Budget. CI runs ``CI_FORWARD_GROUPS`` x ``GROUP_SIZE`` = 320 forward programs and
``CI_GRAD_GROUPS`` x ``GRAD_GROUP_SIZE`` = 60 gradient programs, all of them eagerly, in graph
mode under every pass configuration and (gradients) against finite differences, which costs
about 0.1 s per group. Compiling is what costs: Numba takes ~0.1-0.2 s per loop nest on a
2-core machine, so a 10-program group takes ~4 s to compile cold whether its programs share one
function or not (batching saves only the fixed ~0.3 s per compile). CI therefore compiles every
``COMPILE_EVERY``-th group (6: 70 programs). Programs calling ``np.linalg`` (LAPACK through
Numba) and ``np.fft`` (a call out of compiled code) take longest to compile: the forward and
gradient groups took 50 s cold without them and 77 s with them
(``pytest tests/test_fuzz.py -k "forward_programs or gradient_programs"``, empty cache, one run
on the 2-core development machine). Measured before they were drawn: 46 s
for the whole module with an empty ``TRACEJIT_CACHE_DIR``, 10 s with the compiled programs
already in the disk cache. Environment:

- ``TRACEJIT_FUZZ_COMPILED=all`` (or a number k: every k-th group) -- compiled mode for more
  groups (``all``: ~2.5 min cold, ~10 s warm);
- ``TRACEJIT_FUZZ_LONG=1`` (or ``pytest --long``) -- the long run: ``TRACEJIT_FUZZ_LONG_GROUPS``
  (default 300) more groups of each kind, from seed ``TRACEJIT_FUZZ_LONG_FIRST_SEED`` (default
  100000), every one compiled with two pass configurations (4500 programs; about 1.5 hours cold
  on 2 cores: ~9.5 s per forward group, ~10 s per gradient group).
"""
from __future__ import annotations

import os
import re
import traceback

import numpy as np
import pytest

import fuzzing
import tracejit as tj
from tracejit import transforms
from tracejit.backend import emitter_for

GROUP_SIZE = 10
GRAD_GROUP_SIZE = 5
CI_FORWARD_GROUPS = 32
CI_GRAD_GROUPS = 12
LONG = os.environ.get("TRACEJIT_FUZZ_LONG", "").strip().lower() in ("1", "true", "yes", "on")
LONG_GROUPS = int(os.environ.get("TRACEJIT_FUZZ_LONG_GROUPS", "300"))
LONG_FIRST_SEED = int(os.environ.get("TRACEJIT_FUZZ_LONG_FIRST_SEED", "100000"))
# Compiled mode in CI: every COMPILE_EVERY-th group (by seed); "all" (or 1) compiles every group.
_compiled = os.environ.get("TRACEJIT_FUZZ_COMPILED", "6").strip().lower()
COMPILE_EVERY = 1 if _compiled in ("all", "1") else int(_compiled)

GRAD_RTOL = 1e-12
GRAD_ATOL_SCALE = 1e-10
# A gradient that is exactly zero (an output that cancels, or that the loss reads through a
# product with zero) comes out as rounding noise of the backward pass's terms, whose size is
# that of the loss's other gradients; two evaluation orders disagree there at ~eps times them.
GRAD_NOISE_ULPS = 64
FD_STEPS = (1e-6, 1e-7, 1e-5)
FD_RTOL = 1e-5

# Fuzz cases that hit a known bug in the Numba backend: (kind, seed, program) -> reason with
# a minimal reproduction. Those programs leave their group and run on their own in
# ``test_known_backend_bug`` (strict xfail: it starts failing the day the bug is fixed).
KNOWN_BACKEND_BUGS: dict = {}


# ----------------------------------------------------------------------------- configurations

def _fuse_pass():
    try:
        from tracejit.transforms.fuse import fuse
    except ImportError:  # pragma: no cover - fusion not available
        return None
    return fuse


def pass_configs() -> dict:
    """Name -> pass list: none, default, each pass alone, default without each, and all."""
    default = list(transforms.DEFAULT_PASSES)
    fuse = _fuse_pass()
    everything = default + ([fuse] if fuse is not None and fuse not in default else [])
    configs = {"default": default, "none": []}
    for p in everything:
        configs[f"only_{p.__name__}"] = [p]
        configs[f"without_{p.__name__}"] = [q for q in everything if q is not p]
    configs["all"] = everything
    unique, seen = {}, set()
    for name, passes in configs.items():
        key = tuple(p.__name__ for p in passes)
        if key not in seen:
            seen.add(key)
            unique[name] = passes
    return unique


CONFIGS = pass_configs()


def backend_compiles(passes) -> bool:
    """Whether the Numba backend has code for every primitive these passes can introduce
    (the ``fused`` primitive needs the fused-kernel emitter registered)."""
    fuse = _fuse_pass()
    if fuse is None or fuse not in passes:
        return True
    from tracejit.transforms.fuse import fused
    return emitter_for(fused) is not None


def compiled_configs(seed: int) -> list:
    """The default pipeline, and one more configuration taking turns across seeds."""
    others = [name for name in CONFIGS if name != "default" and backend_compiles(CONFIGS[name])]
    return ["default"] + ([others[seed % len(others)]] if others else [])


# ----------------------------------------------------------------------------- comparing


class Mismatch(AssertionError):
    def __init__(self, program, message):
        super().__init__(message)
        self.program = program


def _leaf_problem(got, want, dtype, rtol, atol):
    if isinstance(got, np.ndarray) != isinstance(want, np.ndarray):
        return f"got a {type(got).__name__}, expected a {type(want).__name__}"
    g, w = np.asarray(got), np.asarray(want)
    if g.dtype != w.dtype:
        return f"dtype {g.dtype}, expected {w.dtype}"
    if g.shape != w.shape:
        return f"shape {g.shape}, expected {w.shape}"
    if w.dtype.kind in "biu":
        bad = g != w
    else:
        bad = ~(np.abs(g.astype(np.float64) - w) <= atol + rtol * np.abs(w))
        bad |= np.isnan(g) != np.isnan(w)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0]) if g.ndim else ()
        return (f"{int(np.count_nonzero(bad))} of {g.size} elements differ (rtol={rtol:g}, atol={atol:.3g}); "
                f"first at {idx}: {g[idx]!r} vs {w[idx]!r}")
    return None


def compare_outputs(group, got, want, where):
    """Raise ``Mismatch`` (naming the program) at the first output that differs."""
    if not isinstance(got, tuple) or len(got) != len(want):
        raise Mismatch(None, f"{where}: result structure {type(got).__name__} of {len(got)}, "
                             f"expected a tuple of {len(want)}")
    for out in group.outputs:
        rtol, atol = out.tolerance()
        problem = _leaf_problem(got[out.position], want[out.position], out.dtype, rtol, atol)
        if problem:
            raise Mismatch(out.program, f"{where}: output {out.name} (program {out.program}): {problem}")


def grad_tolerance(g, loss_scale=0.0):
    """rtol and atol for the gradient ``g``; ``loss_scale``: the largest component of any of the
    loss's gradients, which bounds the rounding noise of a component that is exactly zero."""
    g = np.asarray(g)
    scale = float(np.max(np.abs(g))) if g.size else 0.0
    noise = GRAD_NOISE_ULPS * fuzzing.EPS[fuzzing.F64] * loss_scale
    return GRAD_RTOL, max(GRAD_ATOL_SCALE * scale, noise, 1e-300)


def loss_error(group) -> float:
    """Rounding-error bound of ``sum(out_k * w_k)``."""
    floats = [o for o in group.outputs if o.dtype == fuzzing.F64]
    total = 0.0
    for o, w in zip(floats, group.weights):
        total += float(np.sum(np.abs(w))) * o.err
    return total


def compare_grad_result(group, got, want, where):
    (g_value, g_outs), g_grads = got
    (w_value, w_outs), w_grads = want
    compare_outputs(group, g_outs, w_outs, where)
    rtol, atol = fuzzing.tolerance(fuzzing.F64, loss_error(group) + _loss_rounding(group, w_outs))
    problem = _leaf_problem(g_value, w_value, fuzzing.F64, rtol, atol)
    if problem:
        raise Mismatch(None, f"{where}: loss value: {problem}")
    loss_scale = max((float(np.max(np.abs(w))) for w in w_grads if np.size(w)), default=0.0)
    for k, (g, w) in enumerate(zip(g_grads, w_grads)):
        name = group.args[group.diff_argnums[k]].name
        problem = _leaf_problem(g, w, w.dtype, *grad_tolerance(w, loss_scale))
        if problem:
            raise Mismatch(None, f"{where}: gradient with respect to {name}: {problem}")


def _loss_rounding(group, outs):
    floats = [o for o in group.outputs if o.dtype == fuzzing.F64]
    total = 0.0
    for o, w in zip(floats, group.weights):
        terms = np.abs(np.asarray(outs[o.position]) * w)
        total += fuzzing.EPS[fuzzing.F64] * (terms.size + 2) * float(np.sum(terms))
    return total


# ----------------------------------------------------------------------------- running


def raised(e) -> str:
    """The exception and the last frames of its traceback (where in tracejit it came from)."""
    frames = "".join(traceback.format_tb(e.__traceback__)[-4:])
    return f"{type(e).__name__}: {e}\n{frames}"


def run(fn, mode, *args):
    with tj.mode(mode), fuzzing.strict_numpy():
        return fn(*args)


def eager_reference(group):
    with fuzzing.strict_numpy():
        return group.fn(*group.call_args())


def other_byte_order(args):
    """The arguments with every array in the non-native byte order: the same numbers, which
    every call (the first and the fast path's later ones) must read as such."""
    return [a.astype(a.dtype.newbyteorder("S")) if isinstance(a, np.ndarray) else a for a in args]


def check_again(traced, args, compare, where):
    """Later calls of a compiled function: the same arguments (the fast path), then the
    same numbers in the other byte order, twice."""
    for again, call_args in (("again", args()), ("other byte order", other_byte_order(args())),
                             ("other byte order, again", other_byte_order(args()))):
        try:
            got = run(traced, "compiled", *call_args)
        except Exception as e:  # noqa: BLE001
            raise Mismatch(None, f"{where}, {again}: raised {raised(e)}") from None
        compare(got, f"{where}, {again}")


def vmap_check(group, want):
    """The group under ``tj.vmap`` over two examples (the arguments and a copy of them), eagerly
    and traced into a graph: each example's outputs are the group's own."""
    args = group.call_args()
    axes = tuple(0 if isinstance(a, np.ndarray) else None for a in args)
    batched = [np.stack([a, a]) if isinstance(a, np.ndarray) else a for a in args]
    mapped = tj.vmap(group.fn, in_axes=axes)
    with fuzzing.strict_numpy():
        for where, got in (("eager vmap", mapped(*batched)), ("graph-mode vmap", run(tj.trace(mapped), "graph", *batched))):
            for example in range(2):
                # a 0-d result NumPy gives as an array is one example's item of the batched result
                each = tuple(np.asarray(np.asarray(g)[example]) if isinstance(w, np.ndarray) else np.asarray(g)[example]
                             for g, w in zip(got, want))
                compare_outputs(group, each, want, f"{where}, example {example}")


def check_forward(group, modes_and_configs):
    want = eager_reference(group)
    compare_outputs(group, run(tj.trace(group.fn), "eager", *group.call_args()), want, "eager (traced function)")
    vmap_check(group, want)
    for mode, config in modes_and_configs:
        traced, got, where = run_configured(group.fn, mode, config, group.call_args())
        compare_outputs(group, got, want, where)
        if mode == "graph":
            tj.verify(traced.graph(*group.call_args()))
            assert traced.stats["traces"] == 1
        elif config == "default":
            check_again(traced, group.call_args, lambda got, where: compare_outputs(group, got, want, where), where)


def run_configured(fn, mode, config, args):
    """``fn`` traced with the pass configuration ``config`` and run in ``mode``: (the traced
    function, its result, a description for messages); raising is a mismatch. Compiled mode
    with the default passes tiers: its first call is the interpreter's, and the compiled
    program (which ``check_again`` calls) is waited for; other configurations compile first."""
    tiered = mode == "compiled" and config == "default"
    traced = tj.trace(fn, passes=CONFIGS[config], tiered=tiered)
    where = f"{mode} mode, passes={config}" + (" (tiered: the interpreter's first call)" if tiered else "")
    try:
        result = run(traced, mode, *args)
        traced.wait()
        return traced, result, where
    except Exception as e:  # noqa: BLE001
        raise Mismatch(None, f"{where}: raised {raised(e)}") from None


def plan(seed, long=False):
    """Graph mode under every pass configuration; compiled mode with the default pipeline for
    every ``COMPILE_EVERY``-th group, and in the long run for every group with a second
    configuration too (they take turns across seeds)."""
    graph = [("graph", c) for c in CONFIGS]
    if long:
        return graph + [("compiled", c) for c in compiled_configs(seed)]
    return graph + ([("compiled", "default")] if seed % COMPILE_EVERY == 0 else [])


def _gist(error) -> str:
    """The first line of a failure without the names and numbers that differ between programs."""
    first = str(error).split("\n")[0]
    return re.sub(r"p\d+_\d+|\(program \d+\)|[-+]?\d[\d.e+-]*", "#", first)


def isolate(group, plan, check, error=None):
    """The program that fails on its own the way the group failed (else the first that fails
    at all, else None)."""
    fallback = None
    for k in [p.index for p in group.programs]:
        try:
            check(fuzzing.subgroup(group, [k]), plan)
        except Exception as e:  # noqa: BLE001 - any failure of the single program counts
            if error is None or _gist(e) == _gist(error):
                return k
            fallback = k if fallback is None else fallback
    return fallback


def report(group, plan, check, error):
    program = getattr(error, "program", None)
    if program is None:
        program = isolate(group, plan, check, error)
    lines = [str(error), "", group.describe(program)]
    if program is not None:
        lines += ["--- stand-alone reproduction:", fuzzing.reproducer(group, program)]
    pytest.fail("\n".join(lines), pytrace=False)


def drop_known(group, kind):
    known = [k for (knd, seed, k) in KNOWN_BACKEND_BUGS if knd == kind and seed == group.seed]
    if not known:
        return group
    return fuzzing.subgroup(group, [p.index for p in group.programs if p.index not in known])


def forward_case(seed, long=False):
    group = drop_known(fuzzing.make_group(seed, GROUP_SIZE), "forward")
    steps = plan(seed, long)
    try:
        check_forward(group, steps)
    except Exception as e:  # noqa: BLE001
        report(group, steps, check_forward, e)


# ----------------------------------------------------------------------------- gradients


def finite_difference_check(group, grads):
    """The eager gradient along random directions equals central differences of the loss."""
    rng = np.random.default_rng(group.seed + 7)
    args = group.loss_args()
    for _ in range(2):
        directions = {i: rng.standard_normal(np.shape(args[i])) for i in group.diff_argnums}
        predicted = sum(float(np.sum(g * directions[i])) for i, g in zip(group.diff_argnums, grads))
        scale = sum(float(np.sum(np.abs(g * directions[i]))) for i, g in zip(group.diff_argnums, grads))
        results = []
        for h in FD_STEPS:
            def at(sign):
                moved = list(args)
                for i, d in directions.items():
                    moved[i] = args[i] + sign * h * d
                with fuzzing.strict_numpy():
                    return float(group.loss_fn(*moved)[0])
            fd = (at(1) - at(-1)) / (2 * h)
            noise = 10 * (loss_error(group) + _loss_rounding(group, group.fn(*group.call_args()))) / h
            ok = abs(fd - predicted) <= FD_RTOL * scale + noise + 1e-9
            results.append((h, fd))
            if ok:
                break
        else:
            raise Mismatch(None, f"eager gradient along a random direction is {predicted!r}, central differences "
                                 f"give {results} (scale {scale:.3g})")


def forward_mode_check(group, grads):
    """Forward mode agrees with reverse mode on the group's loss: its jvp along a random
    direction (eager, and traced into a graph) is <gradient, direction>, and its Jacobian by
    ``jacfwd`` (one jvp per input element) is the gradient (``jacrev``)."""
    args = group.loss_args()
    nums = group.diff_argnums

    def loss(*diff_args):
        full = list(args)
        for i, a in zip(nums, diff_args):
            full[i] = a
        return group.loss_fn(*full)[0]

    rng = np.random.default_rng(group.seed + 11)
    primals = tuple(args[i] for i in nums)
    directions = tuple(rng.standard_normal(np.shape(p)) for p in primals)
    predicted = sum(float(np.sum(g * d)) for g, d in zip(grads, directions))
    scale = sum(float(np.sum(np.abs(g * d))) for g, d in zip(grads, directions)) + 1e-300
    traced_jvp = tj.trace(lambda ps, ds: tj.jvp(loss, ps, ds)[1])
    with fuzzing.strict_numpy():
        for where, tangent in (("eager jvp", tj.jvp(loss, primals, directions)[1]),
                               ("graph-mode jvp", run(traced_jvp, "graph", primals, directions))):
            if abs(float(tangent) - predicted) > 1e-9 * scale + 1e-12:
                raise Mismatch(None, f"{where} of the loss along a random direction is {float(tangent)!r}, "
                                     f"reverse mode gives {predicted!r}")
        if sum(np.size(p) for p in primals) <= 64:
            forward = tj.jacfwd(loss, argnums=tuple(range(len(nums))))(*primals)
            for k, (f, g) in enumerate(zip(forward, grads)):
                np.testing.assert_allclose(f, g, rtol=1e-9, atol=1e-12 * scale,
                                           err_msg=f"jacfwd of the loss, argument {nums[k]}, against its gradient")


def check_grad(group, plan):
    vg = tj.value_and_grad(group.loss_fn, argnums=group.diff_argnums, has_aux=True)
    with fuzzing.strict_numpy():
        want = vg(*group.loss_args())
    (value, outs), grads = want
    compare_outputs(group, outs, eager_reference(group), "eager value_and_grad outputs")
    finite_difference_check(group, grads)
    forward_mode_check(group, grads)
    for mode, config in plan:
        traced, got, where = run_configured(vg, mode, config, group.loss_args())
        compare_grad_result(group, got, want, where)
        if mode == "graph":
            tj.verify(traced.graph(*group.loss_args()))
        elif config == "default":
            check_again(traced, group.loss_args, lambda got, where: compare_grad_result(group, got, want, where), where)


def grad_case(seed, long=False):
    group = drop_known(fuzzing.make_group(seed, GRAD_GROUP_SIZE, grad=True), "grad")
    steps = plan(seed, long)
    try:
        check_grad(group, steps)
    except Exception as e:  # noqa: BLE001
        report(group, steps, check_grad, e)


# ----------------------------------------------------------------------------- call-site cases


def _outcome(fn, args):
    """``(result, the arguments after the call)``, or the OverflowError NumPy (or the traced
    function) raised."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args), args
    except OverflowError as e:
        return e


def _same_outcome(got, want, where):
    if isinstance(want, OverflowError) or isinstance(got, Exception):
        assert type(got) is type(want), f"{where}: {got!r}, NumPy: {want!r}"
        return
    for k, (g, w) in enumerate(zip(pytree_leaves(got), pytree_leaves(want))):
        g, w = np.asarray(g), np.asarray(w)
        native = g.dtype.newbyteorder("=")  # an argument passed in the other byte order keeps it
        assert native == w.dtype and g.shape == w.shape, f"{where}, value {k}: {g.dtype}{g.shape}, NumPy: {w.dtype}{w.shape}"
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=0, err_msg=f"{where}, value {k}")


def pytree_leaves(tree):
    return tj.pytree.flatten(tree)[0]


def call_case(case, byte_orders=False):
    """The case in eager, graph and compiled mode (compiled twice, then with the arrays in the
    other byte order when ``byte_orders``): results and the arguments after the call, or the
    OverflowError, as NumPy gives them."""
    want = _outcome(case.fn, case.make_args())
    traced = tj.trace(case.fn)
    calls = [("eager", case.make_args), ("graph", case.make_args), ("compiled", case.make_args),
             ("compiled", case.make_args)]
    if byte_orders:
        calls += [("compiled", lambda: other_byte_order(case.make_args()))] * 2
    for k, (mode, make_args) in enumerate(calls):
        try:
            with tj.mode(mode):
                got = _outcome(traced, make_args())
            _same_outcome(got, want, f"{mode} mode (call {k})")
        except Exception as e:  # noqa: BLE001 - reported with the case
            pytest.fail(f"{e}\n{case.message()}", pytrace=False)


CI_CALL_CASES = 16


@pytest.mark.parametrize("seed", range(CI_CALL_CASES))
def test_one_array_as_several_arguments_updated_in_place(seed):
    call_case(fuzzing.make_alias_case(seed))


@pytest.mark.parametrize("seed", range(CI_CALL_CASES))
def test_python_int_arguments_at_the_limits_of_their_dtype(seed):
    call_case(fuzzing.make_int_limit_case(seed), byte_orders=True)


def test_call_cases_long(long_seed):
    outside_case(long_seed)
    call_case(fuzzing.make_alias_case(long_seed))
    call_case(fuzzing.make_int_limit_case(long_seed), byte_orders=True)


def outside_case(seed):
    """A function reading global arrays, called in graph and compiled mode (twice, for the fast
    path) after each change of those arrays: always NumPy's result with the current arrays."""
    source, namespace, changes = fuzzing.make_outside_case(seed)
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    traced = tj.trace(namespace["f"])
    for step, change in enumerate(["pass", *changes]):
        exec(change, namespace)  # noqa: S102 - one of fuzzing._OUTSIDE_CHANGES
        want = namespace["f"](x)
        for mode in ("graph", "compiled", "compiled"):
            got = run(traced, mode, x)
            if not np.allclose(got, want, rtol=1e-12, atol=0):
                pytest.fail(f"outside fuzz case {seed}, after {change!r} (change {step}), {mode} mode: {got} but "
                            f"NumPy gives {want}\n{source}", pytrace=False)


@pytest.mark.parametrize("seed", range(CI_CALL_CASES))
def test_global_arrays_changed_between_calls(seed):
    outside_case(seed)


# ----------------------------------------------------------------------------- the tests

def pytest_generate_tests(metafunc):
    """The long run's seeds exist only with ``TRACEJIT_FUZZ_LONG=1`` or ``pytest --long``."""
    if "long_seed" in metafunc.fixturenames:
        wanted = LONG or metafunc.config.getoption("--long", default=False)
        seeds = range(LONG_FIRST_SEED, LONG_FIRST_SEED + LONG_GROUPS) if wanted else []
        metafunc.parametrize("long_seed", seeds)


@pytest.mark.parametrize("seed", range(CI_FORWARD_GROUPS))
def test_forward_programs(seed):
    forward_case(seed)


@pytest.mark.parametrize("seed", range(CI_GRAD_GROUPS))
def test_gradient_programs(seed):
    grad_case(seed)


def test_forward_programs_long(long_seed):
    forward_case(long_seed, long=True)


def test_gradient_programs_long(long_seed):
    grad_case(long_seed, long=True)


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=reason), id=f"{case[0]}-{case[1]}-{case[2]}")
    for case, reason in sorted(KNOWN_BACKEND_BUGS.items())] or [pytest.param(None, id="none")])
def test_known_backend_bug(case):
    if case is None:
        pytest.skip("no known backend bugs")
    kind, seed, k = case
    group = fuzzing.make_group(seed, GROUP_SIZE if kind == "forward" else GRAD_GROUP_SIZE, grad=kind == "grad")
    single = fuzzing.subgroup(group, [k])
    check = check_forward if kind == "forward" else check_grad
    check(single, [("compiled", "default")])


def test_generator_is_deterministic_and_valid():
    """The same seed gives the same source and arguments, and eager NumPy reproduces exactly
    what the generator computed line by line (under errors-for-warnings)."""
    a, b = fuzzing.make_group(3, GROUP_SIZE), fuzzing.make_group(3, GROUP_SIZE)
    assert a.source == b.source
    for x, y in zip(a.args, b.args):
        np.testing.assert_array_equal(x.value, y.value, strict=True)
    assert len(a.programs) == GROUP_SIZE and len(a.outputs) >= GROUP_SIZE
    got = eager_reference(a)
    for out in a.outputs:
        np.testing.assert_array_equal(got[out.position], out.value, strict=True)


def test_gradient_groups_are_float64_and_differentiable():
    for seed in range(5):
        group = fuzzing.make_group(seed, GRAD_GROUP_SIZE, grad=True)
        assert group.diff_argnums
        assert all(o.dtype != fuzzing.F32 for o in group.outputs)
        assert all(group.args[i].dtype == fuzzing.F64 for i in group.diff_argnums)


def test_ci_budget_counts():
    assert CI_FORWARD_GROUPS * GROUP_SIZE + CI_GRAD_GROUPS * GRAD_GROUP_SIZE >= 300


# ----------------------------------------------------------------------------- regressions
# Bugs the fuzzer found, each as the smallest program that showed it.

def _all_modes(fn, *args):
    traced = tj.trace(fn)
    want = fn(*args)
    for mode in ("graph", "compiled"):
        got = run(traced, mode, *args)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            assert type(g) is type(w), (mode, type(g), type(w))
            assert np.asarray(g).dtype == np.asarray(w).dtype and np.shape(g) == np.shape(w), mode
            np.testing.assert_allclose(g, w, rtol=1e-12)


def test_regression_inner_sums_over_the_last_axes():
    rng = np.random.default_rng(0)
    _all_modes(lambda a, b: np.inner(a, b), rng.random((2, 3)), rng.random((4, 3)))
    _all_modes(lambda a, b: np.inner(a, b), rng.random((2, 2, 3)), rng.random(3))


def test_regression_dot_outer_vdot_take_python_numbers_as_strongly_typed():
    x = np.ones(3, np.float32)
    _all_modes(lambda s, x: (np.dot(s, x), np.outer(s, x), np.inner(s, x), np.vdot(s, x[:1])), 0.5, x)


def test_regression_0d_results_that_numpy_returns_as_arrays():
    v = np.array([0.5, -1.0, 2.0])
    _all_modes(lambda a, v: (np.where(a > 0, a, v[0]), tj.nn.relu(v.sum()), a.astype(np.float32), a, np.copy(a),
                             np.reshape(v[:1], ()), v.sum().reshape(()), np.sum(a), a + 1), np.array(1.5), v)


def test_regression_eager_gradients_are_plain_arrays_of_their_inputs_kind():
    f = tj.value_and_grad(lambda x, y: (np.sum(np.clip(x, None, 0.5) * y), np.where(True, y, 0.0)), argnums=(0, 1),
                          has_aux=True)
    args = (np.array(2.0), np.array([1.0, 3.0]))
    want = f(*args)
    (value, aux), (gx, gy) = want
    assert type(value) is np.float64 and type(aux) is np.ndarray
    assert type(gx) is np.ndarray and gx.ndim == 0 and type(gy) is np.ndarray
    for mode in ("graph", "compiled"):
        (v2, aux2), (gx2, gy2) = run(tj.trace(f), mode, *args)
        assert (type(v2), type(aux2), type(gx2), type(gy2)) == (np.float64, np.ndarray, np.ndarray, np.ndarray)


def test_regression_fusion_broadcasts_a_row_reduction_along_the_last_axis():
    # NumPy lines up trailing axes: x - x.sum(axis=1) subtracts the row sums along each row.
    x = np.arange(9.0).reshape(3, 3)
    _all_modes(lambda x: (x - x.sum(axis=1), x / x.max(axis=1), x - x.sum(axis=1, keepdims=True)), x)


def test_regression_fusion_without_dce_leaves_dead_code_unfused():
    from tracejit.transforms.fuse import fuse

    def f(x):
        unused = np.exp(x.sum(axis=0))  # noqa: F841 - dead code for a pipeline without DCE
        return x @ x

    x = np.arange(9.0).reshape(3, 3)
    traced = tj.trace(f, passes=[fuse])
    tj.verify(traced.graph(x))
    for mode in ("graph", "compiled"):
        np.testing.assert_array_equal(run(traced, mode, x), x @ x)


def test_regression_a_dead_kernel_that_reads_a_broadcast_scalar_argument():
    # The long fuzzer's seeds 100004 and 100013: without DCE, a dead kernel's members were left
    # as equations of their own, and one read the broadcast of a Python-scalar argument, which
    # only kernels compute ("fusion produced a cycle").
    from tracejit.transforms.fuse import fuse

    def f(x, k):
        unused = x / k  # noqa: F841 - dead code for a pipeline without DCE
        return x @ x

    x = np.arange(9.0).reshape(3, 3)
    traced = tj.trace(f, passes=[fuse])
    tj.verify(traced.graph(x, 4))
    for mode in ("graph", "compiled"):
        np.testing.assert_array_equal(run(traced, mode, x, 4), x @ x)


def test_regression_a_gather_of_one_row_inside_a_collapsed_kernel():
    # The long fuzzer's seeds 100000 and 100003: a view (a gather of one row) maps the collapsed
    # loop's indices away, and the kernel writer raised IndexError instead of keeping its loops.
    def loss(x2, x3, x4, w0, w1):
        a = (x2 @ x3).max(axis=(0, -2, -1), keepdims=True)
        b = np.log2(x4.var(axis=(-2, -1)).reshape(1, 1).sum(axis=0)[[-1, 0, 0, 0]])
        return np.sum(a * w0) + np.sum(b * w1), (a, b)

    rng = np.random.default_rng(0)
    args = [rng.uniform(0.5, 2.0, s) for s in [(1, 3), (2, 3, 3), (3, 2), (1, 1, 1), (4,)]]
    f = tj.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    want = f(*args)
    got = run(tj.trace(f), "compiled", *args)
    for g, w in zip(tj.pytree.flatten(got)[0], tj.pytree.flatten(want)[0]):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_regression_a_whole_array_set_to_a_traced_value_that_is_not_differentiated():
    # Gradient seed 111: inside grad, in graph and compiled mode, y[...] = s with s a traced
    # argument that is not differentiated made the tape tracer take the graph tracer's place
    # (AttributeError: no attribute 'primal') instead of a value without gradient.
    def loss(x, s):
        y = x * 2.0
        y[...] = s
        y[:, 1:] = s * 3
        return (y * x).sum()

    x = np.arange(6.0).reshape(2, 3)
    want = np.array([[0.5, 1.5, 1.5], [0.5, 1.5, 1.5]])
    for mode in ("eager", "graph", "compiled"):
        np.testing.assert_array_equal(run(tj.trace(tj.grad(loss)), mode, x, 0.5), want, err_msg=mode)


def test_regression_an_element_taken_by_integers_is_a_scalar_copy():
    # Forward seed 265: x[1] += 0.5 on an integer array truncates in NumPy (x[1] is a scalar,
    # += makes a float64 and x[1] = ... casts it), where traced code raised a same_kind casting
    # error; and a scalar taken out of an array, or a reduction's result, changed in place
    # must leave the array and other names of the scalar alone.
    def f(a, x):
        b = a.copy()
        b[1] += np.float32(-1.64)
        b[2] -= 0.7
        y = x.copy()
        s = y[1]
        s += 1
        t = y.sum()
        u = t
        t += 1
        return b, y, s, u, t

    _all_modes(f, np.arange(4), np.arange(4.0))
    batched = tj.vmap(f)(np.stack([np.arange(4)] * 2), np.stack([np.arange(4.0)] * 2))
    np.testing.assert_array_equal(batched[0], [[0, 0, 1, 3]] * 2)
    np.testing.assert_array_equal(batched[1], [np.arange(4.0)] * 2)
