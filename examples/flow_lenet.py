"""LeNet on MNIST in the declarative style (``tracejit.flow``), with Adam.

conv 20@5x5 tanh -> max-pool 2 -> conv 50@5x5 tanh -> max-pool 2 -> linear 500 tanh -> linear 10.
The layers' weight shapes are inferred from the input shape by ``tf.infer_variable_shapes``;
each training step (forward, gradients, Adam update) is one compiled program.

    python examples/flow_lenet.py                  # 2 epochs of batch 100
    python examples/flow_lenet.py --epochs 1 --limit 6000

MNIST comes from ``--data``, else ``$TRACEJIT_DATA/mnist``, else the download cache.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tracejit.flow as tf


def build(batch_size, lr=0.001):
    """The placeholders, the loss, the training op and the test accuracy."""
    x = tf.placeholder(tf.float32, [None, 1, 28, 28], name="x")
    label = tf.placeholder(tf.float32, [None], name="label")
    conv1 = tf.nn.conv2d(x, num_filter=20, ksize=[1, 5, 5, 1], name="conv1")
    pool1 = tf.nn.max_pool(tf.tanh(conv1), ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID")
    conv2 = tf.nn.conv2d(pool1, num_filter=50, ksize=[1, 5, 5, 1], name="conv2")
    pool2 = tf.nn.max_pool(tf.tanh(conv2), ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID")
    fc1 = tf.tanh(tf.nn.linear(tf.nn.flatten_layer(pool2), num_hidden=500, name="fc1"))
    fc2 = tf.nn.linear(fc1, num_hidden=10, name="fc2")
    loss = tf.nn.mean_sparse_softmax_cross_entropy_with_logits(fc2, label)
    train_step = tf.train.AdamOptimizer(lr).minimize(loss)
    accuracy = tf.reduce_mean(tf.equal(tf.argmax(fc2, 1), label))
    return x, label, loss, train_step, accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.001,
                        help="Adam's step size (TensorFlow's default; 0.002 ends 2 epochs at about 98.5%%)")
    parser.add_argument("--limit", type=int, default=None, help="use only this many training images")
    parser.add_argument("--data", default=None, help="folder holding the four MNIST .gz files")
    parser.add_argument("--mode", default=None, choices=["eager", "graph", "compiled"])
    args = parser.parse_args(argv)

    x, label, loss, train_step, accuracy = build(args.batch, args.lr)
    sess = tf.Session(mode=args.mode)
    stdev = 0.01
    init_step = []
    for var, name, shape in tf.infer_variable_shapes(loss, feed_dict={x: (args.batch, 1, 28, 28),
                                                                      label: (args.batch,)}):
        init_step.append(tf.assign(var, tf.normal(shape, stdev)))
        print(f"shape[{name}]={list(shape)}")
    sess.run(init_step)
    sess.run(tf.initialize_all_variables())

    mnist = tf.datasets.get_mnist(flatten=False, onehot=False, path=args.data)
    n_train = min(args.limit or len(mnist.train), len(mnist.train))
    steps = n_train // args.batch
    train = tf.datasets.DataSet(mnist.train.images[:n_train], mnist.train.labels[:n_train], seed=0)
    results = {}
    for epoch in range(args.epochs):
        start, total = time.perf_counter(), 0.0
        for _ in range(steps):
            images, labels = train.next_batch(args.batch)
            value, _ = sess.run([loss, train_step], feed_dict={x: images, label: labels})
            total += float(value)
        seconds = time.perf_counter() - start
        correct = 0
        for i in range(0, len(mnist.test), 1000):  # one batch shape for every test step
            correct += 1000 * float(sess.run(accuracy, feed_dict={x: mnist.test.images[i:i + 1000],
                                                                  label: mnist.test.labels[i:i + 1000]}))
        test_accuracy = correct / len(mnist.test)
        print(f"epoch {epoch}: cross_entropy={total / steps:.4f} test accuracy={test_accuracy:.4f} "
              f"({seconds:.1f} s, {steps} steps of {args.batch})", flush=True)
        results = {"loss": total / steps, "accuracy": test_accuracy, "seconds": seconds}
    return results


if __name__ == "__main__":
    main()
