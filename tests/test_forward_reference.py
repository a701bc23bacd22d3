"""Layer forward passes against naive loops written here, on the active backend.

Set MINICNN_BACKEND=emulator to run them through the CUDA kernels."""
import math

import numpy as np
import pytest

from minicnn import backend
from minicnn.layers import Conv2D, Dense, MaxPooling2D


def same_pads(size, k, s):
    out = math.ceil(size / s)
    pad = max(0, (out - 1) * s + k - size)
    return out, pad // 2


def naive_conv(x, w, b, stride, padding):
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    if padding == "same":
        oh, top = same_pads(h, kh, stride[0])
        ow, left = same_pads(wd, kw, stride[1])
    else:
        oh, ow, top, left = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1, 0, 0
    y = np.zeros((n, oh, ow, f))
    for bi in range(n):
        for r in range(oh):
            for col in range(ow):
                for i in range(kh):
                    for j in range(kw):
                        hr, wc = r * stride[0] + i - top, col * stride[1] + j - left
                        if 0 <= hr < h and 0 <= wc < wd:
                            y[bi, r, col] += x[bi, hr, wc] @ w[i, j]
    return y + b


def naive_maxpool(x, pool, stride, padding):
    n, h, wd, c = x.shape
    if padding == "same":
        oh, top = same_pads(h, pool[0], stride[0])
        ow, left = same_pads(wd, pool[1], stride[1])
    else:
        oh, ow, top, left = (h - pool[0]) // stride[0] + 1, (wd - pool[1]) // stride[1] + 1, 0, 0
    y = np.full((n, oh, ow, c), -np.inf)
    for r in range(oh):
        for col in range(ow):
            for i in range(pool[0]):
                for j in range(pool[1]):
                    hr, wc = r * stride[0] + i - top, col * stride[1] + j - left
                    if 0 <= hr < h and 0 <= wc < wd:
                        y[:, r, col] = np.maximum(y[:, r, col], x[:, hr, wc])
    return y


def run(layer, x):
    return backend.to_numpy(layer(x)).astype(np.float64)


@pytest.mark.parametrize("filters, k, s, padding, shape", [
    (3, (3, 3), (1, 1), "valid", (2, 7, 6, 2)),
    (5, (2, 3), (2, 1), "valid", (1, 9, 8, 3)),
    (2, (3, 3), (2, 2), "same", (2, 7, 5, 1)),
    (4, (1, 4), (3, 2), "same", (1, 8, 9, 2)),
    (7, (5, 5), (1, 1), "same", (3, 6, 6, 3)),
])
def test_conv2d_forward_matches_loops(filters, k, s, padding, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = Conv2D(filters, k, strides=s, padding=padding, bias_initializer="ones")
    got = run(layer, x)
    w, b = layer.get_weights()
    np.testing.assert_allclose(got, naive_conv(x.astype(np.float64), w, b, s, padding), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pool, s, padding, shape", [
    ((2, 2), None, "valid", (2, 6, 6, 3)),
    ((2, 2), None, "valid", (1, 7, 5, 2)),
    ((3, 3), (2, 2), "valid", (2, 9, 8, 1)),
    ((2, 2), (2, 2), "same", (1, 7, 5, 4)),
    ((3, 2), (1, 2), "same", (2, 5, 6, 2)),
])
def test_maxpool_forward_matches_loops(pool, s, padding, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = run(MaxPooling2D(pool, strides=s, padding=padding), x)
    np.testing.assert_array_equal(got, naive_maxpool(x, pool, s or pool, padding))


@pytest.mark.parametrize("activation, fn", [
    ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
    ("tanh", np.tanh),
    ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
    (None, lambda z: z),
])
def test_dense_forward_matches_formula(activation, fn):
    x = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    layer = Dense(3, activation=activation)
    got = run(layer, x)
    w, b = layer.get_weights()
    np.testing.assert_allclose(got, fn(x.astype(np.float64) @ w + b), rtol=1e-5, atol=1e-6)


def test_sigmoid_is_stable_for_large_inputs():
    layer = Dense(1, activation="sigmoid", use_bias=False)
    layer(np.zeros((1, 1), np.float32))
    layer.set_weights([np.array([[1.0]])])
    got = run(layer, np.array([[-200.0], [200.0]], np.float32))
    np.testing.assert_allclose(got[:, 0], [0.0, 1.0], atol=1e-30)
