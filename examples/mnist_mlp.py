"""A 784-512-256-10 ReLU network trained with Adam on MNIST or Fashion-MNIST, with tracejit.

The whole training step -- forward pass, cross-entropy, gradient and Adam update -- is plain
NumPy under ``@tj.trace``, so it traces into one program that is fused and compiled once. The
step size decays to zero along a cosine over the run, passed in as a traced number.

    python examples/mnist_mlp.py                      # MNIST, compiled: about 98.3% test accuracy
    python examples/mnist_mlp.py --dataset fashion    # Fashion-MNIST: about 89.5%
    python examples/mnist_mlp.py --mode eager         # the same code as plain NumPy

The data come from ``--data`` (the folder holding the four files, or its parent), else
``$TRACEJIT_DATA/<name>`` (or ``$TRACEJIT_DATA`` itself), else the download cache (downloaded on
first use).
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

import tracejit as tj
from tracejit.progress import progress_bar

SIZES = (784, 512, 256, 10)
DEFAULT_EPOCHS = {"mnist": 5, "fashion": 8}  # enough for >= 98% and >= 88% test accuracy


def init_params(sizes, rng):
    """He initialisation: weights ~ N(0, 2 / fan_in), which keeps ReLU activations from shrinking."""
    return [{"W": (rng.standard_normal((m, n)) * np.sqrt(2 / m)).astype(np.float32),
             "b": np.zeros(n, np.float32)} for m, n in zip(sizes[:-1], sizes[1:])]


def predict(params, x):
    """Logits of the network: ReLU after every layer but the last."""
    for layer in params[:-1]:
        x = tj.nn.relu(x @ layer["W"] + layer["b"])
    return x @ params[-1]["W"] + params[-1]["b"]


def loss_fn(params, x, y):
    return tj.nn.cross_entropy(predict(params, x), y)


@tj.trace(static_argnames="opt")
def train_step(opt, params, opt_state, x, y, lr_scale):
    """One Adam step, scaled by ``lr_scale``.

    ``opt`` is static: its hyper-parameters are constants of the compiled program. ``lr_scale``
    is a Python float, so it is a traced input: a new value each step does not retrace.
    """
    loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
    new_params, opt_state = opt.update(params, grads, opt_state)
    params = [{k: p[k] + lr_scale * (new[k] - p[k]) for k in p} for p, new in zip(params, new_params)]
    return params, opt_state, loss


def cosine_decay(step, total):
    """Learning-rate factor going from 1 to 0 along half a cosine: large steps first, fine ones last."""
    return 0.5 * (1 + math.cos(math.pi * step / total))


@tj.trace
def evaluate(params, x, y):
    logits = predict(params, x)
    return tj.nn.cross_entropy(logits, y), tj.nn.accuracy(logits, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    parser.add_argument("--epochs", type=int, help="default: 5 for MNIST, 8 for Fashion-MNIST")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, decayed to 0 along a cosine")
    parser.add_argument("--mode", choices=["eager", "graph", "compiled"], default="compiled")
    parser.add_argument("--data", metavar="PATH", help="folder holding the four .gz files of the data set, or its parent")
    parser.add_argument("--limit", type=int, metavar="N", help="train on the first N samples only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]

    load = {"mnist": tj.datasets.mnist, "fashion": tj.datasets.fashion_mnist}[args.dataset]
    try:
        x_train, y_train, x_test, y_test = load(args.data)
    except tj.datasets.DatasetError as exc:
        sys.exit(f"Cannot load the data set:\n{exc}")
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    batch_size = min(args.batch_size, len(x_train))
    n_batches = len(x_train) // batch_size
    print(f"data: {args.dataset}, {len(x_train)} training and {len(x_test)} test images; "
          f"network {'-'.join(map(str, SIZES))}, Adam lr {args.lr} (cosine decay), batch {batch_size}, {epochs} epochs, "
          f"mode {args.mode}")

    opt = tj.optim.adam(lr=args.lr)
    params = init_params(SIZES, np.random.default_rng(args.seed))
    opt_state = opt.init(params)
    with tj.mode(args.mode):
        if args.mode != "eager":  # the first call traces and compiles; time it apart from training
            start = time.perf_counter()
            train_step(opt, params, opt_state, x_train[:batch_size], y_train[:batch_size], 1.0)
            evaluate(params, x_test, y_test)
            print(f"first calls (trace{' + compile' if args.mode == 'compiled' else ''}): "
                  f"{time.perf_counter() - start:.2f} s")
        times = []
        for epoch in range(1, epochs + 1):
            bar = progress_bar(n_batches, f"epoch {epoch}/{epochs}", unit="batch")
            start, losses = time.perf_counter(), []
            batches = tj.datasets.batches(x_train, y_train, batch_size, seed=args.seed + epoch, drop_last=True)
            for i, (x, y) in enumerate(batches, 1):
                step = (epoch - 1) * n_batches + i - 1
                params, opt_state, loss = train_step(opt, params, opt_state, x, y,
                                                     cosine_decay(step, epochs * n_batches))
                losses.append(float(loss))
                bar.update(1)
                bar.set_postfix_str(f"loss {losses[-1]:.4f}", refresh=False)
            times.append(time.perf_counter() - start)
            bar.set_postfix_str(f"loss {losses[-1]:.4f}")
            bar.close()
            test_loss, test_acc = evaluate(params, x_test, y_test)
            print(f"epoch {epoch}/{epochs}  train loss {np.mean(losses):.4f}  test loss {test_loss:.4f}  "
                  f"test accuracy {test_acc:.2%}  time {times[-1]:.2f} s")
    print(f"test accuracy: {test_acc:.2%}  time per epoch: {np.mean(times):.2f} s  ({args.mode} mode)")


if __name__ == "__main__":
    main()
