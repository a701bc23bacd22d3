"""minicnn.ops.dropout and the Dropout / SpatialDropout2D layers: the mask, its
statistics, its reproducibility on every backend, the gradient, configs and errors."""
import math

import numpy as np
import pytest

from minicnn import backend, layers
from minicnn.models import Sequential
from minicnn.models.serialize import layer_from_entry
from minicnn.ops import dropout
from minicnn.utils import clear_session, set_random_seed
from naive import numeric_grad


@pytest.fixture(autouse=True)
def numpy_backend():
    """Tests start on the NumPy backend (the ``impl`` fixture then picks its own)."""
    previous = backend.backend_name()
    backend.set_backend("numpy")
    yield
    backend.set_backend(previous)


CASES = [((3, 5, 7, 6), None), ((3, 5, 7, 6), (3, 1, 1, 6)), ((7, 13), (1, 13)), ((4, 1, 5), (None, 1, 1)),
         ((300, 257), None),                      # the CPU kernel's size
         ((40, 41, 40, 3), (None, 1, 1, None))]   # the CPU kernel, whole channels


def naive_keep(shape, noise_shape, rate, seed, step):
    """The mask element by element from the formulas of the module docstring, in Python ints."""
    key = dropout.mix32(dropout.mix32((seed & 0xFFFFFFFF) ^ 0x9E3779B9) + step)
    threshold = min(round(rate * 2 ** 32), 2 ** 32 - 1)
    noise = [s if n is None else n for n, s in zip(noise_shape or shape, shape)]
    keep = np.zeros(shape, bool)
    for index in np.ndindex(*shape):
        n = 0
        for i, dim in zip(index, noise):   # the row-major index in the noise array
            n = n * dim + (i if dim > 1 else 0)
        h = n
        for _ in range(2):
            h = dropout.mix32(h + key)
        keep[index] = h >= threshold
    return keep


def test_the_reference_mask_is_the_formula():
    for shape, noise in CASES[:4]:
        mask = dropout.make_mask(shape, 0.4, 12345, 3, noise)
        np.testing.assert_array_equal(dropout.keep_reference(mask), naive_keep(shape, noise, 0.4, 12345, 3))


@pytest.mark.parametrize("shape,noise", CASES)
def test_every_implementation_gives_the_reference_bits(impl, shape, noise):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, ctx = dropout.forward(backend.asarray(x), 0.3, 77, 5, noise, training=True)
    mask = dropout.make_mask(shape, 0.3, 77, 5, noise)
    keep = dropout.keep_reference(mask)
    want = np.where(keep, x / np.float32(0.7), np.float32(0))
    assert np.array_equal(backend.to_numpy(y).view(np.uint32), want.view(np.uint32))
    dx = dropout.backward(backend.asarray(dy), ctx)   # the same mask, rebuilt from the recipe
    want = np.where(keep, dy / np.float32(0.7), np.float32(0))
    assert np.array_equal(backend.to_numpy(dx).view(np.uint32), want.view(np.uint32))


def test_the_drop_rate_and_the_scale():
    x = np.ones((400, 500), np.float32)
    for rate in (0.1, 0.5, 0.9):
        y, _ = dropout.forward(x, rate, 3, 0, training=True)
        dropped = np.mean(y == 0)
        assert abs(dropped - rate) < 0.005   # 200,000 draws: 7 standard deviations
        assert set(np.unique(y)) == {np.float32(0), np.float32(1) / np.float32(1 - rate)}
        assert abs(y.mean() - 1) < 0.02      # inverted dropout keeps the expected sum


def test_spatial_masks_drop_whole_channels_and_steps_draw_new_masks():
    x = np.ones((50, 4, 5, 40), np.float32)
    y, _ = dropout.forward(x, 0.5, 9, 0, (None, 1, 1, None), training=True)
    per_map = y.reshape(50, 20, 40)
    assert (per_map == per_map[:, :1]).all()            # one decision per (sample, channel)
    assert abs(np.mean(per_map[:, 0] == 0) - 0.5) < 0.05
    y1, _ = dropout.forward(x, 0.5, 9, 1, (None, 1, 1, None), training=True)
    assert 0.4 < np.mean((y == 0) != (y1 == 0)) < 0.6   # the next step: an independent mask
    y2, _ = dropout.forward(x, 0.5, 10, 0, (None, 1, 1, None), training=True)
    assert 0.4 < np.mean((y == 0) != (y2 == 0)) < 0.6   # another seed too


def test_inference_and_rate_zero_are_the_identity():
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    assert dropout.forward(x, 0.5, 1, 0, training=False)[0] is x
    y, ctx = dropout.forward(x, 0.0, 1, 0, training=True)
    assert y is x and dropout.backward(x, ctx) is x
    layer = layers.Dropout(0.5)
    assert layer(x) is x
    assert layer.step == 0   # inference does not move the generator


def test_gradient_is_the_same_mask_float64():
    x = np.random.default_rng(2).standard_normal((5, 6))
    r = np.random.default_rng(3).standard_normal((5, 6))
    mask = dropout.make_mask(x.shape, 0.4, 5, 2, dtype=np.float64)
    y, ctx = dropout.forward(x, 0.4, 5, 2, training=True)
    dx = dropout.backward(r, ctx)
    numeric = numeric_grad(lambda: float((dropout.apply_reference(x, mask) * r).sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-7, atol=1e-9)


def test_the_layer_is_reproducible_under_set_random_seed_and_counts_steps():
    x = np.ones((8, 10), np.float32)
    set_random_seed(4)
    a = layers.Dropout(0.5)
    set_random_seed(4)
    b = layers.Dropout(0.5)
    assert a.mask_seed == b.mask_seed and a.seed is None
    first = a(x, training=True)
    np.testing.assert_array_equal(first, b(x, training=True))
    assert a.step == 1
    assert not np.array_equal(first, a(x, training=True))   # step 1: a new mask
    assert a.step == 2 and a.get_weights() == []            # the counter is not a weight (as Keras)


def test_backward_uses_the_last_training_forwards_mask():
    layer = layers.Dropout(0.5, seed=11)
    x = np.ones((6, 7), np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.full((6, 7), 2.0, np.float32))
    np.testing.assert_array_equal(dx, 2 * y)
    assert layers.Dropout(0.5, seed=11).forward(x, training=True).tolist() == y.tolist()  # same seed, same mask
    with pytest.raises(RuntimeError, match="needs a forward"):
        layer.backward(dx)   # the context is used up


def test_summary_rows_configs_and_keras_configs():
    clear_session()
    m = Sequential([layers.Dense(6, input_shape=(4,)), layers.Dropout(0.25, noise_shape=(None, 6), seed=3),
                    layers.Dense(2)])
    rows = []
    m.summary(print_fn=rows.append)
    assert "dropout (Dropout)            (None, 6)                 0         " in rows
    assert m.layers[1].count_params() == 0 and m.layers[1].get_weights() == []
    config = m.layers[1].get_config()
    assert config == {"name": "dropout", "trainable": True, "dtype": "float32", "rate": 0.25, "seed": 3,
                      "noise_shape": [None, 6]}
    twin = layers.Dropout.from_config(config)
    assert (twin.rate, twin.seed, twin.noise_shape, twin.mask_seed) == (0.25, 3, (None, 6), 3)
    spatial = layers.SpatialDropout2D(0.1, seed=2)
    assert layers.SpatialDropout2D.from_config(spatial.get_config()).get_config() == spatial.get_config()
    # the configs Keras 3.15.1 writes
    keras_dropout = {"module": "keras.layers", "class_name": "Dropout", "config": {
        "name": "dropout_7", "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                          "config": {"name": "float32"}},
        "rate": 0.5, "seed": None, "noise_shape": None}}
    assert layer_from_entry(keras_dropout).rate == 0.5
    keras_spatial = {"class_name": "SpatialDropout2D", "config": {
        "rate": 0.2, "seed": 1, "name": "spatial_dropout2d_3", "dtype": "float32",
        "data_format": "channels_last"}}
    assert layer_from_entry(keras_spatial).name == "spatial_dropout2d_3"


def test_spatial_dropout_layer_on_nhwc():
    m = Sequential([layers.Conv2D(6, 3, input_shape=(7, 7, 2)), layers.SpatialDropout2D(0.5, seed=1)])
    x = np.random.default_rng(5).random((4, 7, 7, 2)).astype(np.float32)
    y = m.layers[1](m.layers[0](x), training=True)
    per_map = (y == 0).reshape(4, 25, 6)
    assert (per_map == per_map[:, :1]).all() and per_map.any() and not per_map.all()


def test_bad_arguments_name_the_layer():
    with pytest.raises(ValueError, match=r"dropout\w*: Invalid value received for argument `rate`. "
                                         r"Expected a float value in \[0, 1\).*Received: rate=1"):
        layers.Dropout(1)
    for rate in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="rate"):
            layers.Dropout(rate)
    with pytest.raises(ValueError, match="noise_shape.*positive integers or None"):
        layers.Dropout(0.5, noise_shape=(None, 0))
    with pytest.raises(ValueError, match="noise_shape.*tuple or list"):
        layers.Dropout(0.5, noise_shape="abc")
    with pytest.raises(ValueError, match=r"dropout\w*: noise_shape must have one entry per input axis"):
        Sequential([layers.Dense(3, input_shape=(2,)), layers.Dropout(0.5, noise_shape=(None, 3, 1))])
    with pytest.raises(ValueError, match="the input's dim, 1 or None"):
        Sequential([layers.Dense(3, input_shape=(2,)), layers.Dropout(0.5, noise_shape=(None, 2))])
    with pytest.raises(TypeError, match=r"`seed` must be an int or None. Received: seed=1.5"):
        layers.Dropout(0.5, seed=1.5)
    with pytest.raises(ValueError, match=r"spatial_dropout2d\w*.*expected ndim=4, found ndim=2"):
        Sequential([layers.Dense(3, input_shape=(2,)), layers.SpatialDropout2D(0.5)])
    with pytest.raises(ValueError, match="data_format"):
        layers.SpatialDropout2D(0.5, data_format="channels_first")


def test_noise_layout_merges_axes():
    dims, strides = dropout.noise_layout((8, 4, 5, 3), (8, 1, 1, 3))
    assert dims.tolist() == [8, 20, 3] and strides.tolist() == [3, 0, 1]
    dims, strides = dropout.noise_layout((8, 4, 5, 3), (8, 4, 5, 3))
    assert dims.tolist() == [480] and strides.tolist() == [1]
    dims, strides = dropout.noise_layout((1, 1), (1, 1))
    assert dims.tolist() == [1] and strides.tolist() == [0]
    assert math.prod(dropout.noise_layout((2, 3, 4), (1, 3, 1))[0]) == 24
