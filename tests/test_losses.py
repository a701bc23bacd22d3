"""minicnn.losses: Keras 3's numbers (fixtures), float64 gradient checks, fusion, names, training.

The Keras numbers are in tests/fixtures/losses/losses.npz (make_loss_fixtures.py regenerates them).
"""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from naive import ACTIVATIONS, numeric_grad
from minicnn import backend, layers, losses, optimizers
from minicnn.losses.base import as_pair
from minicnn.utils import set_random_seed, to_categorical

KERAS = np.load(Path(__file__).resolve().parent / "fixtures" / "losses" / "losses.npz")
CASES = {
    "cce": lambda: losses.CategoricalCrossentropy(),
    "cce_soft_labels": lambda: losses.CategoricalCrossentropy(),
    "cce_smoothing": lambda: losses.CategoricalCrossentropy(label_smoothing=0.1),
    "cce_logits": lambda: losses.CategoricalCrossentropy(from_logits=True),
    "cce_logits_smoothing": lambda: losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
    "scce": lambda: losses.SparseCategoricalCrossentropy(),
    "scce_logits": lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
    "bce": lambda: losses.BinaryCrossentropy(),
    "bce_one_unit": lambda: losses.BinaryCrossentropy(),
    "bce_smoothing": lambda: losses.BinaryCrossentropy(label_smoothing=0.2),
    "bce_logits": lambda: losses.BinaryCrossentropy(from_logits=True),
    "bce_logits_smoothing": lambda: losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    "mse": lambda: losses.MeanSquaredError(),
    "mae": lambda: losses.MeanAbsoluteError(),
}


def keras_case(name):
    return (CASES[name](),) + tuple(KERAS[f"{name}/{k}"] for k in ("y_true", "y_pred", "sample_weight"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_reductions_and_gradients_match_keras(impl, name):
    loss, y, p, sw = keras_case(name)
    np.testing.assert_allclose(loss.call(y, p), KERAS[f"{name}/values"], rtol=1e-5, atol=1e-6)
    assert loss(y, p) == pytest.approx(float(KERAS[f"{name}/mean"]), rel=1e-5)
    assert loss(y, p, sample_weight=sw) == pytest.approx(float(KERAS[f"{name}/weighted"]), rel=1e-5)
    summed = type(loss)(**{**loss.get_config(), "reduction": "sum"})
    assert summed(y, p) == pytest.approx(float(KERAS[f"{name}/sum"]), rel=1e-5)
    # the training side: d mean / d y_pred, as tf.GradientTape takes it (no fused activation)
    yy, pp = as_pair(y, p, name, loss.sparse_labels)
    grad, wrt_preactivation = loss.gradient(backend.asarray(pp), backend.asarray(yy), "linear")
    assert not wrt_preactivation
    np.testing.assert_allclose(backend.to_numpy(grad), KERAS[f"{name}/grad"], rtol=1e-5, atol=1e-7)


def test_the_function_forms_are_keras_s():
    y, p = KERAS["cce_smoothing/y_true"], KERAS["cce_smoothing/y_pred"]
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p, label_smoothing=0.1),
                               KERAS["cce_smoothing/values"], rtol=1e-5)
    z = KERAS["scce_logits/y_pred"]
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(KERAS["scce_logits/y_true"], z, from_logits=True),
                               KERAS["scce_logits/values"], rtol=1e-5)
    np.testing.assert_allclose(losses.binary_crossentropy(KERAS["bce_logits/y_true"], KERAS["bce_logits/y_pred"],
                                                          from_logits=True), KERAS["bce_logits/values"], rtol=1e-5)
    for f, name in ((losses.mse, "mse"), (losses.MAE, "mae"), (losses.mean_squared_error, "mse")):
        np.testing.assert_allclose(f(KERAS[f"{name}/y_true"], KERAS[f"{name}/y_pred"]), KERAS[f"{name}/values"],
                                   rtol=1e-6)
    # Keras's docstring examples
    assert losses.BinaryCrossentropy(from_logits=True)([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]) == \
        pytest.approx(0.8654, abs=1e-4)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]),
                               [0.0513, 2.303], atol=1e-3)


def finite_difference_cases():
    rng = np.random.default_rng(5)
    p = ACTIVATIONS["softmax"](rng.normal(0, 1, (4, 5)))
    yo = np.eye(5)[rng.integers(0, 5, 4)]
    z = rng.normal(0, 2, (4, 5))
    pb, yb = rng.uniform(0.05, 0.95, (4, 3)), rng.integers(0, 2, (4, 3)).astype(float)
    zb = rng.normal(0, 2, (4, 3))
    r, t = rng.normal(0, 1, (4, 2)), rng.normal(0, 1, (4, 2))
    p3 = ACTIVATIONS["softmax"](rng.normal(0, 1, (2, 3, 4)))
    y3 = np.eye(4)[rng.integers(0, 4, (2, 3))]
    return {   # loss, y, input, the output's activation (the gradient is w.r.t. its input if fused)
        "cce": (losses.CategoricalCrossentropy(), yo, rng.uniform(0.1, 1, (4, 5)), "linear"),
        "cce_smoothing": (losses.CategoricalCrossentropy(label_smoothing=0.3), yo, p, "linear"),
        "cce_fused_softmax": (losses.CategoricalCrossentropy(label_smoothing=0.1), yo, z, "softmax"),
        "cce_logits": (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), yo, z, "linear"),
        "scce_logits": (losses.SparseCategoricalCrossentropy(from_logits=True), yo, z, "linear"),
        "cce_rank3": (losses.CategoricalCrossentropy(), y3, p3, "linear"),
        "bce": (losses.BinaryCrossentropy(label_smoothing=0.1), yb, pb, "linear"),
        "bce_fused_sigmoid": (losses.BinaryCrossentropy(), yb, zb, "sigmoid"),
        "bce_logits": (losses.BinaryCrossentropy(from_logits=True), yb, zb, "linear"),
        "mse": (losses.MeanSquaredError(), t, r, "linear"),
        "mae": (losses.MeanAbsoluteError(), t, r, "linear"),
        "mse_rank3": (losses.MeanSquaredError(), y3, p3, "linear"),
    }


@pytest.mark.parametrize("name", sorted(finite_difference_cases()))
def test_every_gradient_matches_finite_differences_in_float64(name):
    backend.set_backend("numpy")
    loss, y, x, act = finite_difference_cases()[name]
    w = np.random.default_rng(9).uniform(0, 2, len(x))
    n_values = y.size // y.shape[-1]

    def output():   # what the model's last layer gives the loss
        return ACTIVATIONS[act](x) if act != "linear" else x

    def mean_loss():
        return float(loss.weighted_sum(output(), y)) / n_values

    def weighted_loss():
        return float(loss.weighted_sum(output(), y, w)) / n_values

    grad, fused = loss.gradient(output(), y, act)
    assert fused == (act != "linear") and grad.dtype == np.float64
    np.testing.assert_allclose(grad, numeric_grad(mean_loss, x), rtol=1e-6, atol=1e-9)
    grad, _ = loss.weighted_gradient(output(), y, act, w)
    np.testing.assert_allclose(grad, numeric_grad(weighted_loss, x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["cce_logits_smoothing", "scce", "bce_smoothing", "bce_logits", "mae"])
def test_every_device_gives_the_reference_numbers(impl, name):
    loss, y, p, _ = keras_case(name)
    yy, pp = as_pair(y, p, name, loss.sparse_labels)
    loss._warned = True   # its softmax-after-logits warning is tested below
    for act in ("linear", "softmax", "sigmoid"):
        got = loss.gradient(backend.asarray(pp), backend.asarray(yy), act)
        backend.set_backend("numpy")
        want = loss.gradient(pp, yy, act)
        backend.set_backend({"reference": "numpy", "cpu_kernels": "numpy", "gpu": "cupy"}.get(impl, impl))
        assert got[1] == want[1]
        np.testing.assert_allclose(backend.to_numpy(got[0]), want[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(backend.to_numpy(loss.sample_losses(backend.asarray(pp), backend.asarray(yy))),
                               KERAS[f"{name}/values"], rtol=1e-5, atol=1e-6)


def test_the_loss_decides_the_fusion_with_the_output_activation():
    backend.set_backend("numpy")
    p = np.array([[0.2, 0.8]], np.float32)
    y = np.array([[0.0, 1.0]], np.float32)
    assert losses.CategoricalCrossentropy().gradient(p, y, "softmax")[1]
    assert not losses.CategoricalCrossentropy().gradient(p, y, "sigmoid")[1]
    assert losses.BinaryCrossentropy().gradient(p, y, "sigmoid")[1]
    assert not losses.BinaryCrossentropy().gradient(p, y, "softmax")[1]
    assert not losses.BinaryCrossentropy(from_logits=True).gradient(p, y, "sigmoid")[1]
    assert not losses.MeanSquaredError().gradient(p, y, "softmax")[1]
    loss = losses.CategoricalCrossentropy(from_logits=True)
    with pytest.warns(UserWarning, match="received `from_logits=True`, but the model's output was produced by a "
                                         "softmax activation"):
        assert not loss.gradient(p, y, "softmax")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # once per loss
        loss.gradient(p, y, "softmax")


def classifier(last_activation, seed=0):
    set_random_seed(seed)
    return keras.Sequential([layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1)), layers.Flatten(),
                             layers.Dense(4, activation=last_activation)])


def learnable_data(n=48):
    rng = np.random.default_rng(0)
    x = rng.random((n, 6, 6, 1)).astype(np.float32)
    labels = (x[:, :3].mean(axis=(1, 2, 3)) > x[:, 3:].mean(axis=(1, 2, 3))).astype(int) * 2 + (x[:, 0, 0, 0] > 0.5)
    return x, labels


def test_from_logits_with_a_linear_last_layer_trains_as_the_softmax_model_does():
    x, labels = learnable_data()
    logits = classifier("linear")
    logits.compile(optimizers.SGD(0.5), losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    probs = classifier("softmax")
    probs.compile(optimizers.SGD(0.5), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = logits.fit(x, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    h2 = probs.fit(x, labels, batch_size=16, epochs=3, shuffle=False, verbose=0)
    # the same fused gradient (softmax(z) - y) / batch: the same training, to float32 rounding
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-4)
    for a, b in zip(logits.get_weights(), probs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert h1.history["loss"][-1] < h1.history["loss"][0]
    p = logits.predict(x, verbose=0)
    assert not np.allclose(p.sum(1), 1)   # logits, not probabilities


def test_binary_and_regression_models_train():
    x, labels = learnable_data()
    m = keras.Sequential([layers.Flatten(input_shape=(6, 6, 1)), layers.Dense(1, activation="sigmoid")])
    m.compile(optimizers.SGD(1.0), "binary_crossentropy", metrics=["accuracy"])
    h = m.fit(x, labels >= 2, batch_size=8, epochs=8, verbose=0)   # labels (n,): read as (n, 1)
    assert h.history["loss"][-1] < h.history["loss"][0] and h.history["accuracy"][-1] > 0.7
    r = keras.Sequential([layers.Flatten(input_shape=(6, 6, 1)), layers.Dense(2)])
    target = np.stack([x.mean(axis=(1, 2, 3)), x[:, 0, 0, 0]], 1)
    r.compile(optimizers.SGD(0.1), loss=losses.mean_absolute_error)
    h = r.fit(x, target, batch_size=8, epochs=5, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert r.evaluate(x, target, verbose=0) == pytest.approx(float(losses.mae(target, r.predict(x, verbose=0)).mean()),
                                                            rel=1e-5)


def test_names_functions_classes_and_keras_dicts_resolve():
    for name, cls in losses.NAMES.items():
        assert type(losses.get(name)) is cls
    assert type(losses.get("Mean_Squared_Error")) is losses.MeanSquaredError   # names are case-blind
    assert type(losses.get(losses.binary_crossentropy)) is losses.BinaryCrossentropy
    assert type(losses.get(losses.SparseCategoricalCrossentropy)) is losses.SparseCategoricalCrossentropy
    keras3 = {"module": "keras.losses", "class_name": "CategoricalCrossentropy", "config": {
        "name": "categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": True,
        "label_smoothing": 0.1, "axis": -1}, "registered_name": None}
    loss = losses.get(keras3)
    assert loss.from_logits and loss.label_smoothing == 0.1
    assert losses.serialize(loss) == keras3
    function = {"module": "builtins", "class_name": "function", "config": "categorical_crossentropy",
                "registered_name": "function"}
    assert losses.serialize(losses.categorical_crossentropy) == function
    assert type(losses.get(function)) is losses.CategoricalCrossentropy
    tf_keras_2 = {"class_name": "MeanSquaredError", "config": {"reduction": "auto", "name": "mean_squared_error"}}
    assert losses.get(tf_keras_2).reduction == "sum_over_batch_size"
    # get_config is Keras's, key for key
    assert losses.SparseCategoricalCrossentropy().get_config() == {
        "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
        "ignore_class": None}
    assert losses.MeanAbsoluteError().get_config() == {"name": "mean_absolute_error",
                                                      "reduction": "sum_over_batch_size"}


def test_bad_losses_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"Unknown loss: 'hinge'. Expected one of \[.*'binary_crossentropy'.*'mse'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="minicnn cannot differentiate an arbitrary function"):
        losses.get(lambda y, p: (y - p) ** 2)
    with pytest.raises(ValueError, match=re.escape("CategoricalCrossentropy: `label_smoothing` must be a float in "
                                                   "[0, 1]. Received: label_smoothing=1.5")):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="invalid value for argument `reduction`"):
        losses.MeanSquaredError(reduction="max")
    with pytest.raises(ValueError, match="ignore_class is not supported"):
        losses.SparseCategoricalCrossentropy(ignore_class=0)
    with pytest.raises(ValueError, match="only axis=-1"):
        losses.categorical_crossentropy([[0, 1]], [[0.5, 0.5]], axis=0)
    with pytest.raises(ValueError, match=re.escape("y_true and y_pred must have the same shape. "
                                                   "Received: y_true.shape=(1, 2), y_pred.shape=(1, 3)")):
        losses.categorical_crossentropy([[0, 1]], [[0.5, 0.25, 0.25]])
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        losses.sparse_categorical_crossentropy([2], [[0.5, 0.5]])
    m = classifier("softmax")
    with pytest.raises(ValueError, match="reduction='sum' is not supported"):
        m.compile("sgd", losses.CategoricalCrossentropy(reduction="sum"))
    assert m.optimizer is None   # nothing half-compiled


def test_keras_reductions_on_numpy():
    v = np.array([1.0, 2.0, 3.0], np.float32)
    w = np.array([1.0, 0.0, 2.0], np.float32)
    assert losses.reduce_weighted_values(v, w, "sum_over_batch_size") == pytest.approx(7 / 3)   # / n, not / sum(w)
    assert losses.reduce_weighted_values(v, w, "mean_with_sample_weight") == pytest.approx(7 / 3)
    assert losses.reduce_weighted_values(v, w, "sum") == pytest.approx(7)
    np.testing.assert_array_equal(losses.reduce_weighted_values(v, w, None), [1, 0, 6])
    assert losses.reduce_weighted_values(v[:0], None, "sum_over_batch_size") == 0   # divide_no_nan


def test_a_model_with_a_loss_object_saves_and_loads(tmp_path):
    pytest.importorskip("h5py")
    x, labels = learnable_data(16)
    m = classifier("linear")
    m.compile("rmsprop", losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), metrics=["acc"])
    m.fit(x, to_categorical(labels, 4), epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded._loss_fn.from_logits and loaded._loss_fn.label_smoothing == 0.1
    assert loaded.loss == m.loss and loaded._metric_names == ["acc"]
    y = to_categorical(labels, 4)
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), m.evaluate(x, y, verbose=0), rtol=1e-6)
