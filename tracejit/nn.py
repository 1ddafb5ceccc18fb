"""``tj.nn``: neural-network functions, composed from NumPy calls.

Layer: library code on top of the front end. Every function here is ordinary NumPy (it runs
on plain arrays in eager mode and on tracers when traced), numerically stable for large
logits (max-subtraction; no inf/nan at +-1000), and differentiable through the primitives'
gradient rules -- there is no separate gradient code.
"""
from __future__ import annotations

import numpy as np

from .autodiff import stop_gradient

__all__ = ["relu", "sigmoid", "softmax", "log_softmax", "logsumexp", "one_hot", "cross_entropy", "accuracy"]


def relu(x):
    """``max(x, 0)``, with gradient 0 at 0."""
    return np.where(x > 0, x, 0)


def sigmoid(x):
    """``1 / (1 + exp(-x))``, written as ``0.5 * (1 + tanh(x / 2))`` so it never overflows."""
    return 0.5 * (np.tanh(0.5 * x) + 1)


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x), axis))`` without overflow: the maximum is subtracted first."""
    peak = stop_gradient(np.max(x, axis=axis, keepdims=True))
    # A row of all -inf would give inf - inf = nan; shifting by 0 there gives log(0) = -inf.
    peak = np.where(np.isfinite(peak), peak, 0)
    out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, computed after subtracting the maximum."""
    shifted = np.exp(x - stop_gradient(np.max(x, axis=axis, keepdims=True)))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def one_hot(labels, num_classes, dtype=np.float32):
    """``(..., num_classes)`` array with 1 at each label. ``num_classes`` must be a Python int."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int, got {num_classes!r}")
    return (np.expand_dims(labels, -1) == np.arange(num_classes)).astype(dtype)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (``(N, C)``) against integer ``labels`` (``(N,)``)
    or against targets with the same shape as ``logits`` (one-hot or probabilities)."""
    labels_dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    if np.issubdtype(labels_dtype, np.integer):
        if np.ndim(labels) != np.ndim(logits) - 1 or np.shape(labels) != np.shape(logits)[:-1]:
            raise ValueError(f"cross_entropy: integer labels must have shape {np.shape(logits)[:-1]} for logits of "
                             f"shape {np.shape(logits)}, got {np.shape(labels)}")
        # -log_softmax(logits)[label] = logsumexp(logits) - logits[label]: the full log-softmax
        # array is never formed, so the logits are read once for the row reductions.
        picked = np.take_along_axis(logits, np.expand_dims(labels, -1), axis=-1)
        return np.mean(logsumexp(logits, axis=-1) - np.squeeze(picked, axis=-1))
    logp = log_softmax(logits, axis=-1)
    if np.shape(labels) != np.shape(logits):
        raise ValueError(f"cross_entropy: targets must be integer labels of shape {np.shape(logits)[:-1]} or "
                         f"probabilities of shape {np.shape(logits)}, got {labels_dtype}{list(np.shape(labels))}")
    return -np.mean(np.sum(labels * logp, axis=-1))


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label."""
    return np.mean(np.argmax(logits, axis=-1) == labels)
