"""Whole-model and weight files in Keras's formats (.keras, .weights.h5, legacy .h5).

The files in tests/fixtures/keras were made by Keras 3.15.1 (make_keras_files.py there
regenerates them) from the book's model trained one epoch on random data."""
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend, models
from minicnn.utils import set_random_seed, to_categorical
from train_mnist import build_model

h5py = pytest.importorskip("h5py", reason="Keras files need h5py (pip install 'minicnn[h5]')")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras"
NAMES = ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "conv2d_2", "flatten", "dense", "dense_1"]


@pytest.fixture
def keras_reference():
    ref = np.load(FIXTURES / "book_predictions.npz")
    return ref["x"], ref["p"]


@pytest.mark.parametrize("name", ["book.keras", "book.h5"])
def test_keras_made_models_load_with_their_names_and_predictions(name, keras_reference):
    x, p = keras_reference
    m = models.load_model(FIXTURES / name)
    assert [l.name for l in m.layers] == NAMES and m.count_params() == 93322
    np.testing.assert_allclose(m.predict(x), p, rtol=0, atol=1e-6)
    assert m.loss == "categorical_crossentropy" and m._metric_names == ["accuracy"]
    assert m.optimizer.iterations == 2 and m.optimizer.rho == pytest.approx(0.9)


def test_keras_made_weights_load_into_a_minicnn_model(keras_reference):
    x, p = keras_reference
    backend.clear_session()  # the names a fresh Keras session gives: conv2d, conv2d_1, ...
    m = build_model()
    m.load_weights(FIXTURES / "book.weights.h5")
    np.testing.assert_allclose(m.predict(x), p, rtol=0, atol=1e-6)


def small_model(seed=0):
    set_random_seed(seed)
    m = build_model()
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def data():
    rng = np.random.default_rng(1)
    return rng.random((96, 28, 28, 1)).astype(np.float32), to_categorical(rng.integers(0, 10, 96), 10)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_resuming_from_a_saved_model_equals_training_on(tmp_path, suffix):
    x, y = data()
    backend.clear_session()
    straight = small_model()
    set_random_seed(5)
    straight.fit(x, y, batch_size=32, epochs=3, verbose=0)
    backend.clear_session()
    resumed = small_model()
    set_random_seed(5)
    resumed.fit(x, y, batch_size=32, epochs=2, verbose=0)
    resumed.save(tmp_path / f"m{suffix}")
    loaded = models.load_model(tmp_path / f"m{suffix}")
    loaded.fit(x, y, batch_size=32, epochs=1, verbose=0)   # the RNG goes on where it was
    for a, b in zip(straight.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == straight.optimizer.iterations == 9


def test_weights_h5_round_trip_and_layout(tmp_path):
    m = small_model()
    m.fit(*data(), batch_size=48, epochs=1, verbose=0)
    path = tmp_path / "w.weights.h5"
    m.save_weights(path)
    with h5py.File(path) as f:
        # keyed by class and position as Keras 3 does, whatever the layers are called
        assert f["layers/conv2d_1/vars/0"].shape == (3, 3, 32, 64)
        assert len(f["optimizer/vars"]) == 2 + 10   # iterations, learning rate, 10 velocities
    other = small_model(seed=3)   # the same model with other layer names (conv2d_3, ...)
    assert other._compute_layers[0].name != m._compute_layers[0].name
    other.load_weights(path)
    for a, b in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_files_are_named_and_leave_the_model_whole(tmp_path):
    m = small_model()
    before = m.get_weights()
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="is not a readable Keras model file"):
        models.load_model(junk)
    truncated = tmp_path / "cut.keras"
    truncated.write_bytes((FIXTURES / "book.keras").read_bytes()[:5000])
    with pytest.raises(ValueError, match="is not a readable Keras model file"):
        models.load_model(truncated)
    backend.clear_session()
    small = models.model_from_json(models.load_model(FIXTURES / "book.keras").to_json())
    wrong = tmp_path / "wrong.weights.h5"
    with h5py.File(wrong, "w") as f:
        f.create_group("layers/conv2d/vars").create_dataset("0", data=np.zeros(3))
    with pytest.raises(ValueError, match="expects 2 weights, the file has 1|no weights for layer"):
        m.load_weights(wrong)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    with pytest.raises(ValueError, match="must end in .keras"):
        m.save(tmp_path / "model.pkl")
    assert small.count_params() == 93322


def test_the_keras_zip_holds_keras_s_three_files(tmp_path):
    m = small_model()
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
