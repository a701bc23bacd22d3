"""EarlyStopping(restore_best_weights=True) and ModelCheckpoint(save_best_only=True) on real
MNIST, as a Keras user expects them (issue 9's "Done when"): a short run that overfits 300
images (a high learning rate, patience 1) stops at the first epoch whose val_loss did not
improve, ends with the best epoch's weights, and best.keras holds that same model, whole
and compiled, with Keras's messages along the way."""
import re

import numpy as np
import pytest

from minicnn import layers, optimizers
from minicnn.callbacks import EarlyStopping, ModelCheckpoint
from minicnn.datasets import mnist
from minicnn.models import Sequential, load_model
from minicnn.utils import clear_session, set_random_seed, to_categorical

MAX_EPOCHS = 10


def small_cnn():
    clear_session()
    set_random_seed(0)
    m = Sequential([layers.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)), layers.MaxPooling2D(2),
                    layers.Flatten(), layers.Dense(10, activation="softmax")])
    m.compile(optimizers.RMSprop(learning_rate=0.01), "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_early_stopping_and_the_best_checkpoint_on_real_mnist(real_mnist, tmp_path, capsys):
    pytest.importorskip("h5py")
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=str(real_mnist))
    x = x_train[:300].reshape(-1, 28, 28, 1).astype("float32") / 255
    y = to_categorical(y_train[:300], 10)
    x_val = x_test[:300].reshape(-1, 28, 28, 1).astype("float32") / 255
    y_val = to_categorical(y_test[:300], 10)
    best_path = tmp_path / "best.keras"
    stopper = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True, verbose=1)
    m = small_cnn()
    history = m.fit(x, y, epochs=MAX_EPOCHS, batch_size=32, verbose=0, validation_data=(x_val, y_val),
                    callbacks=[stopper, ModelCheckpoint(best_path, monitor="val_loss", save_best_only=True,
                                                        verbose=1)])
    val = history.history["val_loss"]
    last, best = len(val) - 1, int(np.argmin(val))
    # it stopped at the first epoch that did not improve (patience 1), well before the end
    assert last < MAX_EPOCHS - 1, f"never stopped: {val}"
    assert all(val[e] < min(val[:e]) for e in range(1, last)) and val[last] >= min(val[:last]), val
    assert (stopper.stopped_epoch, stopper.best_epoch, best) == (last, last - 1, last - 1)
    out = capsys.readouterr().out
    saves = re.findall(r"Epoch (\d+): val_loss improved from (\S+) to (\S+), saving model to (.*)", out)
    assert [int(e) for e, *_ in saves] == list(range(1, last + 1))
    assert saves[0][1] == "inf" and all(s[3] == str(best_path) for s in saves)
    assert f"Epoch {last + 1}: val_loss did not improve from {val[best]:.5f}" in out
    assert f"Epoch {last + 1}: early stopping" in out
    assert f"Restoring model weights from the end of the best epoch: {best + 1}." in out
    # the model holds the best epoch's weights; the checkpoint is that same model, whole
    loaded = load_model(best_path)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), loaded.get_weights()))
    loss, accuracy = loaded.evaluate(x_val, y_val, batch_size=32, verbose=0)
    assert loss == pytest.approx(val[best], rel=1e-6) and accuracy == pytest.approx(
        history.history["val_accuracy"][best], rel=1e-6) and accuracy > 0.6
    assert loaded.optimizer.learning_rate == pytest.approx(0.01) and loaded.optimizer.iterations > 0
    assert [p.name for p in tmp_path.iterdir()] == ["best.keras"]
