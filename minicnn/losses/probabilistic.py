"""Cross-entropies: categorical, sparse categorical and binary, as Keras 3 computes them.

The formulas (``keras/src/losses/losses.py`` and the TensorFlow backend's
``keras/src/backend/tensorflow/nn.py``), eps = 1e-7, K classes:

- categorical on probabilities: ``q = clip(p / sum(p), eps, 1 - eps)``,
  ``l = -sum_k y_k log q_k``; on logits z: ``l = -sum_k y_k log_softmax(z)_k``.
  ``label_smoothing`` s: ``y <- y (1 - s) + s / K`` first.
- sparse categorical: the same on one-hot rows of the integer labels (as
  Keras's NumPy, JAX and PyTorch backends compute it; TensorFlow's clips p
  before renormalising, which differs only for rows that do not sum to 1 or
  where the clip is active).
- binary on probabilities: ``q = clip(p, eps, 1 - eps)``, ``l = mean_k -(y_k
  log q_k + (1 - y_k) log(1 - q_k))``; on logits: ``mean_k max(z, 0) - z y +
  log(1 + exp(-|z|))``. ``label_smoothing`` s: ``y <- y (1 - s) + s / 2``.

The batch loss is the mean of l over the samples (Keras's default reduction).
Gradients (for the batch mean, n values):

- categorical after a softmax output: fused, w.r.t. the logits, ``(p - y) / n``
  (exact for rows of y summing to 1: one-hot, smoothed or not); from logits:
  the same with p = softmax(z) (TensorFlow's gradient too), w.r.t. z;
  otherwise w.r.t. p through the clip and the renormalisation.
- binary after a sigmoid output: fused, ``(p - y) / n`` w.r.t. the logits; from
  logits ``(sigmoid(z) - y) / n``; otherwise ``(-y/p + (1 - y)/(1 - p)) / n``
  where the clip is inactive.
"""
import warnings

import numpy as np

from .. import backend
from ..ops import binary_xent, bias_act, classifier, softmax_xent
from .base import Loss


def _check_smoothing(owner, label_smoothing):
    ok = isinstance(label_smoothing, (int, float, np.integer, np.floating)) and not isinstance(label_smoothing, bool)
    if not ok or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{owner}: `label_smoothing` must be a float in [0, 1]. "
                         f"Received: label_smoothing={label_smoothing!r}")
    return float(label_smoothing)


def _check_axis(owner, axis):
    if axis != -1:
        raise ValueError(f"{owner}: only axis=-1 (the last axis, channels last) is supported. "
                         f"Received: axis={axis!r}")
    return -1


def _per_position(grad, p):
    """The categorical ops' gradients are of sum / p.shape[0]; a (n, ..., K) output
    has prod(...) values per sample, and the batch mean divides by all of them."""
    positions = int(np.prod(p.shape[1:-1])) if p.ndim > 2 else 1
    return grad if positions == 1 else grad / grad.dtype.type(positions)


class CategoricalCrossentropy(Loss):
    """Cross-entropy of one-hot (or soft) labels, as ``keras.losses.CategoricalCrossentropy``.

    ``from_logits``: y_pred are logits (a linear last layer), not probabilities.
    ``label_smoothing``: in [0, 1], y becomes y (1 - s) + s / K.

    Example::

        >>> CategoricalCrossentropy()([[0, 1]], [[0.5, 0.5]])
        0.6931472
        >>> model.compile('adam', loss=CategoricalCrossentropy(from_logits=True))
    """

    classification = True
    default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        self.axis = _check_axis(type(self).__name__, axis)
        self._warned = False

    def _smooth(self, y):
        s = self.label_smoothing
        return y if not s else y * (1 - s) + s / y.shape[-1]

    def sample_losses(self, p, y):
        y = self._smooth(y)
        if self.from_logits:
            return softmax_xent.logits_xent_loss(p, y)
        return softmax_xent.xent_loss(p, y)

    def gradient(self, p, y, output_activation):
        y = self._smooth(y)
        if self.from_logits:
            if output_activation == "softmax" and not self._warned:
                self._warned = True
                warnings.warn(f"`{self.name}` received `from_logits=True`, but the model's output was "
                              "produced by a softmax activation and thus does not represent logits. "
                              "Was this intended?", UserWarning, stacklevel=4)
            probabilities = bias_act.activate(p, "softmax")[0]   # a new array, p kept
            return _per_position(softmax_xent.softmax_xent_backward(probabilities, y), p), False
        if output_activation == "softmax":
            return _per_position(softmax_xent.softmax_xent_backward(p, y), p), True
        return _per_position(softmax_xent.xent_backward(p, y), p), False

    def fused_step(self, p, y, output_activation):
        """``(loss sum, accuracy count, dL/dz)`` of a softmax classifier's batch from ONE op
        (ops/classifier.py: the loss of each row, the rows whose argmax is right and the
        gradient w.r.t. the logits), or None where that op does not apply (logits, label
        smoothing, no softmax output, more than one position per sample). The two sums are
        0-d views of one fresh device vector."""
        if self.from_logits or self.label_smoothing or output_activation != "softmax" or p.ndim != 2:
            return None
        sums = backend.device().zeros((2,))
        dz = classifier.softmax_xent_step(p, y, sums)
        return sums[0:1].reshape(()), sums[1:2].reshape(()), dz

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """The categorical cross-entropy for integer class labels, as
    ``keras.losses.SparseCategoricalCrossentropy`` (y of shape (n,) or (n, 1);
    the model turns it into one-hot rows before training).

    Example::

        >>> SparseCategoricalCrossentropy()([1], [[0.5, 0.5]])
        0.6931472
        >>> model.compile('adam', loss=SparseCategoricalCrossentropy(from_logits=True))
    """

    sparse_labels = True
    default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None:
            raise ValueError(f"SparseCategoricalCrossentropy: ignore_class is not supported by minicnn. "
                             f"Received: ignore_class={ignore_class!r}")
        super().__init__(from_logits=from_logits, reduction=reduction, name=name, dtype=dtype)
        self.ignore_class = None

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits,
                "ignore_class": None}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of 0/1 labels, as ``keras.losses.BinaryCrossentropy``
    (one sigmoid unit, or one per independent label).

    Example::

        >>> BinaryCrossentropy()([[0.0, 1.0]], [[0.4, 0.6]])
        0.5108256
        >>> model.compile('adam', loss=BinaryCrossentropy(from_logits=True))
    """

    classification = True
    default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing("BinaryCrossentropy", label_smoothing)
        self.axis = _check_axis("BinaryCrossentropy", axis)

    def _smooth(self, y):
        s = self.label_smoothing
        return y if not s else y * (1 - s) + 0.5 * s

    def sample_losses(self, p, y):
        return binary_xent.loss(p, self._smooth(y), self.from_logits)

    def gradient(self, p, y, output_activation):
        y = self._smooth(y)
        if self.from_logits:
            return binary_xent.backward(p, y, "logits"), False
        if output_activation == "sigmoid":
            return binary_xent.backward(p, y, "sigmoid"), True
        return binary_xent.backward(p, y, "probabilities"), False

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


# -- the function forms: NumPy in, one value per sample out ----------------------
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy, as ``keras.losses.categorical_crossentropy``.

    Example::

        >>> categorical_crossentropy([[0, 1]], [[0.5, 0.5]])
        array([0.6931472], dtype=float32)
    """
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample cross-entropy of integer labels (``keras.losses.sparse_categorical_crossentropy``).

    Example: ``sparse_categorical_crossentropy([1], [[0.5, 0.5]])`` -> ``array([0.6931472])``."""
    _check_axis("sparse_categorical_crossentropy", axis)
    return SparseCategoricalCrossentropy(from_logits, ignore_class).call(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy (mean over the last axis), as
    ``keras.losses.binary_crossentropy``.

    Example: ``binary_crossentropy([[0, 1]], [[0.6, 0.4]])`` -> ``array([0.9162907])``."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)

