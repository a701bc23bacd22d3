"""A diverging fit as Keras shows it: ``loss: nan`` on the progress line (Keras 3's
Progbar formats with ``abs(v) > 1e-3 -> %.4f else %.4e``, so nan prints 'nan'),
TerminateOnNaN stopping it (or raising, with raise_error=True), and ProgbarLogger
being the one bar fit draws."""
import io
import re
import warnings

import numpy as np
import pytest

from minicnn import layers, optimizers
from minicnn.callbacks import LambdaCallback, ProgbarLogger, TerminateOnNaN
from minicnn.models import Sequential
from minicnn.models.progbar import Progbar, format_value
from minicnn.utils import set_random_seed, to_categorical


def tiny_model(optimizer="rmsprop"):
    set_random_seed(0)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)), layers.Flatten(),
                    layers.Dense(3, activation="softmax")])
    m.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=32):
    rng = np.random.default_rng(0)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


def nan_weights_model():
    """A model whose output bias is NaN: every loss from the first batch on is NaN."""
    m = tiny_model()
    w = m.get_weights()
    w[-1][:] = np.nan
    m.set_weights(w)
    return m


def quiet_fit(model, **kwargs):
    """fit, with fit's own one warning about the diverged loss recorded (not shown)."""
    x, y = tiny_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=8, **kwargs)
    return history, [str(w.message) for w in caught]


def untimed(text):
    """The output with its timings (which vary) replaced by T."""
    return re.sub(r"\d+(ms|us|s)(/step|/epoch)?", "T", text)


def test_non_finite_values_format_as_keras_prints_them():
    # Keras 3 progbar.py: `if abs(avg) > 1e-3: f" {avg:.4f}" else: f" {avg:.4e}"`
    assert [format_value(v) for v in (float("nan"), float("inf"), -float("inf"), np.float32("nan"))] == \
        [" nan", " inf", " -inf", " nan"]
    stream = io.StringIO()
    Progbar(3, stream=stream).update(3, [("loss", float("nan")), ("accuracy", 0.25)])
    assert stream.getvalue().endswith("/step - loss: nan - accuracy: 0.2500\n")


def test_a_diverging_learning_rate_shows_nan_on_the_progress_line(capsys):
    m = tiny_model(optimizers.SGD(learning_rate=1e30))  # the first step overflows the weights
    history, warned = quiet_fit(m, epochs=2, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line in (lines[1], lines[3]):
        assert re.fullmatch(r"4/4 \[=+\] - \d+s \d+[mu]?s/step - loss: nan - accuracy: \d\.\d{4}(e[+-]\d+)?",
                            line), line
    assert np.isnan(history.history["loss"]).all()
    assert len(warned) == 1 and "the training loss became nan in epoch 1" in warned[0]
    m = tiny_model(optimizers.SGD(learning_rate=1e30))
    quiet_fit(m, epochs=1, verbose=2)
    assert " - loss: nan - accuracy: " in capsys.readouterr().out


def test_terminate_on_nan_stops_at_the_first_nan_batch(capsys):
    batches, ended = [], []
    history, _ = quiet_fit(nan_weights_model(), epochs=3, verbose=1, callbacks=[
        TerminateOnNaN(), LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b),
                                         on_train_end=lambda logs: ended.append(logs))])
    out = capsys.readouterr().out
    assert "Batch 0: Invalid loss, terminating training" in out
    assert batches == [0] and history.epoch == [0] and np.isnan(history.history["loss"]).all()
    assert "loss: nan" in out.splitlines()[-1] and "Epoch 2/3" not in out
    assert len(ended) == 1  # a graceful stop: on_train_end runs, with the epoch's logs
    assert np.isnan(ended[0]["loss"])


def test_terminate_on_nan_stops_a_diverging_learning_rate(capsys):
    batches = []
    history, _ = quiet_fit(tiny_model(optimizers.SGD(learning_rate=1e30)), epochs=3, verbose=0, callbacks=[
        TerminateOnNaN(), LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(logs["loss"]))])
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    assert history.epoch == [0] and not np.isfinite(batches[-1]) and np.isfinite(batches[:-1]).all()


def test_terminate_on_nan_with_raise_error_skips_on_train_end():
    ended = []
    with pytest.raises(RuntimeError, match=r"NaN or Inf loss encountered at batch 0\. Loss value: nan\. "
                                           r"Terminating training immediately\."):
        quiet_fit(nan_weights_model(), epochs=2, verbose=0, callbacks=[
            TerminateOnNaN(raise_error=True), LambdaCallback(on_train_end=lambda logs: ended.append(1))])
    assert ended == []
    with pytest.raises(TypeError, match="TerminateOnNaN: raise_error must be True or False. Received: raise_error=1"):
        TerminateOnNaN(raise_error=1)


def test_a_healthy_run_is_not_stopped():
    history, warned = quiet_fit(tiny_model(), epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    assert history.epoch == [0, 1] and warned == []


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_progbar_logger_is_the_bar_fit_draws_not_a_second_one(capsys, verbose):
    x, y = tiny_data()
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=verbose)
    plain = capsys.readouterr().out
    tiny_model().fit(x, y, batch_size=8, epochs=2, verbose=verbose, callbacks=[ProgbarLogger()])
    with_logger = capsys.readouterr().out
    assert untimed(with_logger) == untimed(plain)
    assert (plain == "") == (verbose == 0) and plain.count("Epoch 2/2") == (verbose > 0)


def test_progbar_logger_takes_keras_2_arguments():
    logger = ProgbarLogger(count_mode="samples", stateful_metrics=["accuracy"])
    assert (logger.count_mode, logger.stateful_metrics) == ("samples", {"accuracy"})
    with pytest.raises(ValueError, match=r"ProgbarLogger: unknown `count_mode`: 'batches'"):
        ProgbarLogger(count_mode="batches")
