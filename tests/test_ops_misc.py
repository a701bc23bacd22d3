"""nn.conv2d (the tutorial's example), RMSprop/SGD against their formulas, losses, utils."""
import numpy as np
import pytest

from minicnn import losses, nn, optimizers, backend
from minicnn.utils import set_random_seed, to_categorical


def test_nn_conv2d_reproduces_the_tutorial():
    x_in = np.array([[[[2], [1], [2], [0], [1]], [[1], [3], [2], [2], [3]], [[1], [1], [3], [3], [0]],
                      [[2], [2], [0], [1], [1]], [[0], [0], [3], [1], [2]]]])
    kernel_in = np.array([[[[2, 0.1]], [[3, 0.2]]], [[[0, 0.3]], [[1, 0.4]]]])
    y = nn.conv2d(x_in, kernel_in, strides=[1, 1, 1, 1], padding="VALID")
    assert y.shape == (1, 4, 4, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y[0, 0], [[10, 1.9], [10, 2.2], [6, 1.6], [6, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(y[0, 3], [[10, 0.6], [7, 1.4], [4, 1.5], [7, 1.4]], rtol=1e-6)
    # strides as an int or a pair, padding in lower case
    np.testing.assert_array_equal(nn.conv2d(x_in, kernel_in, 1, "valid"), y)
    assert nn.conv2d(x_in, kernel_in, (2, 2), "SAME").shape == (1, 3, 3, 2)


def test_nn_conv2d_rejects_bad_arguments():
    x = np.zeros((1, 5, 5, 1))
    with pytest.raises(ValueError, match="padding"):
        nn.conv2d(x, np.zeros((2, 2, 1, 1)), 1, "full")
    with pytest.raises(ValueError, match="filters"):
        nn.conv2d(x, np.zeros((2, 2, 3, 1)), 1, "VALID")
    with pytest.raises(ValueError, match="strides"):
        nn.conv2d(x, np.zeros((2, 2, 1, 1)), [2, 1, 1, 1], "VALID")


def test_rmsprop_matches_keras3_formula():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) * 1e-2 for _ in range(3)]
    var = backend.asarray(p0.copy())
    opt = optimizers.RMSprop()
    assert (opt.learning_rate, opt.rho, opt.epsilon) == (0.001, 0.9, 1e-7)
    p, v = p0.astype(np.float64), np.zeros((3, 4))
    for g in grads:
        opt.apply_gradients([(backend.asarray(g), var)])
        v = 0.9 * v + 0.1 * g * g
        p = p - 0.001 * g / np.sqrt(v + 1e-7)   # epsilon INSIDE the root (Keras 3)
    np.testing.assert_allclose(backend.to_numpy(var), p, rtol=1e-5, atol=1e-7)
    assert opt.iterations == 3


def test_rmsprop_first_step_for_a_tiny_gradient():
    # eps inside the sqrt: a 1e-4 gradient moves by lr*g/sqrt(0.1 g^2 + eps), not lr*g/(sqrt(..)+eps)
    var = backend.asarray(np.zeros(1, np.float32))
    optimizers.RMSprop().apply_gradients([(backend.asarray(np.full(1, 1e-4, np.float32)), var)])
    expected = -0.001 * 1e-4 / np.sqrt(0.1 * 1e-8 + 1e-7)
    np.testing.assert_allclose(backend.to_numpy(var), [expected], rtol=1e-5)


def test_sgd_matches_formula():
    var = backend.asarray(np.ones(5, np.float32))
    optimizers.get("sgd").apply_gradients([(backend.asarray(np.arange(5, dtype=np.float32)), var)])
    np.testing.assert_allclose(backend.to_numpy(var), 1 - 0.01 * np.arange(5), rtol=1e-6)


def test_optimizer_lookup_and_errors():
    assert isinstance(optimizers.get("RMSprop"), optimizers.RMSprop)
    with pytest.raises(ValueError, match="Unknown optimizer: 'adamx'"):
        optimizers.get("adamx")
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate=-1)


def test_categorical_crossentropy_clips_and_normalises_like_keras():
    y = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    p = np.array([[0.2, 0.6, 0.2], [0.0, 0.5, 0.5]], np.float32)
    got = losses.categorical_crossentropy(y, p)
    np.testing.assert_allclose(got, [-np.log(0.6), -np.log(1e-7)], rtol=1e-5)
    # unnormalised rows are divided by their sum first
    np.testing.assert_allclose(losses.categorical_crossentropy([[0, 1]], [[1.0, 3.0]]), [-np.log(0.75)], rtol=1e-6)
    np.testing.assert_allclose(losses.CategoricalCrossentropy()(y, p), got.mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        losses.categorical_crossentropy([[0, 1]], [[0.5, 0.25, 0.25]])


def test_to_categorical_and_seed():
    np.testing.assert_array_equal(to_categorical([0, 2, 1], 3), np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert to_categorical(np.array([[3], [1]])).shape == (2, 4)
    with pytest.raises(ValueError, match="num_classes"):
        to_categorical([5], num_classes=3)
    from minicnn.layers import Dense
    set_random_seed(7)
    a = Dense(3, input_shape=(4,))
    a._build_for((None, 4))
    set_random_seed(7)
    b = Dense(3)
    b._build_for((None, 4))
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    limit = np.sqrt(6 / (4 + 3))
    assert np.abs(a.get_weights()[0]).max() <= limit
