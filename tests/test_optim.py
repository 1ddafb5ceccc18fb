"""``tj.optim``: each optimiser's update against its formula written out in NumPy, in every mode."""
import numpy as np
import pytest

import tracejit as tj
from conftest import MODES, run

_rng = np.random.default_rng(7)
PARAMS = {"W": _rng.standard_normal((3, 2)), "b": _rng.standard_normal(2)}
GRADS = [{"W": _rng.standard_normal((3, 2)), "b": _rng.standard_normal(2)} for _ in range(3)]


def sgd_reference(lr):
    return [{k: PARAMS[k] - lr * GRADS[0][k] for k in PARAMS}]


def momentum_reference(lr, beta):
    p, v, out = dict(PARAMS), {k: np.zeros_like(x) for k, x in PARAMS.items()}, []
    for g in GRADS:
        v = {k: beta * v[k] + g[k] for k in p}
        p = {k: p[k] - lr * v[k] for k in p}
        out.append(p)
    return out


def adam_reference(lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1 with the step size folded as in their Section 2:
    lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t), p -= lr_t * m / (sqrt(v) + eps)."""
    p = dict(PARAMS)
    m = {k: np.zeros_like(x) for k, x in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    out = []
    for t, g in enumerate(GRADS, start=1):
        m = {k: b1 * m[k] + (1 - b1) * g[k] for k in p}
        v = {k: b2 * v[k] + (1 - b2) * g[k] ** 2 for k in p}
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = {k: p[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps) for k in p}
        out.append(p)
    return out


CASES = [
    (tj.optim.sgd(lr=0.1), sgd_reference(0.1)),
    (tj.optim.momentum(lr=0.05, beta=0.8), momentum_reference(0.05, 0.8)),
    (tj.optim.adam(lr=0.01, b1=0.8, b2=0.99, eps=1e-6), adam_reference(0.01, 0.8, 0.99, 1e-6)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opt, expected", CASES, ids=["sgd", "momentum", "adam"])
def test_updates_follow_the_formula_in_every_mode(opt, expected, mode):
    update = tj.trace(opt.update)
    params, state = PARAMS, opt.init(PARAMS)
    for g, want in zip(GRADS, expected):
        params, state = run(update, mode, params, g, state)
        assert set(params) == set(want)
        for k in want:
            np.testing.assert_allclose(params[k], want[k], rtol=1e-12, atol=1e-15)
    assert PARAMS["W"] is not params["W"]  # nothing is updated in place


@pytest.mark.parametrize("opt", [case[0] for case in CASES], ids=["sgd", "momentum", "adam"])
def test_float32_parameters_stay_float32(opt):
    params = {k: v.astype(np.float32) for k, v in PARAMS.items()}
    grads = {k: v.astype(np.float32) for k, v in GRADS[0].items()}
    state = opt.init(params)
    for mode in MODES:
        new, _ = run(tj.trace(opt.update), mode, params, grads, state)
        assert all(new[k].dtype == np.float32 for k in new), mode


def test_a_compiled_training_step_with_adam_equals_eager():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    opt = tj.optim.adam(lr=0.05)

    def loss(params, x, y):
        logits = x @ params["W"] + params["b"]
        logits = logits - logits.max(axis=1, keepdims=True)
        return -np.mean(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1)))

    @tj.trace
    def step(params, state, x, y):
        value, grads = tj.value_and_grad(loss)(params, x, y)
        params, state = opt.update(params, grads, state)
        return params, state, value

    start = {"W": np.zeros((5, 3), np.float32), "b": np.zeros(3, np.float32)}
    results = {}
    for mode in ("eager", "compiled"):
        params, state, losses = start, opt.init(start), []
        for _ in range(5):
            params, state, value = run(step, mode, params, state, x, y)
            losses.append(float(value))
        results[mode] = params, losses
    assert results["compiled"][1][-1] < results["compiled"][1][0]  # it trains
    # the state keeps one kind of value for its step count: a training loop traces once
    assert step.stats["traces"] == 1 and step.stats["retraces"] == []
    np.testing.assert_allclose(results["compiled"][1], results["eager"][1], rtol=1e-5)
    for k in start:
        np.testing.assert_allclose(results["compiled"][0][k], results["eager"][0][k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda: tj.optim.sgd(lr=-0.1), "sgd: lr must be a number >= 0.0, got -0.1"),
    (lambda: tj.optim.sgd(lr="0.1"), "sgd: lr must be a number >= 0.0, got '0.1'"),
    (lambda: tj.optim.sgd(lr=True), "sgd: lr must be a number >= 0.0, got True"),
    (lambda: tj.optim.momentum(lr=0.1, beta=1.0), r"momentum: beta must be a number in \[0.0, 1.0\), got 1.0"),
    (lambda: tj.optim.adam(b2=-0.5), r"adam: b2 must be a number in \[0.0, 1.0\), got -0.5"),
    (lambda: tj.optim.adam(eps=float("nan")), "adam: eps must be a number >= 0.0, got nan"),
])
def test_bad_hyperparameters_are_refused_with_their_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_scalars_are_accepted_as_hyperparameters():
    opt = tj.optim.adam(lr=np.float32(0.01), b1=np.float64(0.9))
    assert isinstance(opt.lr, float) and opt.lr == pytest.approx(0.01)
    assert tj.optim.sgd(lr=np.int64(1)).lr == 1.0


@pytest.mark.parametrize("opt", [case[0] for case in CASES], ids=["sgd", "momentum", "adam"])
def test_the_state_keeps_its_signature_across_updates(opt):
    """init's state and update's state are the same kinds of leaves (no 0-d array turning into a
    NumPy scalar), so a traced step called with each in turn traces once."""
    state = opt.init(PARAMS)
    for _ in range(2):
        _, new = opt.update(PARAMS, GRADS[0], state)
        assert [(type(a), np.shape(a), np.asarray(a).dtype) for a in tj.pytree.flatten(new)[0]] == \
            [(type(a), np.shape(a), np.asarray(a).dtype) for a in tj.pytree.flatten(state)[0]]
        state = new
