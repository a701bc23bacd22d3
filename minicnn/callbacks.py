"""Callbacks as in ``keras.callbacks``: pass them to fit (or evaluate / predict).

Example::

    from minicnn.callbacks import EarlyStopping, ModelCheckpoint
    model.fit(x, y, epochs=20, validation_split=0.1, callbacks=[
        EarlyStopping(patience=2, restore_best_weights=True),
        ModelCheckpoint('best.weights.npz', save_best_only=True, save_weights_only=True)])

The protocol (hooks, their order, ``logs``) is documented in
``minicnn/models/history.py``, beside the loop's side of it. ``epoch`` and
``batch`` are 0-based in hooks; messages and file names count epochs from 1.
"""
import csv
import inspect
import math
import os
import warnings

import numpy as np

from .models.history import Callback, CallbackList, History
from .optimizers import check_hyperparameter

__all__ = ["Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback",
           "LearningRateScheduler", "ModelCheckpoint", "ReduceLROnPlateau", "TerminateOnNaN"]


# -- argument checks ---------------------------------------------------------------
def _int(owner, name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def _number(owner, name, value):
    """A finite real number (any sign) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number. Received: {name}={value!r}")
    return float(value)


def _bool(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def _monitor(owner, value):
    if not isinstance(value, str) or not value:
        raise TypeError(f"{owner}: monitor must be the name of a logged value, e.g. 'val_loss'. "
                        f"Received: monitor={value!r}")
    return value


def _maximize(owner, mode, monitor):
    """True when larger is better: mode 'max', or 'auto' and 'acc' in the monitored name."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
    return mode == "max" or (mode == "auto" and "acc" in monitor)


def _path(owner, name, value):
    try:
        return os.fsdecode(os.fspath(value))
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a str or os.PathLike. Received: {name}={value!r}") from None


def _learning_rate(model, owner):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner}: the model's optimizer must have a `learning_rate` attribute "
                         "(compile the model first).")
    return float(optimizer.learning_rate)


def _set_learning_rate(model, owner, value, what):
    """Set the optimizer's learning rate through its own checks (finite, >= 0)."""
    optimizer = model.optimizer
    try:
        optimizer.learning_rate = check_hyperparameter(type(optimizer).__name__, "learning_rate", value)
    except ValueError as e:
        raise ValueError(f"{owner}: {what} is not a valid learning rate: {e}") from None


# -- the callbacks -----------------------------------------------------------------
class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (``keras.callbacks.EarlyStopping``).

    An epoch improves when the value beats the best so far by more than
    ``min_delta``; after ``patience`` epochs without one (never in epoch 0)
    it sets ``model.stop_training``. ``mode='auto'`` maximizes names containing
    'acc' and minimizes the rest. ``baseline``: the wait restarts only on values
    that beat it too. Epochs before ``start_from_epoch`` are ignored.
    ``restore_best_weights``: when training ends, stopped or not, the model gets
    the weights of the best epoch's end. A missing ``monitor`` key warns and
    the epoch is skipped. After fit: ``stopped_epoch``, ``best``, ``best_epoch``.

    Example: ``EarlyStopping(monitor='val_loss', patience=3, restore_best_weights=True)``.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        owner = "EarlyStopping"
        self.monitor = _monitor(owner, monitor)
        self.min_delta = abs(_number(owner, "min_delta", min_delta))
        self.patience = _int(owner, "patience", patience)
        self.verbose = _int(owner, "verbose", verbose)
        self.maximize = _maximize(owner, mode, self.monitor)
        self.mode = mode
        self.baseline = baseline if baseline is None else _number(owner, "baseline", baseline)
        self.restore_best_weights = _bool(owner, "restore_best_weights", restore_best_weights)
        self.start_from_epoch = _int(owner, "start_from_epoch", start_from_epoch)
        self.on_train_begin()

    def on_train_begin(self, logs=None):  # reset: an instance may serve several fits
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = self.best_weights = None

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return value - self.min_delta > reference if self.maximize else value + self.min_delta < reference

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", UserWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


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
        self.filepath = _path(owner, "filepath", filepath)
        self.monitor = _monitor(owner, monitor)
        self.verbose = _int(owner, "verbose", verbose)
        self.save_best_only = _bool(owner, "save_best_only", save_best_only)
        self.save_weights_only = _bool(owner, "save_weights_only", save_weights_only)
        self.maximize = _maximize(owner, mode, self.monitor)
        self.mode = mode
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer))
                                     or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int (a number of "
                             f"batches). Received: save_freq={save_freq!r}")
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        self.best = (-math.inf if self.maximize else math.inf) if initial_value_threshold is None else \
            _number(owner, "initial_value_threshold", initial_value_threshold)
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


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (``keras.callbacks.TerminateOnNaN``).

    It reads the loss after every batch (on a GPU: one sync per batch)."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


_LAMBDA_HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    """A callback from plain functions (``keras.callbacks.LambdaCallback``).

    Each keyword names a hook and takes a function with that hook's arguments:
    ``on_epoch_end=lambda epoch, logs: print(epoch, logs['loss'])``. Hooks not
    given stay no-ops (a batch hook given makes fit read the loss every batch).
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name not in _LAMBDA_HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}. Expected one of {list(_LAMBDA_HOOKS)}")
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be a function. Received: {name}={fn!r}")
            if fn is not None:
                setattr(self, name, fn)


class CSVLogger(Callback):
    """Write each epoch's logs as one CSV row (``keras.callbacks.CSVLogger``).

    Columns: ``epoch`` (0-based, as in Keras), then the logged names sorted;
    as in Keras, val_ columns are added (``NA`` when missing) when the first
    epoch has none, so that validation_freq > 1 keeps the header.
    ``append=True`` continues an existing file (no second header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = _path("CSVLogger", "filename", filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be a one-character string. "
                             f"Received: separator={separator!r}")
        self.sep = separator
        self.append = _bool("CSVLogger", "append", append)
        self.keys = self.writer = self.csv_file = None

    def on_train_begin(self, logs=None):
        self.append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep,
                                         lineterminator="\n", extrasaction="ignore")
            if self.append_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch (``keras.callbacks.LearningRateScheduler``).

    ``schedule(epoch, lr)`` (or ``schedule(epoch)``) returns the new rate; epoch
    is 0-based, lr the current rate. The value goes through the optimizer's
    own check (finite, >= 0). Each epoch's logs get ``learning_rate``.

    Example: ``LearningRateScheduler(lambda epoch, lr: lr if epoch < 10 else lr * 0.9)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr. "
                            f"Received: schedule={schedule!r}")
        self.schedule = schedule
        self.verbose = _int("LearningRateScheduler", "verbose", verbose)
        self._two_args = _takes_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = _learning_rate(self.model, "LearningRateScheduler")
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        _set_learning_rate(self.model, "LearningRateScheduler", new, f"schedule({epoch}) returned {new!r}, which")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{self.model.optimizer.learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(self.model, "LearningRateScheduler")


def _takes_two_args(fn):
    """True when ``fn`` takes (epoch, lr), as Keras 2.2+ schedules do; False for (epoch)."""
    try:
        kinds = [p.kind for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return True
    P = inspect.Parameter
    return kinds.count(P.POSITIONAL_ONLY) + kinds.count(P.POSITIONAL_OR_KEYWORD) >= 2 or P.VAR_POSITIONAL in kinds


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving
    (``keras.callbacks.ReduceLROnPlateau``).

    After ``patience`` epochs without an improvement of more than ``min_delta``,
    the rate becomes ``max(lr * factor, min_lr)`` (unless it is already at
    ``min_lr``), then ``cooldown`` epochs pass before the waiting restarts.
    ``mode`` as in EarlyStopping. Each epoch's logs get ``learning_rate`` (the
    rate that epoch trained with).

    Example: ``ReduceLROnPlateau(monitor='val_loss', factor=0.2, patience=5, min_lr=0.001)``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = _monitor(owner, monitor)
        self.factor = check_hyperparameter(owner, "factor", factor, 0.0, 1.0, high_open=True)
        self.patience = _int(owner, "patience", patience)
        self.verbose = _int(owner, "verbose", verbose)
        self.maximize = _maximize(owner, mode, self.monitor)
        self.mode = mode
        self.min_delta = check_hyperparameter(owner, "min_delta", min_delta)
        self.cooldown = _int(owner, "cooldown", cooldown)
        self.min_lr = check_hyperparameter(owner, "min_lr", min_lr)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = -math.inf if self.maximize else math.inf
        self.cooldown_counter = self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        lr = _learning_rate(self.model, "ReduceLROnPlateau")
        logs["learning_rate"] = lr
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", UserWarning, stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        better = current > self.best + self.min_delta if self.maximize else current < self.best - self.min_delta
        if better:
            self.best, self.wait = current, 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and lr > np.float32(self.min_lr):
                new = max(lr * self.factor, self.min_lr)
                _set_learning_rate(self.model, "ReduceLROnPlateau", new, f"lr * factor = {new!r}")
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0
