"""Categorical cross-entropy on probabilities, computed as Keras does.

Probabilities are renormalised to sum to 1 and clipped to [1e-7, 1 - 1e-7]
before the log. When the model's output went through a softmax the loss fuses
its gradient with the softmax's: dL/dlogits = (p - y) / batch.
"""
import numpy as np

from . import backend
from .ops import softmax_xent


def categorical_crossentropy(y_true, y_pred):
    """Per-sample loss ``-sum(y_true * log(y_pred))`` (NumPy in, NumPy out).

    Example::

        >>> categorical_crossentropy([[0, 1]], [[0.5, 0.5]])
        array([0.6931472], dtype=float32)
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "categorical_crossentropy")
    loss = softmax_xent.xent_loss(backend.asarray(y_pred), backend.asarray(y_true))
    return backend.to_numpy(loss)


class CategoricalCrossentropy:
    """The mean categorical cross-entropy over a batch (Keras defaults).

    Besides computing the loss on NumPy arrays (``__call__``), a loss serves
    the training loop on backend arrays: ``sample_losses`` and ``gradient``.
    The loss, not the model, decides whether its gradient fuses with the
    output's activation.

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

    def sample_losses(self, p, y):
        """Per-sample losses of probabilities ``p`` against one-hot ``y`` (backend arrays)."""
        return softmax_xent.xent_loss(p, y)

    def gradient(self, p, y, output_activation):
        """``(grad, wrt_logits)``: the mean loss's gradient for the backward pass.

        After a softmax the gradient is taken with respect to the logits and
        fused: ``(p - y) / batch`` (``wrt_logits`` True), exact and cheaper
        than chaining the two Jacobians. Otherwise it is dL/dp."""
        if output_activation == "softmax":
            return softmax_xent.softmax_xent_backward(p, y), True
        return softmax_xent.xent_backward(p, y), False


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """The same loss for integer class labels (turned into one-hot rows before use)."""

    name = "sparse_categorical_crossentropy"


def _check_pair(y_true, y_pred, what):
    y_true = np.asarray(y_true, dtype="float32")
    y_pred = np.asarray(y_pred, dtype="float32")
    if y_true.shape != y_pred.shape or y_pred.ndim < 1:
        raise ValueError(f"{what}: y_true and y_pred must have the same shape (batch, classes). "
                         f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
    return y_true.reshape(-1, y_true.shape[-1]), y_pred.reshape(-1, y_pred.shape[-1])


_BY_NAME = {"categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(identifier):
    """A loss object for a name ('categorical_crossentropy', ...) or a loss instance."""
    if isinstance(identifier, CategoricalCrossentropy):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown loss: {identifier!r}. Expected one of {list(_BY_NAME)} "
                     "or a CategoricalCrossentropy instance.")
