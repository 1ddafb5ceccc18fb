"""``tj.nn.conv2d`` and ``tj.nn.max_pool2d`` against direct loops written here, in every mode.

The op-spec table (tests/op_specs.py) checks them across modes and their gradients against
finite differences; these tests pin the values against a definition independent of im2col.
"""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj

MODES = ("eager", "graph", "compiled")


def direct_conv(x, w, b, stride, pad):
    """Cross-correlation by its definition: one dot product per output pixel."""
    x = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, w)
    return out + b[:, None, None]


def direct_pool(x, window, stride):
    n, c, h, w = x.shape
    oh, ow = (h - window[0]) // stride[0] + 1, (w - window[1]) // stride[1] + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * stride[0]:i * stride[0] + window[0],
                                j * stride[1]:j * stride[1] + window[1]].max(axis=(2, 3))
    return out


rng = np.random.default_rng(7)
X = rng.normal(size=(2, 3, 7, 6))
W = rng.normal(size=(4, 3, 3, 2))
B = rng.normal(size=4)

CASES = [  # stride, padding argument, the padding it means for X and W
    ((1, 1), "VALID", ((0, 0), (0, 0))),
    ((2, 2), "SAME", ((1, 1), (0, 1))),  # ceil(7/2) = 4 rows: 2 rows of padding; ceil(6/2) = 3 columns: 1
    ((1, 2), 1, ((1, 1), (1, 1))),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stride, padding, pads", CASES)
def test_conv2d_matches_direct_loops(mode, stride, padding, pads):
    f = tj.trace(lambda x, w, b: tj.nn.conv2d(x, w, b, stride=stride, padding=padding), mode=mode)
    np.testing.assert_allclose(f(X, W, B), direct_conv(X, W, B, stride, pads), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_max_pool2d_matches_direct_loops(mode):
    f = tj.trace(lambda x: (tj.nn.max_pool2d(x, 2), tj.nn.max_pool2d(x, (3, 2), stride=(2, 1))), mode=mode)
    tiled, overlapping = f(X)
    np.testing.assert_array_equal(tiled, direct_pool(X, (2, 2), (2, 2)))
    np.testing.assert_array_equal(overlapping, direct_pool(X, (3, 2), (2, 1)))


@pytest.mark.parametrize("mode", MODES)
def test_max_pool2d_same_padding_never_picks_the_padding(mode):
    negative = -1.0 - np.abs(X)
    f = tj.trace(lambda x: tj.nn.max_pool2d(x, 2, padding="SAME"), mode=mode)
    out = f(negative)
    assert out.shape == (2, 3, 4, 3)
    np.testing.assert_array_equal(out[:, :, :3, :], direct_pool(negative, (2, 2), (2, 2)))
    np.testing.assert_array_equal(out[:, :, 3, :], negative[:, :, 6, :].reshape(2, 3, 3, 2).max(axis=3))


def test_conv_gradient_in_float32_matches_float64():
    x32, w32 = X.astype(np.float32), W.astype(np.float32)
    loss = lambda x, w: np.sum(np.tanh(tj.nn.conv2d(x, w)) ** 2)  # noqa: E731
    g64 = tj.trace(tj.grad(loss, argnums=(0, 1)))(X, W)
    g32 = tj.trace(tj.grad(loss, argnums=(0, 1)))(x32, w32)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("call, message", [
    (lambda: tj.nn.conv2d(X[0], W), "x must be an NCHW"),
    (lambda: tj.nn.conv2d(X, W[:, :2]), "w must have shape"),
    (lambda: tj.nn.conv2d(X, W, padding="FULL"), "padding must be"),
    (lambda: tj.nn.conv2d(X, W, stride=0), "stride must be"),
    (lambda: tj.nn.max_pool2d(X, 8), "does not fit"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
