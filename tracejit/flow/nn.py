"""``tf.nn``: layers and losses of the declarative front end, over ``tj.nn``'s functions.

Layer: part of ``tracejit.flow``. Each function builds a node that calls the imperative
``tj.nn`` function (or NumPy) on the values; layers also create their weight and bias
Variables, whose shapes ``tf.infer_variable_shapes`` works out from the layer's input.
"""
from __future__ import annotations

import numpy as np

from .. import nn as _tjnn
from . import Variable, _tensor, apply

__all__ = ["softmax", "relu", "sigmoid", "tanh", "linear", "conv2d", "max_pool", "flatten_layer",
           "mean_sparse_softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits"]

_layer_count = {}


def _layer_name(kind, name):
    if name is not None:
        return name
    _layer_count[kind] = _layer_count.get(kind, -1) + 1
    return f"{kind}{_layer_count[kind]}"


def softmax(x, axis=-1, name=None):
    """``tj.nn.softmax`` along ``axis`` (the last by default)."""
    return apply(_tjnn.softmax, x, axis=axis, name=name or "softmax")


def relu(x, name=None):
    """``max(x, 0)``."""
    return apply(_tjnn.relu, x, name=name or "relu")


def sigmoid(x, name=None):
    """``1 / (1 + exp(-x))``."""
    return apply(_tjnn.sigmoid, x, name=name or "sigmoid")


def tanh(x, name=None):
    """``np.tanh``."""
    return apply(np.tanh, x, name=name or "tanh")


def linear(x, num_hidden, name=None, no_bias=False, stdev=0.01):
    """``x @ W + b`` with new Variables ``<name>_weight`` of shape ``(x's last axis, num_hidden)``
    (inferred by ``tf.infer_variable_shapes``; initialised N(0, stdev**2) unless assigned) and
    ``<name>_bias`` of shape ``(num_hidden,)`` (zeros), unless ``no_bias``."""
    name = _layer_name("linear", name)
    num_hidden = int(num_hidden)
    x = _tensor(x, "tf.nn.linear")
    weight = Variable(name=f"{name}_weight", _shape_rule=(x, lambda shape: (shape[-1], num_hidden)),
                      _init=("normal", stdev))
    if no_bias:
        return apply(np.matmul, x, weight, name=name)
    bias = Variable(name=f"{name}_bias", _shape_rule=(x, lambda shape: (num_hidden,)), _init=("zeros",))
    return apply(lambda v, w, b: v @ w + b, x, weight, bias, name=name)


def _spatial(value, what):
    """TensorFlow's ``[1, h, w, 1]`` or a pair or an int, as ``(h, w)``."""
    if isinstance(value, (list, tuple)) and len(value) == 4:
        value = value[1:3]
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{what} must be an int, a pair or TensorFlow's [1, h, w, 1], got {value!r}")
    return int(value[0]), int(value[1])


def _check_format(data_format, what):
    if data_format != "NCHW":
        raise ValueError(f"{what}: only data_format='NCHW' is supported, got {data_format!r}")


def conv2d(x, num_filter, ksize=(5, 5), strides=(1, 1), padding="VALID", data_format="NCHW", name=None,
           no_bias=False, stdev=0.01):
    """A convolution layer on NCHW images (``tj.nn.conv2d``) with new Variables ``<name>_weight``
    ``(num_filter, C, kh, kw)`` and ``<name>_bias`` ``(num_filter,)`` (unless ``no_bias``),
    shapes inferred from the input. ``ksize`` and ``strides``: an int, a pair, or ``[1, h, w, 1]``."""
    _check_format(data_format, "tf.nn.conv2d")
    name = _layer_name("conv2d", name)
    kh, kw = _spatial(ksize, "tf.nn.conv2d: ksize")
    stride = _spatial(strides, "tf.nn.conv2d: strides")
    num_filter = int(num_filter)
    x = _tensor(x, "tf.nn.conv2d")
    weight = Variable(name=f"{name}_weight", _shape_rule=(x, lambda shape: (num_filter, shape[1], kh, kw)),
                      _init=("normal", stdev))
    if no_bias:
        return apply(_tjnn.conv2d, x, weight, stride=stride, padding=padding, name=name)
    bias = Variable(name=f"{name}_bias", _shape_rule=(x, lambda shape: (num_filter,)), _init=("zeros",))
    return apply(_tjnn.conv2d, x, weight, bias, stride=stride, padding=padding, name=name)


def max_pool(x, ksize, strides=None, padding="VALID", data_format="NCHW", name=None):
    """Max pooling of NCHW images (``tj.nn.max_pool2d``); ``ksize`` and ``strides`` (default: ksize)
    are an int, a pair, or ``[1, h, w, 1]``."""
    _check_format(data_format, "tf.nn.max_pool")
    window = _spatial(ksize, "tf.nn.max_pool: ksize")
    stride = window if strides is None else _spatial(strides, "tf.nn.max_pool: strides")
    return apply(_tjnn.max_pool2d, x, window, stride, padding, name=name or "max_pool")


def flatten_layer(x, name=None):
    """``(N, ...)`` -> ``(N, everything else)``."""
    return apply(lambda v: np.reshape(v, (v.shape[0], -1)), x, name=name or "flatten")


def mean_sparse_softmax_cross_entropy_with_logits(logits, labels, name=None):
    """Mean softmax cross-entropy of ``logits`` ``(N, C)`` against class numbers ``labels``
    ``(N,)`` (any numeric dtype holding whole numbers; they are converted to int64)."""
    return apply(lambda z, y: _tjnn.cross_entropy(z, y.astype(np.int64)), logits, labels,
                 name=name or "cross_entropy")


def softmax_cross_entropy_with_logits(logits, labels, name=None):
    """Softmax cross-entropy of each row of ``logits`` against the probabilities ``labels`` (same shape)."""
    return apply(lambda z, y: -np.sum(y * _tjnn.log_softmax(z, axis=-1), axis=-1), logits, labels,
                 name=name or "softmax_cross_entropy")
