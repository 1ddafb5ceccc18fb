"""``tj.nn``: neural-network functions, composed from NumPy calls.

Layer: library code on top of the front end. Every function here is ordinary NumPy (it runs
on plain arrays in eager mode and on tracers when traced), numerically stable for large
logits (max-subtraction; no inf/nan at +-1000), and differentiable through the primitives'
gradient rules. One exception, for speed only: the cross-entropy of integer labels has its
gradient written out in NumPy (an ``EagerGradient``), which eager ``grad`` uses instead of
a dozen primitive rules; traced code and the other transformations use the composition.
"""
from __future__ import annotations

import numpy as np

import functools

from . import ops
from .autodiff import EagerGradient, TapeTracer, stop_gradient
from .numpy.indexing import take
from .numpy.promotion import literal

__all__ = ["relu", "sigmoid", "softmax", "log_softmax", "logsumexp", "one_hot", "cross_entropy", "accuracy",
           "conv2d", "max_pool2d"]



def _symbolic(fn):
    """Let ``fn`` take symbolic tensors (``tracejit.flow``): an argument with a
    ``__tracejit_apply__`` method builds a node calling ``fn`` on the values when it runs."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for a in args + tuple(kwargs.values()):
            apply = getattr(type(a), "__tracejit_apply__", None)
            if apply is not None:
                return apply(a, fn, args, kwargs)
        return fn(*args, **kwargs)
    return wrapper


def _array_like(x):
    """``x`` as something with ndarray methods: arrays and tracers as they are. The methods
    (``x.max(...)``) cost less than the functions (``np.max(x, ...)``), whose dispatch is
    Python code, and compute the same."""
    return x if hasattr(x, "max") else np.asarray(x)


@_symbolic
def relu(x):
    """``max(x, 0)``, with gradient 0 at 0."""
    return np.where(x > 0, x, 0)


@_symbolic
def sigmoid(x):
    """``1 / (1 + exp(-x))``, written as ``0.5 * (1 + tanh(x / 2))`` so it never overflows."""
    return 0.5 * (np.tanh(0.5 * x) + 1)


def _shift(peak):
    """The shift of a log-sum-exp, from the maximum ``peak`` along its axis: the maximum, raised
    to the lowest finite float where it is -inf (a row of -inf stays -inf when shifted, not
    inf - inf = NaN). ``x - shift`` is then <= 0 or NaN everywhere, which lets the compiled exp
    skip its overflow handling (``backend.scalar.nonpositive_values``). Complex rows keep the
    older shift by 0 where the maximum is not finite."""
    if peak.dtype.kind == "c":
        return np.where(np.isfinite(peak), peak, 0)
    return np.maximum(peak, np.finfo(peak.dtype).min)


def _log_sum(total, shift, peak):
    """``log(total) + shift``, +inf where the maximum ``peak`` is +inf: such a row's shifted
    exps are NaN (inf - inf), its log-sum-exp is +inf."""
    out = np.log(total) + shift
    return out if peak.dtype.kind == "c" else np.where(peak == np.inf, np.inf, out)


def _shifted_exps(x, axis):
    """For a plain array: ``exp(x - shift)``, its sum along ``axis`` (kept) and the log-sum-exp
    (kept) -- what the composition below computes, skipping its fix-ups when every maximum is
    finite (the common case; they change nothing there)."""
    peak = x.max(axis=axis, keepdims=True)
    finite = np.isfinite(peak).all()
    shift = peak if finite else _shift(peak)
    exps = np.exp(x - shift)
    total = exps.sum(axis=axis, keepdims=True)
    return exps, total, np.log(total) + shift if finite else _log_sum(total, shift, peak)


@_symbolic
def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x), axis))`` without overflow: the maximum is subtracted first."""
    if x.__class__ is np.ndarray and x.dtype.kind in "fc":
        out = _shifted_exps(x, axis)[2]
        return out if keepdims else np.squeeze(out, axis=axis)
    x = _array_like(x)
    peak = stop_gradient(x.max(axis=axis, keepdims=True))
    shift = _shift(peak)
    out = _log_sum(np.exp(x - shift).sum(axis=axis, keepdims=True), shift, peak)
    return out if keepdims else np.squeeze(out, axis=axis)


@_symbolic
def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    return x - logsumexp(x, axis=axis, keepdims=True)


@_symbolic
def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, computed after subtracting the maximum."""
    shifted = np.exp(x - stop_gradient(np.max(x, axis=axis, keepdims=True)))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


@_symbolic
def one_hot(labels, num_classes, dtype=np.float32):
    """``(..., num_classes)`` array with 1 at each label. ``num_classes`` must be a Python int."""
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int, got {num_classes!r}")
    return (np.expand_dims(labels, -1) == np.arange(num_classes)).astype(dtype)


@_symbolic
def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (``(N, C)``) against integer ``labels`` (``(N,)``)
    or against targets with the same shape as ``logits`` (one-hot or probabilities)."""
    labels_dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    logits = _array_like(logits)
    if labels_dtype.kind in "iu":
        if logits.ndim == 0 or np.shape(labels) != logits.shape[:-1]:
            raise ValueError(f"cross_entropy: integer labels must have shape {np.shape(logits)[:-1]} for logits of "
                             f"shape {np.shape(logits)}, got {np.shape(labels)}")
        if logits.size:
            if logits.__class__ is np.ndarray and labels.__class__ is np.ndarray:
                return _labels_cross_entropy.forward(logits, labels)[0][()]
            if logits.__class__ is TapeTracer:
                fused = logits._trace.fused(_labels_cross_entropy, (logits, labels))
                if fused is not None:
                    return fused
        # -log_softmax(logits)[label] = logsumexp(logits) - logits[label]: the full log-softmax
        # array is never formed, so the logits are read once for the row reductions. The label's
        # logit is picked by comparing each column with the label, which compiles into the
        # kernel of the row reductions (its gradient into that of the softmax), where a gather
        # and its scatter-add gradient would be kernels of their own. Taking each label from
        # 0..C-1 checks it as indexing would: a negative one counts from the end, one out of
        # range raises IndexError, rather than pick nothing.
        classes = literal(np.arange(logits.shape[-1]))
        checked = take(classes, labels)
        picked = np.sum(np.where(np.expand_dims(checked, -1) == classes, logits, 0), axis=-1)
        return np.mean(logsumexp(logits, axis=-1) - picked)
    logp = log_softmax(logits, axis=-1)
    if np.shape(labels) != np.shape(logits):
        raise ValueError(f"cross_entropy: targets must be integer labels of shape {np.shape(logits)[:-1]} or "
                         f"probabilities of shape {np.shape(logits)}, got {labels_dtype}{list(np.shape(labels))}")
    return -np.mean(np.sum(labels * logp, axis=-1))


def _labels_cross_entropy_forward(logits, labels):
    exps, total, log_sum = _shifted_exps(logits, -1)
    rows = logits.reshape(-1, logits.shape[-1])
    picked = rows[np.arange(rows.shape[0]), labels.reshape(-1)]
    losses = log_sum.reshape(-1) - picked
    # the mean as the composition computes it: a sum, then a division in the logits' dtype
    return np.asarray(np.add.reduce(losses) / losses.dtype.type(losses.size)), (exps, total)


def _labels_cross_entropy_backward(ct, residuals, logits, labels):
    # d/dlogits mean(logsumexp - logits[label]) = (softmax - one_hot(label)) / rows, in the
    # order of operations of the composition's own rules, so eager gradients keep their bits.
    exps, total = residuals
    share = ct / labels.size
    if not isinstance(share, np.ndarray):  # a tracer: this backward pass is itself traced
        return _labels_cross_entropy_composed_backward(share, exps, total, labels), None
    d = exps * (share / total)
    rows = d.reshape(-1, d.shape[-1])  # a view: d is a new contiguous array
    rows[np.arange(rows.shape[0]), labels.reshape(-1)] -= share
    return d, None


def _labels_cross_entropy_composed_backward(share, exps, total, labels):
    picked = np.expand_dims(labels, -1) == np.arange(exps.shape[-1])
    return exps * (share / total) - np.where(picked, share, 0)


_labels_cross_entropy = EagerGradient("cross_entropy", _labels_cross_entropy_forward,
                                      _labels_cross_entropy_backward)


@_symbolic
def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label."""
    return np.mean(np.argmax(logits, axis=-1) == labels)


# --------------------------------------------------------------------------- convolution and pooling
#
# Both gather the image's windows with the ``windows`` primitive (im2col, into rows of
# ``C * KH * KW`` values); a convolution is then one matrix product on BLAS, a max pooling a
# maximum over each row. Their gradients are those primitives' own rules.


def _pair(value, what):
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = (int(value), int(value))
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in value)):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {value!r}")
    return int(value[0]), int(value[1])


def _same_padding(size, window, stride):
    """(before, after) padding that gives ``ceil(size / stride)`` outputs, as TensorFlow's 'SAME'."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def _padded(x, window, stride, padding, fill, what):
    """``x`` (NCHW) padded for ``padding``: 'VALID', 'SAME', or a number of pixels (an int or a
    pair) on each side, filled with ``fill``."""
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return x
        if padding.upper() != "SAME":
            raise ValueError(f"{what}: padding must be 'VALID', 'SAME' or a number of pixels, got {padding!r}")
        pads = [_same_padding(np.shape(x)[2 + i], window[i], stride[i]) for i in range(2)]
    elif padding == 0:
        return x
    else:
        pads = [(p, p) for p in _pair(padding, f"{what}: padding")]
    if not any(a or b for a, b in pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]), constant_values=fill)


def _check_image(x, what):
    if np.ndim(x) != 4:
        raise ValueError(f"{what}: x must be an NCHW image batch (4-d), got shape {np.shape(x)}")


@_symbolic
def conv2d(x, w, b=None, stride=1, padding="VALID"):
    """2-d convolution (cross-correlation, as in deep-learning libraries) of NCHW images.

    ``x``: ``(N, C, H, W)``; ``w``: ``(F, C, KH, KW)``; ``b``: ``(F,)`` or None. ``stride``: an
    int or ``(sh, sw)``; ``padding``: ``'VALID'``, ``'SAME'`` (output ``ceil(H / sh)``) or pixels
    of zeros on each side. Returns ``(N, F, OH, OW)``, computed as one matrix product of the
    input's windows (im2col) with the filters, so compiled code runs it on BLAS.
    """
    _check_image(x, "conv2d")
    if np.ndim(w) != 4 or np.shape(w)[1] != np.shape(x)[1]:
        raise ValueError(f"conv2d: w must have shape (F, C, KH, KW) with C = {np.shape(x)[1]} (x's channels), "
                         f"got {np.shape(w)}")
    stride = _pair(stride, "conv2d: stride")
    filters, channels, kh, kw = np.shape(w)
    x = _padded(x, (kh, kw), stride, padding, 0, "conv2d")
    cols = ops.windows(x, window=(kh, kw), strides=stride)  # (N, OH, OW, C, KH, KW)
    n, out_h, out_w = np.shape(cols)[:3]
    rows = np.reshape(cols, (n * out_h * out_w, channels * kh * kw))
    out = rows @ np.transpose(np.reshape(w, (filters, channels * kh * kw)))
    if b is not None:
        out = out + b
    return np.transpose(np.reshape(out, (n, out_h, out_w, filters)), (0, 3, 1, 2))


@_symbolic
def max_pool2d(x, window=2, stride=None, padding="VALID"):
    """Max pooling of NCHW images over ``window`` (an int or a pair) every ``stride`` pixels
    (default: the window). ``padding``: ``'VALID'``, ``'SAME'`` or pixels per side; padded
    cells never win (they hold the dtype's lowest value). Ties share the gradient, as
    ``np.max``'s do.
    """
    _check_image(x, "max_pool2d")
    window = _pair(window, "max_pool2d: window")
    stride = window if stride is None else _pair(stride, "max_pool2d: stride")
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    lowest = np.finfo(dtype).min if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min
    x = _padded(x, window, stride, padding, lowest, "max_pool2d")
    cols = ops.windows(x, window=window, strides=stride)  # (N, OH, OW, C, KH, KW)
    return np.transpose(np.max(cols, axis=(4, 5)), (0, 3, 1, 2))
