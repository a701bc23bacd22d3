"""BackupAndRestore: an interrupted fit resumes where it stopped (``keras.callbacks.BackupAndRestore``).

A backup is two files in ``backup_dir``, named as Keras names them:
``latest.weights.h5`` (the weights and the optimizer's state, through
``model.save_weights``) and ``training_metadata.json`` (the epoch to resume
from, and what makes the rest of the run the same as an uninterrupted one:
the learning rate and the state of the random generator that shuffles).

Each file is written atomically (a temporary renamed over it), and the pair
is committed in one step too: the new weights go to ``pending.weights.h5``,
then the metadata, which names them by their sha256, replaces the old one
(the commit), then the weights are renamed into place. A process killed at
any point leaves a backup whose metadata matches one of the two weight
files, so the restore never pairs one epoch's weights with another's epoch.
"""
import hashlib
import json
import os
import shutil

from ..models.history import Callback
from ..models.saving import atomic_write
from ..utils import get_rng
from .checks import check_bool, check_path, set_learning_rate

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
PENDING = "pending.weights.h5"
OWNER = "BackupAndRestore"


class BackupAndRestore(Callback):
    """Back up the training state after each epoch; a later fit with the same
    callback restores it and goes on from the next epoch.

    The state is the weights, the optimizer's state (its slots, iteration
    count and learning rate), the number of finished epochs, and the state of
    minicnn's random generator, so that an interrupted and resumed run
    trains exactly as an uninterrupted one would (bit for bit on the CPU).
    What a backup does not hold is the other callbacks' state (EarlyStopping's
    patience count, for one), as in Keras.

    - ``backup_dir``: a folder for this run's backup alone.
    - ``save_freq``: ``'epoch'``; or an int, to back up every that many
      batches (a restore then starts that epoch again, from those weights,
      as Keras does); or ``False``, never.
    - ``double_checkpoint``: keep the previous backup too (``*.bkp``) and
      fall back to it when the latest cannot be read.
    - ``delete_checkpoint``: when fit ends normally, delete the backup files
      (and the folder, if that leaves it empty). A fit stopped by an
      exception or Ctrl-C never reaches that point and keeps them.

    Example::

        backup = BackupAndRestore(backup_dir='/tmp/backup')
        model.fit(x, y, epochs=10, callbacks=[backup])   # killed in epoch 6...
        model.fit(x, y, epochs=10, callbacks=[backup])   # ...runs epochs 6 to 10
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"{OWNER}: empty `backup_dir` argument passed. Received: backup_dir={backup_dir!r}")
        self.backup_dir = check_path(OWNER, "backup_dir", backup_dir)
        if save_freq is not False and save_freq != "epoch" and (
                isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"{OWNER}: invalid value for argument `save_freq`: expected 'epoch', a positive "
                             f"int (a number of batches) or False. Received: save_freq={save_freq!r}")
        self.save_freq = save_freq
        self.double_checkpoint = check_bool(OWNER, "double_checkpoint", double_checkpoint)
        self.delete_checkpoint = check_bool(OWNER, "delete_checkpoint", delete_checkpoint)
        self._current_epoch = self._batches_since_save = 0
        if not isinstance(save_freq, bool) and isinstance(save_freq, int):
            # a batch hook only then: it makes fit read the loss back every batch
            self.on_train_batch_end = self._save_on_batch

    def _path(self, name):
        return os.path.join(self.backup_dir, name)

    # -- the hooks -------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        try:
            import h5py  # noqa: F401  (the backup is a Keras .weights.h5)
        except ImportError:
            raise ImportError(f"{OWNER} writes Keras's .weights.h5 files, which need h5py: "
                              "pip install 'minicnn[h5]'") from None
        self._current_epoch = self._batches_since_save = 0
        metadata = self._restore()
        if metadata is not None:
            # fit starts its epoch loop from here (Keras's model._initial_epoch)
            self._current_epoch = self.model._initial_epoch = int(metadata["epoch"])

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        vars(self.model).pop("_initial_epoch", None)  # used: it must not carry over to another fit

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(epoch + 1, 0)

    def _save_on_batch(self, batch, logs=None):
        self._batches_since_save += 1  # counted across epochs, as in Keras
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._backup(self._current_epoch, batch)

    def on_train_end(self, logs=None):
        vars(self.model).pop("_initial_epoch", None)
        if not self.delete_checkpoint:
            return
        for name in (WEIGHTS, METADATA, PENDING, WEIGHTS + ".bkp", METADATA + ".bkp"):
            if os.path.exists(self._path(name)):
                os.unlink(self._path(name))
        try:
            os.rmdir(self.backup_dir)  # only when empty: the folder may hold the user's files too
        except OSError:
            pass

    # -- writing a backup ------------------------------------------------------------
    def _backup(self, epoch, batch):
        """Back up the state to resume at ``epoch`` (the number of finished epochs)."""
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._path(WEIGHTS)):
            for name in (WEIGHTS, METADATA):
                if os.path.exists(self._path(name)):
                    _copy(self._path(name), self._path(name + ".bkp"))
        pending = self._path(PENDING)
        self.model.save_weights(pending)
        metadata = {"epoch": epoch, "batch": batch, "weights_sha256": _sha256(pending),
                    "learning_rate": _plain_number(getattr(self.model.optimizer, "learning_rate", None)),
                    "rng_state": get_rng().bit_generator.state}
        text = json.dumps(metadata).encode()
        atomic_write(self._path(METADATA), lambda f: f.write(text), OWNER)  # the commit
        os.replace(pending, self._path(WEIGHTS))

    # -- restoring ---------------------------------------------------------------------
    def _restore(self):
        """Load the backup into the model; its metadata, or None when there is none."""
        try:
            return self._restore_pair(WEIGHTS, METADATA)
        except (OSError, ValueError) as e:
            if isinstance(e, FileNotFoundError) or not self.double_checkpoint \
                    or not os.path.exists(self._path(WEIGHTS + ".bkp")):
                raise
            # the previous backup, as Keras falls back to it
            _copy(self._path(WEIGHTS + ".bkp"), self._path(WEIGHTS))
            if os.path.exists(self._path(METADATA + ".bkp")):
                _copy(self._path(METADATA + ".bkp"), self._path(METADATA))
            return self._restore_pair(WEIGHTS, METADATA)

    def _restore_pair(self, weights_name, metadata_name):
        weights, pending = self._path(weights_name), self._path(PENDING)
        metadata = _read_metadata(self._path(metadata_name))
        if metadata is not None:
            expected = metadata.get("weights_sha256")  # absent in Keras's own metadata
            if expected is not None and not (os.path.exists(weights) and _sha256(weights) == expected):
                if not (os.path.exists(pending) and _sha256(pending) == expected):
                    raise ValueError(f"{OWNER}: the backup in {self.backup_dir!r} is inconsistent: "
                                     f"{metadata_name} names weights that neither {weights_name} nor "
                                     f"{PENDING} holds. Delete the folder to start over.")
                os.replace(pending, weights)  # killed after the commit: finish the backup
        if os.path.exists(pending):
            os.unlink(pending)  # killed before the commit: that backup never happened
        if os.path.exists(weights):
            try:
                self.model.load_weights(weights)  # all or nothing
            except ValueError as e:
                raise ValueError(f"{OWNER}: the backup {weights!r} does not fit model {self.model.name} "
                                 f"(a backup folder serves one model): {e}") from None
        if metadata is None:
            return None
        if metadata.get("learning_rate") is not None:  # None: a schedule, which the optimizer keeps
            set_learning_rate(self.model, OWNER, metadata["learning_rate"], "the backed up rate")
        if "rng_state" in metadata:
            get_rng().bit_generator.state = metadata["rng_state"]
        return metadata


def _read_metadata(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        try:
            metadata = json.loads(f.read())
        except ValueError as e:
            raise ValueError(f"{OWNER}: {path!r} is not a backup's metadata: {e}") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("epoch"), int):
        raise ValueError(f"{OWNER}: {path!r} is not a backup's metadata (no epoch). Received: {metadata!r}")
    return metadata


def _plain_number(value):
    """``value`` as a float, or None when it is not a plain number (a schedule)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy(source, target):
    with open(source, "rb") as src:
        atomic_write(target, lambda f: shutil.copyfileobj(src, f), OWNER)
