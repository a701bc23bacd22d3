"""Dilated convolution (Conv2D's dilation_rate): every implementation against the naive
loop, TensorFlow's numbers, finite differences and Keras's rules."""
import json
from pathlib import Path

import numpy as np
import pytest

import naive_pooling as naive
from naive import numeric_grad
from minicnn import backend, layers, models
from minicnn.ops import conv2d, conv2d_cpu
from minicnn.ops.geometry import out_size_and_pads, span

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pooling"
CASES = [
    # (x shape, kernel (kh, kw, c, f), strides, dilation, padding)
    ((2, 9, 8, 3), (3, 3, 3, 4), (1, 1), (2, 2), "valid"),
    ((2, 7, 5, 3), (3, 3, 3, 2), (1, 1), (2, 2), "same"),      # odd sizes, SAME pads from the span
    ((1, 7, 9, 1), (2, 3, 1, 4), (1, 1), (3, 2), "same"),      # C=1: patches as columns
    ((2, 8, 9, 17), (3, 2, 17, 3), (1, 1), (2, 3), "same"),    # patches as rows (kw*c >= 16)
    ((1, 6, 9, 16), (3, 3, 16, 2), (1, 1), (1, 2), "valid"),   # dilated along W only
    ((2, 9, 7, 2), (3, 2, 2, 3), (2, 1), (2, 2), "same"),      # the op also strides (Keras's layer refuses)
    ((2, 5, 5, 3), (1, 1, 3, 4), (1, 1), (2, 2), "valid"),     # pointwise: nothing to dilate
]


def pads_for(x_shape, k_shape, strides, dilation, padding):
    _, top, bottom = out_size_and_pads(x_shape[1], span(k_shape[0], dilation[0]), strides[0], padding)
    _, left, right = out_size_and_pads(x_shape[2], span(k_shape[1], dilation[1]), strides[1], padding)
    return top, bottom, left, right


@pytest.mark.parametrize("x_shape, k_shape, strides, dilation, padding", CASES)
def test_forward_and_backward_match_the_naive_loop(impl, x_shape, k_shape, strides, dilation, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(k_shape).astype(np.float32)
    pads = pads_for(x_shape, k_shape, strides, dilation, padding)
    y, ctx = conv2d.forward(backend.asarray(x), backend.asarray(w), strides, pads, training=True, dilation=dilation)
    y = backend.to_numpy(y)
    np.testing.assert_allclose(y, naive.conv2d(x, w, strides, pads, dilation), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = conv2d.backward(backend.asarray(dy), ctx, backend.asarray(w))
    ndx, ndw = naive.conv2d_backward(dy, x, w, strides, pads, dilation)
    np.testing.assert_allclose(backend.to_numpy(dx), ndx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(dw), ndw, rtol=1e-4, atol=1e-4)
    # an inference forward keeps no patches: backward rebuilds them, dilated too
    _, dw2 = conv2d.backward(backend.asarray(dy), ctx._replace(patches=None), backend.asarray(w), need_dx=False)
    np.testing.assert_allclose(backend.to_numpy(dw2), ndw, rtol=1e-4, atol=1e-4)


def test_a_dilated_batch_in_chunks_of_one_image_each(impl, monkeypatch):
    monkeypatch.setattr(conv2d_cpu, "CHUNK_BYTES", 3000)   # one image a chunk
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 9, 9, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    y, _ = conv2d.forward(backend.asarray(x), backend.asarray(w), (1, 1), (2, 2, 2, 2), dilation=(2, 2))
    np.testing.assert_allclose(backend.to_numpy(y), naive.conv2d(x, w, (1, 1), (2, 2, 2, 2), (2, 2)),
                               rtol=1e-4, atol=1e-4)


def test_the_reference_in_float64_is_exact_to_rounding():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 7, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    args = (2, 1), (1, 2, 0, 1), (2, 3)   # strides, pads, dilation
    np.testing.assert_allclose(conv2d.forward_reference(x, w, *args), naive.conv2d(x, w, *args), rtol=1e-12)
    dy = rng.standard_normal(naive.conv2d(x, w, *args).shape)
    got = conv2d.backward_reference(dy, x, w, args[0], args[1], True, args[2])
    for a, b in zip(got, naive.conv2d_backward(dy, x, w, *args)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_compiled_dilated_col2im_gives_the_reference_bits():
    from minicnn.backend.cpu import runtime
    if runtime().kernel_gemms is None:
        pytest.skip("needs Numba and BLAS's sgemm")
    rng = np.random.default_rng(4)
    kh, kw, strides, dilation, pads = 3, 2, (1, 1), (2, 3), (2, 1, 1, 2)
    x_shape = (3, 7, 6, 5)
    oh, ow = naive.out_hw(7, 6, (kh, kw), strides, pads, dilation)
    dcol = rng.standard_normal((3, oh, ow, kh, kw, 5)).astype(np.float32)
    dx = np.empty(x_shape, np.float32)
    # dcol = dy2 @ wt with wt the identity: the kernel's product gives dcol exactly;
    # two images per chunk, so the last chunk is short (dW of the zero x comes along)
    k = kh * kw * 5
    cores = runtime().numba.config.NUMBA_NUM_THREADS   # one patch-gradient buffer per core
    da = dcol.reshape(3, oh, ow, k)
    runtime().compile(conv2d_cpu.backward_kernel)(
        np.zeros(x_shape, np.float32), np.eye(k, dtype=np.float32), da, da, False, False,
        (kh, kw, *strides, *dilation, pads[0], pads[2], oh, ow), 2, True, True, (0, 0),
        np.empty((0, 0, 0, k), np.int32), np.empty((cores, 2 * oh * ow, k), np.float32), np.empty((cores, 2 * oh * ow, k), np.float32),
        np.empty((cores, 0, k), np.float32), np.empty((2, k, k), np.float32), np.empty((0, k), np.float32), dx)
    want = conv2d.col2im_reference(dcol, x_shape, strides, pads, dilation)
    assert np.array_equal(dx.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))


def test_op_errors_name_the_dilation(impl):
    x = backend.asarray(np.zeros((1, 5, 5, 2), np.float32))
    w = backend.asarray(np.zeros((3, 3, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: a 3x3 \(dilated by \(3, 3\): 7x7\) window does not fit a 5x5"):
        conv2d.forward(x, w, (1, 1), (0, 0, 0, 0), dilation=(3, 3))
    with pytest.raises(ValueError, match=r"conv2d: dilation must be positive"):
        conv2d.forward(x, w, (1, 1), (0, 0, 0, 0), dilation=(0, 1))


NAMES = [n for n in json.loads((FIXTURES / "layers.json").read_text()) if n.startswith("conv_dil")]


@pytest.mark.parametrize("name", NAMES)
def test_the_layer_gives_keras_numbers(impl, name):
    meta = json.loads((FIXTURES / "layers.json").read_text())[name]
    ref = np.load(FIXTURES / "layers.npz")
    x, r, y = ref[f"{name}/x"], ref[f"{name}/r"], ref[f"{name}/y"]
    layer = layers.Conv2D(**meta["args"])
    layer(backend.asarray(x[:1]))   # builds
    layer.set_weights([ref[f"{name}/w0"], ref[f"{name}/w1"]])
    assert layer.output_shape == (None,) + y.shape[1:]
    out = layer(backend.asarray(x), training=True)
    np.testing.assert_allclose(backend.to_numpy(out), y, rtol=1e-4, atol=1e-4)
    dx = layer.backward(backend.asarray(r))
    np.testing.assert_allclose(backend.to_numpy(dx), ref[f"{name}/dx"], rtol=1e-4, atol=1e-4)
    for got, want in zip(layer.grads, (ref[f"{name}/dw0"], ref[f"{name}/dw1"])):
        np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-4, atol=1e-4)


def test_the_layer_passes_a_float64_gradient_check():
    backend.set_backend("numpy")
    rng = np.random.default_rng(7)
    layer = layers.Conv2D(2, (2, 3), dilation_rate=(2, 1), padding="same", activation="tanh", dtype="float64")
    x = rng.standard_normal((2, 5, 4, 2))
    layer(x)
    dout = rng.standard_normal(layer.compute_output_shape(x.shape))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    loss = lambda: float((layer.forward(x) * dout).sum())  # noqa: E731
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    for got, weight in zip(layer.grads, layer.weights):
        np.testing.assert_allclose(got, numeric_grad(loss, weight), rtol=1e-6, atol=1e-9)


def test_keras_rules_shapes_and_errors():
    assert layers.Conv2D(1, 3, dilation_rate=2).compute_output_shape((None, 9, 8, 1)) == (None, 5, 4, 1)
    assert layers.Conv2D(1, 3, dilation_rate=2, padding="same").compute_output_shape((None, 9, 8, 1)) == (None, 9, 8, 1)
    assert layers.Conv2D(1, 3, dilation_rate=(1, 2)).dilation_rate == (1, 2)
    with pytest.raises(ValueError, match=r"conv2d\w*: `strides > 1` not supported in conjunction with "
                                         r"`dilation_rate > 1`. Received: strides=\(2, 2\) and dilation_rate=\(2, 2\)"):
        layers.Conv2D(1, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match=r"conv2d\w*: `dilation_rate` must be a positive int or a tuple of 2 "
                                         r"positive ints. Received: dilation_rate=0"):
        layers.Conv2D(1, 3, dilation_rate=0)
    with pytest.raises(ValueError, match=r"conv2d\w*: kernel size \(3, 3\) with dilation_rate \(3, 3\) spans "
                                         r"\(7, 7\) cells and is larger than the input's spatial size \(6, 6\)"):
        models.Sequential([layers.Conv2D(1, 3, dilation_rate=3, input_shape=(6, 6, 1))])


def test_config_round_trips_and_a_keras_config_with_dilation_loads():
    layer = layers.Conv2D(3, 3, dilation_rate=(2, 3), name="dil")
    config = layer.get_config()
    assert config["dilation_rate"] == (2, 3)
    twin = layers.Conv2D.from_config(json.loads(json.dumps(config)))
    assert twin.dilation_rate == (2, 3) and twin.name == "dil"
    keras_conv = json.loads((FIXTURES / "model.json").read_text())["layers"][1]["config"]
    assert keras_conv["dilation_rate"] == [2, 2]
    assert layers.Conv2D.from_config(keras_conv).dilation_rate == (2, 2)
