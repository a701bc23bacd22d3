"""Faults and bad input in the model API: refused up front, nothing half-updated.

Each test here was a probe that once crashed, hung, or silently corrupted a model."""
import gc
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import minicnn as keras
from minicnn import backend, layers, optimizers
from minicnn.models import Sequential
from minicnn.utils import set_random_seed, to_categorical

REPO = Path(__file__).resolve().parents[1]


def tiny_model(seed=0, optimizer="rmsprop", loss="categorical_crossentropy"):
    set_random_seed(seed)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)),
                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer, loss, metrics=["accuracy"])
    return m


def tiny_data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


# -- non-finite data and training ---------------------------------------------------
def test_a_nan_pixel_is_refused_naming_the_sample_before_any_work():
    x, y = tiny_data()
    x[13, 2, 4, 0] = np.nan
    m = tiny_model()
    w0 = m.get_weights()
    with pytest.raises(ValueError, match=r"fit: x holds a non-finite value \(nan\) in sample 13 \(x\[13\]\)"):
        m.fit(x, y, verbose=0)
    assert same_weights(w0, m.get_weights())
    x[13, 2, 4, 0] = np.inf
    with pytest.raises(ValueError, match=r"evaluate: x holds a non-finite value \(inf\) in sample 13"):
        m.evaluate(x, y, verbose=0)
    x[13, 2, 4, 0] = 0
    bad_y = y.copy()
    bad_y[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"fit\(validation_data\): y holds a non-finite value \(nan\) in sample 5"):
        m.fit(x, y, validation_data=(x, bad_y), verbose=0)
    assert same_weights(w0, m.get_weights())


def test_a_diverging_loss_warns_once_naming_epoch_and_step_even_when_silent():
    """The probe: the book model with learning_rate=1e6 turned every weight into NaN, silently."""
    from train_mnist import build_model
    set_random_seed(0)
    m = build_model()
    m.compile(optimizers.RMSprop(learning_rate=1e6), "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((192, 28, 28, 1)).astype(np.float32)
    y = to_categorical(rng.integers(0, 10, 192), 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = m.fit(x, y, batch_size=64, epochs=2, verbose=0)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # ours alone: NumPy's overflow warnings stay quiet
    assert messages[0].startswith("fit: the training loss became nan in epoch 1, step 2/3;")
    assert "learning_rate=1000000.0" in messages[0]
    assert np.isnan(history.history["loss"]).all()


def test_a_healthy_fit_does_not_warn():
    x, y = tiny_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny_model().fit(x, y, epochs=2, verbose=0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(learning_rate=float("nan")), "learning_rate"), (dict(learning_rate=-1e-3), "learning_rate"),
    (dict(learning_rate=float("inf")), "learning_rate"), (dict(epsilon=float("nan")), "epsilon"),
    (dict(epsilon=-1.0), "epsilon"), (dict(rho=float("nan")), "rho"), (dict(rho=1.0), "rho"),
    (dict(learning_rate="0.1"), "learning_rate"), (dict(learning_rate=True), "learning_rate"),
])
def test_optimizers_refuse_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=rf"RMSprop: `{name}` must be a finite number .*Received: {name}="):
        optimizers.RMSprop(**kwargs)
    if "learning_rate" in kwargs:
        with pytest.raises(ValueError, match="SGD: `learning_rate`"):
            optimizers.SGD(**kwargs)


def test_optimizers_accept_numpy_scalars():
    opt = optimizers.RMSprop(np.float32(1e-3), rho=np.float64(0.8), epsilon=np.float32(1e-6))
    assert (opt.learning_rate, opt.rho) == (pytest.approx(1e-3), 0.8)
    assert optimizers.SGD(np.int64(1)).learning_rate == 1.0


# -- optimizer state -------------------------------------------------------------------
def test_an_optimizer_reused_for_a_second_model_is_refused_and_state_stays_per_slot():
    x, y = tiny_data()
    opt = optimizers.RMSprop()
    first = tiny_model(optimizer=opt)
    first.fit(x, y, epochs=1, verbose=0)
    kernel = first.layers[0].weights[0]
    assert opt._velocities[0].shape == kernel.shape
    for _ in range(20):  # freed models' arrays get reused ids: must never matter
        second = tiny_model(optimizer=opt)
        w0 = second.get_weights()
        with pytest.raises(ValueError, match="recreate a new optimizer instance"):
            second.fit(x, y, epochs=1, verbose=0)
        assert same_weights(w0, second.get_weights())
        del second
        gc.collect()
    first.fit(x, y, epochs=1, verbose=0)  # the first model trains on with its own state
    assert opt.iterations == 2


def test_a_bad_gradient_list_updates_nothing():
    opt = optimizers.SGD(0.1)
    a, b = np.ones(3, np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match="gradient shape"):
        opt.apply_gradients([(np.ones(3, np.float32), a), (np.ones(5, np.float32), b)])
    assert (a == 1).all() and (b == 1).all()


# -- weights: all or nothing -------------------------------------------------------------
def test_set_weights_checks_everything_before_changing_anything():
    m = tiny_model()
    w0 = m.get_weights()
    bad = [w + 1 for w in w0]
    bad[-1] = np.zeros(7)
    with pytest.raises(ValueError, match=r"weight 1 expected shape \(3,\), got \(7,\)"):
        m.set_weights(bad)
    assert same_weights(w0, m.get_weights())
    bad[-1] = np.array(["a", "b", "c"])
    with pytest.raises(TypeError, match="must hold numbers"):
        m.set_weights(bad)
    assert same_weights(w0, m.get_weights())


def test_load_weights_of_another_model_leaves_the_model_whole(tmp_path):
    other = Sequential([layers.Conv2D(4, 3, input_shape=(6, 6, 1)), layers.Flatten(), layers.Dense(5)])
    path = tmp_path / "other.weights.npz"
    other.save_weights(path)
    m = tiny_model()
    w0 = m.get_weights()
    with pytest.raises(ValueError, match="expected shape"):
        m.load_weights(path)
    assert same_weights(w0, m.get_weights())


def test_load_weights_names_what_is_wrong_with_the_file(tmp_path):
    m = tiny_model()
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"not a weights file written by save_weights: it holds a single array"):
        m.load_weights(tmp_path / "one.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a weights file"):
        m.load_weights(tmp_path / "junk.npz")
    np.savez(tmp_path / "names.npz", kernel=np.zeros(3))
    with pytest.raises(ValueError, match="not w0, w1"):
        m.load_weights(tmp_path / "names.npz")
    with pytest.raises(TypeError, match="filepath must be a str"):
        m.load_weights(3.5)
    m.save_weights(os.fsencode(tmp_path / "bytes.weights.npz"))  # bytes paths work, as in open()
    m.load_weights(os.fsencode(tmp_path / "bytes.weights.npz"))


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        tiny_model().save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert (tmp_path / "w.npz").stat().st_mode & 0o777 == 0o644


def test_a_save_that_cannot_start_names_the_target(tmp_path):
    target = tmp_path / "missing-folder" / "w.npz"
    with pytest.raises(OSError, match=r"save_weights: cannot write '.*missing-folder/w\.npz'"):
        tiny_model().save_weights(target)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_killed_saves_are_cleaned_by_the_next_save(tmp_path):
    stale = tmp_path / f".w.npz.tmp-{dead_pid()}-0123abcd"
    stale.write_bytes(b"half a file")
    alive = tmp_path / f".w.npz.tmp-{os.getppid()}-0123abcd"  # a save in progress elsewhere
    alive.write_bytes(b"in progress")
    unrelated = tmp_path / f".x.npz.tmp-{dead_pid()}-0123abcd"
    unrelated.write_bytes(b"another target's")
    tiny_model().save_weights(tmp_path / "w.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["w.npz", alive.name, unrelated.name])


def test_sigkill_during_save_leaves_a_whole_file_and_the_next_save_cleans_up(tmp_path):
    """A child saves 24 MB of weights in a loop; SIGKILL lands mid-write."""
    script = (
        "import numpy as np, sys\n"
        "from minicnn.models.saving import save_arrays\n"
        "arrays = [np.full((3, 1 << 20), k, np.float64) for k in range(1)]\n"
        "save_arrays(sys.argv[1], arrays)\n"
        "print('ready', flush=True)\n"
        "k = 1\n"
        "while True:\n"
        "    save_arrays(sys.argv[1], [np.full((3, 1 << 20), k, np.float64)])\n"
        "    k += 1\n")
    target = tmp_path / "big.npz"
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", script, str(target)], cwd=REPO,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        threading.Event().wait(rng.uniform(0.05, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        with np.load(target) as f:
            a = f["w0"]
        assert a.shape == (3, 1 << 20) and (a == a.flat[0]).all()  # one whole save
    Sequential([layers.Dense(2, input_shape=(3,))]).save_weights(target)
    assert [p.name for p in tmp_path.iterdir()] == ["big.npz"]


# -- empty and malformed data --------------------------------------------------------------
def test_empty_inputs_are_refused_before_any_work():
    x, y = tiny_data()
    m = tiny_model()
    w0 = m.get_weights()
    empty_x, empty_y = x[:0], y[:0]
    for call in (lambda: m.evaluate(empty_x, empty_y, verbose=0),
                 lambda: m.fit(empty_x, empty_y, verbose=0),
                 lambda: m.train_on_batch(empty_x, empty_y),
                 lambda: m.test_on_batch(empty_x, empty_y),
                 lambda: m.fit(x, y, validation_data=(empty_x, empty_y), verbose=0)):
        with pytest.raises(ValueError, match="the data has no samples"):
            call()
    assert same_weights(w0, m.get_weights())
    assert m.predict(empty_x).shape == (0, 3)  # an empty prediction is just empty, as in Keras


@pytest.mark.parametrize("labels, error, match", [
    (np.array([0, 1, np.nan, 2]), ValueError, r"label 2 is nan; sparse labels must be integer"),
    (np.array([0, 1, 1.5, 2]), ValueError, r"label 2 is 1.5; sparse labels must be integer"),
    (np.array(["0", "1", "2", "0"]), TypeError, r"y must hold numbers. Received dtype <U1"),
    (np.array([0, 1, 3, 2]), ValueError, r"labels must be in \[0, 3\)"),
])
def test_bad_sparse_labels(labels, error, match):
    x, _ = tiny_data(4)
    m = tiny_model(loss="sparse_categorical_crossentropy")
    with pytest.raises(error, match=match):
        m.fit(x, labels, verbose=0)


def test_float_sparse_labels_that_are_whole_numbers_work():
    x, _ = tiny_data(4)
    m = tiny_model(loss="sparse_categorical_crossentropy")
    m.fit(x, np.array([0.0, 1.0, 2.0, 1.0]), verbose=0)


def test_metrics_as_a_single_string():
    x, y = tiny_data()
    m = tiny_model()
    m.compile("rmsprop", "categorical_crossentropy", metrics="accuracy")
    assert sorted(m.fit(x, y, verbose=0).history) == ["accuracy", "loss"]


def test_non_float_layer_dtypes_are_refused():
    with pytest.raises(TypeError, match=r"dense\w*: `dtype` must be 'float32' or 'float64'.*dtype='int8'"):
        layers.Dense(3, dtype="int8")
    with pytest.raises(TypeError, match="dtype='nonsense'"):
        layers.Conv2D(3, 3, dtype="nonsense")
    assert layers.Dense(3, dtype="float64").dtype == "float64"


def test_a_failed_deferred_build_leaves_the_model_unbuilt():
    m = Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                    layers.Conv2D(4, 3, activation="relu"), layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy")
    with pytest.raises(ValueError, match="larger than the input"):
        m.fit(np.zeros((4, 5, 5, 1), np.float32), np.zeros((4, 3), np.float32), verbose=0)
    assert not any(l.built for l in m.layers) and all(l.weights == [] for l in m.layers)
    x = np.random.default_rng(0).random((8, 12, 12, 1)).astype(np.float32)
    m.fit(x, to_categorical(np.arange(8) % 3, 3), verbose=0)
    assert m.output_shape == (None, 3)


def test_predict_converts_one_batch_at_a_time(monkeypatch):
    m = tiny_model()
    x = (np.random.default_rng(0).random((50, 6, 6, 1)) * 255).astype(np.uint8)
    expected = m.predict(x.astype(np.float32), batch_size=16)
    sizes = []
    real = backend.asarray

    def spy(a, dtype="float32"):
        sizes.append(np.asarray(a).shape[0])
        return real(a, dtype)

    monkeypatch.setattr(backend, "asarray", spy)
    got = m.predict(x, batch_size=16)
    assert sizes == [16, 16, 16, 2]
    np.testing.assert_array_equal(got, expected)


# -- threads and interrupts ---------------------------------------------------------------------
def test_predict_from_another_thread_during_fit():
    x, y = tiny_data(64)
    reference = tiny_model(seed=1)
    reference.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
    m = tiny_model(seed=1)
    errors, done = [], threading.Event()

    def predict_loop():
        try:
            while not done.is_set():
                m.predict(x[:5], batch_size=3)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=predict_loop)
    t.start()
    try:
        m.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
    finally:
        done.set()
        t.join(30)
    assert not errors, errors
    for a, b in zip(reference.get_weights(), m.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_history_after_an_interrupted_fit_holds_the_finished_epochs(monkeypatch):
    x, y = tiny_data(16)
    m = tiny_model()
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    calls = []
    real = type(m)._train_batch

    def interrupted(self, xb, yb):
        calls.append(1)
        if len(calls) == 3:  # epoch 2, first step
            raise KeyboardInterrupt
        return real(self, xb, yb)

    monkeypatch.setattr(type(m), "_train_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        m.fit(x, y, batch_size=8, epochs=5, verbose=0)
    assert m.history.epoch == [0] and len(m.history.history["loss"]) == 1
    assert m.history.params["epochs"] == 5
