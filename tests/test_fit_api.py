"""fit / evaluate / predict: sample and class weights (against Keras 3's numbers), steps_per_epoch,
generators and Sequences, Keras 2's spellings, predict's progress bar, and bad input.

Keras's numbers are in tests/fixtures/losses/training.npz (make_loss_fixtures.py regenerates them)."""
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers, optimizers, regularizers
from minicnn.utils import PyDataset, Sequence, set_random_seed, to_categorical

TRAINING = np.load(Path(__file__).resolve().parent / "fixtures" / "losses" / "training.npz")
CLASS_WEIGHT = {i: float(v) for i, v in enumerate(TRAINING["class_weight"])}


def keras_dense_model():
    m = keras.Sequential([layers.Dense(3, activation="softmax", kernel_regularizer=regularizers.L2(0.05),
                                       input_shape=(4,))])
    m.set_weights([TRAINING["w"], TRAINING["b"]])
    m.compile(optimizers.SGD(learning_rate=0.5), "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_sample_and_class_weights_train_and_evaluate_as_keras_does():
    x, y, sw = TRAINING["x"], TRAINING["y"], TRAINING["sample_weight"]
    m = keras_dense_model()   # fit's one batch = Keras's train_on_batch(sample_weight=)
    h = m.fit(x, y, batch_size=8, shuffle=False, sample_weight=sw, verbose=0)
    assert h.history["loss"][0] == pytest.approx(float(TRAINING["train_on_batch/logs"][0]), rel=1e-6)
    np.testing.assert_allclose(m.get_weights()[0], TRAINING["train_on_batch/w"], rtol=1e-6, atol=1e-7)
    m = keras_dense_model()
    h = m.fit(x, y, batch_size=8, shuffle=False, class_weight=CLASS_WEIGHT, verbose=0)
    assert h.history["loss"][0] == pytest.approx(float(TRAINING["fit_class_weight/loss"]), rel=1e-6)
    np.testing.assert_allclose(m.get_weights()[0], TRAINING["fit_class_weight/w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.get_weights()[1], TRAINING["fit_class_weight/b"], rtol=1e-6, atol=1e-7)
    m = keras_dense_model()   # batches of 3, 3, 2: Keras's sum(w * l) / n per batch, means weighted by size
    np.testing.assert_allclose(m.evaluate(x, y, sample_weight=sw, batch_size=3, verbose=0),
                               TRAINING["evaluate/weighted"], rtol=1e-6)
    assert m.test_on_batch(x, y, sample_weight=sw, return_dict=True)["loss"] == \
        pytest.approx(float(TRAINING["evaluate/weighted"][0]), rel=1e-6)
    m2 = keras_dense_model()
    np.testing.assert_allclose(m2.train_on_batch(x, y, class_weight=CLASS_WEIGHT)[0],
                               TRAINING["fit_class_weight/loss"], rtol=1e-6)


def tiny(seed=0, units=3):
    set_random_seed(seed)
    m = keras.Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(5, 5, 1)), layers.Flatten(),
                          layers.Dense(units, activation="softmax")])
    m.compile(optimizers.SGD(0.1), "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 5, 5, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


def recorded_batches(m, monkeypatch):
    seen = []
    real = type(m)._train_batch

    def record(self, xb, yb, *sw):
        seen.append(np.asarray(xb)[:, 0, 0, 0].copy())
        return real(self, xb, yb, *sw)

    monkeypatch.setattr(type(m), "_train_batch", record)
    return seen


def test_steps_per_epoch_with_arrays_continues_the_pass_as_keras_3(monkeypatch):
    x, y = tiny_data(10)
    m = tiny()
    seen = recorded_batches(m, monkeypatch)
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        h = m.fit(x, y, batch_size=2, epochs=4, steps_per_epoch=2, shuffle=False, verbose=0)
    firsts = [float(b[0]) for b in seen]
    # 5 batches per pass: epochs take batches 0-1, 2-3, 4 (the pass ran out: a short epoch), then 0-1 again
    assert firsts == [float(x[i, 0, 0, 0]) for i in (0, 2, 4, 6, 8, 0, 2)]
    assert h.params["steps"] == 2 and len(h.history["loss"]) == 4


def test_a_generator_needs_steps_and_trains_as_the_arrays_would(monkeypatch):
    x, y = tiny_data(12)
    sw = np.linspace(0.5, 2, 12).astype(np.float32)

    def batches():
        while True:
            for i in range(0, 12, 4):
                yield x[i:i + 4], y[i:i + 4], sw[i:i + 4]

    with pytest.raises(ValueError, match="a generator needs `steps`"):
        tiny().fit(batches(), epochs=1, verbose=0)
    a = tiny()
    ha = a.fit(x, y, batch_size=4, epochs=2, shuffle=False, sample_weight=sw, verbose=0)
    b = tiny()
    hb = b.fit(batches(), steps_per_epoch=3, epochs=2, verbose=0)
    assert ha.history == hb.history
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    c = tiny()
    with pytest.warns(DeprecationWarning, match=re.escape("`Model.fit_generator` is deprecated")):
        hc = c.fit_generator(batches(), steps_per_epoch=3, epochs=2, verbose=0)
    assert hc.history == ha.history


def test_a_generator_that_runs_out_ends_training_with_keras_s_warning():
    x, y = tiny_data(8)
    m = tiny()
    with pytest.warns(UserWarning, match="ran out of data"):
        h = m.fit(((x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)), steps_per_epoch=3, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 2   # 3 steps, then 1 step and the warning; nothing for epoch 3


class Batches(Sequence):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size, self.epochs_ended = x, y, size, 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        return self.x[i * self.size:(i + 1) * self.size], self.y[i * self.size:(i + 1) * self.size]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_a_sequence_is_read_by_index_every_epoch():
    x, y = tiny_data(10)
    seq = Batches(x, y, 4)
    a, b = tiny(), tiny()
    ha = a.fit(seq, epochs=3, shuffle=False, verbose=0)
    hb = b.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    assert ha.history == hb.history and ha.params["steps"] == 3 and seq.epochs_ended == 3
    set_random_seed(5)
    c = tiny()
    c.fit(seq, epochs=2, validation_data=Batches(x[:4], y[:4], 2), verbose=0)   # shuffled batch order
    assert PyDataset is Sequence and isinstance(seq, PyDataset)
    assert c.evaluate(seq, verbose=0) == pytest.approx(c.evaluate(x, y, batch_size=4, verbose=0), rel=1e-6)
    with pytest.warns(DeprecationWarning, match="evaluate_generator"):
        assert c.evaluate_generator(seq) == pytest.approx(c.evaluate(x, y, verbose=0), rel=1e-6)
    np.testing.assert_array_equal(c.predict(seq, verbose=0), c.predict(x, batch_size=4, verbose=0))
    with pytest.warns(DeprecationWarning, match="predict_generator"):
        p = c.predict_generator(((x[i:i + 3],) for i in range(0, 9, 3)), steps=3)
    np.testing.assert_allclose(p, c.predict(x[:9], verbose=0), rtol=1e-6, atol=1e-7)


def test_predict_shows_keras_s_progress_bar(capsys):
    x, _ = tiny_data(10)
    m = tiny()
    m.predict(x, batch_size=4)
    assert re.fullmatch(r"3/3 \[={30}\] - \d+s \d+(ms|us|s)/step\n", capsys.readouterr().out)
    m.predict(x, verbose=0)
    m.predict_on_batch(x)
    assert capsys.readouterr().out == ""
    assert m.predict(x, batch_size=4, steps=2, verbose=0).shape == (8, 3)


def test_keras_2_nb_epoch_and_validation_tuples_with_weights():
    x, y = tiny_data(12)
    with pytest.warns(DeprecationWarning, match="The `nb_epoch` argument in `fit` has been renamed `epochs`"):
        h = tiny().fit(x, y, nb_epoch=2, verbose=0)
    assert len(h.history["loss"]) == 2
    sw = np.linspace(0, 1, 12)
    m = tiny()
    h = m.fit(x, y, epochs=1, validation_data=(x, y, sw), verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(m.evaluate(x, y, sample_weight=sw, verbose=0)[0], rel=1e-6)
    m = tiny()
    h = m.fit(x, y, epochs=1, validation_split=0.5, sample_weight=sw, verbose=0)   # the weights are split too
    assert h.history["val_loss"][0] == pytest.approx(
        m.evaluate(x[6:], y[6:], sample_weight=sw[6:], verbose=0)[0], rel=1e-6)
    s = tiny()
    s.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    h = s.fit(x, y.argmax(1), epochs=1, validation_split=0.25, verbose=0)   # sparse labels split once
    assert sorted(h.history) == ["acc", "loss", "val_acc", "val_loss"]


@pytest.mark.parametrize("kwargs,error,match", [
    ({"sample_weight": np.ones(9)}, ValueError, "sample_weight has 9 values but x has 10 samples"),
    ({"sample_weight": np.ones((10, 2))}, ValueError,
     r"sample_weight must be a 1-D array .* sample_weight.shape=\(10, 2\)"),
    ({"sample_weight": np.r_[np.ones(9), np.nan]}, ValueError, r"sample_weight holds a non-finite value \(nan\) "
                                                               r"in sample 9"),
    ({"class_weight": {0: 1.0, 1: 2.0}}, ValueError, r"class_weight has no weight for class\(es\) \[2\]"),
    ({"class_weight": {0: 1, 1: 1, 2: 1, 3: 1}}, ValueError, r"class_weight key 3 is not a class of this model"),
    ({"class_weight": {0: 1, 1: -1, 2: 1}}, ValueError, r"class_weight\[1\] must be a finite number >= 0"),
    ({"class_weight": [1, 2, 3]}, TypeError, "class_weight must be a dict"),
    ({"class_weight": {0: 1, 1: 1, 2: 1}, "sample_weight": np.ones(10)}, ValueError,
     "cannot pass `class_weight` and `sample_weight` at the same time"),
    ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch must be a positive int or None"),
    ({"validation_data": (np.zeros((2, 5, 5, 1)),)}, ValueError, "validation_data must be a tuple"),
    ({"epochs_": 2}, TypeError, r"unexpected keyword argument\(s\) \['epochs_'\]"),
])
def test_bad_arguments_are_refused_before_any_work(kwargs, error, match):
    x, y = tiny_data(10)
    m = tiny()
    before = m.get_weights()
    with pytest.raises(error, match=match):
        m.fit(x, y, verbose=0, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert m.optimizer.iterations == 0


def test_class_weight_needs_a_classification_loss_and_binary_labels():
    x, y = tiny_data(10)
    m = tiny()
    m.compile("sgd", "mse")
    with pytest.raises(ValueError, match="class_weight applies to classification losses .* 'mean_squared_error'"):
        m.fit(x, y, class_weight={0: 1, 1: 1, 2: 1}, verbose=0)
    b = tiny(units=1)
    b.compile("sgd", "binary_crossentropy")
    b.fit(x, y[:, 0], class_weight={0: 1.0, 1: 3.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight needs class labels in \[0, 2\); y\[0\] is 2.0"):
        b.fit(x, np.full(10, 2.0), class_weight={0: 1.0, 1: 3.0}, verbose=0)
    with pytest.raises(ValueError, match="with a generator or Sequence as x, y and sample_weight come from its"):
        m.fit(Batches(x, y, 2), y, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.fit(x, y, epochs=1, verbose=0)   # a clean call warns about nothing


LOSSES = {   # loss, last activation, target
    "cce_logits": (lambda: keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "linear",
                   "onehot"),
    "scce": (lambda: "sparse_categorical_crossentropy", "softmax", "labels"),
    "bce_sigmoid": (lambda: keras.losses.BinaryCrossentropy(label_smoothing=0.2), "sigmoid", "binary"),
    "bce_logits": (lambda: keras.losses.BinaryCrossentropy(from_logits=True), "linear", "binary"),
    "mse": (lambda: "mse", "linear", "onehot"),
    "mae": (lambda: keras.losses.MeanAbsoluteError(), "tanh", "onehot"),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weighted_regularized_training_on_the_emulator_matches_numpy(impl, name):
    if impl not in ("emulator", "gpu"):
        pytest.skip("compares a CUDA device with the CPU")
    loss, activation, target = LOSSES[name]
    x, y = tiny_data(20)
    units = 1 if target == "binary" else 3
    y = {"onehot": y, "labels": y.argmax(1), "binary": y[:, :1]}[target]
    sw = np.linspace(0.2, 2, 20)
    histories, weights = [], []
    for device in ("numpy", "cupy" if impl == "gpu" else "emulator"):
        keras.backend.set_backend(device)
        set_random_seed(0)
        dense = layers.Dense(units, activation=activation, kernel_regularizer=regularizers.L1L2(1e-3, 1e-2),
                             bias_regularizer="l2")
        m = keras.Sequential([layers.Flatten(input_shape=(5, 5, 1)), dense])
        m.compile(optimizers.SGD(0.2), loss(), metrics=["accuracy", "mae"])
        histories.append(m.fit(x, y, batch_size=8, epochs=2, sample_weight=sw, validation_data=(x, y),
                               shuffle=False, verbose=0).history)
        weights.append(m.get_weights())
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5, atol=1e-7, err_msg=key)
    for a, b in zip(*weights):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
