"""minicnn.ops.padding, ZeroPadding2D and Cropping2D: every implementation against the
naive loops; padding and cropping are each other's gradient (adjoints)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

import naive_pooling as naive
from naive import numeric_grad
from minicnn import backend, config, layers
from minicnn.models import Sequential
from minicnn.ops import padding
from device_arrays import every_thread_order  # noqa: F401 (an autouse fixture)

MARGINS = [(1, 1, 1, 1), (0, 2, 3, 0), (2, 0, 0, 1), (0, 0, 0, 0)]


@pytest.mark.parametrize("margins", MARGINS)
def test_pad_and_crop_match_the_naive_loops_and_are_adjoints(impl, margins):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 5, 3)).astype(np.float32)
    y = backend.to_numpy(padding.pad(backend.asarray(x), margins))
    np.testing.assert_array_equal(y, naive.pad(x, margins))
    z = rng.standard_normal(y.shape).astype(np.float32)
    c = backend.to_numpy(padding.crop(backend.asarray(z), margins))
    assert c.flags.c_contiguous
    np.testing.assert_array_equal(c, naive.crop(z, margins))
    # <pad(x), z> == <x, crop(z)>: crop is pad's gradient (and pad is crop's)
    np.testing.assert_allclose((y.astype(np.float64) * z).sum(), (x.astype(np.float64) * c).sum(), rtol=1e-10)


@pytest.mark.parametrize("arg, want", [(2, ((2, 2), (2, 2))), ((1, 3), ((1, 1), (3, 3))),
                                       (((1, 0), (2, 1)), ((1, 0), (2, 1))), ([[0, 1], [1, 0]], ((0, 1), (1, 0)))])
def test_the_layers_take_keras_margin_forms(impl, arg, want):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 8, 3)).astype(np.float32)
    (t, b), (l, r) = want
    zp = layers.ZeroPadding2D(arg)
    assert zp.padding == want
    y = zp(backend.asarray(x), training=True)
    assert zp.output_shape == (None, 7 + t + b, 8 + l + r, 3)
    np.testing.assert_array_equal(backend.to_numpy(y), naive.pad(x, (t, b, l, r)))
    dout = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(backend.to_numpy(zp.backward(backend.asarray(dout))), naive.crop(dout, (t, b, l, r)))
    cr = layers.Cropping2D(arg)
    assert cr.cropping == want
    y = cr(backend.asarray(x), training=True)
    assert cr.output_shape == (None, 7 - t - b, 8 - l - r, 3)
    np.testing.assert_array_equal(backend.to_numpy(y), naive.crop(x, (t, b, l, r)))
    dout = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(backend.to_numpy(cr.backward(backend.asarray(dout))), naive.pad(dout, (t, b, l, r)))


@pytest.mark.parametrize("make", [lambda: layers.ZeroPadding2D(((1, 0), (0, 2)), dtype="float64"),
                                  lambda: layers.Cropping2D(((1, 0), (0, 2)), dtype="float64")])
def test_float64_gradient_checks(make):
    backend.set_backend("numpy")
    rng = np.random.default_rng(2)
    layer = make()
    x = rng.standard_normal((2, 4, 5, 2))
    layer(x)
    dout = rng.standard_normal(layer.compute_output_shape(x.shape))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    numeric = numeric_grad(lambda: float((layer.forward(x) * dout).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-9)


def test_names_configs_and_the_keras_defaults():
    zp, cr = layers.ZeroPadding2D(), layers.Cropping2D(name="c")
    assert zp.name.startswith("zero_padding2d") and zp.padding == ((1, 1), (1, 1))
    assert cr.cropping == ((0, 0), (0, 0))
    for layer, key in ((layers.ZeroPadding2D((1, 2), name="z"), "padding"), (layers.Cropping2D(((0, 1), (2, 3))), "cropping")):
        config = layer.get_config()
        assert config["data_format"] == "channels_last"
        twin = type(layer).from_config(json.loads(json.dumps(config)))
        assert getattr(twin, key) == getattr(layer, key) and twin.name == layer.name


def test_bad_margins_and_inputs_fail_naming_the_layer(impl):
    for bad in (-1, (1, 2, 3), ((1, 2), (3,)), 1.5, ((1, -1), (0, 0))):
        with pytest.raises(ValueError, match=r"zero_padding2d\w*: `padding` must be an int >= 0, a tuple of 2 ints"):
            layers.ZeroPadding2D(bad)
    with pytest.raises(ValueError, match=r"cropping2d\w*: `cropping` must be an int >= 0"):
        layers.Cropping2D("1")
    with pytest.raises(ValueError, match=r"cropping2d\w*: values in `cropping` must be smaller than the input's "
                                         r"spatial size. Received: input_shape=\(None, 4, 6, 1\), cropping=\(\(2, 2\), \(0, 0\)\)"):
        Sequential([layers.Cropping2D(((2, 2), (0, 0)), input_shape=(4, 6, 1))])
    with pytest.raises(ValueError, match=r"zero_padding2d\w*: expected input of rank 4"):
        layers.ZeroPadding2D().compute_output_shape((None, 4, 6))
    x = backend.asarray(np.zeros((1, 4, 6, 1), np.float32))
    with pytest.raises(ValueError, match=r"crop2d: cropping \(2, 2, 0, 0\) must leave at least one row and column"):
        padding.crop(x, (2, 2, 0, 0))
    with pytest.raises(ValueError, match=r"pad2d: pads must be non-negative"):
        padding.pad(x, (0, -1, 0, 0))
    with pytest.raises(ValueError, match=r"pad2d: x must have 4 axes"):
        padding.pad(x[0], (1, 1, 1, 1))


def test_kernels_names_the_entry_points_of_padding_cu():
    text = (Path(__file__).resolve().parents[2] / "kernels" / "padding.cu").read_text()
    assert sorted(re.findall(r'extern "C" __global__ void (\w+)\(', text)) == sorted(padding.KERNELS)
