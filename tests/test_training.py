"""Training API: fit/evaluate/predict, progress output, History, and a real MNIST run."""
import re

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers
from minicnn.datasets import mnist
from minicnn.models import Sequential
from minicnn.utils import set_random_seed, to_categorical

from train_mnist import build_model


def tiny_model(units=3):
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)),
                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(units, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


LINE = re.compile(r"^(\d+)/(\d+) \[=+\] - \d+s \d+(?:ms|us|s)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}$")


def test_fit_prints_one_keras_line_per_epoch_when_not_a_tty(capsys):
    set_random_seed(0)
    x, y = tiny_data()
    history = tiny_model().fit(x, y, batch_size=8, epochs=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2" and len(out) == 4
    for line in (out[1], out[3]):
        assert LINE.match(line), line
        assert line.startswith("3/3 [" + "=" * 30 + "]")
    assert "\r" not in capsys.readouterr().out
    assert sorted(history.history) == ["accuracy", "loss"]
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2
    assert history.params == {"verbose": 1, "epochs": 2, "steps": 3}


def test_fit_verbose_0_and_2(capsys):
    x, y = tiny_data()
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""
    tiny_model().fit(x, y, batch_size=8, epochs=1, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/1"
    assert re.match(r"^3/3 - \d+s - loss: \d\.\d{4} - accuracy: \d\.\d{4} - \d+s/epoch - \d+(ms|us|s)/step$", out[1])


def test_progress_bar_redraws_in_place_on_a_terminal():
    import io
    from minicnn.models.progbar import Progbar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = Progbar(4, verbose=1, stream=stream, interval=0.0)
    for step in range(1, 5):
        bar.update(step, [("loss", 0.5 / step)])
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n")
    assert "1/4 [======>.......................] - ETA:" in text
    assert text.rstrip().split("\r")[-1].startswith("4/4 [==============================] - ")


def test_metric_values_use_keras_formats():
    from minicnn.models.progbar import format_per_step, format_value
    assert format_value(0.17661) == " 0.1766" and format_value(0.0005) == " 5.0000e-04"
    assert format_per_step(0.006) == "6ms/step" and format_per_step(2.0) == "2s/step"


def test_history_key_is_the_metric_string_given():
    x, y = tiny_data()
    m = tiny_model()
    m.compile("sgd", "categorical_crossentropy", metrics=["acc"])
    assert sorted(m.fit(x, y, epochs=1, verbose=0).history) == ["acc", "loss"]


def test_validation_split_takes_the_last_fraction():
    x, y = tiny_data(40)
    m = tiny_model()
    h = m.fit(x, y, batch_size=8, epochs=1, validation_split=0.25, verbose=0)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    val_loss, val_acc = m.evaluate(x[30:], y[30:], verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(val_loss, rel=1e-5)
    assert h.history["val_accuracy"][0] == pytest.approx(val_acc)


def test_validation_data_line(capsys):
    x, y = tiny_data(16)
    tiny_model().fit(x, y, batch_size=8, validation_data=(x[:4], y[:4]))
    line = capsys.readouterr().out.splitlines()[1]
    assert re.search(r" - loss: \S+ - accuracy: \S+ - val_loss: \d\.\d{4} - val_accuracy: \d\.\d{4}$", line)


def test_train_and_test_on_batch_report_that_batch_alone():
    x, y = tiny_data(12)
    m = tiny_model()
    w0 = m.get_weights()
    loss, acc = m.test_on_batch(x[:5], y[:5])
    assert all(np.array_equal(a, b) for a, b in zip(w0, m.get_weights()))  # no training
    p = np.clip(m.predict(x[:5]), 1e-7, 1 - 1e-7)
    assert loss == pytest.approx(float(-(y[:5] * np.log(p)).sum(1).mean()), rel=1e-5)
    assert acc == pytest.approx(float((p.argmax(1) == y[:5].argmax(1)).mean()))
    loss2, _ = m.train_on_batch(x[:5], y[:5])
    assert loss2 == pytest.approx(loss, rel=1e-5)  # measured before the update
    assert not all(np.array_equal(a, b) for a, b in zip(w0, m.get_weights()))


def test_evaluate_predict_and_weights_round_trip():
    x, y = tiny_data(10)
    set_random_seed(0)
    m = tiny_model()
    loss, acc = m.evaluate(x, y, batch_size=4, verbose=0)
    p = m.predict(x, batch_size=3)
    assert p.shape == (10, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    other = tiny_model()
    other.set_weights(m.get_weights())
    # same weights, data and batch size: the same bits (the determinism contract)
    np.testing.assert_array_equal(other.predict(x, batch_size=3), p)
    # another batch size takes other BLAS kernels for the trailing rows: float32 rounding only
    np.testing.assert_allclose(other.predict(x), p, rtol=1e-5, atol=1e-7)
    assert [w.shape for w in m.get_weights()] == [(3, 3, 1, 4), (4,), (16, 3), (3,)]


def test_sparse_labels_and_functional_training():
    rng = np.random.default_rng(3)
    x = rng.random((30, 4, 4, 1)).astype(np.float32)
    labels = (x.mean(axis=(1, 2, 3)) > 0.5).astype(int)
    inputs = keras.Input(shape=(4, 4, 1))
    h = layers.Conv2D(3, 2, activation="tanh")(inputs)
    out = layers.Dense(2, activation="softmax")(layers.Flatten()(h))
    m = keras.Model(inputs=inputs, outputs=out)
    m.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    first = m.evaluate(x, labels, verbose=0)[0]
    m.fit(x, labels, batch_size=10, epochs=5, verbose=0)
    assert m.evaluate(x, labels, verbose=0)[0] < first


def test_seeded_training_is_reproducible():
    x, y = tiny_data(16)
    results = []
    for _ in range(2):
        set_random_seed(5)
        m = tiny_model()
        m.fit(x, y, batch_size=4, epochs=2, verbose=0)
        results.append(m.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def book_model():
    m = build_model()
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def test_book_model_learns_real_mnist(real_mnist):
    """3,000 real training images, one epoch: far above the 10% of chance."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=str(real_mnist))
    x_train = x_train[:3000].reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test[:1000].reshape(-1, 28, 28, 1).astype("float32") / 255
    set_random_seed(0)
    m = book_model()
    history = m.fit(x_train, to_categorical(y_train[:3000]), epochs=1, batch_size=64, verbose=0)
    loss, acc = m.evaluate(x_test, to_categorical(y_test[:1000], 10), verbose=0)
    assert history.history["loss"][0] < 2.0
    assert acc > 0.75, (loss, acc)


def test_save_and_load_weights(tmp_path, monkeypatch):
    x, _ = tiny_data(4)
    m = tiny_model()
    path = tmp_path / "w.weights.npz"
    m.save_weights(path)
    other = tiny_model()
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), m.predict(x))
    # a save that fails midway leaves the old file whole and no temporary behind
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        m.save_weights(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["w.weights.npz"]
