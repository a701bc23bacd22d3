"""minicnn.ops.softmax_xent: every implementation against the naive loops, on odd shapes."""
import math
import re

import numpy as np
import pytest

import naive
import naive_losses
from naive import numeric_grad
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import softmax_xent
from minicnn.ops.softmax_xent import (EPSILON, accuracy_count, logits_xent_loss, softmax_xent_backward,
                                      xent_backward, xent_loss)
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

OPS = (xent_loss, logits_xent_loss, xent_backward, softmax_xent_backward, accuracy_count)
SHAPES = [(1, 3), (6, 10), (3, 300), (5, 257), (2, 3, 7)]   # 300, 257: a row wider than a block


def probs(rng, shape, clip_some=True):
    """Softmax rows of random logits, some entries where the clip is active, one-hot y."""
    p = naive.ACTIVATIONS["softmax"](rng.uniform(-5, 5, shape)).astype(np.float32)
    k = shape[-1]
    p2 = p.reshape(-1, k)
    if clip_some:
        p2[0, :] = 0.0
        p2[0, 1] = 1.0          # q = 1 > 1 - eps: clipped from above
        p2[-1, 2] = 1e-12       # tiny: clipped from below
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, p2.shape[0])]
    y[0, 1] = 1.0
    return p, y.reshape(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_loss_and_gradients_match_the_naive_loops(impl, shape):
    p, y = probs(np.random.default_rng(1234), shape)
    p64, y64 = p.astype(np.float64), y.astype(np.float64)
    loss = xent_loss(dev(p), dev(y))
    assert loss.shape == shape[:-1] and loss.dtype == np.float32
    np.testing.assert_allclose(host(loss), naive.xent_loss(p64, y64), rtol=1e-5, atol=1e-6)
    dp = xent_backward(dev(p), dev(y))
    assert dp.shape == shape and dp.dtype == np.float32
    np.testing.assert_allclose(host(dp), naive_losses.xent_backward(p64, y64), rtol=1e-5, atol=1e-6)
    dz = softmax_xent_backward(dev(p), dev(y))
    np.testing.assert_allclose(host(dz), naive_losses.softmax_xent_backward(p, y), rtol=1e-6, atol=1e-7)


def naive_logits_xent(z, y):
    """-sum_k y_k log(exp(z_k) / sum_j exp(z_j)), row by row in float64 (math.fsum, shifted by the max)."""
    z2, y2 = z.reshape(-1, z.shape[-1]).astype(np.float64), y.reshape(-1, y.shape[-1]).astype(np.float64)
    out = []
    for zr, yr in zip(z2, y2):
        m = max(zr)
        log_sum = math.log(math.fsum(math.exp(v - m) for v in zr)) + m
        out.append(-math.fsum(t * (v - log_sum) for v, t in zip(zr, yr)))
    return np.array(out).reshape(z.shape[:-1])


@pytest.mark.parametrize("shape", SHAPES)
def test_the_loss_from_logits_matches_the_naive_loop(impl, shape):
    rng = np.random.default_rng(7)
    z = rng.normal(0, 4, shape).astype(np.float32)
    z.reshape(-1, shape[-1])[0, -1] = 80.0      # exp(80) overflows float32: the shift must prevent it
    z.reshape(-1, shape[-1])[-1, 0] = -80.0
    y = rng.uniform(0, 1, shape).astype(np.float32)   # soft labels, rows not summing to 1
    loss = logits_xent_loss(dev(z), dev(y))
    assert loss.shape == shape[:-1] and loss.dtype == np.float32
    np.testing.assert_allclose(host(loss), naive_logits_xent(z, y), rtol=1e-5, atol=1e-5)
    assert np.isfinite(host(loss)).all()


def test_unnormalised_probabilities_and_soft_labels(impl):
    rng = np.random.default_rng(1234)
    p = rng.uniform(0.1, 3.0, (4, 5)).astype(np.float32)   # rows do not sum to 1
    y = rng.uniform(0, 1, (4, 5)).astype(np.float32)       # soft labels
    np.testing.assert_allclose(host(xent_loss(dev(p), dev(y))), naive.xent_loss(p.astype(np.float64), y),
                               rtol=1e-5)
    np.testing.assert_allclose(host(xent_backward(dev(p), dev(y))),
                               naive_losses.xent_backward(p, y), rtol=1e-5, atol=1e-7)


def test_clips_and_normalises_like_keras(impl):
    y = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    p = np.array([[0.2, 0.6, 0.2], [0.0, 0.5, 0.5]], np.float32)
    np.testing.assert_allclose(host(xent_loss(dev(p), dev(y))), [-np.log(0.6), -np.log(1e-7)], rtol=1e-5)
    # unnormalised rows are divided by their sum first
    np.testing.assert_allclose(host(xent_loss(dev([[1.0, 3.0]]), dev([[0, 1]]))), [-np.log(0.75)], rtol=1e-6)


def test_accuracy_count(impl):
    rng = np.random.default_rng(1234)
    p = rng.integers(0, 3, (300, 4)).astype(np.float32)    # ties: the first index wins
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 300)]
    p[5, :] = np.nan                                       # NaN: the first NaN, like numpy.argmax
    p[7, 2] = np.nan
    y[7] = np.eye(4)[2]
    want = naive_losses.accuracy_count(p, y)
    assert 0 < want < 300
    count = accuracy_count(dev(p), dev(y))
    if backend.device().kind == "cuda":
        assert isinstance(count, backend.device().xp.ndarray)   # a device scalar: no sync
        assert count.shape == () and count.dtype == np.int32
    else:
        assert isinstance(count, np.integer)
    assert int(host(count)) == want
    assert float(host(count + count)) == 2 * want
    p3, y3 = p.reshape(3, 100, 4), y.reshape(3, 100, 4)     # rows are all axes but the last
    assert int(host(accuracy_count(dev(p3), dev(y3)))) == want


def test_an_empty_batch(impl):
    p = dev(np.zeros((0, 4), np.float32))
    assert xent_loss(p, p).shape == (0,)
    assert logits_xent_loss(p, p).shape == (0,)
    assert xent_backward(p, p).shape == (0, 4)
    assert softmax_xent_backward(p, p).shape == (0, 4)
    assert int(host(accuracy_count(p, p))) == 0


def test_the_reference_in_float64_is_exact_to_rounding():
    rng = np.random.default_rng(3)
    p, y = probs(rng, (4, 6))
    p, y = p.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(softmax_xent.xent_loss_reference(p, y), naive.xent_loss(p, y), rtol=1e-12)
    np.testing.assert_allclose(softmax_xent.xent_backward_reference(p, y), naive_losses.xent_backward(p, y),
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(softmax_xent.softmax_xent_backward_reference(p, y),
                                  naive_losses.softmax_xent_backward(p, y))
    assert softmax_xent.xent_loss_reference(p, y).dtype == np.float64




def test_xent_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 1.0, (4, 5))
    y = np.eye(5)[rng.integers(0, 5, 4)]
    g = softmax_xent.xent_backward_reference(p, y)
    num = numeric_grad(lambda: float(softmax_xent.xent_loss_reference(p, y).mean()), p)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_fused_softmax_xent_gradient():
    """(p - y) / N is the gradient of mean xent(softmax(z)) with respect to z."""
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 4))
    y = np.eye(4)[[0, 3, 1]]
    softmax = naive.ACTIVATIONS["softmax"]

    def loss():
        return float(softmax_xent.xent_loss_reference(softmax(z), y).mean())

    np.testing.assert_allclose(softmax_xent.softmax_xent_backward_reference(softmax(z), y),
                               numeric_grad(loss, z), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
def test_bad_calls_fail_the_same_way_on_every_device(impl, op):
    name = op.__name__
    ok = dev(np.full((2, 3), 1 / 3, np.float32))
    with pytest.raises(ValueError, match=re.escape(f"{name}: p and y must have the same shape. "
                                                   "Received: p.shape=(2, 3), y.shape=(2, 4)")):
        op(ok, dev(np.zeros((2, 4), np.float32)))
    empty_classes = dev(np.zeros((2, 0), np.float32))
    with pytest.raises(ValueError, match=re.escape(f"{name}: p and y need a class axis (the last) "
                                                   "with at least one class. Received: p.shape=(2, 0)")):
        op(empty_classes, empty_classes)
    with pytest.raises(ValueError, match=re.escape("Received: p.shape=()")):
        op(ok[0, 0], ok[0, 0])
    labels = backend.device().asarray(np.zeros((2, 3)), dtype="int32")
    with pytest.raises(TypeError, match=f"{name}: y must be float32 or float64. Received: y.dtype=int32"):
        op(ok, labels)
    with pytest.raises(TypeError, match=f"{name}: p must be an array. Received: p=list"):
        op([[0.5, 0.5]], ok)


def test_the_cuda_device_refuses_what_its_kernels_cannot_read(impl):
    if backend.device().kind != "cuda":
        pytest.skip("the CPU device takes any float array")
    xp = backend.device().xp
    p = dev(np.full((2, 3), 1 / 3, np.float32))
    with pytest.raises(TypeError, match="xent_loss: y must be float32"):
        xent_loss(p, xp.zeros((2, 3), dtype=xp.float64))
    wide = dev(np.full((2, 6), 1 / 3, np.float32))
    with pytest.raises(ValueError, match="xent_backward: p must be C-contiguous"):
        xent_backward(wide[:, ::2], p)
    if xp is not np:
        with pytest.raises(TypeError, match="accuracy_count: p must be a cupy array"):
            accuracy_count(np.full((2, 3), 1 / 3, np.float32), p)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "softmax_xent.cu").read_text()
    for kernel in softmax_xent.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel


def test_thread_order_check_catches_a_missing_barrier():
    # The same reduction with its trailing barrier removed, launched as
    # xent_loss launches xent_loss_rows: the every-order runs must refuse it,
    # so the parity tests above would catch such a bug in the kernels.
    import shutil
    if shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    from minicnn.backend.emulator import RaceError, RawModule
    source = (loader.KERNEL_DIR / "softmax_xent.cu").read_text()
    barrier = "    const float total = red[0];\n    __syncthreads();"
    assert barrier in source
    broken = RawModule(code=source.replace(barrier, "    const float total = red[0];"))
    p, y = probs(np.random.default_rng(1234), (3, 300))
    loss = np.empty(3, np.float32)
    with pytest.raises(RaceError, match="thread"):
        broken.get_function("xent_loss_rows")(
            (3, 1, 1), (softmax_xent.row_block(300), 1, 1),
            (p, y, loss, np.int32(3), np.int32(300), np.float32(EPSILON), np.float32(1 - EPSILON)))


def test_a_nan_probability_gives_a_nan_loss_and_gradient_on_every_device(impl):
    # np.clip keeps NaN; CUDA's fminf/fmaxf would not, and a diverged model's loss would
    # come out finite on the GPU, so fit could not report that training diverged
    p = np.full((3, 4), 0.25, np.float32)
    p[1, 2] = np.nan
    y = np.eye(4, dtype=np.float32)[[0, 2, 3]]
    loss = host(softmax_xent.xent_loss(dev(p), dev(y)))
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    dp = host(softmax_xent.xent_backward(dev(p), dev(y)))
    np.testing.assert_array_equal(np.isnan(dp), np.isnan(softmax_xent.xent_backward_reference(p, y)))
