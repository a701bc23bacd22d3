"""Optimizers in models: compile(optimizer='adam') trains; the state saves in Keras's layout and
a resumed fit equals an uninterrupted one bit for bit; Keras's own Adam file resumes like Keras.

tests/fixtures/optimizers/tiny_adam.keras was made by Keras 3.15.1 (Adam with amsgrad, two
steps); tiny_adam.npz holds a third step's batch and Keras's weights after it. Both come
from tests/make_optimizer_fixtures.py."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend, layers, models, optimizers
from minicnn.models import Sequential
from minicnn.optimizers import schedules
from minicnn.utils import set_random_seed

h5py = pytest.importorskip("h5py", reason="Keras files need h5py (pip install 'minicnn[h5]')")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "optimizers"


def tiny_model(optimizer, seed=0):
    set_random_seed(seed)
    m = Sequential([layers.Conv2D(3, (3, 3), activation="relu", input_shape=(6, 6, 1)), layers.Flatten(),
                    layers.Dense(4, activation="softmax")])
    m.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n=48):
    rng = np.random.default_rng(1)
    x = rng.random((n, 6, 6, 1)).astype(np.float32)
    quadrants = x.reshape(n, 2, 3, 2, 3).mean(axis=(2, 4)).reshape(n, 4)
    return x, np.eye(4, dtype=np.float32)[quadrants.argmax(axis=1)]   # learnable: the brightest quadrant


RATES = {"adam": 0.01, "adamw": 0.01, "nadam": 0.01, "adamax": 0.02, "sgd": 0.5, "rmsprop": 0.01,
         "adagrad": 0.2, "adadelta": 10.0}   # Adadelta's first steps are ~sqrt(epsilon) small


@pytest.mark.parametrize("name", sorted(RATES))
def test_compile_by_name_trains(name):
    x, y = data()
    m = tiny_model(name)
    m.optimizer.learning_rate = RATES[name]   # Keras's defaults are slow for 36 steps
    history = m.fit(x, y, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert type(m.optimizer).__name__.lower() == name and m.optimizer.iterations == 36
    assert history[-1] < 0.8 * history[0], history


def test_compile_adam_by_name_uses_keras_s_adam():
    m = tiny_model("adam")
    assert isinstance(m.optimizer, optimizers.Adam) and m.optimizer.learning_rate == 0.001
    assert m.optimizer.get_config()["epsilon"] == 1e-7


RESUMED = {
    "adam_amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "nadam": lambda: optimizers.Nadam(0.01),        # a scalar state after the slots
    "sgd_schedule": lambda: optimizers.SGD(schedules.ExponentialDecay(0.1, 3, 0.5), momentum=0.9,
                                           global_clipnorm=1.0),   # no learning-rate variable
    "rmsprop_centered": lambda: optimizers.RMSprop(momentum=0.5, centered=True, weight_decay=0.01),
}


@pytest.mark.parametrize("which, suffix", [("adam_amsgrad", ".keras"), ("adam_amsgrad", ".h5"), ("nadam", ".keras"),
                                           ("sgd_schedule", ".h5"), ("rmsprop_centered", ".keras")])
def test_resuming_from_a_saved_model_equals_training_on(tmp_path, which, suffix):
    x, y = data()
    backend.clear_session()
    straight = tiny_model(RESUMED[which]())
    set_random_seed(5)
    straight.fit(x, y, batch_size=16, epochs=3, verbose=0)
    backend.clear_session()
    resumed = tiny_model(RESUMED[which]())
    set_random_seed(5)
    resumed.fit(x, y, batch_size=16, epochs=2, verbose=0)
    resumed.save(tmp_path / f"m{suffix}")
    loaded = models.load_model(tmp_path / f"m{suffix}")
    assert type(loaded.optimizer) is type(resumed.optimizer)
    assert loaded.optimizer.get_config() == resumed.optimizer.get_config()
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)   # the RNG goes on where it was
    for a, b in zip(straight.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(straight.optimizer.state_arrays(), loaded.optimizer.state_arrays()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == straight.optimizer.iterations == 9


def test_the_weights_file_holds_keras_s_optimizer_variables(tmp_path):
    m = tiny_model(optimizers.Adam(amsgrad=True))
    m.fit(*data(16), batch_size=8, epochs=1, verbose=0)
    m.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        group = f["optimizer/vars"]
        assert group.attrs["name"] == "adam" and len(group) == 2 + 3 * 4
        kernel, bias = m.layers[0].get_weights()
        # iterations, learning rate, then per weight its momentum and velocity, then the maxima
        assert [group[str(i)].shape for i in range(6)] == [(), (), kernel.shape, kernel.shape, bias.shape, bias.shape]
        assert int(group["0"][()]) == 2 and group["1"][()] == np.float32(0.001)
        np.testing.assert_array_equal(group["2"], m.optimizer._slots["momentum"][0])
        np.testing.assert_array_equal(group["10"], m.optimizer._slots["velocity_hat"][0])


def test_a_state_that_does_not_fit_warns_and_leaves_a_fresh_optimizer(tmp_path):
    adam = tiny_model(optimizers.Adam())
    adam.fit(*data(16), batch_size=8, epochs=1, verbose=0)
    adam.save_weights(tmp_path / "w.weights.h5")
    sgd = tiny_model(optimizers.SGD(momentum=0.9))
    sgd.fit(*data(16), batch_size=8, epochs=1, verbose=0)
    for layer_a, layer_b in zip(sgd._compute_layers, adam._compute_layers):
        layer_a.name = layer_b.name   # Keras 3 files match layers by name
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'sgd'"):
        sgd.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(sgd.get_weights(), adam.get_weights()):
        np.testing.assert_array_equal(a, b)   # the weights still load


def test_a_keras_made_adam_model_resumes_as_keras_does():
    backend.clear_session()
    m = models.load_model(FIXTURES / "tiny_adam.keras")
    opt = m.optimizer
    assert isinstance(opt, optimizers.Adam) and opt.amsgrad and opt.iterations == 2
    assert opt.learning_rate == pytest.approx(0.01) and len(opt.state_arrays()) == 2 + 3 * 4
    ref = np.load(FIXTURES / "tiny_adam.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.train_on_batch(ref["x3"], ref["y3"])   # Keras's third step, from Keras's saved state
    for i, w in enumerate(m.get_weights()):
        np.testing.assert_allclose(w, ref[f"w{i}"], rtol=1e-5, atol=1e-6)
    assert opt.iterations == 3
