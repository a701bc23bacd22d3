"""Categorical cross-entropy on probabilities, computed as Keras does.

Probabilities are renormalised to sum to 1 and clipped to [1e-7, 1 - 1e-7]
before the log. In a model whose last activation is softmax the gradient is
fused: dL/dlogits = (p - y) / batch.
"""
import numpy as np

from . import backend


def categorical_crossentropy(y_true, y_pred):
    """Per-sample loss ``-sum(y_true * log(y_pred))`` (NumPy in, NumPy out).

    Example::

        >>> categorical_crossentropy([[0, 1]], [[0.5, 0.5]])
        array([0.6931472], dtype=float32)
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "categorical_crossentropy")
    ops = backend.get_ops()
    loss = ops.xent_loss(ops.asarray(y_pred), ops.asarray(y_true))
    return backend.to_numpy(loss)


class CategoricalCrossentropy:
    """The mean categorical cross-entropy over a batch (Keras defaults).

    Example::

        >>> CategoricalCrossentropy()([[0, 1]], [[0.5, 0.5]])
        0.6931472
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits=False):
        if from_logits:
            raise ValueError("CategoricalCrossentropy: from_logits=True is not supported; "
                             "end the model with activation='softmax' instead.")

    def __call__(self, y_true, y_pred):
        return np.float32(categorical_crossentropy(y_true, y_pred).mean())


def _check_pair(y_true, y_pred, what):
    y_true = np.asarray(y_true, dtype="float32")
    y_pred = np.asarray(y_pred, dtype="float32")
    if y_true.shape != y_pred.shape or y_pred.ndim < 1:
        raise ValueError(f"{what}: y_true and y_pred must have the same shape (batch, classes). "
                         f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
    return y_true.reshape(-1, y_true.shape[-1]), y_pred.reshape(-1, y_pred.shape[-1])


_NAMES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


def get(identifier):
    """The canonical loss name for a name or a CategoricalCrossentropy instance."""
    if isinstance(identifier, CategoricalCrossentropy):
        return "categorical_crossentropy"
    if isinstance(identifier, str) and identifier.lower() in _NAMES:
        return identifier.lower()
    raise ValueError(f"Unknown loss: {identifier!r}. Expected one of {list(_NAMES)} "
                     "or a CategoricalCrossentropy instance.")
