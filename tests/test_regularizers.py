"""minicnn.regularizers and kernel_regularizer / bias_regularizer on Conv2D and Dense.

Keras 3's numbers are in tests/fixtures/losses/ (make_loss_fixtures.py regenerates them)."""
import re
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from naive import numeric_grad
from minicnn import backend, layers, optimizers, regularizers
from minicnn.layers import Conv2D, Dense
from minicnn.utils import set_random_seed

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "losses"
KERAS = np.load(FIXTURES / "regularizers.npz")
TRAINING = np.load(FIXTURES / "training.npz")
CASES = {"l1": regularizers.L1(0.01), "l2": regularizers.L2(0.02), "l1_l2": regularizers.L1L2(l1=0.01, l2=0.02),
         "l2_default": regularizers.get("l2")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_penalties_and_gradients_match_keras(impl, name):
    reg, w = CASES[name], KERAS["w"]
    assert float(backend.to_numpy(reg(backend.asarray(w)))) == pytest.approx(float(KERAS[f"{name}/penalty"]), rel=1e-6)
    g = reg.add_gradient(backend.asarray(np.zeros_like(w)), backend.asarray(w))
    np.testing.assert_allclose(backend.to_numpy(g), KERAS[f"{name}/grad"], rtol=1e-6, atol=1e-9)


def test_names_defaults_and_keras_dicts():
    assert regularizers.get("l1") == regularizers.L1(0.01) and regularizers.get("l2").l2 == 0.01
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.01, 0.01)
    assert regularizers.l1_l2() == regularizers.L1L2(0.0, 0.0)   # Keras 3: l1_l2 is the class itself
    assert regularizers.l2 is regularizers.L2 and regularizers.get(None) is None
    assert regularizers.serialize(regularizers.l2(0.001)) == {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.001}, "registered_name": None}
    assert regularizers.get({"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.0099}}) == regularizers.L1L2(0, 0.0099)
    with pytest.raises(ValueError, match=r"Unknown regularizer: 'l3'. Expected None, one of \['L1', 'L1L2', 'L2', "):
        regularizers.get("l3")
    with pytest.raises(ValueError, match=re.escape("L2: invalid value for argument l2: expected a non-negative "
                                                   "float. Received: l2=-0.1")):
        regularizers.L2(-0.1)
    with pytest.raises(ValueError, match="Unknown regularizer: 'OrthogonalRegularizer'"):
        Dense(2, kernel_regularizer={"class_name": "OrthogonalRegularizer", "config": {}})


def keras_dense_model():
    m = keras.Sequential([Dense(3, activation="softmax", kernel_regularizer=regularizers.L2(0.05), input_shape=(4,))])
    m.set_weights([TRAINING["w"], TRAINING["b"]])
    m.compile(optimizers.SGD(learning_rate=0.5), "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_the_penalty_joins_the_loss_and_its_gradient_the_step_as_in_keras():
    x, y, sw = TRAINING["x"], TRAINING["y"], TRAINING["sample_weight"]
    m = keras_dense_model()
    np.testing.assert_allclose(m.train_on_batch(x, y, sample_weight=sw), TRAINING["train_on_batch/logs"], rtol=1e-6)
    np.testing.assert_allclose(m.get_weights()[0], TRAINING["train_on_batch/w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.get_weights()[1], TRAINING["train_on_batch/b"], rtol=1e-6, atol=1e-7)
    m = keras_dense_model()   # evaluate reports it too (at the current weights)
    np.testing.assert_allclose(m.evaluate(x, y, batch_size=3, verbose=0), TRAINING["evaluate/plain"], rtol=1e-6)
    m.layers[0].trainable = False   # a frozen layer's weights carry no penalty, as in Keras
    plain = m.evaluate(x, y, batch_size=3, verbose=0)[0]
    assert plain < TRAINING["evaluate/plain"][0]
    assert plain + 0.05 * float((TRAINING["w"] ** 2).sum()) == pytest.approx(float(TRAINING["evaluate/plain"][0]),
                                                                             rel=1e-6)


def test_the_total_loss_gradient_matches_finite_differences_in_float64():
    backend.set_backend("numpy")
    set_random_seed(3)
    conv = Conv2D(2, 2, activation="tanh", kernel_regularizer=regularizers.L1L2(0.03, 0.02),
                  bias_regularizer="l2", dtype="float64")
    dense = Dense(3, activation="softmax", kernel_regularizer="l1", dtype="float64")
    m = keras.Sequential([conv, layers.Flatten(), dense])
    m.build((None, 4, 4, 1))
    m.compile(optimizers.SGD(0.0), "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, 4, 4, 1))
    y = np.eye(3)[rng.integers(0, 3, 5)]
    for layer in (conv, dense):
        layer.weights[1][...] = rng.normal(0, 0.3, layer.weights[1].shape)   # nonzero biases

    def total_loss():
        sums = m._test_batch(x, y, penalty=m._penalty())
        return float(sums[0]) / len(x)

    m._train_batch(x, y)   # learning rate 0: the gradients, weights unchanged
    for layer in (conv, dense):
        for w, g in zip(layer.weights, layer.grads):
            np.testing.assert_allclose(g, numeric_grad(total_loss, w), rtol=1e-5, atol=1e-8)


def test_regularizers_round_trip_through_configs_and_saved_models(tmp_path):
    pytest.importorskip("h5py")
    set_random_seed(0)
    m = keras.Sequential([Conv2D(2, 3, kernel_regularizer=regularizers.l2(0.001), bias_regularizer="l1",
                                 input_shape=(5, 5, 1)), layers.Flatten(),
                          Dense(2, activation="softmax", kernel_regularizer=regularizers.L1L2(1e-4, 1e-3))])
    m.compile("rmsprop", "categorical_crossentropy")
    config = m.layers[2].get_config()
    assert config["kernel_regularizer"]["config"] == {"l1": 1e-4, "l2": 1e-3} and config["bias_regularizer"] is None
    twin = Dense.from_config(config)
    assert twin.kernel_regularizer == regularizers.L1L2(1e-4, 1e-3)
    x = np.random.default_rng(0).random((6, 5, 5, 1)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1, 0]]
    for name in ("m.keras", "m.h5"):
        m.save(tmp_path / name)
        loaded = keras.models.load_model(tmp_path / name)
        assert loaded.layers[0].kernel_regularizer == regularizers.L2(0.001)
        assert loaded.layers[0].bias_regularizer == regularizers.L1(0.01)
        assert loaded.evaluate(x, y, verbose=0) == pytest.approx(m.evaluate(x, y, verbose=0), rel=1e-6)


def test_a_keras_made_config_with_regularizers_loads():
    config = {"name": "dense", "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
              "config": {"name": "float32"}, "registered_name": None}, "units": 4, "activation": "relu",
              "use_bias": True, "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                      "config": {"seed": None}, "registered_name": None},
              "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                   "registered_name": None},
              "kernel_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
                                     "registered_name": None},
              "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    layer = Dense.from_config(config)
    assert layer.kernel_regularizer == regularizers.L2(0.01)
    with pytest.raises(ValueError, match="activity_regularizer"):
        Dense.from_config({**config, "activity_regularizer": {"class_name": "L2", "config": {"l2": 0.1}}})


def test_no_regularizer_means_no_extra_work(monkeypatch):
    from minicnn.ops import weight_penalty as ops
    calls = []
    monkeypatch.setattr(ops, "penalty", lambda *a: calls.append(a))
    m = keras.Sequential([Dense(2, activation="softmax", input_shape=(3,))])
    m.compile("sgd", "categorical_crossentropy")
    m.fit(np.zeros((8, 3)), np.eye(2)[[0, 1] * 4], verbose=0)
    m.evaluate(np.zeros((8, 3)), np.eye(2)[[0, 1] * 4], verbose=0)
    assert calls == []
