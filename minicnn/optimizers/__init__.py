"""Optimizers with Keras 3's names, defaults and update rules (``keras.optimizers``).

``SGD`` (momentum, nesterov), ``RMSprop`` (momentum, centered), ``Adam`` (amsgrad),
``AdamW``, ``Adagrad``, ``Adadelta``, ``Nadam``, ``Adamax``; every one takes Keras 3's base
options ``clipnorm``, ``clipvalue``, ``global_clipnorm`` and ``weight_decay``, a float or a
:mod:`~minicnn.optimizers.schedules` schedule as ``learning_rate``, and Keras 2's ``lr=``
and ``decay=``. ``apply_gradients([(grad, var), ...])`` updates each variable in place
through one fused op (one kernel launch on the GPU) per variable: see
:mod:`minicnn.optimizers.base` for what happens around it.

Example::

    >>> from minicnn import optimizers
    >>> opt = optimizers.get('adam')                     # Adam(learning_rate=0.001)
    >>> opt = optimizers.SGD(0.1, momentum=0.9, clipnorm=1.0)
"""
from . import schedules
from .adagrad import Adadelta, Adagrad
from .adam import Adam, Adamax, AdamW, Nadam
from .base import Optimizer, check_hyperparameter
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Nadam", "Adamax",
           "schedules", "get", "serialize", "deserialize", "check_hyperparameter"]

_BY_NAME = {cls.__name__.lower(): cls
            for cls in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Nadam, Adamax)}


def serialize(optimizer):
    """Keras's dict for ``optimizer``: module, class_name, config, registered_name."""
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config):
    """The optimizer of a dict from :func:`serialize` or a Keras file (class names in any case)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = _BY_NAME.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer: {name!r}. Expected one of {sorted(_BY_NAME)}.")
    return cls.from_config(config.get("config") or {})


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', 'rmsprop', ...), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Expected one of {sorted(_BY_NAME)} "
                     "or an Optimizer instance.")
