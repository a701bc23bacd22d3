"""ModelCheckpoint: save the weights or the model during training (``keras.callbacks.ModelCheckpoint``)."""
import math
import os
import warnings

import numpy as np

from ..models.history import Callback
from .checks import check_bool, check_int, check_monitor, check_number, check_path, maximizes


class ModelCheckpoint(Callback):
    """Save the weights (or the model) during training (``keras.callbacks.ModelCheckpoint``).

    ``filepath`` may hold ``str.format`` fields filled from the epoch (1-based)
    and the epoch's logs: ``'ckpt-{epoch:02d}-{val_loss:.2f}.weights.npz'``.
    ``save_best_only``: save only when ``monitor`` improves on the best so far
    (``mode`` as in EarlyStopping; ``initial_value_threshold`` seeds the best).
    ``save_freq``: ``'epoch'``, or an int: save every that many batches
    (then the fields come from the batch's running logs, and ``{batch}`` too).

    ``save_weights_only=True`` writes through ``model.save_weights`` (atomically,
    in the format it picks from the name: minicnn's .npz by default).
    ``save_weights_only=False`` (the default) saves the whole model through
    ``model.save``; a model without a ``save`` method (whole-model saving is
    not available there yet) is refused with a ValueError before training
    starts, saying to pass ``save_weights_only=True``.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        owner = "ModelCheckpoint"
        self.filepath = check_path(owner, "filepath", filepath)
        self.monitor = check_monitor(owner, monitor)
        self.verbose = check_int(owner, "verbose", verbose)
        self.save_best_only = check_bool(owner, "save_best_only", save_best_only)
        self.save_weights_only = check_bool(owner, "save_weights_only", save_weights_only)
        self.maximize = maximizes(owner, mode, self.monitor)
        self.mode = mode
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer))
                                     or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int (a number of "
                             f"batches). Received: save_freq={save_freq!r}")
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        self.best = (-math.inf if self.maximize else math.inf) if initial_value_threshold is None else \
            check_number(owner, "initial_value_threshold", initial_value_threshold)
        self._current_epoch = self._batches_since_save = 0
        if self.save_freq != "epoch":  # a batch hook only then: it makes fit read the loss every batch
            self.on_train_batch_end = self._save_on_batch

    def _require_saver(self):
        if not self.save_weights_only and not callable(getattr(self.model, "save", None)):
            raise ValueError(f"ModelCheckpoint: saving the whole model (model.save) is not available yet for "
                             f"{type(self.model).__name__} models. Pass save_weights_only=True to save the weights "
                             "with model.save_weights. Received: save_weights_only=False")

    def on_train_begin(self, logs=None):
        self._require_saver()
        self._batches_since_save = 0  # as in Keras, counted across epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _save_on_batch(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs or {})

    def _file_path(self, epoch, batch, logs):
        fields = dict(logs, epoch=epoch + 1)
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise KeyError(f'ModelCheckpoint: failed to format the filepath "{self.filepath}": {e!r} '
                           f"(the fields available are epoch, {', '.join(logs)})") from None

    def _save(self, epoch, batch, logs):
        self._require_saver()
        filepath = self._file_path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.",
                              UserWarning, stacklevel=2)
                return
            better = current > self.best if self.maximize else current < self.best
            if not better:
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {filepath}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {filepath!r} is an existing directory; "
                                    "give a file name.")
        os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)
        (self.model.save_weights if self.save_weights_only else self.model.save)(filepath)
