"""GlobalAveragePooling2D and GlobalMaxPooling2D: pooling with the whole image as the window
(minicnn.ops.avg_pool / minicnn.ops.pooling), on every implementation."""
import json
from pathlib import Path

import numpy as np
import pytest

from naive import numeric_grad
from minicnn import backend, config, layers
from device_arrays import every_thread_order  # noqa: F401 (an autouse fixture)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pooling"
SHAPES = [(2, 7, 5, 3), (1, 1, 1, 4), (3, 4, 6, 33)]


def naive_mean(x):
    n, h, w, c = x.shape
    return np.array([[sum(float(x[b, i, j, ch]) for i in range(h) for j in range(w)) / (h * w)
                      for ch in range(c)] for b in range(n)])


def naive_max(x):
    """(max, the (i, j) of its FIRST occurrence in row-major order) per (n, ch)."""
    n, h, w, c = x.shape
    y, where = np.zeros((n, c)), {}
    for b in range(n):
        for ch in range(c):
            cells = [(x[b, i, j, ch], i, j) for i in range(h) for j in range(w)]
            best = max(v for v, _, _ in cells)
            _, i, j = next(t for t in cells if t[0] == best)
            y[b, ch], where[b, ch] = best, (i, j)
    return y, where


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_global_average_matches_the_naive_mean(impl, shape, keepdims):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = layers.GlobalAveragePooling2D(keepdims=keepdims)
    y = backend.to_numpy(layer(backend.asarray(x), training=True))
    n, h, w, c = shape
    assert y.shape == ((n, 1, 1, c) if keepdims else (n, c)) and y.dtype == np.float32
    np.testing.assert_allclose(y.reshape(n, c), naive_mean(x), rtol=1e-5, atol=1e-6)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = backend.to_numpy(layer.backward(backend.asarray(dout)))
    np.testing.assert_allclose(dx, np.broadcast_to(dout.reshape(n, 1, 1, c) / (h * w), shape), rtol=1e-6)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_global_max_matches_the_naive_max_and_sends_the_gradient_to_the_first_maximum(impl, shape, keepdims):
    rng = np.random.default_rng(1)
    x = np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float32)   # ReLU-like: many ties
    layer = layers.GlobalMaxPooling2D(keepdims=keepdims)
    y = backend.to_numpy(layer(backend.asarray(x), training=True))
    n, h, w, c = shape
    want, where = naive_max(x)
    np.testing.assert_array_equal(y.reshape(n, c), want)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = backend.to_numpy(layer.backward(backend.asarray(dout)))
    expected = np.zeros(shape, np.float32)
    for (b, ch), (i, j) in where.items():
        expected[b, i, j, ch] = dout.reshape(n, c)[b, ch]
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("name, cls", [("gap", layers.GlobalAveragePooling2D), ("gap_keepdims", layers.GlobalAveragePooling2D),
                                       ("gmp", layers.GlobalMaxPooling2D)])
def test_keras_numbers(impl, name, cls):
    args = json.loads((FIXTURES / "layers.json").read_text())[name]["args"]
    ref = np.load(FIXTURES / "layers.npz")
    x, r = ref[f"{name}/x"], ref[f"{name}/r"]
    layer = cls(**args)
    np.testing.assert_allclose(backend.to_numpy(layer(backend.asarray(x), training=True)), ref[f"{name}/y"],
                               rtol=1e-5, atol=1e-6)
    assert layer.output_shape == (None,) + ref[f"{name}/y"].shape[1:]
    # random data has no ties, where TensorFlow's reduce_max would split the gradient
    np.testing.assert_allclose(backend.to_numpy(layer.backward(backend.asarray(r))), ref[f"{name}/dx"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D])
def test_float64_gradient_checks(cls):
    backend.set_backend("numpy")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 3))   # distinct values: max is differentiable
    layer = cls(dtype="float64")
    layer(x)
    dout = rng.standard_normal((2, 3))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    numeric = numeric_grad(lambda: float((layer.forward(x) * dout).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-9)


def test_names_aliases_config_and_errors():
    gap, gmp = layers.GlobalAveragePooling2D(), layers.GlobalMaxPool2D(keepdims=True, name="g")
    assert gap.name.startswith("global_average_pooling2d") and gmp.name == "g"
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D and layers.GlobalMaxPool2D is layers.GlobalMaxPooling2D
    config = gmp.get_config()
    assert config == {"name": "g", "trainable": True, "dtype": "float32", "data_format": "channels_last", "keepdims": True}
    assert layers.GlobalMaxPooling2D.from_config(json.loads(json.dumps(config))).keepdims is True
    with pytest.raises(ValueError, match=r"global_average_pooling2d\w*: `keepdims` must be True or False. "
                                         r"Received: keepdims='yes'"):
        layers.GlobalAveragePooling2D(keepdims="yes")
    with pytest.raises(ValueError, match=r"global_max_pooling2d\w*: expected input of rank 4 \(batch, height, "
                                         r"width, channels\), got shape \(None, 5, 3\)"):
        layers.GlobalMaxPooling2D().compute_output_shape((None, 5, 3))
