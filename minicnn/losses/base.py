"""The Loss base class: Keras's API on NumPy arrays, and the training loop's side.

A loss has two faces:

- Keras's (NumPy in, NumPy out): ``loss(y_true, y_pred, sample_weight=None)``
  reduces the per-sample values as Keras 3 does (``keras/src/losses/loss.py``,
  ``reduce_weighted_values``): values * sample_weight, then
  'sum_over_batch_size' (the default; also 'mean'): sum / number of values,
  not / sum of the weights; 'sum'; 'mean_with_sample_weight': sum / sum(w);
  'none' / None: the weighted values themselves. ``call(y_true, y_pred)``
  gives the per-sample values.
- the training loop's (backend arrays, no host sync): ``sample_losses(p, y)``
  (one value per sample, shape p.shape[:-1]) and ``gradient(p, y,
  output_activation)`` -> ``(grad, wrt_preactivation)``: the gradient of the
  batch MEAN (sum / number of values). The loss, not the model, decides
  whether it fuses with the output's activation (softmax or sigmoid +
  cross-entropy): then grad is w.r.t. the activation's input and
  ``wrt_preactivation`` is True.

A custom loss subclasses Loss and implements both ``sample_losses`` and
``gradient`` (minicnn has no automatic differentiation)::

    class Squared(Loss):
        def sample_losses(self, p, y):
            return ((p - y) ** 2).mean(axis=-1)
        def gradient(self, p, y, output_activation):
            return 2 * (p - y) / p.size, False
"""
import numpy as np

from .. import backend
from ..ops import bias_act

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
TRAINING_REDUCTIONS = ("sum_over_batch_size", "mean")   # what fit's batch loss is


class Loss:
    """Base class of losses (``keras.losses.Loss``); see the module docstring.

    Example::

        >>> from minicnn import losses
        >>> losses.MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]])
        0.5
    """

    sparse_labels = False   # y is integer class labels; the model makes one-hot rows of them
    classification = False  # class_weight applies (y names a class)
    default_name = "loss"

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction == "auto":   # tf.keras 2's name of the default (in its saved configs)
            reduction = "sum_over_batch_size"
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: invalid value for argument `reduction`. Expected "
                             f"one of {REDUCTIONS}. Received: reduction={reduction!r}")
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: minicnn computes losses in float32. "
                             f"Received: dtype={dtype!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string. Received: name={name!r}")
        self.name = name or self.default_name
        self.reduction = reduction

    # -- Keras's face: NumPy ------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self.call(y_true, y_pred)
        return reduce_weighted_values(values, sample_weight, self.reduction, self.name)

    def call(self, y_true, y_pred):
        """Per-sample values (NumPy float32, shape y_pred.shape[:-1])."""
        y_true, y_pred = as_pair(y_true, y_pred, self.name, self.sparse_labels)
        return backend.to_numpy(self.sample_losses(backend.asarray(y_pred), backend.asarray(y_true)))

    # -- the training loop's face: backend arrays -----------------------------------
    def sample_losses(self, p, y):
        raise NotImplementedError(f"{type(self).__name__} must implement sample_losses(p, y)")

    def gradient(self, p, y, output_activation):
        raise NotImplementedError(f"{type(self).__name__} must implement gradient(p, y, output_activation) "
                                  "(minicnn has no automatic differentiation)")

    def weighted_sum(self, p, y, sample_weight=None):
        """sum_i w_i l_i over the batch (a backend scalar), w = 1 without sample weights."""
        values = self.sample_losses(p, y)
        if sample_weight is not None:
            values = values * sample_weight.reshape(sample_weight.shape + (1,) * (values.ndim - 1))
        return bias_act.sum_all(values)   # on CUDA through kernels, which a step plan records

    def weighted_gradient(self, p, y, output_activation, sample_weight=None):
        """``gradient`` of sum_i w_i l_i / (number of values): each sample's rows times w_i."""
        grad, wrt_preactivation = self.gradient(p, y, output_activation)
        if sample_weight is not None:
            grad = grad * sample_weight.reshape(sample_weight.shape + (1,) * (grad.ndim - 1))
        return grad, wrt_preactivation

    # -- configs ------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def as_pair(y_true, y_pred, what, sparse=False):
    """(y_true, y_pred) as float32 NumPy arrays of one shape (..., classes);
    integer labels (``sparse``) become one-hot rows."""
    y_pred = np.asarray(y_pred, dtype="float32")
    if y_pred.ndim < 1:
        raise ValueError(f"{what}: y_pred needs a last (class or output) axis. "
                         f"Received: y_pred.shape={y_pred.shape}")
    if sparse:
        labels = np.asarray(y_true)
        if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
            labels = labels[..., 0]
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"{what}: integer labels y_true must have the shape of y_pred without "
                             f"its class axis. Received: y_true.shape={labels.shape}, "
                             f"y_pred.shape={y_pred.shape}")
        k = y_pred.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= k or np.any(labels != np.round(labels))):
            raise ValueError(f"{what}: labels must be integers in [0, {k}). Received: range "
                             f"[{labels.min()}, {labels.max()}]")
        return np.eye(k, dtype="float32")[labels.astype(np.int64)], y_pred
    y_true = np.asarray(y_true, dtype="float32")
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:   # Keras expands (n,) to (n, 1)
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{what}: y_true and y_pred must have the same shape. "
                         f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")
    return y_true, y_pred


def reduce_weighted_values(values, sample_weight, reduction, what="loss"):
    """Keras 3's reduce_weighted_values on NumPy (see the module docstring)."""
    values = np.asarray(values, dtype=np.float32)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float32)
        if weights.ndim == values.ndim + 1 and weights.shape[-1] == 1:
            weights = weights[..., 0]
        try:
            values = values * weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim))
        except ValueError:
            raise ValueError(f"{what}: sample_weight of shape {weights.shape} does not fit the "
                             f"losses of shape {values.shape}") from None
    if reduction in (None, "none") or values.ndim == 0:
        return values
    total = values.sum(dtype=np.float32)
    if reduction == "sum":
        return np.float32(total)
    divisor = weights.sum(dtype=np.float32) if reduction == "mean_with_sample_weight" and weights is not None \
        else np.float32(values.size)
    return np.float32(total / divisor) if divisor else np.float32(0)   # divide_no_nan
