"""minicnn.ops.dense: every implementation against the naive loop, on odd shapes."""
import numpy as np
import pytest

import naive
from minicnn import backend
from minicnn.ops import bias_act, dense
from device_arrays import dev

SHAPES = [(13, 7, 5), (3, 7, 5), (1, 1, 1), (64, 33, 10), (2, 300, 3)]


def naive_dense(x, w):
    """y = x @ w cell by cell: a dense layer is a 1x1 convolution of a 1x1 image."""
    n, k = x.shape
    return naive.conv2d(x.reshape(n, 1, 1, k), w.reshape(1, 1, k, w.shape[1]), (1, 1),
                        (0, 0, 0, 0)).reshape(n, w.shape[1])


def naive_dense_backward(dy, x, w):
    n, k = x.shape
    f = w.shape[1]
    dx, dw = naive.conv2d_backward(dy.reshape(n, 1, 1, f), x.reshape(n, 1, 1, k),
                                   w.reshape(1, 1, k, f), (1, 1), (0, 0, 0, 0))
    return dx.reshape(x.shape), dw.reshape(w.shape)


@pytest.mark.parametrize("n, k, f", SHAPES)
@pytest.mark.parametrize("split", [True, False])
def test_forward_and_backward_match_the_naive_loop(impl, monkeypatch, n, k, f, split):
    if split:   # the compiled CPU path's forward split over the threads down to tiny arrays
        monkeypatch.setattr(dense, "MIN_PART_MACS", 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, k)).astype(np.float32)
    w = rng.standard_normal((k, f)).astype(np.float32)
    dy = rng.standard_normal((n, f)).astype(np.float32)
    y = backend.to_numpy(dense.forward(dev(x), dev(w)))
    assert y.shape == (n, f) and y.dtype == np.float32
    np.testing.assert_allclose(y, naive_dense(x, w), rtol=1e-4, atol=1e-4)
    dx, dw = dense.backward(dev(dy), dev(x), dev(w))
    ndx, ndw = naive_dense_backward(dy, x, w)
    np.testing.assert_allclose(backend.to_numpy(dx), ndx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(dw), ndw, rtol=1e-4, atol=1e-4)
    none, dw2 = dense.backward(dev(dy), dev(x), dev(w), need_dx=False)
    assert none is None
    np.testing.assert_allclose(backend.to_numpy(dw2), ndw, rtol=1e-4, atol=1e-4)


def test_the_reference_in_float64_is_exact_to_rounding(impl):
    if impl in ("emulator", "gpu"):
        pytest.skip("the CUDA path computes in float32 only")
    rng = np.random.default_rng(6)
    x, w, dy = rng.standard_normal((13, 7)), rng.standard_normal((7, 5)), rng.standard_normal((13, 5))
    np.testing.assert_allclose(dense.forward(x, w), naive_dense(x, w), rtol=1e-12)
    dx, dw = dense.backward(dy, x, w)
    ndx, ndw = naive_dense_backward(dy, x, w)
    assert dx.dtype == dw.dtype == np.float64
    np.testing.assert_allclose(dx, ndx, rtol=1e-12)
    np.testing.assert_allclose(dw, ndw, rtol=1e-12)


@pytest.mark.parametrize("activation, fn", [
    ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
    ("tanh", np.tanh),
    ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
    ("linear", lambda z: z),
])
def test_dense_then_bias_act_is_the_keras_formula(impl, activation, fn):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (7, 3)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, 3).astype(np.float32)
    got = bias_act.forward(dense.forward(dev(x), dev(w)), dev(b), activation)
    np.testing.assert_allclose(backend.to_numpy(got), fn(x.astype(np.float64) @ w + b),
                               rtol=1e-5, atol=1e-6)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    x, w = dev(np.zeros((4, 7), np.float32)), dev(np.zeros((7, 5), np.float32))
    with pytest.raises(ValueError, match=r"dense: x has 6 features but w expects 7. "
                                         r"Received: x.shape=\(4, 6\), w.shape=\(7, 5\)"):
        dense.forward(dev(np.zeros((4, 6), np.float32)), w)
    with pytest.raises(ValueError, match=r"dense: x must have at least 2 axes \(batch, \.\.\., features\). Received: x.shape=\(7,\)"):
        dense.forward(x[0], w)
    with pytest.raises(TypeError, match=r"dense: x, w must have one dtype. "
                                        r"Received: x.dtype=float32, w.dtype=float64"):
        dense.forward(x, np.zeros((7, 5)))
    with pytest.raises(TypeError, match=r"dense: w must be float32 or float64. Received: w.dtype=int64"):
        dense.forward(x, np.zeros((7, 5), np.int64))
    with pytest.raises(ValueError, match=r"dense backward: dy must have shape \(4, 5\). "
                                         r"Received: dy.shape=\(4, 6\)"):
        dense.backward(dev(np.zeros((4, 6), np.float32)), x, w)
    with pytest.raises(ValueError, match=r"dense backward: x has 7 features but w expects 8"):
        dense.backward(dev(np.zeros((4, 5), np.float32)), x, dev(np.zeros((8, 5), np.float32)))


def test_what_only_the_cuda_path_refuses(impl):
    x, w = np.ones((3, 4)), np.ones((4, 2))
    if impl not in ("emulator", "gpu"):   # the CPU takes float64 and any layout
        np.testing.assert_array_equal(dense.forward(x, w), x @ w)
        np.testing.assert_array_equal(dense.forward(x.astype(np.float32)[:, ::2],
                                                    w.astype(np.float32)[::2]), x[:, ::2] @ w[::2])
        return
    with pytest.raises(TypeError, match=r"dense: x must be float32"):
        dense.forward(x, w)
    xd = dev(np.ones((3, 4), np.float32))[:, ::2]
    with pytest.raises(ValueError, match=r"dense: x must be C-contiguous"):
        dense.forward(xd, dev(np.ones((2, 2), np.float32)))
    with pytest.raises(TypeError, match=r"dense backward: dy must be float32"):
        dense.backward(np.ones((3, 2)), np.ones((3, 4)), np.ones((4, 2)))
