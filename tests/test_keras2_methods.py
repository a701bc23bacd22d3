"""Keras 2 habits that tutorials still use: Sequential.predict_classes / predict_proba
(Keras 2.3's rules, with a DeprecationWarning naming what to use), history.history['acc']
after metrics=['accuracy'] (a lookup alias; the stored names stay Keras 3's), and
model.summary's Keras arguments (line_length, positions, print_fn, expand_nested,
show_trainable, layer_range)."""
import copy
import json
import pickle

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers
from minicnn.models import Sequential
from minicnn.models.history import History, HistoryDict
from minicnn.utils import clear_session, set_random_seed, to_categorical


def softmax_model():
    set_random_seed(0)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)), layers.Flatten(),
                    layers.Dense(3, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=16):
    rng = np.random.default_rng(0)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


# -- predict_classes / predict_proba ----------------------------------------------------
def test_predict_classes_is_the_argmax_of_predict_with_a_deprecation_warning():
    m = softmax_model()
    x, _ = tiny_data(40)
    with pytest.warns(DeprecationWarning, match=r"`model\.predict_classes\(\)` is deprecated .* Use instead: "
                                                 r"`np\.argmax\(model\.predict\(x\), axis=-1\)`"):
        classes = m.predict_classes(x, batch_size=7)
    np.testing.assert_array_equal(classes, np.argmax(m.predict(x, batch_size=7), axis=-1))
    assert classes.shape == (40,) and classes.dtype.kind == "i"


def test_predict_classes_of_one_unit_thresholds_at_one_half():
    m = Sequential([layers.Dense(1, input_shape=(2,))])
    m.set_weights([np.array([[1.0], [0.0]], np.float32), np.array([0.0], np.float32)])  # p = x[:, 0]
    x = np.array([[0.2, 9.0], [0.5, 9.0], [0.51, -9.0], [3.0, 0.0]], np.float32)
    with pytest.warns(DeprecationWarning, match=r"`\(model\.predict\(x\) > 0\.5\)\.astype\('int32'\)`"):
        classes = m.predict_classes(x)
    assert classes.dtype == np.int32 and classes.tolist() == [[0], [0], [1], [1]]  # (n, 1), as Keras 2.3


def test_predict_proba_is_predict_with_a_deprecation_warning():
    m = softmax_model()
    x, _ = tiny_data()
    with pytest.warns(DeprecationWarning, match=r"`model\.predict_proba\(\)` is deprecated .* Use "
                                                r"`model\.predict\(\)` instead"):
        proba = m.predict_proba(x, batch_size=5, verbose=0)
    np.testing.assert_array_equal(proba, m.predict(x, batch_size=5))


def test_predict_proba_warns_when_the_outputs_are_not_probabilities():
    m = Sequential([layers.Dense(2, input_shape=(2,))])
    m.set_weights([np.eye(2, dtype=np.float32) * 3, np.zeros(2, np.float32)])
    with pytest.warns(UserWarning, match="Network returning invalid probability values"), \
            pytest.warns(DeprecationWarning):
        m.predict_proba(np.ones((3, 2), np.float32))


# -- history.history['acc'] ---------------------------------------------------------------
def test_keras_2_accuracy_names_read_the_keras_3_lists():
    x, y = tiny_data()
    history = softmax_model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    h = history.history
    assert list(h) == ["loss", "accuracy", "val_loss", "val_accuracy"]  # stored as Keras 3 names them
    assert h["acc"] is h["accuracy"] and h["val_acc"] is h["val_accuracy"]
    assert "acc" in h and "val_acc" in h and h.get("acc") is h["accuracy"]
    assert sorted(h.keys()) == sorted(["loss", "accuracy", "val_loss", "val_accuracy"]) and len(h) == 4
    assert repr(h) == repr(dict(h)) and "acc'" not in str(list(h))
    assert json.loads(json.dumps(h)) == dict(h)
    assert pickle.loads(pickle.dumps(h))["acc"] == h["accuracy"]
    assert copy.deepcopy(h)["val_acc"] == h["val_accuracy"]
    with pytest.raises(KeyError, match="'val_acc'"):
        softmax_model().fit(x, y, epochs=1, verbose=0).history["val_acc"]  # no validation: no alias
    assert h.get("mae", 7) == 7 and "mae" not in h and 3 not in h


def test_keras_2_scripts_that_compile_with_acc_read_either_name():
    x, y = tiny_data()
    m = softmax_model()
    m.compile("rmsprop", "categorical_crossentropy", metrics=["acc"])
    h = m.fit(x, y, epochs=1, verbose=0).history
    assert list(h) == ["loss", "acc"] and h["accuracy"] is h["acc"]


def test_a_history_built_by_hand_works_the_same():
    history = History()
    history.append(0, [("loss", 1.0), ("accuracy", 0.5)])
    assert isinstance(history.history, HistoryDict) and history.history["acc"] == [0.5]
    assert HistoryDict(acc=[1])["accuracy"] == [1] and dict(HistoryDict(acc=[1])) == {"acc": [1]}


# -- summary(...) ---------------------------------------------------------------------------
def book_like():
    clear_session()
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), layers.MaxPooling2D(2),
                    layers.Flatten(), layers.Dense(3, activation="softmax", trainable=False)])
    return m


def summary_lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lines.append, **kwargs)
    return lines


def test_print_fn_gets_each_line_and_expand_nested_is_accepted():
    m = book_like()
    lines = summary_lines(m)
    assert lines == summary_lines(m, expand_nested=True) == summary_lines(m, expand_nested=False)
    assert all("\n" not in line for line in lines) and len(lines) == 16
    written = []
    m.summary(print_fn=lambda line: written.append(line + "\n"))  # the Keras 2 idiom: f.write(x + '\n')
    assert "".join(written) == "\n".join(lines) + "\n"


def test_show_trainable_adds_tf_keras_2s_column():
    lines = summary_lines(book_like(), show_trainable=True)
    assert lines[1] == "_" * 76 and lines[3] == "=" * 76
    assert lines[2] == "Layer (type)                 Output Shape              Param #   Trainable  "
    assert lines[4] == "conv2d (Conv2D)              (None, 6, 6, 4)           40        Y          "
    assert lines[10] == "dense (Dense)                (None, 3)                 111       N          "
    assert lines[-4:-1] == ["Total params: 151", "Trainable params: 40", "Non-trainable params: 111"]


def test_line_length_and_positions_as_keras_2_takes_them():
    m = book_like()
    relative = summary_lines(m, line_length=100, positions=[0.4, 0.7, 1.0])
    absolute = summary_lines(m, line_length=100, positions=[40, 70, 100])
    assert relative == absolute
    assert relative[1] == "_" * 100 and len(relative[4]) == 100
    assert relative[4] == "conv2d (Conv2D)".ljust(40) + "(None, 6, 6, 4)".ljust(30) + "40".ljust(30)
    assert summary_lines(m, line_length=65) == summary_lines(m)


def test_layer_range_prints_the_rows_between_two_names():
    lines = summary_lines(book_like(), layer_range=["max_pooling2d", "flat.*"])
    rows = [line.split(" ")[0] for line in lines[4:-5:2]]
    assert rows == ["max_pooling2d", "flatten"]
    assert lines[-4] == "Total params: 151"  # the totals stay the model's


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(print_fn="stdout"), TypeError, "summary: print_fn must be a function .* Received: print_fn='stdout'"),
    (dict(expand_nested="yes"), TypeError, "summary: expand_nested must be True or False"),
    (dict(show_trainable=1), TypeError, "summary: show_trainable must be True or False"),
    (dict(line_length=0), ValueError, "summary: line_length must be a positive int. Received: line_length=0"),
    (dict(positions=[0.5, 1.0]), ValueError, r"summary: positions must be 3 numbers.*Received: positions=\[0.5, 1.0\]"),
    (dict(layer_range=["conv2d"]), ValueError, "layer_range must be a list or tuple of length 2"),
    (dict(layer_range=["conv2d", 3]), ValueError, "layer_range should contain string type only"),
    (dict(layer_range=["nope", "dense"]), ValueError, "Passed layer_names do not match the layer names"),
])
def test_bad_summary_arguments_are_refused_before_printing(kwargs, error, match):
    printed = []
    with pytest.raises(error, match=match):
        book_like().summary(**{"print_fn": printed.append, **kwargs})
    assert printed == []


def test_functional_models_take_the_same_arguments():
    clear_session()
    inputs = keras.Input(shape=(8, 8, 1))
    model = keras.Model(inputs, layers.Conv2D(2, 3)(inputs))
    lines = summary_lines(model, show_trainable=True, layer_range=["input.*", "conv2d"])
    assert lines[4] == "input_1 (InputLayer)         [(None, 8, 8, 1)]         0         Y          "
