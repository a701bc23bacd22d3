"""Weight regularizers with Keras 3's names and defaults (``keras.regularizers``).

    L1(l1=0.01):            penalty = l1 * sum(|w|)
    L2(l2=0.01):            penalty = l2 * sum(w**2)          (no 1/2, as Keras)
    L1L2(l1=0.0, l2=0.0):   both

The aliases ``l1``, ``l2``, ``l1_l2`` are the classes (Keras 3); the strings
'l1', 'l2' give the 0.01 defaults, and 'l1_l2' (or 'l1l2') gives
``L1L2(l1=0.01, l2=0.01)``, the defaults Keras documents for that string.
A layer given ``kernel_regularizer=`` / ``bias_regularizer=`` adds the
penalty of its (trainable) weight to the loss fit and evaluate report, and the
penalty's gradient ``l1 * sign(w) + 2 * l2 * w`` to the weight's gradient
before the optimizer step (minicnn.ops.weight_penalty computes both on the
weight's device).

Example::

    >>> from minicnn import layers, regularizers
    >>> layers.Dense(64, activation='relu', kernel_regularizer=regularizers.l2(0.001))
    >>> layers.Conv2D(32, 3, kernel_regularizer='l2')
"""
import inspect
import math

import numpy as np

from .ops import weight_penalty as ops


def _factor(owner, name, value):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


class Regularizer:
    """Base class (``keras.regularizers.Regularizer``): ``l1`` and ``l2`` factors.

    ``regularizer(w)`` is the penalty of w (a 0-d array on w's device);
    ``add_gradient(g, w)`` adds its gradient to g in place."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, w):
        return ops.penalty(w, self.l1, self.l2)

    def add_gradient(self, g, w):
        return ops.add_gradient(g, w, self.l1, self.l2)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


class L1L2(Regularizer):
    """Both penalties: ``l1 * sum(|w|) + l2 * sum(w**2)``, as ``keras.regularizers.L1L2``.

    Example: ``regularizers.L1L2(l1=1e-5, l2=1e-4)``."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor("L1L2", "l1", 0.0 if l1 is None else l1)
        self.l2 = _factor("L1L2", "l2", 0.0 if l2 is None else l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|w|)``, as ``keras.regularizers.L1``. Example: ``regularizers.l1(0.01)``."""

    def __init__(self, l1=0.01):
        self.l1 = _factor("L1", "l1", 0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(w**2)``, as ``keras.regularizers.L2``. Example: ``regularizers.l2(0.01)``."""

    def __init__(self, l2=0.01):
        self.l2 = _factor("L2", "l2", 0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2   # Keras 3's aliases: the classes themselves

CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
NAMES = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01), "l1l2": lambda: L1L2(0.01, 0.01),
         **CLASSES}


def get(identifier):
    """A Regularizer (or None) from None, a name ('l2'), an instance or class, or a
    Keras-serialized dict (Keras 3's or tf.keras 2's).

    Example: ``regularizers.get('l2').l2`` -> ``0.01``."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if inspect.isclass(identifier) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        if name in CLASSES:
            return CLASSES[name].from_config(dict(identifier.get("config") or {}))
        raise ValueError(f"Unknown regularizer: {name!r} (in {identifier!r}). Expected one of "
                         f"{sorted(CLASSES)} (an activity or orthogonal regularizer is not supported).")
    if isinstance(identifier, str) and identifier in NAMES:
        return NAMES[identifier]()
    raise ValueError(f"Unknown regularizer: {identifier!r}. Expected None, one of {sorted(NAMES)}, "
                     "or a minicnn.regularizers.Regularizer instance.")


def serialize(regularizer):
    """Keras 3's serialized dict (None stays None).

    Example: ``serialize(l2(0.01))`` -> ``{'module': 'keras.regularizers', 'class_name': 'L2', ...}``."""
    if regularizer is None:
        return None
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}
