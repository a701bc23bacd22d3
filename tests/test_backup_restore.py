"""BackupAndRestore (keras.callbacks.BackupAndRestore): an interrupted fit, run again with
the same callback, goes on from the last finished epoch and ends exactly where an
uninterrupted run ends (weights, optimizer state, shuffling: bit for bit on the CPU),
whatever moment the interruption hit, including inside a backup."""
import json
import sys

import numpy as np
import pytest

from minicnn import layers
from minicnn.callbacks import BackupAndRestore, Callback, LambdaCallback, ReduceLROnPlateau
from minicnn.callbacks import backup_and_restore as bar
from minicnn.models import Sequential
from minicnn.utils import clear_session, set_random_seed, to_categorical

pytest.importorskip("h5py")
EPOCHS = 5


def tiny_model(seed=0, units=3):
    """The model as a script run again (a new process) makes it: same names, same seed."""
    clear_session()
    set_random_seed(seed)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)),
                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(units, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def tiny_data(n=24):
    rng = np.random.default_rng(0)
    return rng.random((n, 6, 6, 1)).astype(np.float32), to_categorical(rng.integers(0, 3, n), 3)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


class Interrupt(Callback):
    """Raises at the start of epoch ``epoch`` (0-based), as a crash would."""

    def __init__(self, epoch, error=RuntimeError):
        super().__init__()
        self.epoch, self.error = epoch, error

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise self.error("Interrupting!")


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted run: (weights, optimizer iterations, losses per epoch)."""
    x, y = tiny_data()
    m = tiny_model()
    h = m.fit(x, y, batch_size=8, epochs=EPOCHS, verbose=0)
    return m.get_weights(), m.optimizer.iterations, h.history["loss"]


def fit(model, backup, *extra, epochs=EPOCHS):
    x, y = tiny_data()
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[backup, *extra])


def assert_as_reference(model, history, reference, first_epoch):
    weights, iterations, losses = reference
    assert history.epoch == list(range(first_epoch, EPOCHS))
    assert history.history["loss"] == losses[first_epoch:]
    assert same(model.get_weights(), weights) and model.optimizer.iterations == iterations


def test_a_crashed_fit_resumes_at_the_next_epoch_and_ends_as_an_uninterrupted_one(tmp_path, reference):
    folder = tmp_path / "backup"
    with pytest.raises(RuntimeError, match="Interrupting!"):
        fit(tiny_model(), BackupAndRestore(folder), Interrupt(3))
    metadata = json.loads((folder / "training_metadata.json").read_text())
    assert metadata["epoch"] == 3 and sorted(p.name for p in folder.iterdir()) == [
        "latest.weights.h5", "training_metadata.json"]
    m = tiny_model()  # the script again, from the top
    history = fit(m, BackupAndRestore(folder))
    assert_as_reference(m, history, reference, first_epoch=3)
    assert not folder.exists()  # done: delete_checkpoint=True removes the backup


def test_ctrl_c_in_the_middle_of_an_epoch_loses_only_that_epoch(tmp_path, reference):
    folder = tmp_path / "backup"
    calls = []

    def ctrl_c(batch, logs):
        calls.append(batch)
        if len(calls) == 3 * 3 + 2:  # epoch 3 (0-based), its second batch
            raise KeyboardInterrupt

    backup = BackupAndRestore(folder)
    m = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        fit(m, backup, LambdaCallback(on_train_batch_end=ctrl_c))
    history = fit(m, backup)  # the same callback and model, as in Keras's example
    assert_as_reference(m, history, reference, first_epoch=3)


def test_a_resumed_fit_keeps_a_changed_learning_rate(tmp_path):
    folder = tmp_path / "backup"
    x, y = tiny_data()
    m = tiny_model()
    plateau = ReduceLROnPlateau("loss", factor=0.5, patience=0, min_delta=10.0)  # halves from epoch 1 on
    with pytest.raises(RuntimeError):
        m.fit(x, y, epochs=EPOCHS, verbose=0, callbacks=[plateau, BackupAndRestore(folder), Interrupt(3)])
    assert m.optimizer.learning_rate == pytest.approx(0.001 / 4)
    again = tiny_model()
    with pytest.raises(RuntimeError):
        fit(again, BackupAndRestore(folder), Interrupt(3))  # restored, then stopped at once
    assert again.optimizer.learning_rate == pytest.approx(0.001 / 4)


@pytest.mark.parametrize("where", ["after the commit", "before the commit"])
def test_a_crash_inside_a_backup_still_resumes_exactly(tmp_path, reference, monkeypatch, where):
    """The third backup (end of epoch index 2) dies just after its metadata commits, or
    just before: the restore finishes it, or falls back to the second, and either way the
    resumed run ends as the uninterrupted one."""
    folder = tmp_path / "backup"
    backups = []
    if where == "after the commit":
        real_replace = bar.os.replace

        def replace(src, dst):
            if str(src).endswith(bar.PENDING):
                backups.append(1)
                if len(backups) == 3:
                    raise KeyboardInterrupt
            real_replace(src, dst)
        monkeypatch.setattr(bar.os, "replace", replace)
    else:
        real_write = bar.atomic_write

        def atomic_write(path, write, where):
            if str(path).endswith(bar.METADATA):
                backups.append(1)
                if len(backups) == 3:
                    raise KeyboardInterrupt
            real_write(path, write, where)
        monkeypatch.setattr(bar, "atomic_write", atomic_write)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model(), BackupAndRestore(folder))
    monkeypatch.undo()
    assert (folder / bar.PENDING).exists()
    m = tiny_model()
    history = fit(m, BackupAndRestore(folder))
    assert_as_reference(m, history, reference, first_epoch=3 if where == "after the commit" else 2)


def test_weights_that_do_not_match_the_metadata_are_refused(tmp_path):
    folder = tmp_path / "backup"
    with pytest.raises(RuntimeError):
        fit(tiny_model(), BackupAndRestore(folder), Interrupt(2))
    other = tiny_model(seed=1)
    other.save_weights(folder / "latest.weights.h5")  # a whole file, but not the backed up one
    m = tiny_model()
    w0 = m.get_weights()
    with pytest.raises(ValueError, match=r"BackupAndRestore: the backup in '.*backup' is inconsistent: "
                                         r"training_metadata.json names weights that neither"):
        fit(m, BackupAndRestore(folder))
    assert same(w0, m.get_weights())


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path, reference):
    folder = tmp_path / "backup"
    with pytest.raises(RuntimeError):
        fit(tiny_model(), BackupAndRestore(folder, double_checkpoint=True), Interrupt(3))
    assert json.loads((folder / "training_metadata.json.bkp").read_text())["epoch"] == 2
    (folder / "latest.weights.h5").write_bytes(b"\x89HDF\r\n garbage")  # the disk lost it
    m = tiny_model()
    history = fit(m, BackupAndRestore(folder, double_checkpoint=True))
    assert_as_reference(m, history, reference, first_epoch=2)


def test_a_backup_of_another_model_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "backup"
    with pytest.raises(RuntimeError):
        fit(tiny_model(), BackupAndRestore(folder), Interrupt(1))
    m = tiny_model(units=2)
    m.compile("rmsprop", "categorical_crossentropy")
    w0 = m.get_weights()
    x = tiny_data()[0]
    with pytest.raises(ValueError, match=r"BackupAndRestore: the backup '.*latest\.weights\.h5' does not fit "
                                         r"model sequential \(a backup folder serves one model\): .*expected shape"):
        m.fit(x, np.eye(2)[np.arange(len(x)) % 2], epochs=2, verbose=0, callbacks=[BackupAndRestore(folder)])
    assert same(w0, m.get_weights())


def test_delete_checkpoint_false_keeps_the_backup_and_a_finished_run_trains_no_more(tmp_path):
    folder = tmp_path / "backup"
    (tmp_path / "backup").mkdir()
    (folder / "notes.txt").write_text("the user's own file")
    m = tiny_model()
    fit(m, BackupAndRestore(folder, delete_checkpoint=False))
    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == EPOCHS
    w = m.get_weights()
    again = tiny_model()
    assert fit(again, BackupAndRestore(folder)).epoch == []  # all 5 epochs were done
    assert same(again.get_weights(), w)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]  # only the backup's own files go
    more = tiny_model()
    fit(more, BackupAndRestore(folder, delete_checkpoint=False))
    assert fit(more, BackupAndRestore(folder), epochs=EPOCHS + 2).epoch == [5, 6]


def test_the_restored_epoch_never_carries_over_to_a_later_fit(tmp_path):
    folder = tmp_path / "backup"
    m = tiny_model()
    with pytest.raises(RuntimeError):
        fit(m, BackupAndRestore(folder), Interrupt(3))
    with pytest.raises(RuntimeError):  # the resumed run dies too, in its first epoch
        fit(m, BackupAndRestore(folder), Interrupt(3))
    x, y = tiny_data()
    assert m.fit(x, y, epochs=2, verbose=0).epoch == [0, 1]  # no callback: from epoch 0
    assert "_initial_epoch" not in vars(m)


def test_batch_backups_restart_the_epoch_they_were_in(tmp_path):
    folder = tmp_path / "backup"
    calls = []

    def crash(batch, logs):
        calls.append(batch)
        if len(calls) == 3 + 2:  # epoch 1, batch 1: after the batch backups of batches 1, 3 (0-based)
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        fit(tiny_model(), BackupAndRestore(folder, save_freq=2), LambdaCallback(on_train_batch_end=crash))
    metadata = json.loads((folder / "training_metadata.json").read_text())
    assert (metadata["epoch"], metadata["batch"]) == (1, 0)  # Keras's 0-based batch
    assert fit(tiny_model(), BackupAndRestore(folder, save_freq=2)).epoch == [1, 2, 3, 4]


def test_save_freq_false_never_backs_up(tmp_path):
    with pytest.raises(RuntimeError):
        fit(tiny_model(), BackupAndRestore(tmp_path / "b", save_freq=False), Interrupt(2))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(backup_dir=""), ValueError, "BackupAndRestore: empty `backup_dir` argument passed"),
    (dict(backup_dir="b", save_freq="batch"), ValueError,
     r"invalid value for argument `save_freq`: expected 'epoch', .* Received: save_freq='batch'"),
    (dict(backup_dir="b", save_freq=0), ValueError, "Received: save_freq=0"),
    (dict(backup_dir="b", save_freq=True), ValueError, "Received: save_freq=True"),
    (dict(backup_dir="b", double_checkpoint="yes"), TypeError,
     "BackupAndRestore: double_checkpoint must be True or False. Received: double_checkpoint='yes'"),
    (dict(backup_dir=3), TypeError, "backup_dir must be a str or os.PathLike. Received: backup_dir=3"),
])
def test_bad_arguments_are_refused_when_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        BackupAndRestore(**kwargs)


def test_without_h5py_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    m = tiny_model()
    w0 = m.get_weights()
    with pytest.raises(ImportError, match=r"BackupAndRestore .* need h5py: pip install 'minicnn\[h5\]'"):
        fit(m, BackupAndRestore(tmp_path / "b"))
    assert same(w0, m.get_weights())
