"""minicnn.ops.leaky_relu and the LeakyReLU layer: every implementation against the formula."""
import numpy as np
import pytest

from minicnn import backend, layers
from minicnn.models import Sequential
from minicnn.ops import leaky_relu


def naive(x, slope):
    return np.array([v if v > 0 else slope * v for v in x.ravel()]).reshape(x.shape)


@pytest.mark.parametrize("shape", [(3, 5, 4, 2), (1, 7), (300, 257)])   # the last one: the CPU kernel
def test_forward_and_backward_match_the_formula(impl, shape, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[0] = 0.0  # x = 0 is on the slope side, as in Keras (x > 0 passes through)
    dy = rng.standard_normal(shape).astype(np.float32)
    y, ctx = leaky_relu.forward(backend.asarray(x), 0.2, training=True)
    np.testing.assert_array_equal(backend.to_numpy(y), naive(x, np.float32(0.2)).astype(np.float32))
    dx = leaky_relu.backward(backend.asarray(dy), ctx, 0.2)
    want = np.where(x > 0, dy, np.float32(0.2) * dy)
    np.testing.assert_array_equal(backend.to_numpy(dx), want)


def test_the_cpu_kernel_keeps_nan_and_gives_the_reference_bits():
    from minicnn.backend.cpu import runtime
    if not runtime().kernels:
        pytest.skip("needs Numba")
    backend.set_backend("numpy")
    x = np.random.default_rng(1).standard_normal(1 << 17).astype(np.float32)
    x[5] = np.nan
    y, _ = leaky_relu.forward(x, 0.3)
    ref = leaky_relu.forward_reference(x, 0.3)
    assert np.array_equal(y.view(np.uint32), ref.view(np.uint32))


def test_the_layer_trains_has_no_weights_and_checks_its_gradient():
    backend.set_backend("numpy")
    layer = layers.LeakyReLU(negative_slope=0.1, dtype="float64")
    x = np.random.default_rng(2).standard_normal((4, 3))
    y = layer.forward(x, training=True)
    dout = np.random.default_rng(3).standard_normal((4, 3))
    dx = layer.backward(dout)
    eps = 1e-6
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        numeric[i] = ((leaky_relu.forward_reference(xp, 0.1) - leaky_relu.forward_reference(xm, 0.1)) * dout).sum() / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6)
    m = Sequential([layers.Dense(5, input_shape=(3,)), layers.LeakyReLU(), layers.Dense(2, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy")
    assert m.layers[1].name.startswith("leaky_re_lu") and m.layers[1].count_params() == 0
    assert m.layers[1].negative_slope == 0.3
    m.fit(np.random.default_rng(4).random((16, 3)), np.eye(2)[np.arange(16) % 2], verbose=0)


def test_keras_2_alpha_and_bad_slopes():
    with pytest.warns(DeprecationWarning, match="Use `negative_slope` instead"):
        assert layers.LeakyReLU(alpha=0.2).negative_slope == 0.2
    with pytest.raises(ValueError, match=r"leaky_re_lu\w*: `negative_slope` must be a finite number >= 0. "
                                         r"Received: negative_slope=-1"):
        layers.LeakyReLU(negative_slope=-1)
    with pytest.raises(ValueError, match="slope must be a finite number"):
        leaky_relu.forward(np.zeros(3, np.float32), float("nan"))
