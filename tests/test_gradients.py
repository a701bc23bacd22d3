"""Every layer's backward pass against float64 central finite differences.

Runs on the NumPy backend (the only one that computes in float64)."""
import numpy as np
import pytest

from minicnn import backend
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from naive import numeric_grad


@pytest.fixture(autouse=True)
def numpy_backend():
    backend.set_backend("numpy")



def check_layer(layer, x_shape, seed=0, distinct=False):
    """Compare backward's dx and weight grads with finite differences of sum(out * r)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    if distinct:  # max pooling: keep values apart so no window has a near-tie
        x = rng.permutation(np.arange(x.size, dtype=np.float64)).reshape(x_shape) * 0.1
    layer._build_for((None,) + x_shape[1:])
    r = rng.standard_normal((x_shape[0],) + layer.output_shape[1:])

    def loss():
        return float((layer.forward(x.copy()) * r).sum())

    layer.forward(x.copy(), training=True)
    dx = layer.backward(r.copy())
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-7)
    for w, g in zip(layer.weights, layer.grads):
        np.testing.assert_allclose(g, numeric_grad(loss, w), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs, x_shape", [
    (dict(filters=3, kernel_size=3), (2, 6, 5, 2)),
    (dict(filters=2, kernel_size=(2, 3), strides=(2, 1)), (2, 7, 6, 3)),
    (dict(filters=2, kernel_size=3, strides=2, padding="same"), (1, 7, 5, 2)),
    (dict(filters=4, kernel_size=(3, 2), padding="SAME", activation="relu"), (2, 5, 4, 1)),
    (dict(filters=2, kernel_size=1, activation="tanh", use_bias=False), (1, 3, 3, 3)),
    (dict(filters=2, kernel_size=2, strides=3, padding="same", activation="sigmoid"), (2, 8, 7, 2)),
])
def test_conv2d_gradients(kwargs, x_shape):
    check_layer(Conv2D(dtype="float64", **kwargs), x_shape)


@pytest.mark.parametrize("kwargs, x_shape", [
    (dict(pool_size=2), (2, 6, 4, 3)),
    (dict(pool_size=2), (1, 5, 7, 2)),                       # valid, odd size: last row dropped
    (dict(pool_size=3, strides=2), (2, 7, 7, 1)),            # overlapping windows
    (dict(pool_size=(2, 3), strides=(1, 2), padding="same"), (1, 5, 5, 2)),
    (dict(pool_size=2, padding="same"), (2, 5, 3, 1)),       # SAME: padded cells ignored
])
def test_maxpool_gradients(kwargs, x_shape):
    check_layer(MaxPooling2D(dtype="float64", **kwargs), x_shape, distinct=True)


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_gradients(activation):
    check_layer(Dense(4, activation=activation, dtype="float64"), (3, 5))


def test_flatten_gradients():
    check_layer(Flatten(dtype="float64"), (2, 3, 2, 2))
