"""minicnn.metrics: Keras 3's numbers (fixtures), 'accuracy' resolution, History keys, device sums.

The Keras numbers are in tests/fixtures/losses/metrics.npz (make_loss_fixtures.py regenerates them).
"""
import re
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from minicnn import backend, layers, losses, metrics, optimizers
from minicnn.losses.base import as_pair
from minicnn.utils import set_random_seed, to_categorical

KERAS = np.load(Path(__file__).resolve().parent / "fixtures" / "losses" / "metrics.npz")
CASES = {
    "categorical_accuracy": (metrics.CategoricalAccuracy, {}, metrics.categorical_accuracy),
    "sparse_categorical_accuracy": (metrics.SparseCategoricalAccuracy, {}, metrics.sparse_categorical_accuracy),
    "binary_accuracy": (metrics.BinaryAccuracy, {}, metrics.binary_accuracy),
    "binary_accuracy_07": (metrics.BinaryAccuracy, {"threshold": 0.7}, None),
    "top_k": (metrics.TopKCategoricalAccuracy, {}, metrics.top_k_categorical_accuracy),
    "top_2": (metrics.TopKCategoricalAccuracy, {"k": 2}, None),
    "sparse_top_2": (metrics.SparseTopKCategoricalAccuracy, {"k": 2}, None),
    "mse": (metrics.MeanSquaredError, {}, metrics.mean_squared_error),
    "mae": (metrics.MeanAbsoluteError, {}, metrics.mae),
    "categorical_crossentropy": (metrics.CategoricalCrossentropy, {}, None),
}
SPARSE = ("sparse_categorical_accuracy", "sparse_top_2")


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_and_functions_match_keras(impl, name):
    cls, kwargs, fn = CASES[name]
    y, p = KERAS[f"{name}/y_true"], KERAS[f"{name}/y_pred"]
    m = cls(**kwargs)
    m.update_state(y, p)
    assert m.result() == pytest.approx(float(KERAS[f"{name}/result"]), rel=1e-6)
    if fn is not None:
        np.testing.assert_allclose(np.asarray(fn(y, p)).reshape(KERAS[f"{name}/values"].shape),
                                   KERAS[f"{name}/values"], rtol=1e-6)
    # the training side: the batch total on the device, read back once
    yy, pp = as_pair(y, p, name, name in SPARSE)
    total = m.batch_total(backend.asarray(pp), backend.asarray(yy))
    value = metrics.to_host(total) / (len(p) * m.values_per_sample((None,) + pp.shape[1:]))
    assert value == pytest.approx(float(KERAS[f"{name}/result"]), rel=1e-5)


def test_update_state_weights_accumulate_and_reset():
    m = metrics.CategoricalAccuracy()
    m.update_state([[0, 1], [1, 0]], [[0.3, 0.7], [0.4, 0.6]], sample_weight=[3, 1])
    assert m.result() == pytest.approx(0.75)
    m.update_state([[1, 0]], [[0.9, 0.1]])
    assert m.result() == pytest.approx(0.8)
    m.reset_state()
    assert m.result() == 0
    b = metrics.BinaryAccuracy()
    b.update_state([[1, 0, 1, 1]], [[0.98, 1, 0, 0.6]])   # Keras's docstring example
    assert b.result() == pytest.approx(0.5)


def model(units=3, activation="softmax"):
    set_random_seed(0)
    return keras.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(5, 5, 1)), layers.Flatten(),
                             layers.Dense(units, activation=activation)])


def data(n=24, classes=3):
    rng = np.random.default_rng(1)
    return rng.random((n, 5, 5, 1)).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize("loss,units,expected", [
    ("categorical_crossentropy", 3, metrics.CategoricalAccuracy),
    ("sparse_categorical_crossentropy", 3, metrics.SparseCategoricalAccuracy),
    ("binary_crossentropy", 1, metrics.BinaryAccuracy),
    ("mse", 1, metrics.BinaryAccuracy),
    ("mse", 3, metrics.CategoricalAccuracy),
])
def test_accuracy_resolves_as_keras_does(loss, units, expected):
    for name in ("accuracy", "acc", "Accuracy"):
        m = model(units, "softmax" if units > 1 else "sigmoid")
        m.compile("sgd", loss, metrics=[name])
        resolved = m._active_metrics()[0]
        assert type(resolved) is expected and resolved.name == name


def test_history_keys_are_the_names_given_and_repeats_get_a_suffix(capsys):
    x, labels = data()
    y = to_categorical(labels, 3)
    m = model()
    m.compile("rmsprop", "categorical_crossentropy",
              metrics=["acc", metrics.TopKCategoricalAccuracy(k=2), "top_k_categorical_accuracy", "mse",
                       metrics.categorical_accuracy, "MAE"])
    h = m.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=1)
    names = ["acc", "top_k_categorical_accuracy", "top_k_categorical_accuracy_1", "mse", "categorical_accuracy", "MAE"]
    assert list(h.history) == ["loss"] + names + ["val_loss"] + ["val_" + n for n in names]
    line = capsys.readouterr().out.splitlines()[-1]
    assert re.search(r" - loss: \d\.\d{4} - acc: \d\.\d{4} - top_k_categorical_accuracy: \d\.\d{4} - "
                     r"top_k_categorical_accuracy_1: 1\.0000 - mse: .* - val_MAE: \d\.\d{4}$", line), line
    # each value is the metric over the samples seen, checked against the NumPy side
    xv, yv = x[18:], y[18:]
    results = m.evaluate(xv, yv, verbose=0, return_dict=True)
    assert results["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-5)
    p = m.predict(xv, verbose=0)
    assert results["top_k_categorical_accuracy"] == pytest.approx(metrics.top_k_categorical_accuracy(yv, p, 2).mean())
    assert results["mse"] == pytest.approx(float(losses.mse(yv, p).mean()), rel=1e-5)
    assert m.metrics_names == ["loss"] + names
    assert m._metric_names[:2] == ["acc", metrics.serialize(metrics.TopKCategoricalAccuracy(k=2))]


def test_metrics_of_batches_of_unequal_size_are_means_over_samples():
    x, labels = data(10)
    m = model(1, "sigmoid")
    m.compile("sgd", "binary_crossentropy", metrics=["binary_accuracy", metrics.BinaryAccuracy(threshold=0.3)])
    target = (labels > 0).astype(np.float32)
    values = m.evaluate(x, target, batch_size=4, verbose=0)   # batches of 4, 4, 2
    p = m.predict(x, verbose=0)[:, 0]
    assert values[1] == pytest.approx(float(((p > 0.5) == target).mean()))
    assert values[2] == pytest.approx(float(((p > 0.3) == target).mean()))


def test_metric_sums_stay_on_the_device_until_the_line_is_drawn(monkeypatch):
    x, labels = data(64)
    m = model()
    m.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc", "sparse_top_k_categorical_accuracy", "mae"])
    reads = []
    real = metrics.to_host
    monkeypatch.setattr(metrics, "to_host", lambda t: reads.append(1) or real(t))
    m.fit(x, labels, batch_size=4, epochs=2, verbose=0)   # 16 batches an epoch
    assert len(reads) == 2 * 4   # one read of the loss and of each metric per epoch, none per batch


def test_several_metrics_on_the_emulator_match_numpy(impl):
    if impl not in ("emulator", "gpu"):
        pytest.skip("compares a CUDA device with the CPU")
    x, labels = data(20)
    results = {}
    for name in ("numpy", impl if impl == "emulator" else "cupy"):
        backend.set_backend(name)
        m = model()
        m.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                  metrics=["accuracy", metrics.SparseTopKCategoricalAccuracy(k=2), "mse", "binary_accuracy"])
        results[name] = m.fit(x, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    a, b = results.values()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def test_names_classes_and_keras_dicts():
    for name, cls in metrics.NAMES.items():
        assert type(metrics.get(name)) is cls
    keras3 = {"module": "keras.metrics", "class_name": "TopKCategoricalAccuracy",
              "config": {"name": "top_k_categorical_accuracy", "dtype": "float32", "k": 3}, "registered_name": None}
    assert metrics.get(keras3).k == 3 and metrics.serialize(metrics.get(keras3)) == keras3
    assert type(metrics.get({"module": "builtins", "class_name": "function", "config": "categorical_accuracy",
                             "registered_name": "function"})) is metrics.CategoricalAccuracy
    wrapped = metrics.get({"class_name": "MeanMetricWrapper",   # tf.keras 2's form
                           "config": {"name": "acc", "dtype": "float32", "fn": "categorical_accuracy"}})
    assert type(wrapped) is metrics.CategoricalAccuracy and wrapped.name == "acc"
    assert metrics.BinaryAccuracy().get_config() == {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}


def test_bad_metrics_are_refused_at_compile_listing_the_valid_ones():
    m = model()
    with pytest.raises(ValueError, match=r"Unknown metric: 'auc'. Expected one of \[.*'acc', 'accuracy'.*"
                                         r"'top_k_categorical_accuracy'"):
        m.compile("sgd", "categorical_crossentropy", metrics=["accuracy", "auc"])
    assert m.optimizer is None
    with pytest.raises(ValueError, match="metrics must be a list"):
        m.compile("sgd", "categorical_crossentropy", metrics={"out": "accuracy"})
    with pytest.raises(ValueError, match=re.escape("TopKCategoricalAccuracy: `k` must be a positive int. "
                                                   "Received: k=0")):
        metrics.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="`threshold` must be a float in"):
        metrics.BinaryAccuracy(threshold=2)
