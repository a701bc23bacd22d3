"""minicnn.ops.avg_pool and AveragePooling2D: every implementation against the naive loop,
TensorFlow's numbers and finite differences."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import naive_pooling as naive
from naive import numeric_grad
from minicnn import backend, config, layers
from minicnn.ops import avg_pool
from minicnn.ops.geometry import out_size_and_pads
from device_arrays import every_thread_order  # noqa: F401 (an autouse fixture)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pooling"
CASES = [
    # (x shape, pool, strides, padding)
    ((2, 7, 5, 3), (2, 2), (2, 2), "valid"),     # odd: the last row and column dropped
    ((2, 7, 5, 3), (2, 2), (2, 2), "same"),      # odd: the last windows half real
    ((1, 7, 5, 4), (3, 3), (2, 1), "same"),      # overlap + padding on all sides
    ((2, 6, 7, 2), (3, 2), (1, 1), "same"),
    ((2, 9, 8, 1), (3, 3), (2, 2), "valid"),     # overlapping windows
    ((1, 5, 9, 33), (2, 3), (1, 2), "same"),     # rectangular pool, unequal strides
    ((3, 4, 4, 2), (4, 4), (4, 4), "valid"),     # one window: the global average
]


def pads_for(x_shape, pool, strides, padding):
    _, top, bottom = out_size_and_pads(x_shape[1], pool[0], strides[0], padding)
    _, left, right = out_size_and_pads(x_shape[2], pool[1], strides[1], padding)
    return top, bottom, left, right


@pytest.mark.parametrize("x_shape, pool, strides, padding", CASES)
def test_forward_and_backward_match_the_naive_loop_and_the_reference_bits(impl, x_shape, pool, strides, padding):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(np.float32)
    pads = pads_for(x_shape, pool, strides, padding)
    y, ctx = avg_pool.forward(backend.asarray(x), pool, strides, pads, training=True)
    y = backend.to_numpy(y)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, naive.avg_pool(x, pool, strides, pads), rtol=1e-5, atol=1e-6)
    # every version sums in the same order and divides once: the same bits
    np.testing.assert_array_equal(y, avg_pool.forward_reference(x, pool, strides, pads))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = backend.to_numpy(avg_pool.backward(backend.asarray(dy), ctx))
    assert dx.dtype == np.float32 and dx.shape == x_shape
    np.testing.assert_allclose(dx, naive.avg_pool_backward(dy, x_shape, pool, strides, pads), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(dx, avg_pool.backward_reference(dy, x_shape, pool, strides, pads))


def test_same_padding_averages_only_the_real_cells():
    """TensorFlow's rule: a window over the border is the mean of what it covers."""
    backend.set_backend("numpy")
    x = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)
    y, _ = avg_pool.forward(x, (2, 2), (2, 2), (0, 1, 0, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[3, 5, 6.5], [10.5, 12.5, 14]])   # 14 = x[2, 4] alone
    np.testing.assert_array_equal(avg_pool.counts_reference(x.shape, (2, 2), (2, 2), (0, 1, 0, 1), 2, 3),
                                  [[4, 4, 2], [2, 2, 1]])


@pytest.mark.parametrize("pool, strides, pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 2), (1, 2), (1, 1, 0, 1))])
def test_float64_keeps_its_dtype_on_the_cpu(impl, pool, strides, pads):
    if impl not in ("reference", "cpu_kernels"):
        pytest.skip("the CUDA path computes in float32 only")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 6, 3))
    y, ctx = avg_pool.forward(x, pool, strides, pads, training=True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, naive.avg_pool(x, pool, strides, pads), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = avg_pool.backward(dy, ctx)
    assert dx.dtype == np.float64
    np.testing.assert_allclose(dx, naive.avg_pool_backward(dy, x.shape, pool, strides, pads), rtol=1e-12)


def test_the_kernels_read_as_plain_python():
    """Uncompiled (prange is range), the CPU kernels compute the reference's bits."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 5, 3)).astype(np.float32)
    pool, strides, pads = (3, 2), (2, 1), (1, 1, 0, 1)
    ref = avg_pool.forward_reference(x, pool, strides, pads)
    y = np.full(ref.shape, np.nan, np.float32)
    avg_pool.forward_kernel(x, *pool, *strides, pads[0], pads[2], y)
    np.testing.assert_array_equal(y, ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)   # every cell must be written
    avg_pool.backward_kernel(dy, *pool, *strides, pads[0], pads[2], dx)
    np.testing.assert_array_equal(dx, avg_pool.backward_reference(dy, x.shape, pool, strides, pads))


def keras_cases(prefix):
    meta = json.loads((FIXTURES / "layers.json").read_text())
    return [name for name in meta if name.startswith(prefix)], meta


NAMES, META = keras_cases("avg_")


@pytest.mark.parametrize("name", NAMES)
def test_the_layer_gives_keras_numbers(impl, name):
    ref = np.load(FIXTURES / "layers.npz")
    x, r, y, dx = (ref[f"{name}/{k}"] for k in ("x", "r", "y", "dx"))
    layer = layers.AveragePooling2D(**META[name]["args"])
    out = layer(backend.asarray(x), training=True)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    np.testing.assert_allclose(backend.to_numpy(out), y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(layer.backward(backend.asarray(r))), dx, rtol=1e-5, atol=1e-6)


def test_the_layer_passes_a_float64_gradient_check():
    backend.set_backend("numpy")
    rng = np.random.default_rng(6)
    layer = layers.AveragePooling2D((3, 2), strides=(2, 1), padding="same", dtype="float64")
    x = rng.standard_normal((2, 5, 4, 2))
    layer(x)
    dout = rng.standard_normal(layer.compute_output_shape(x.shape))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    numeric = numeric_grad(lambda: float((layer.forward(x) * dout).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-9)


def test_the_layer_has_keras_defaults_names_and_config():
    layer = layers.AveragePooling2D()
    assert layer.name.startswith("average_pooling2d") and layers.AvgPool2D is layers.AveragePooling2D
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    config = layers.AvgPool2D(3, strides=1, padding="SAME", name="p").get_config()
    assert config == {"name": "p", "trainable": True, "dtype": "float32", "pool_size": (3, 3), "strides": (1, 1),
                      "padding": "same", "data_format": "channels_last"}
    twin = layers.AveragePooling2D.from_config(json.loads(json.dumps(config)))
    assert (twin.pool_size, twin.strides, twin.padding, twin.name) == ((3, 3), (1, 1), "same", "p")
    with pytest.raises(ValueError, match=r"average_pooling2d\w*: `pool_size` must be a positive int or a tuple "
                                         r"of 2 positive ints. Received: pool_size=0"):
        layers.AveragePooling2D(0)
    with pytest.raises(ValueError, match=r"average_pooling2d\w*: pool size \(3, 3\) is larger than the input's "
                                         r"spatial size \(2, 5\) with padding='valid'"):
        layers.AveragePooling2D(3)(np.zeros((1, 2, 5, 1), np.float32))


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    x = backend.asarray(np.zeros((2, 5, 5, 3), np.float32))
    with pytest.raises(TypeError, match=r"avg_pool: x must be float32 or float64. Received: x.dtype=int64"):
        avg_pool.forward(np.zeros((2, 5, 5, 3), np.int64), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"avg_pool: x must have 4 axes. Received: x.shape=\(5, 5, 3\)"):
        avg_pool.forward(x[0], (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"avg_pool: pool must be positive"):
        avg_pool.forward(x, (0, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"avg_pool: pads must be non-negative"):
        avg_pool.forward(x, (2, 2), (2, 2), (0, -1, 0, 0))
    with pytest.raises(ValueError, match=r"avg_pool: a 6x6 window does not fit a 5x5 input"):
        avg_pool.forward(x, (6, 6), (1, 1), (0, 0, 0, 0))
    _, ctx = avg_pool.forward(x, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
    with pytest.raises(ValueError, match=r"avg_pool backward: dy must have shape \(2, 2, 2, 3\). "
                                         r"Received: dy.shape=\(2, 2, 2, 4\)"):
        avg_pool.backward(backend.asarray(np.zeros((2, 2, 2, 4), np.float32)), ctx)


def test_kernels_names_the_entry_points_of_avg_pool_cu():
    text = (Path(__file__).resolve().parents[2] / "kernels" / "avg_pool.cu").read_text()
    assert sorted(re.findall(r'extern "C" __global__ void (\w+)\(', text)) == sorted(avg_pool.KERNELS)
