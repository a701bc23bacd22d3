"""Mean squared and mean absolute errors, as Keras 3 computes them.

``keras/src/losses/losses.py``: ``mean_squared_error = mean((y - p)^2, axis=-1)``,
``mean_absolute_error = mean(|y - p|, axis=-1)``, one value per sample; the
batch loss is their mean. Gradients of the batch mean over n values:
``2 (p - y) / n`` and ``sign(p - y) / n``. Labels of shape (n,) for a model
with one output are read as (n, 1), as Keras does.
"""
from ..ops import regression
from .base import Loss


class MeanSquaredError(Loss):
    """``mean((y_true - y_pred)**2)``, as ``keras.losses.MeanSquaredError`` ('mse').

    Example::

        >>> MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]])
        0.5
    """

    default_name = "mean_squared_error"
    _kind = "squared"

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def sample_losses(self, p, y):
        return regression.loss(p, y, self._kind)

    def gradient(self, p, y, output_activation):
        return regression.backward(p, y, self._kind), False


class MeanAbsoluteError(MeanSquaredError):
    """``mean(|y_true - y_pred|)``, as ``keras.losses.MeanAbsoluteError`` ('mae').

    Example::

        >>> MeanAbsoluteError()([[0.0, 1.0]], [[1.0, 1.0]])
        0.5
    """

    default_name = "mean_absolute_error"
    _kind = "absolute"


def mean_squared_error(y_true, y_pred):
    """Per-sample ``mean((y_true - y_pred)**2, axis=-1)`` (``keras.losses.mean_squared_error``).

    Example: ``mean_squared_error([[0, 1]], [[1, 1]])`` -> ``array([0.5], dtype=float32)``."""
    return MeanSquaredError().call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample ``mean(|y_true - y_pred|, axis=-1)`` (``keras.losses.mean_absolute_error``).

    Example: ``mean_absolute_error([[0, 1]], [[1, 1]])`` -> ``array([0.5], dtype=float32)``."""
    return MeanAbsoluteError().call(y_true, y_pred)
