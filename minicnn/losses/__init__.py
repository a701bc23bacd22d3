"""Losses with Keras 3's names, defaults and math (``keras.losses``).

Classes: ``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``,
``BinaryCrossentropy`` (each with ``from_logits``; ``label_smoothing`` for
the categorical and binary ones), ``MeanSquaredError``, ``MeanAbsoluteError``.
Function forms (per-sample values, NumPy): ``categorical_crossentropy``,
``sparse_categorical_crossentropy``, ``binary_crossentropy``,
``mean_squared_error`` (``mse``, ``MSE``), ``mean_absolute_error`` (``mae``,
``MAE``). ``compile(loss=...)`` takes any of them, their names, their class
names, or Keras's serialized dicts (``get``). The formulas are in
probabilistic.py and regression.py; the reductions in base.py.

Example::

    >>> from minicnn import losses
    >>> model.compile('adam', loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> model.compile('adam', loss=losses.categorical_crossentropy)
    >>> model.compile('adam', loss='mse')
"""
import inspect

from .base import REDUCTIONS, TRAINING_REDUCTIONS, Loss, reduce_weighted_values  # noqa: F401 (the API)
from .probabilistic import (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
                            binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy)
from .regression import MeanAbsoluteError, MeanSquaredError, mean_absolute_error, mean_squared_error

mse = MSE = mean_squared_error   # Keras's legacy aliases
mae = MAE = mean_absolute_error

CLASSES = (CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
           MeanSquaredError, MeanAbsoluteError)
# each function form -> its class (compile(loss=losses.categorical_crossentropy))
FUNCTIONS = {categorical_crossentropy: CategoricalCrossentropy,
             sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
             binary_crossentropy: BinaryCrossentropy,
             mean_squared_error: MeanSquaredError, mean_absolute_error: MeanAbsoluteError}
# the names compile accepts: function names, Keras's aliases, class names
NAMES = {**{f.__name__: cls for f, cls in FUNCTIONS.items()},
         "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
         **{cls.__name__: cls for cls in CLASSES}}


def get(identifier):
    """A Loss instance for a name ('mse', 'categorical_crossentropy', 'BinaryCrossentropy'),
    one of our function forms, a Loss instance or subclass, or a Keras-serialized dict.

    Example: ``losses.get('sparse_categorical_crossentropy')``."""
    if isinstance(identifier, Loss):
        return identifier
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = NAMES.get(identifier) or NAMES.get(identifier.lower())
        if cls is not None:
            return cls()
    elif callable(identifier) and identifier in FUNCTIONS:
        return FUNCTIONS[identifier]()
    elif callable(identifier):
        raise ValueError(f"Unknown loss: {identifier!r}. minicnn cannot differentiate an arbitrary "
                         "function: use one of its losses, or subclass minicnn.losses.Loss and implement "
                         "sample_losses and gradient.")
    raise ValueError(f"Unknown loss: {identifier!r}. Expected one of {sorted(NAMES)}, a "
                     "minicnn.losses function or a Loss instance.")


def serialize(loss):
    """Keras 3's serialized form: names as given, a dict for a function or a Loss.

    Example: ``serialize(CategoricalCrossentropy())['class_name']`` -> ``'CategoricalCrossentropy'``."""
    if isinstance(loss, str):
        return loss
    if inspect.isfunction(loss) and loss in FUNCTIONS:
        return {"module": "builtins", "class_name": "function", "config": loss.__name__,
                "registered_name": "function"}
    loss = get(loss)   # a class or a dict: as the Loss it stands for
    return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
            "registered_name": None}


def deserialize(config):
    """A Loss from ``serialize``'s dict (Keras 3's, or tf.keras 2's ``{"class_name", "config"}``)."""
    name = config.get("class_name")
    body = config.get("config")
    if name == "function" and isinstance(body, str):
        return get(body)
    cls = NAMES.get(name) if isinstance(name, str) else None
    if cls is None or not inspect.isclass(cls):
        raise ValueError(f"Unknown loss: {name!r} (in {config!r}). Expected one of "
                         f"{[c.__name__ for c in CLASSES]}.")
    body = dict(body or {})
    body.pop("fn", None)   # Keras 3's LossFunctionWrapper keeps its function there
    return cls.from_config(body)
