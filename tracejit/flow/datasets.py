"""``tf.datasets.get_mnist``: MNIST for declarative programs, in tinyflow's form.

Layer: part of ``tracejit.flow``, over ``tj.datasets.mnist`` (which finds the files).
"""
from __future__ import annotations

import numpy as np

__all__ = ["get_mnist", "DataSet"]


class DataSet:
    """``images``, ``labels`` and ``next_batch(n)``: consecutive batches of a fixed-seed
    shuffle, reshuffled (same seed sequence) each time the data run out."""

    def __init__(self, images, labels, seed):
        self.images, self.labels = images, labels
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(images))
        self._position = 0

    def __len__(self):
        return len(self.images)

    def next_batch(self, n):
        """The next ``n`` (images, labels); a batch never spans two passes over the data."""
        if not 1 <= n <= len(self.images):
            raise ValueError(f"next_batch: n must be in [1, {len(self.images)}], got {n}")
        if self._position + n > len(self.images):
            self._order = self._rng.permutation(len(self.images))
            self._position = 0
        rows = self._order[self._position:self._position + n]
        self._position += n
        return self.images[rows], self.labels[rows]


class _Mnist:
    def __init__(self, train, test):
        self.train, self.test = train, test


def get_mnist(flatten=False, onehot=False, path=None, seed=0):
    """MNIST from ``tj.datasets.mnist(path)`` as ``.train`` and ``.test`` ``DataSet``s.

    Images are float32 in [0, 1], ``(N, 784)`` with ``flatten``, else ``(N, 1, 28, 28)``;
    labels are one-hot float32 ``(N, 10)`` with ``onehot``, else class numbers (int64).
    """
    from .. import datasets
    x_train, y_train, x_test, y_test = datasets.mnist(path)

    def images(x):
        return np.ascontiguousarray(x if flatten else x.reshape(-1, 1, 28, 28))

    def labels(y):
        return np.eye(10, dtype=np.float32)[y] if onehot else y

    return _Mnist(DataSet(images(x_train), labels(y_train), seed), DataSet(images(x_test), labels(y_test), seed + 1))
