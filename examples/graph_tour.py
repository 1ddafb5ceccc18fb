"""A tour of what tracejit does with a function: the graph it traces, the graph it runs after
optimisation, and the Numba source it generates.

    python examples/graph_tour.py

Two functions: the classic ``a * b + 3`` computation graph, and one SGD step of softmax
regression (the model of ``mnist_softmax.py``), whose graph also holds the backward pass.
"""
from __future__ import annotations

import numpy as np

import tracejit as tj


def section(title):
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}")


@tj.trace
def classic(a, b):
    return a * b + 3


def loss_fn(params, x, y):
    logits = x @ params["W"] + params["b"]
    return tj.nn.cross_entropy(logits, y)


@tj.trace
def sgd_step(params, x, y, lr):
    loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
    return {k: params[k] - lr * grads[k] for k in params}, loss


def tour(title, f, *args):
    raw, optimized = f.graph(*args, optimize=False), f.graph(*args)
    section(f"{title}: the graph as traced ({len(raw.eqns)} equations)")
    print("Each line applies one primitive to named values (SSA form) and shows the result's dtype and\n"
          "shape. Broadcasting is explicit (broadcast_to). Numbers written in the body are constants;\n"
          "Python numbers passed as arguments are inputs marked ~ (weakly typed, as in NumPy 2), so a\n"
          "new learning rate does not mean a new trace.\n")
    print(raw)
    section(f"{title}: after optimisation ({len(optimized.eqns)} equations)")
    print("Constant folding, algebraic simplification, common-subexpression elimination and dead-code\n"
          "elimination have run; this is the graph that is executed.\n")
    print(optimized)
    section(f"{title}: the generated Numba source")
    print("Fused loops are plain Python functions compiled with numba.njit; each commented line is an\n"
          "equation of the graph above. Matrix products go to BLAS.\n")
    print(f.source(*args))


def main(argv=None):
    a, b = np.arange(4.0), np.full(4, 2.0)
    print("a * b + 3 with a =", a, "and b =", b, "gives", classic(a, b))
    tour("a * b + 3", classic, a, b)

    rng = np.random.default_rng(0)
    params = {"W": np.zeros((784, 10), np.float32), "b": np.zeros(10, np.float32)}
    x, y = rng.random((128, 784), np.float32), rng.integers(0, 10, 128)
    tour("softmax regression SGD step (forward and backward)", sgd_step, params, x, y, 0.5)

    with tj.mode("compiled"):
        sgd_step(params, x, y, 0.5)  # the first call compiles that source; later calls only run it
        sgd_step(params, x, y, 0.1)  # a new learning rate: same program, no retrace
    s = sgd_step.stats
    section("after two calls in compiled mode")
    print(f"traces: {s['traces']}, cache hits: {s['cache_hits']}, retraces: {len(s['retraces'])}, "
          f"compile time: {s['compile_seconds']:.1f} s, kernels: {s['kernels']}, fused equations: {s['fused_ops']}")


if __name__ == "__main__":
    main()
