"""Softmax regression on MNIST in the declarative style (``tracejit.flow``): the classic program.

A placeholder for the images, a Variable for the weights, ``softmax(matmul(x, W))``, the
cross-entropy, gradient descent with rate 0.5, 1000 steps of batch 100, then the test accuracy.
The program is written twice: with ``GradientDescentOptimizer.minimize``, and with
``gradients`` and ``assign`` spelled out; both are run from the same start on the same
batches and must give the same losses.

    python examples/flow_mnist_softmax.py
    python examples/flow_mnist_softmax.py --steps 200 --mode eager

MNIST comes from ``--data``, else ``$TRACEJIT_DATA/mnist``, else the download cache.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tracejit.flow as tf


def build(by_hand=False):
    """(x, y_, loss, train_step, accuracy) of the softmax regression."""
    x = tf.placeholder(tf.float32, [None, 784], name="x")
    W = tf.Variable(tf.zeros([784, 10]), name="W")
    y = tf.nn.softmax(tf.matmul(x, W))
    y_ = tf.placeholder(tf.float32, [None, 10], name="y_")
    cross_entropy = tf.reduce_mean(-tf.reduce_sum(y_ * tf.log(y), reduction_indices=[1]))
    if by_hand:
        (grad_W,) = tf.gradients(cross_entropy, [W])
        train_step = tf.assign(W, W - 0.5 * grad_W)
    else:
        train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)
    correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
    accuracy = tf.reduce_mean(correct_prediction)
    return x, y_, cross_entropy, train_step, accuracy


def train(mnist, steps, mode=None, by_hand=False):
    """Train from zeros on ``steps`` batches of 100; returns (losses, test accuracy, seconds)."""
    x, y_, cross_entropy, train_step, accuracy = build(by_hand)
    sess = tf.Session(mode=mode)
    sess.run(tf.initialize_all_variables())
    batches = tf.datasets.DataSet(mnist.train.images, mnist.train.labels, seed=0)
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        batch_xs, batch_ys = batches.next_batch(100)
        loss, _ = sess.run([cross_entropy, train_step], feed_dict={x: batch_xs, y_: batch_ys})
        losses.append(float(loss))
    seconds = time.perf_counter() - start
    test_accuracy = float(sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
    return np.array(losses), test_accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--data", default=None, help="folder holding the four MNIST .gz files")
    parser.add_argument("--mode", default=None, choices=["eager", "graph", "compiled"])
    args = parser.parse_args(argv)
    mnist = tf.datasets.get_mnist(flatten=True, onehot=True, path=args.data)
    losses, test_accuracy, seconds = train(mnist, args.steps, args.mode)
    print(f"optimizer:          {args.steps} steps in {seconds:.2f} s (first call compiles), "
          f"final loss {losses[-1]:.4f}, test accuracy {test_accuracy:.4f}")
    hand_losses, hand_accuracy, _ = train(mnist, args.steps, args.mode, by_hand=True)
    same = np.allclose(losses, hand_losses, rtol=1e-5, atol=1e-6)
    print(f"gradients + assign: final loss {hand_losses[-1]:.4f}, test accuracy {hand_accuracy:.4f}; "
          f"same losses at every step: {same} (largest difference {np.max(np.abs(losses - hand_losses)):.2e})")
    return {"accuracy": test_accuracy, "hand_accuracy": hand_accuracy, "same_losses": bool(same)}


if __name__ == "__main__":
    main()
