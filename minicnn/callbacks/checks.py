"""Argument checks shared by the callbacks: each raises, naming the callback,
what was expected and what was received, before training starts."""
import math
import os

import numpy as np

from ..optimizers import check_hyperparameter


def check_int(owner, name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}. Received: {name}={value!r}")
    return int(value)


def check_number(owner, name, value):
    """A finite real number (any sign) as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number. Received: {name}={value!r}")
    return float(value)


def check_bool(owner, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False. Received: {name}={value!r}")
    return bool(value)


def check_monitor(owner, value):
    if not isinstance(value, str) or not value:
        raise TypeError(f"{owner}: monitor must be the name of a logged value, e.g. 'val_loss'. "
                        f"Received: monitor={value!r}")
    return value


def maximizes(owner, mode, monitor):
    """True when larger is better: mode 'max', or 'auto' and 'acc' in the monitored name."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max'. Received: mode={mode!r}")
    return mode == "max" or (mode == "auto" and "acc" in monitor)


def check_path(owner, name, value):
    try:
        return os.fsdecode(os.fspath(value))
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a str or os.PathLike. Received: {name}={value!r}") from None


def learning_rate_of(model, owner):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(f"{owner}: the model's optimizer must have a `learning_rate` attribute "
                         "(compile the model first).")
    return float(optimizer.learning_rate)


def set_learning_rate(model, owner, value, what):
    """Set the optimizer's learning rate through its own checks (finite, >= 0)."""
    optimizer = model.optimizer
    try:
        optimizer.learning_rate = check_hyperparameter(type(optimizer).__name__, "learning_rate", value)
    except ValueError as e:
        raise ValueError(f"{owner}: {what} is not a valid learning rate: {e}") from None
