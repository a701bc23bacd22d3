"""minicnn.ops.batch_norm and the BatchNormalization layer: naive loops, finite
differences, every implementation, Keras's numbers (tests/fixtures/batch_norm,
made by tests/make_batch_norm_fixtures.py), summary, configs, files and errors."""
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend, layers, models
from minicnn.models import Sequential
from minicnn.models.serialize import layer_from_entry
from minicnn.ops import batch_norm
from minicnn.optimizers import SGD
from minicnn.utils import clear_session, set_random_seed, to_categorical
from naive import numeric_grad

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "batch_norm"
SHAPES = [((3, 5, 7, 6), -1), ((7, 13), -1), ((3, 5, 7, 6), 1), ((3, 5, 7, 6), 2),
          ((4, 33, 35, 16), 3)]   # the last: the compiled CPU kernels' size


@pytest.fixture(autouse=True)
def numpy_backend():
    """Tests start on the NumPy backend (the ``impl`` fixture then picks its own)."""
    previous = backend.backend_name()
    backend.set_backend("numpy")
    yield
    backend.set_backend(previous)


def naive(x, axis, gamma, beta, moving_mean, moving_var, momentum, eps, training):
    """(y, new moving mean, new moving var) channel by channel, value by value, float64."""
    x = x.astype(np.float64)
    y = np.zeros_like(x)
    new_mean, new_var = moving_mean.astype(np.float64), moving_var.astype(np.float64)
    for c in range(x.shape[axis]):
        values = [x[i] for i in np.ndindex(x.shape) if i[axis] == c]
        mean, var = moving_mean[c], moving_var[c]
        if training:
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / len(values)
            new_mean[c] = moving_mean[c] * momentum + mean * (1 - momentum)
            new_var[c] = moving_var[c] * momentum + var * (1 - momentum)
        for i in np.ndindex(x.shape):
            if i[axis] == c:
                y[i] = gamma[c] * (x[i] - mean) / np.sqrt(var + eps) + beta[c]
    return y, new_mean, new_var


def random_case(shape, axis, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[axis]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    params = [rng.uniform(0.5, 2, c), rng.standard_normal(c), rng.standard_normal(c), rng.uniform(0.5, 2, c)]
    return x, [p.astype(np.float32) for p in params], rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_every_implementation_matches_the_naive_loops_and_the_reference(impl, shape, axis, training):
    x, params, dy = random_case(shape, axis)
    on = [backend.asarray(a) for a in [x] + params]
    y, ctx, moving = batch_norm.forward(*on, axis=axis, momentum=0.9, epsilon=1e-3, training=training)
    if shape[0] != 4:   # the naive loops take too long on the large case
        want, mean, var = naive(x, axis, *params, 0.9, 1e-3, training)
        np.testing.assert_allclose(backend.to_numpy(y), want, rtol=1e-5, atol=1e-5)
    lay = batch_norm.layout(shape, axis % len(shape))
    if training:
        _, _, (mean, var) = batch_norm.forward_reference(x, *params, lay, 0.9, 1e-3, True)
        np.testing.assert_allclose(backend.to_numpy(moving[0]), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(moving[1]), var, rtol=1e-5, atol=1e-6)
    else:
        assert moving is None
    # backward against the float64 reference (itself checked by finite differences below)
    x64, p64 = x.astype(np.float64), [p.astype(np.float64) for p in params]
    _, ctx64, _ = batch_norm.forward_reference(x64, *p64, lay, 0.9, 1e-3, training)
    want = batch_norm.backward_reference(dy.astype(np.float64), ctx64)
    got = batch_norm.backward(backend.asarray(dy), ctx)
    for g, w in zip(got, want):
        scale = np.abs(w).max()
        np.testing.assert_allclose(backend.to_numpy(g), w, rtol=1e-4, atol=2e-5 * scale)


@pytest.mark.parametrize("shape,axis", [((4, 3), -1), ((2, 3, 2, 3), -1), ((3, 2, 2, 2), 1)])
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_finite_differences_float64(shape, axis, training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[axis]
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    mm, mv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    r = rng.standard_normal(shape)

    def loss():
        y, _, _ = batch_norm.forward(x, gamma, beta, mm, mv, axis=axis, training=training)
        return float((y * r).sum())

    _, ctx, _ = batch_norm.forward(x, gamma, beta, mm, mv, axis=axis, training=training)
    dx, dgamma, dbeta = batch_norm.backward(r, ctx)
    for got, arr in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        np.testing.assert_allclose(got, numeric_grad(loss, arr), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", ["nhwc", "dense", "plain"])
def test_keras_numbers(impl, case):
    f = np.load(FIXTURES / f"{case}.npz")
    x, r = f["x"], f["r"]
    layer = layers.BatchNormalization(momentum=float(f["momentum"]), epsilon=float(f["epsilon"]),
                                      center=bool(f["center"]), scale=bool(f["scale"]))
    n_trained = int(f["center"]) + int(f["scale"])
    layer.build((None,) + x.shape[1:])
    layer.set_weights([f[f"w{i}"] for i in range(n_trained + 2)])
    close = dict(rtol=1e-5, atol=1e-5)
    y = layer.forward(backend.asarray(x), training=True)
    np.testing.assert_allclose(backend.to_numpy(y), f["y_train"], **close)
    np.testing.assert_allclose(layer.get_weights()[-2], f["moving_mean"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[-1], f["moving_variance"], rtol=1e-6, atol=1e-6)
    dx = layer.backward(backend.asarray(r))
    np.testing.assert_allclose(backend.to_numpy(dx), f["dx_train"], **close)
    for i, g in enumerate(layer.grads):
        np.testing.assert_allclose(backend.to_numpy(g), f[f"dw{i}_train"], rtol=1e-5, atol=1e-4)
    y = layer.forward(backend.asarray(x), training=False)
    np.testing.assert_allclose(backend.to_numpy(y), f["y_infer"], **close)
    # frozen: Keras 3 runs it in inference mode even while training, and updates nothing
    layer.trainable = False
    y = layer.forward(backend.asarray(x), training=True)
    np.testing.assert_allclose(backend.to_numpy(y), f["y_frozen"], **close)
    np.testing.assert_allclose(layer.get_weights()[-2], f["moving_mean_frozen"], rtol=1e-6, atol=1e-6)
    dx = layer.backward(backend.asarray(r))
    np.testing.assert_allclose(backend.to_numpy(dx), f["dx_infer"], **close)
    for i, g in enumerate(layer.grads):
        np.testing.assert_allclose(backend.to_numpy(g), f[f"dw{i}_infer"], rtol=1e-5, atol=1e-4)
    assert layer.gradients_and_weights() == [] and layer.trainable_weights == []


def test_a_failed_forward_changes_no_statistic(monkeypatch):
    layer = layers.BatchNormalization()
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    layer(x)   # build
    before = layer.get_weights()

    def broken(*args):
        raise MemoryError("out of memory in the normalize pass")

    monkeypatch.setattr(batch_norm, "affine_reference", broken)
    with pytest.raises(MemoryError):
        layer.forward(x, training=True)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


BN_SUMMARY = [
    "conv2d (Conv2D)              (None, 26, 26, 64)        640       ",
    "batch_normalization (BatchNo (None, 26, 26, 64)        256       ",
    "flatten (Flatten)            (None, 43264)             0         ",
    "dense (Dense)                (None, 10)                432650    ",
    "batch_normalization_1 (Batch (None, 10)                30        ",
    "Total params: 433,576", "Trainable params: 433,428", "Non-trainable params: 148"]


def test_summary_counts_the_moving_statistics_as_non_trainable():
    clear_session()
    m = Sequential([layers.Conv2D(64, 3, input_shape=(28, 28, 1)), layers.BatchNormalization(),
                    layers.Flatten(), layers.Dense(10), layers.BatchNormalization(scale=False)])
    lines = []
    m.summary(print_fn=lines.append)
    assert [line for line in lines if line[:1].isalpha() and "Layer (type)" not in line][1:] == BN_SUMMARY
    assert [tuple(w.shape) for w in m.layers[1].weights] == [(64,)] * 4
    assert len(m.non_trainable_weights) == 4 and m.layers[4].weight_names == ["beta", "moving_mean",
                                                                              "moving_variance"]


KERAS_CONFIG = {"module": "keras.layers", "class_name": "BatchNormalization", "config": {
    "name": "batch_normalization", "trainable": True, "dtype": {
        "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
    "axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
    "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None},
    "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": None},
    "moving_mean_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                "registered_name": None},
    "moving_variance_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {},
                                    "registered_name": None},
    "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None,
    "synchronized": False, "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99},
    "registered_name": None}   # as Keras 3.15.1 writes it in a .keras file


def test_configs_round_trip_and_keras_configs_load():
    layer = layers.BatchNormalization(axis=3, momentum=0.9, epsilon=1e-5, center=False, name="bn")
    config = layer.get_config()
    assert config["momentum"] == 0.9 and config["center"] is False and config["renorm"] is False
    twin = layers.BatchNormalization.from_config(config)
    assert twin.get_config() == config
    keras_made = layer_from_entry(KERAS_CONFIG)
    assert (keras_made.momentum, keras_made.epsilon, keras_made.axis) == (0.99, 0.001, -1)
    ours = {k: v for k, v in keras_made.get_config().items() if k != "dtype"}
    assert ours == {k: v for k, v in KERAS_CONFIG["config"].items() if k != "dtype"}
    keras2 = {"class_name": "BatchNormalization", "config": {   # tf.keras 2 saves the built axis as a list
        "name": "batch_normalization_2", "trainable": True, "dtype": "float32", "axis": [3],
        "momentum": 0.9, "epsilon": 1e-5, "center": True, "scale": False}}
    assert layer_from_entry(keras2).axis == 3


def test_save_and_load_a_model_with_both_layers(tmp_path):
    pytest.importorskip("h5py")
    set_random_seed(0)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 2)),
                    layers.BatchNormalization(momentum=0.5), layers.Dropout(0.3), layers.Flatten(),
                    layers.Dense(3, activation="softmax")])
    m.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    x, y = rng.random((16, 8, 8, 2)).astype(np.float32), to_categorical(np.arange(16) % 3, 3)
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert not np.allclose(m.layers[1].get_weights()[2], 0)   # the moving mean moved
    m.save(tmp_path / "both.keras")
    loaded = models.load_model(tmp_path / "both.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in m.layers]
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    assert loaded.layers[1].momentum == 0.5 and loaded.layers[2].rate == 0.3


def test_bad_arguments_are_refused_before_any_work():
    for eps in (0, -1e-3, float("nan"), float("inf"), "1e-3"):
        with pytest.raises(ValueError, match=r"batch_normalization\w*: `epsilon` must be a finite number > 0"):
            layers.BatchNormalization(epsilon=eps)
    for momentum in (-0.1, 1.5, None):
        with pytest.raises(ValueError, match=r"`momentum` must be a number in \[0, 1\]"):
            layers.BatchNormalization(momentum=momentum)
    with pytest.raises(ValueError, match=r"batch_normalization\w*: Axis 4 is out of bounds for input shape "
                                         r"\(None, 8, 8, 3\). Received: axis=4"):
        Sequential([layers.BatchNormalization(axis=4, input_shape=(8, 8, 3))])
    with pytest.raises(ValueError, match="cannot be the batch axis"):
        Sequential([layers.BatchNormalization(axis=-3, input_shape=(8, 3))])
    with pytest.raises(ValueError, match="`axis` must be one int"):
        layers.BatchNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match=r"`beta_regularizer` is not supported by minicnn"):
        layers.BatchNormalization(beta_regularizer="l2")
    with pytest.raises(ValueError, match="training needs at least one value per channel"):
        batch_norm.forward(np.zeros((0, 3), np.float32), None, None, np.zeros(3, np.float32),
                           np.ones(3, np.float32), training=True)
    with pytest.raises(ValueError, match=r"moving_mean must have shape \(3,\)"):
        batch_norm.forward(np.zeros((2, 3), np.float32), None, None, np.zeros(4, np.float32),
                           np.ones(3, np.float32))


def test_a_dense_model_trains_and_predict_uses_the_moving_statistics():
    set_random_seed(1)
    m = Sequential([layers.Dense(5, input_shape=(3,)), layers.BatchNormalization(momentum=0.0),
                    layers.Dense(2, activation="softmax")])
    m.compile(SGD(learning_rate=0.0), "categorical_crossentropy")   # the Dense weights stay put
    x = np.random.default_rng(4).random((8, 3)).astype(np.float32) * 10
    m.fit(x, np.eye(2)[np.arange(8) % 2], batch_size=8, verbose=0)
    bn = m.layers[1]
    h = m.layers[0](x)  # momentum 0: the moving statistics are the (one) batch's
    np.testing.assert_allclose(bn.get_weights()[2], h.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.get_weights()[3], h.var(0), rtol=1e-4)
    np.testing.assert_allclose(bn(h), (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3), rtol=1e-4, atol=1e-5)
