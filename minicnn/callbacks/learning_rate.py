"""The learning-rate callbacks: LearningRateScheduler and ReduceLROnPlateau
(``keras.callbacks``)."""
import inspect
import math
import warnings

import numpy as np

from ..models.history import Callback
from ..optimizers import check_hyperparameter
from .checks import check_int, check_monitor, learning_rate_of, maximizes, set_learning_rate


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
        self.verbose = check_int("LearningRateScheduler", "verbose", verbose)
        self._two_args = _takes_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = learning_rate_of(self.model, "LearningRateScheduler")
        new = self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)
        set_learning_rate(self.model, "LearningRateScheduler", new, f"schedule({epoch}) returned {new!r}, which")
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                  f"{self.model.optimizer.learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = learning_rate_of(self.model, "LearningRateScheduler")


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
        self.monitor = check_monitor(owner, monitor)
        self.factor = check_hyperparameter(owner, "factor", factor, 0.0, 1.0, high_open=True)
        self.patience = check_int(owner, "patience", patience)
        self.verbose = check_int(owner, "verbose", verbose)
        self.maximize = maximizes(owner, mode, self.monitor)
        self.mode = mode
        self.min_delta = check_hyperparameter(owner, "min_delta", min_delta)
        self.cooldown = check_int(owner, "cooldown", cooldown)
        self.min_lr = check_hyperparameter(owner, "min_lr", min_lr)
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = -math.inf if self.maximize else math.inf
        self.cooldown_counter = self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        lr = learning_rate_of(self.model, "ReduceLROnPlateau")
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
                set_learning_rate(self.model, "ReduceLROnPlateau", new, f"lr * factor = {new!r}")
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0
