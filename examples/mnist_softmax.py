"""Softmax regression on MNIST -- the classic first deep-learning program -- with tracejit.

The model is one linear layer, 784 pixels -> 10 digit scores, trained with plain SGD on the
mean softmax cross-entropy. The training step is ordinary NumPy under ``@tj.trace``: the same
Python body runs eagerly (plain NumPy) or is traced, differentiated, fused and compiled with
Numba. This program trains it both ways from the same start on the same batches, checks that
the two agree, and reports the speed-up.

It also keeps the hand-derived gradient of the classic tutorial and checks, before training,
that tracejit's automatic gradient matches it.

    python examples/mnist_softmax.py                    # eager and compiled, 5 epochs
    python examples/mnist_softmax.py --mode compiled --data ~/data/mnist

MNIST comes from ``--data`` (the folder holding the four files, or its parent), else
``$TRACEJIT_DATA/mnist`` (or ``$TRACEJIT_DATA`` itself), else the download cache (it is
downloaded on first use). With no way to get it, the program says so and falls back to the
8x8 digits bundled with scikit-learn (``pip install 'tracejit[examples]'``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tracejit as tj
from tracejit.progress import progress_bar


# ------------------------------------------------------------------------------------ model
def loss_fn(params, x, y):
    """Mean cross-entropy of the softmax of ``x @ W + b`` against integer labels ``y``."""
    logits = x @ params["W"] + params["b"]
    return tj.nn.cross_entropy(logits, y)


@tj.trace
def sgd_step(params, x, y, lr):
    """One step of SGD: returns the new parameters and the loss before the step."""
    loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
    return {k: params[k] - lr * grads[k] for k in params}, loss


def numpy_grads(params, x, y):
    """The classic tutorial's gradient, derived by hand: d loss / d logits = (probs - onehot) / B."""
    logits = x @ params["W"] + params["b"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    onehot = np.eye(probs.shape[1], dtype=probs.dtype)[y]
    d = (probs - onehot) / len(x)
    return {"W": x.T @ d, "b": d.sum(axis=0)}


# ------------------------------------------------------------------------------------ data
def load_data(path):
    """``(name, x_train, y_train, x_test, y_test)``: MNIST, or scikit-learn's 8x8 digits if
    MNIST cannot be had. Never made-up data."""
    try:
        return ("MNIST", *tj.datasets.mnist(path))
    except tj.datasets.DatasetError as exc:
        print(f"MNIST is not available:\n{exc}\n", file=sys.stderr)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("Neither MNIST nor scikit-learn is available. Either put the four MNIST .gz files in a "
                 "folder and pass --data FOLDER (or set TRACEJIT_DATA), or connect to the internet so "
                 "they can be downloaded, or install scikit-learn (pip install 'tracejit[examples]') "
                 "to use its small bundled digits data set instead.")
    print("Falling back to scikit-learn's bundled 8x8 digits (1797 images, 64 pixels each). "
          "This is NOT MNIST: expect different accuracy.\n", file=sys.stderr)
    digits = load_digits()
    x = (digits.data / 16).astype(np.float32)  # pixels are 0..16
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1437], order[1437:]  # the usual 80/20 split
    return "sklearn 8x8 digits", x[train], y[train], x[test], y[test]


# ------------------------------------------------------------------------------------ training
def check_gradient(mode, x, y, n_classes, seed):
    """Compare tracejit's gradient with the hand-written one on small random weights."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(0, 0.01, (x.shape[1], n_classes)).astype(np.float32),
              "b": rng.normal(0, 0.01, n_classes).astype(np.float32)}
    with tj.mode(mode):  # not tiered: in compiled mode the check is of the compiled program
        ours = tj.trace(tj.grad(loss_fn), tiered=False)(params, x, y)
    ref = numpy_grads(params, x, y)
    err = max(np.abs(ours[k] - ref[k]).max() / np.abs(ref[k]).max() for k in ref)
    ok = err <= 1e-5
    print(f"[{mode}] gradient check: max |tracejit - hand-written NumPy| / max |NumPy| = {err:.1e} "
          f"(rtol 1e-5) {'ok' if ok else 'MISMATCH'}")
    return ok


def train(mode, params, data, args):
    """Train with ``sgd_step`` in ``mode``; returns the final parameters, every step's loss, the
    mean time per epoch, and how many epochs that mean covers. In compiled mode it covers the
    epochs that ran compiled code throughout (the first ones may run in the interpreter while
    the step compiles); when none did, the count is 0 and the mean is of every epoch."""
    x_train, y_train, x_test, y_test = data
    batch_size = min(args.batch_size, len(x_train))
    n_batches = len(x_train) // batch_size
    losses, epoch_times, compiled_times = [], [], []
    with tj.mode(mode):
        if mode != "eager":  # the first call traces (and compiles, or starts compiling); time it apart
            start = time.perf_counter()
            sgd_step(params, x_train[:batch_size], y_train[:batch_size], args.lr)
            if mode == "graph":
                what = "trace"
            elif sgd_step.stats["interpreted_calls"]:
                what = "trace; the interpreter answers while the program compiles in the background"
            else:
                what = "trace + compile"
            print(f"[{mode}] first call ({what}): {time.perf_counter() - start:.3f} s")
        interpreted_before = sgd_step.stats["interpreted_calls"]
        for epoch in range(1, args.epochs + 1):
            bar = progress_bar(n_batches, f"[{mode}] epoch {epoch}/{args.epochs}", unit="batch")
            start = time.perf_counter()
            batches = tj.datasets.batches(x_train, y_train, batch_size, seed=args.seed + epoch, drop_last=True)
            for i, (x, y) in enumerate(batches, 1):
                params, loss = sgd_step(params, x, y, args.lr)
                losses.append(float(loss))
                bar.update(1)
                bar.set_postfix_str(f"loss {losses[-1]:.4f}", refresh=False)
            epoch_times.append(time.perf_counter() - start)
            bar.set_postfix_str(f"loss {losses[-1]:.4f}")
            bar.close()
            acc = tj.nn.accuracy(x_test @ params["W"] + params["b"], y_test)
            interpreted = sgd_step.stats["interpreted_calls"] - interpreted_before if mode == "compiled" else 0
            interpreted_before += interpreted
            if not interpreted:
                compiled_times.append(epoch_times[-1])
            note = f"  ({interpreted} steps interpreted while compiling)" if interpreted else ""
            print(f"[{mode}] epoch {epoch}/{args.epochs}  loss {np.mean(losses[-n_batches:]):.4f}  "
                  f"test accuracy {acc:.2%}  time {epoch_times[-1]:.2f} s{note}")
    print(f"[{mode}] test accuracy: {acc:.2%}  time per epoch: {np.mean(epoch_times):.3f} s")
    if mode == "compiled":  # the epochs that ran compiled code throughout, if any
        return params, np.array(losses), np.mean(compiled_times or epoch_times), len(compiled_times)
    return params, np.array(losses), np.mean(epoch_times), len(epoch_times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--mode", choices=["eager", "graph", "compiled", "both"], default="both")
    parser.add_argument("--data", metavar="PATH", help="folder holding the four MNIST .gz files, or its parent")
    parser.add_argument("--limit", type=int, metavar="N", help="train on the first N samples only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    name, x_train, y_train, x_test, y_test = load_data(args.data)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    print(f"data: {name}, {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1]} pixels")

    modes = ["eager", "compiled"] if args.mode == "both" else [args.mode]
    probe = min(args.batch_size, len(x_train))
    if not all([check_gradient(m, x_train[:probe], y_train[:probe], n_classes, args.seed) for m in modes]):
        sys.exit("tracejit's gradient differs from the hand-written one")

    # The classic tutorial starts from zeros: softmax regression is convex, so that is fine.
    init = {"W": np.zeros((x_train.shape[1], n_classes), np.float32), "b": np.zeros(n_classes, np.float32)}
    runs = {m: train(m, init, (x_train, y_train, x_test, y_test), args) for m in modes}

    if args.mode == "both":
        eager_losses, compiled_losses = runs["eager"][1], runs["compiled"][1]
        rel = np.max(np.abs(compiled_losses - eager_losses) / np.abs(eager_losses))
        ok = rel <= 1e-3
        print(f"eager vs compiled: max relative loss difference {rel:.1e} over {len(eager_losses)} steps "
              f"(rtol 1e-3) {'ok' if ok else 'MISMATCH'}")
        eager_time, (compiled_time, counted) = runs["eager"][2], runs["compiled"][2:]
        which = ("every epoch" if counted == args.epochs else
                 f"the {counted} epoch{'s' if counted > 1 else ''} that ran compiled code throughout" if counted else
                 "no epoch ran compiled code throughout, the step was still compiling: run more epochs")
        print(f"speed-up: compiled is {eager_time / compiled_time:.1f}x faster than eager "
              f"({compiled_time:.3f} s vs {eager_time:.3f} s per epoch; compiled: {which})")
        if not ok:
            sys.exit("eager and compiled training disagree")


if __name__ == "__main__":
    main()
