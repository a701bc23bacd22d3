"""minicnn.ops.binary_xent: every implementation against a naive loop, and the gradient by finite differences."""
import math
import re

import numpy as np
import pytest

from naive import numeric_grad
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import binary_xent
from minicnn.ops.binary_xent import EPSILON, backward, loss
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

SHAPES = [(1, 1), (7, 1), (5, 3), (2, 3, 4)]
LO, HI = float(np.float32(EPSILON)), float(np.float32(1 - EPSILON))   # the clip bounds in float32, as Keras


def naive_loss(p, y, from_logits):
    """Row means of Keras's per-value formula, value by value in float64."""
    p2, y2 = p.reshape(-1, p.shape[-1]).astype(np.float64), y.reshape(-1, y.shape[-1]).astype(np.float64)
    rows = []
    for pr, yr in zip(p2, y2):
        values = []
        for v, t in zip(pr, yr):
            if from_logits:   # log(1 + e^-z) + (1 - y) z, rewritten not to overflow
                values.append(max(v, 0.0) - v * t + math.log1p(math.exp(-abs(v))))
            else:
                q = min(max(v, LO), HI)
                values.append(-(t * math.log(q) + (1 - t) * math.log(1 - q)))
        rows.append(sum(values) / len(values))
    return np.array(rows).reshape(p.shape[:-1])


def data(shape, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, shape).astype(np.float32)
    p.flat[0], p.flat[-1] = 0.0, 1.0              # both clips active
    z = rng.normal(0, 5, shape).astype(np.float32)
    z.flat[0] = 50.0                               # exp(50) would overflow float32's exp(z)
    y = rng.integers(0, 2, shape).astype(np.float32)
    y.flat[-1] = 0.3                               # a smoothed label
    return p, z, y


@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_gradients_match_the_naive_formulas(impl, shape):
    p, z, y = data(shape)
    for x, logits in ((p, False), (z, True)):
        out = loss(dev(x), dev(y), from_logits=logits)
        assert out.shape == shape[:-1] and out.dtype == np.float32
        np.testing.assert_allclose(host(out), naive_loss(x, y, logits), rtol=1e-5, atol=1e-6)
    n = p.size
    inside = (p >= np.float32(EPSILON)) & (p <= np.float32(1 - EPSILON))
    want = np.where(inside, (-y / np.where(inside, p, 0.5) + (1 - y) / (1 - np.where(inside, p, 0.5))) / n, 0)
    np.testing.assert_allclose(host(backward(dev(p), dev(y), "probabilities")), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(host(backward(dev(p), dev(y), "sigmoid")), (p - y) / n, rtol=1e-6, atol=1e-8)
    sig = 1 / (1 + np.exp(-z.astype(np.float64)))
    np.testing.assert_allclose(host(backward(dev(z), dev(y), "logits")), (sig - y) / n, rtol=1e-5, atol=1e-7)


def test_the_gradients_are_the_derivatives_of_the_batch_mean():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, (4, 3))
    z = rng.normal(0, 2, (4, 3))
    y = rng.uniform(0, 1, (4, 3))
    np.testing.assert_allclose(binary_xent.backward_reference(p, y, "probabilities"),
                               numeric_grad(lambda: binary_xent.loss_reference(p, y).mean(), p), rtol=1e-6)
    np.testing.assert_allclose(binary_xent.backward_reference(z, y, "logits"),
                               numeric_grad(lambda: binary_xent.loss_reference(z, y, True).mean(), z), rtol=1e-6)
    # the fused gradient: w.r.t. z of the loss of p = sigmoid(z)
    def of_sigmoid():
        return binary_xent.loss_reference(1 / (1 + np.exp(-z)), y).mean()
    np.testing.assert_allclose(binary_xent.backward_reference(1 / (1 + np.exp(-z)), y, "sigmoid"),
                               numeric_grad(of_sigmoid, z), rtol=1e-6)


def test_an_empty_batch(impl):
    e = dev(np.zeros((0, 2), np.float32))
    assert loss(e, e).shape == (0,) and backward(e, e).shape == (0, 2)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    ok = dev(np.full((2, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=re.escape("binary_xent: p and y must have the same shape. "
                                                   "Received: p.shape=(2, 3), y.shape=(2, 1)")):
        loss(ok, dev(np.zeros((2, 1), np.float32)))
    with pytest.raises(ValueError, match=re.escape("binary_xent backward: mode must be one of "
                                                   "['probabilities', 'sigmoid', 'logits']. Received: mode='sig'")):
        backward(ok, ok, "sig")
    with pytest.raises(TypeError, match="binary_xent: p must be an array"):
        loss([[0.5]], ok)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "binary_xent.cu").read_text()
    for kernel in binary_xent.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel


def test_a_nan_probability_gives_a_nan_loss_on_every_device(impl):
    # as np.clip does: CUDA's fminf/fmaxf alone would turn the NaN into a finite loss
    p = np.full((3, 2), 0.5, np.float32)
    p[2, 1] = np.nan
    y = np.ones((3, 2), np.float32)
    loss = backend.to_numpy(binary_xent.loss(backend.asarray(p), backend.asarray(y)))
    assert np.isnan(loss[2]) and np.isfinite(loss[:2]).all()
