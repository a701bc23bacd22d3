"""Callbacks (minicnn.callbacks, as keras.callbacks): hooks, their order and logs, the
ready-made callbacks, fit's initial_epoch / validation_freq, and one real-MNIST run."""
import csv
import re
import warnings

import numpy as np
import pytest

from minicnn import backend, layers, optimizers
from minicnn.callbacks import (Callback, CSVLogger, EarlyStopping, History, LambdaCallback,
                               LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from minicnn.datasets import mnist
from minicnn.models import Sequential
from minicnn.utils import set_random_seed, to_categorical


def tiny_model(optimizer="rmsprop", seed=0):
    set_random_seed(seed)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)),
                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


class Recorder(Callback):
    """Records every hook as (name, index or None, logs)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_") and not name.startswith("on_batch"):
            def hook(*args):
                index = args[0] if len(args) == 2 else None
                self.calls.append((name[3:], index, dict(args[-1]) if args[-1] is not None else None))
            return hook
        return super().__getattribute__(name)

    def names(self):
        return [(n, i) for n, i, _ in self.calls]


class Script(Callback):
    """Overwrites logs[key] with scripted values at each epoch's end (put it first)."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Snapshots(Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


# -- the protocol ----------------------------------------------------------------------
def test_hooks_run_in_keras_order_with_keras_logs():
    x, y = tiny_data(16)
    m = tiny_model()
    rec = Recorder()
    history = m.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x[:4], y[:4]), callbacks=[rec])
    epoch = [("train_batch_begin", 0), ("train_batch_end", 0), ("train_batch_begin", 1), ("train_batch_end", 1),
             ("test_begin", None), ("test_batch_begin", 0), ("test_batch_end", 0), ("test_end", None)]
    assert rec.names() == ([("train_begin", None), ("epoch_begin", 0)] + epoch + [("epoch_end", 0), ("epoch_begin", 1)]
                           + epoch + [("epoch_end", 1), ("train_end", None)])
    assert rec.model is m and rec.params == {"verbose": 0, "epochs": 2, "steps": 2}
    logs = {(n, i): l for n, i, l in rec.calls}
    assert sorted(logs["train_batch_end", 0]) == ["accuracy", "loss"]
    # batch logs are the epoch's running means: after the last batch, the epoch's values
    assert logs["train_batch_end", 1]["loss"] == history.history["loss"][1]
    assert sorted(logs["epoch_end", 1]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert logs["test_end", None] == {"loss": history.history["val_loss"][1],
                                      "accuracy": history.history["val_accuracy"][1]}
    assert logs["train_end", None] == logs["epoch_end", 1]
    assert m.history is history and isinstance(history, History) and history.epoch == [0, 1]


def test_evaluate_and_predict_run_their_hooks():
    x, y = tiny_data(10)
    m = tiny_model()
    rec = Recorder()
    loss, acc = m.evaluate(x, y, batch_size=4, verbose=0, callbacks=[rec])
    assert rec.names() == [("test_begin", None)] + [(f"test_batch_{s}", b) for b in range(3)
                                                     for s in ("begin", "end")] + [("test_end", None)]
    assert rec.calls[-1][2] == {"loss": loss, "accuracy": acc}
    assert rec.params == {"verbose": 0, "epochs": 1, "steps": 3}
    rec = Recorder()
    p = m.predict(x, batch_size=4, callbacks=[rec])
    assert rec.names() == [("predict_begin", None)] + [(f"predict_batch_{s}", b) for b in range(3)
                                                        for s in ("begin", "end")] + [("predict_end", None)]
    outputs = [l["outputs"] for n, _, l in rec.calls if n == "predict_batch_end"]
    np.testing.assert_array_equal(np.concatenate(outputs), p)


def test_the_loss_is_read_back_per_batch_only_for_a_callback_that_asks(monkeypatch, tmp_path):
    """The GPU path: without a batch hook the sums stay on the device all epoch."""
    x, y = tiny_data(32)
    reads = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda a: reads.append(1) or real(a))

    def count(callbacks):
        reads.clear()
        tiny_model().fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
        return len(reads)

    quiet = count(None)
    assert quiet == 4  # loss and accuracy, once per epoch
    assert count([EarlyStopping(monitor="loss"), CSVLogger(tmp_path / "log.csv"),
                  LambdaCallback(on_epoch_end=lambda e, l: None)]) == quiet
    assert count([LambdaCallback(on_train_batch_begin=lambda b, l: None)]) == quiet
    assert count([LambdaCallback(on_batch_end=lambda b, l: None)]) == quiet + 2 * 16
    assert count([TerminateOnNaN()]) == quiet + 2 * 16


# -- EarlyStopping -----------------------------------------------------------------
def test_early_stopping_stops_and_restores_the_best_weights(capsys):
    x, y = tiny_data()
    m, snaps = tiny_model(), Snapshots()
    stop = EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    history = m.fit(x, y, epochs=10, verbose=0, validation_data=(x, y),
                    callbacks=[Script([1.0, 0.6, 0.7, 0.65, 0.8, 0.5]), snaps, stop])
    assert history.epoch == [0, 1, 2, 3] and history.history["val_loss"] == [1.0, 0.6, 0.7, 0.65]
    assert (stop.stopped_epoch, stop.best, stop.best_epoch) == (3, 0.6, 1)
    assert same(m.get_weights(), snaps.weights[1]) and not same(m.get_weights(), snaps.weights[3])
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 4: early stopping", "Restoring model weights from the end of the best epoch: 2."]
    # without restore_best_weights the last epoch's weights stay
    m, snaps = tiny_model(), Snapshots()
    m.fit(x, y, epochs=10, verbose=0, validation_data=(x, y),
          callbacks=[Script([1.0, 0.6, 0.7, 0.65]), snaps, EarlyStopping(patience=2)])
    assert len(snaps.weights) == 4 and same(m.get_weights(), snaps.weights[3])


def test_early_stopping_restores_at_the_end_even_without_stopping():
    x, y = tiny_data()
    m, snaps = tiny_model(), Snapshots()
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    m.fit(x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[Script([1.0, 0.5, 0.7]), snaps, stop])
    assert stop.stopped_epoch == 0 and same(m.get_weights(), snaps.weights[1])


@pytest.mark.parametrize("kwargs, key, values, epochs_run", [
    (dict(monitor="val_accuracy", patience=2), "val_accuracy", [0.5, 0.6, 0.55, 0.54, 0.9], 4),  # auto: max
    (dict(monitor="val_accuracy", patience=2, mode="min"), "val_accuracy", [0.5, 0.6, 0.7, 0.8], 3),
    (dict(min_delta=0.1, patience=1), "val_loss", [1.0, 0.95, 0.5], 2),
    (dict(patience=2), "val_loss", [0.9, 0.95, 0.96, 0.97], 3),
    (dict(patience=2, baseline=0.5), "val_loss", [0.9, 0.95, 0.96, 0.97], 2),
    (dict(patience=1, start_from_epoch=2), "val_loss", [0.1, 0.2, 0.9, 1.0, 1.1], 4),
    (dict(patience=0), "val_loss", [1.0, 2.0, 3.0], 2),  # never in epoch 0
])
def test_early_stopping_follows_keras_rules(kwargs, key, values, epochs_run):
    x, y = tiny_data(8)
    history = tiny_model().fit(x, y, epochs=len(values), verbose=0, validation_data=(x, y),
                               callbacks=[Script(values, key), EarlyStopping(**kwargs)])
    assert len(history.epoch) == epochs_run


def test_early_stopping_warns_when_the_monitored_value_is_missing():
    x, y = tiny_data(8)
    with pytest.warns(UserWarning, match=r"Early stopping conditioned on metric `val_loss` which is "
                                            r"not available. Available metrics are: loss,accuracy"):
        history = tiny_model().fit(x, y, epochs=3, verbose=0, callbacks=[EarlyStopping()])
    assert history.epoch == [0, 1, 2]


@pytest.mark.parametrize("make, message", [
    (lambda tmp: ModelCheckpoint(str(tmp / "w.npz"), save_best_only=True, save_weights_only=True),
     "Can save best model only with val_loss available, skipping."),
    (lambda tmp: ReduceLROnPlateau(), r"Learning rate reduction is conditioned on metric `val_loss` which is not "
                                      r"available. Available metrics are: loss,accuracy,learning_rate."),
])
def test_other_callbacks_warn_when_the_monitored_value_is_missing(make, message, tmp_path):
    x, y = tiny_data(8)
    m = tiny_model()
    with pytest.warns(UserWarning, match=message):
        m.fit(x, y, epochs=2, verbose=0, callbacks=[make(tmp_path)])
    assert not list(tmp_path.iterdir()) and m.optimizer.learning_rate == 0.001


# -- ModelCheckpoint ----------------------------------------------------------------
def test_model_checkpoint_saves_only_improvements_under_formatted_names(tmp_path, capsys):
    x, y = tiny_data()
    m, snaps = tiny_model(), Snapshots()
    path = str(tmp_path / "ck-{epoch:02d}-{val_loss:.2f}.weights.npz")
    ckpt = ModelCheckpoint(path, save_best_only=True, save_weights_only=True, verbose=1)
    m.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), callbacks=[Script([0.9, 0.5, 0.7, 0.3]), snaps, ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ck-01-0.90.weights.npz", "ck-02-0.50.weights.npz", "ck-04-0.30.weights.npz"]
    other = tiny_model(seed=1)
    other.load_weights(tmp_path / "ck-02-0.50.weights.npz")
    assert same(other.get_weights(), snaps.weights[1])
    out = [l for l in capsys.readouterr().out.splitlines() if l]
    saving = f", saving model to {tmp_path}/ck-0"
    assert out == [f"Epoch 1: val_loss improved from inf to 0.90000{saving}1-0.90.weights.npz",
                   f"Epoch 2: val_loss improved from 0.90000 to 0.50000{saving}2-0.50.weights.npz",
                   "Epoch 3: val_loss did not improve from 0.50000",
                   f"Epoch 4: val_loss improved from 0.50000 to 0.30000{saving}4-0.30.weights.npz"]


def test_model_checkpoint_every_epoch_and_every_n_batches(tmp_path):
    x, y = tiny_data(16)
    m, snaps = tiny_model(), Snapshots()
    m.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[
        snaps, ModelCheckpoint(tmp_path / "last.npz", save_weights_only=True),
        ModelCheckpoint(str(tmp_path / "sub" / "e{epoch}-b{batch}-{loss:.1f}.npz"), save_weights_only=True,
                        save_freq=2)])
    other = tiny_model(seed=1)
    other.load_weights(tmp_path / "last.npz")
    assert same(other.get_weights(), snaps.weights[-1])
    names = sorted(re.sub(r"-\d\.\d\.npz$", "", p.name) for p in (tmp_path / "sub").iterdir())
    assert names == ["e1-b2", "e1-b4", "e2-b2", "e2-b4"]
    with pytest.raises(KeyError, match=r"ModelCheckpoint: failed to format the filepath .*val_loss"):
        m.fit(x, y, epochs=1, verbose=0,
              callbacks=[ModelCheckpoint(str(tmp_path / "{val_loss:.2f}.npz"), save_weights_only=True)])


def test_whole_model_checkpoints_need_model_save(tmp_path, monkeypatch):
    x, y = tiny_data()
    m = tiny_model()
    for cls in type(m).__mro__:  # a model without whole-model saving
        if "save" in vars(cls):
            monkeypatch.delattr(cls, "save")
    w0 = m.get_weights()
    with pytest.raises(ValueError, match=r"ModelCheckpoint: saving the whole model \(model.save\) is not "
                                         r"available yet for Sequential models. Pass save_weights_only=True"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m.keras"))])
    assert same(w0, m.get_weights()) and not list(tmp_path.iterdir())  # refused before training
    saved = []
    m.save = saved.append  # a model with a save method is saved whole through it
    m.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"))])
    assert saved == [str(tmp_path / "m-1.keras"), str(tmp_path / "m-2.keras")]


# -- the others ------------------------------------------------------------------------
def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path):
    x, y = tiny_data()
    path = tmp_path / "log.csv"
    m = tiny_model()
    h = m.fit(x, y, epochs=3, verbose=0, validation_data=(x[:4], y[:4]), callbacks=[CSVLogger(path)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"] and len(rows) == 4
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert [float(r[2]) for r in rows[1:]] == h.history["loss"]
    assert [float(r[4]) for r in rows[1:]] == h.history["val_loss"]
    m.fit(x, y, epochs=5, initial_epoch=3, verbose=0, validation_data=(x[:4], y[:4]),
          callbacks=[CSVLogger(path, append=True)])
    rows = list(csv.reader(path.open()))
    assert len(rows) == 6 and [r[0] for r in rows[1:]] == ["0", "1", "2", "3", "4"]
    # without validation, as in Keras: val_ columns held for later epochs, NA meanwhile; other separator
    tiny_model().fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(path, separator=";")])
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss;val_accuracy;val_loss"
    assert path.read_text().splitlines()[1].endswith(";NA;NA")


def test_learning_rate_scheduler_sets_the_rate_the_optimizer_uses(capsys):
    x, y = tiny_data()
    m, snaps = tiny_model(optimizers.SGD(0.1)), Snapshots()
    sched = LearningRateScheduler(lambda epoch, lr: [0.05, 0.0][epoch], verbose=1)
    h = m.fit(x, y, epochs=2, verbose=0, shuffle=False, callbacks=[sched, snaps])
    assert h.history["learning_rate"] == [0.05, 0.0] and m.optimizer.learning_rate == 0.0
    assert same(snaps.weights[0], snaps.weights[1])  # lr 0: no change in epoch 2
    fixed = tiny_model(optimizers.SGD(0.05))
    fixed.fit(x, y, epochs=1, verbose=0, shuffle=False)
    assert same(fixed.get_weights(), snaps.weights[0])  # epoch 1 trained at 0.05, bit for bit
    assert "Epoch 1: LearningRateScheduler setting learning rate to 0.05." in capsys.readouterr().out
    m = tiny_model(optimizers.SGD(0.1))
    m.fit(x, y, epochs=3, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))])
    assert m.optimizer.learning_rate == pytest.approx(0.1 / 3)
    for bad in (float("nan"), -1.0, "0.1"):
        m = tiny_model(optimizers.SGD(0.1))
        w0 = m.get_weights()
        with pytest.raises(ValueError, match=r"LearningRateScheduler: schedule\(0\) returned .* not a valid "
                                             r"learning rate: SGD: `learning_rate` must be a finite number"):
            m.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e, lr: bad)])
        assert same(w0, m.get_weights()) and m.optimizer.learning_rate == 0.1


def test_reduce_lr_on_plateau_with_patience_cooldown_and_min_lr(capsys):
    x, y = tiny_data(8)
    m = tiny_model(optimizers.SGD(0.04))
    h = m.fit(x, y, epochs=6, verbose=0, validation_data=(x, y), callbacks=[
        Script([1.0] * 6), ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.01, verbose=1)])
    assert h.history["learning_rate"] == pytest.approx([0.04, 0.04, 0.04, 0.02, 0.02, 0.01])
    assert m.optimizer.learning_rate == pytest.approx(0.01)
    out = capsys.readouterr().out
    assert "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.02." in out
    # improvements keep the rate; mode auto maximizes accuracy
    m = tiny_model(optimizers.SGD(0.04))
    m.fit(x, y, epochs=4, verbose=0, validation_data=(x, y),
          callbacks=[Script([0.1, 0.2, 0.3, 0.4], "val_accuracy"), ReduceLROnPlateau("val_accuracy", patience=1)])
    assert m.optimizer.learning_rate == 0.04


def test_terminate_on_nan_stops_a_diverging_run(capsys):
    from train_mnist import build_model
    set_random_seed(0)
    m = build_model()
    m.compile(optimizers.RMSprop(learning_rate=1e6), "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((192, 28, 28, 1)).astype(np.float32)
    y = to_categorical(rng.integers(0, 10, 192), 10)
    batches = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = m.fit(x, y, batch_size=64, epochs=5, verbose=0,
                        callbacks=[TerminateOnNaN(), LambdaCallback(on_train_batch_end=lambda b, l: batches.append(b))])
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    assert batches == [0, 1] and history.epoch == [0] and np.isnan(history.history["loss"][0])
    assert len(caught) == 1 and "step 2/2" in str(caught[0].message)  # fit's own warning, once


# -- fit's epoch arguments ----------------------------------------------------------
def test_initial_epoch_and_validation_freq(capsys):
    x, y = tiny_data()
    h = tiny_model().fit(x, y, epochs=4, initial_epoch=2, batch_size=8)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 3/4" and out[2] == "Epoch 4/4" and h.epoch == [2, 3]
    assert h.params["epochs"] == 4
    for freq, validated in ((2, [1, 3]), ([1, 4], [0, 3]), (1, [0, 1, 2, 3])):
        rec = Recorder()
        h = tiny_model().fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=freq, callbacks=[rec])
        assert [i for n, i, l in rec.calls if n == "epoch_end" and "val_loss" in l] == validated
        assert len(h.history["val_loss"]) == len(validated) and len(h.history["loss"]) == 4
    assert tiny_model().fit(x, y, epochs=2, initial_epoch=2, verbose=0).epoch == []


def test_stop_training_from_a_callback_ends_the_epoch_after_that_batch():
    x, y = tiny_data(32)
    m = tiny_model()
    batches = []

    def stop(batch, logs):
        batches.append(batch)
        m.stop_training = batch == 2

    h = m.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[LambdaCallback(on_train_batch_end=stop)])
    assert batches == [0, 1, 2] and h.epoch == [0]
    assert m.fit(x, y, batch_size=16, epochs=2, verbose=0).epoch == [0, 1]  # reset by the next fit


# -- bad arguments ---------------------------------------------------------------------
@pytest.mark.parametrize("make, error, message", [
    (lambda: EarlyStopping(mode="up"), ValueError,
     "EarlyStopping: mode must be 'auto', 'min' or 'max'. Received: mode='up'"),
    (lambda: EarlyStopping(patience=-1), ValueError,
     "EarlyStopping: patience must be an int >= 0. Received: patience=-1"),
    (lambda: EarlyStopping(patience=1.5), ValueError, "EarlyStopping: patience must be an int"),
    (lambda: EarlyStopping(min_delta=float("nan")), ValueError,
     "EarlyStopping: min_delta must be a finite number. Received: min_delta=nan"),
    (lambda: EarlyStopping(baseline="low"), ValueError, "EarlyStopping: baseline must be a finite number"),
    (lambda: EarlyStopping(restore_best_weights="yes"), TypeError,
     "EarlyStopping: restore_best_weights must be True or False"),
    (lambda: EarlyStopping(monitor=None), TypeError, "EarlyStopping: monitor must be the name of a logged value"),
    (lambda: EarlyStopping(start_from_epoch=-2), ValueError, "EarlyStopping: start_from_epoch must be an int >= 0"),
    (lambda: ModelCheckpoint(None), TypeError, "ModelCheckpoint: filepath must be a str or os.PathLike"),
    (lambda: ModelCheckpoint("w.npz", save_freq="batch"), ValueError,
     "ModelCheckpoint: save_freq must be 'epoch' or a positive int .* Received: save_freq='batch'"),
    (lambda: ModelCheckpoint("w.npz", save_freq=0), ValueError, "ModelCheckpoint: save_freq must be"),
    (lambda: ModelCheckpoint("w.npz", mode="best"), ValueError, "ModelCheckpoint: mode must be 'auto', 'min' or 'max'"),
    (lambda: ModelCheckpoint("w.npz", save_best_only="yes"), TypeError, "ModelCheckpoint: save_best_only must be True"),
    (lambda: CSVLogger(None), TypeError, "CSVLogger: filename must be a str or os.PathLike"),
    (lambda: CSVLogger("log.csv", separator=""), ValueError, "CSVLogger: separator must be a one-character string"),
    (lambda: LearningRateScheduler(0.01), TypeError, "LearningRateScheduler: schedule must be a function"),
    (lambda: LearningRateScheduler(abs, verbose=-1), ValueError, "LearningRateScheduler: verbose must be an int >= 0"),
    (lambda: ReduceLROnPlateau(factor=1.0), ValueError,
     r"ReduceLROnPlateau: `factor` must be a finite number in \[0, 1\). Received: factor=1.0"),
    (lambda: ReduceLROnPlateau(min_lr=-1), ValueError, "ReduceLROnPlateau: `min_lr` must be a finite number >= 0"),
    (lambda: ReduceLROnPlateau(cooldown=-1), ValueError, "ReduceLROnPlateau: cooldown must be an int >= 0"),
    (lambda: ReduceLROnPlateau(mode="down"), ValueError, "ReduceLROnPlateau: mode must be 'auto', 'min' or 'max'"),
    (lambda: LambdaCallback(on_epoch_end=3), TypeError, "LambdaCallback: on_epoch_end must be a function"),
    (lambda: LambdaCallback(on_epoch_ended=print), TypeError, "LambdaCallback: unknown hook 'on_epoch_ended'"),
])
def test_bad_callback_arguments_are_refused_naming_them(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x, y: m.fit(x, y, callbacks=EarlyStopping()), TypeError,
     r"fit: callbacks must be a list of keras.callbacks.Callback instances. Received: callbacks=<"),
    (lambda m, x, y: m.fit(x, y, callbacks=[print]), TypeError,
     r"fit: callbacks\[0\] is not a keras.callbacks.Callback instance \(wrap a function in .*LambdaCallback\)"),
    (lambda m, x, y: m.fit(x, y, callbacks=[TerminateOnNaN, None]), TypeError,
     r"callbacks\[0\] is not .* \(it is the class: pass an instance, TerminateOnNaN\(...\)\)"),
    (lambda m, x, y: m.evaluate(x, y, callbacks="csv"), TypeError, "evaluate: callbacks must be a list"),
    (lambda m, x, y: m.predict(x, callbacks=[1]), TypeError, r"predict: callbacks\[0\] is not"),
    (lambda m, x, y: m.fit(x, y, initial_epoch=-1), ValueError, "fit: initial_epoch must be a non-negative int"),
    (lambda m, x, y: m.fit(x, y, validation_freq=0), ValueError, "fit: validation_freq must be a positive int"),
    (lambda m, x, y: m.fit(x, y, validation_freq=[1.5]), ValueError, "fit: validation_freq must be"),
])
def test_bad_fit_arguments_are_refused_before_any_work(call, error, message):
    x, y = tiny_data(8)
    m = tiny_model()
    w0 = m.get_weights()
    with pytest.raises(error, match=message):
        call(m, x, y)
    assert same(w0, m.get_weights())


# -- real MNIST ----------------------------------------------------------------------
def test_early_stopping_and_best_checkpoint_on_real_mnist(real_mnist, tmp_path):
    """The book model on 2,000 images, 3 epochs: the checkpoint keeps the best epoch, and
    EarlyStopping leaves the model with exactly those weights."""
    from train_mnist import build_model
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=str(real_mnist))
    x = x_train[:2000].reshape(-1, 28, 28, 1).astype("float32") / 255
    y = to_categorical(y_train[:2000], 10)
    x_val = x_test[:500].reshape(-1, 28, 28, 1).astype("float32") / 255
    y_val = to_categorical(y_test[:500], 10)
    set_random_seed(0)
    m = build_model()
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path / "best-{epoch:02d}-{val_loss:.4f}.weights.npz"
    history = m.fit(x, y, epochs=3, batch_size=64, verbose=0, validation_data=(x_val, y_val), callbacks=[
        EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True),
        ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, save_weights_only=True)])
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    improved = [e for e, v in enumerate(val_losses) if v < min(val_losses[:e], default=np.inf)]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"best-{e + 1:02d}-{val_losses[e]:.4f}.weights.npz" for e in improved]
    # the model ends with the best epoch's weights, the same the last checkpoint holds
    saved = build_model()
    saved.load_weights(tmp_path / files[-1])
    assert same(m.get_weights(), saved.get_weights())
    loss, acc = m.evaluate(x_val, y_val, batch_size=64, verbose=0)
    assert loss == pytest.approx(val_losses[best], rel=1e-6) and acc > 0.8, (val_losses, acc)
