"""Metrics with Keras 3's names, defaults and math (``keras.metrics``).

Each metric is a mean over the samples seen of a per-sample value
(``keras/src/metrics/accuracy_metrics.py``; a sample with several values,
e.g. binary accuracy over K labels, counts their mean):

- ``CategoricalAccuracy`` ('categorical_accuracy'): argmax(y_pred) == argmax(y_true),
  ties to the first index; ``SparseCategoricalAccuracy``: the same for integer
  labels (the model makes one-hot rows of them, so both count alike).
- ``BinaryAccuracy(threshold=0.5)`` ('binary_accuracy'): y_true == (y_pred > threshold),
  per value (y_true compared exactly with 0 or 1).
- ``TopKCategoricalAccuracy(k=5)`` / ``SparseTopKCategoricalAccuracy(k=5)``: the
  target class among the k largest predictions (ties at the boundary count as in,
  as TensorFlow's in_top_k).
- ``MeanSquaredError`` ('mse'), ``MeanAbsoluteError`` ('mae'), and the
  cross-entropies as metrics: the loss's per-sample value.

``metrics=['accuracy']`` (or ``'acc'``) resolves as Keras's
``compile_utils.get_metric``: one output unit -> binary accuracy; sparse labels
-> sparse categorical accuracy; else categorical accuracy. Each metric's name,
the History key, is the string given (``'acc'`` stays ``'acc'``), or the
object's ``name``; a repeated name gets ``_1``, ``_2``, ... as in Keras.
With integer labels (a sparse loss) the model turns y into one-hot rows, and
every metric compares the predictions with those rows.

In fit/evaluate a metric adds ``batch_total(p, y)`` (a backend scalar: on the
GPU it stays on the device) to its running sum; ``values_per_sample`` turns
the sum into the mean when the progress line is drawn. The NumPy side is
Keras's: ``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``, and the function forms (``categorical_accuracy(y_true,
y_pred)``, ...).

Example::

    >>> from minicnn import metrics
    >>> model.compile('adam', 'categorical_crossentropy',
    ...               metrics=['acc', metrics.TopKCategoricalAccuracy(k=3), 'mse'])
    >>> m = metrics.CategoricalAccuracy(); m.update_state([[0, 1]], [[0.3, 0.7]]); m.result()
    1.0
"""
import inspect

import numpy as np

from . import backend, losses
from .losses.base import as_pair
from .ops import accuracy_counts
from .ops import softmax_xent


# -- the function forms (NumPy: the specification of each metric) ------------------------
def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) == argmax(y_true), per sample. Example:
    ``categorical_accuracy([[0, 1]], [[0.3, 0.7]])`` -> ``array([1.], dtype=float32)``."""
    y_true, y_pred = as_pair(y_true, y_pred, "categorical_accuracy")
    return (y_pred.argmax(-1) == y_true.argmax(-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals the integer label, per sample."""
    y_true, y_pred = as_pair(y_true, y_pred, "sparse_categorical_accuracy", sparse=True)
    return (y_pred.argmax(-1) == y_true.argmax(-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where y_true == (y_pred > threshold), per value (Keras 3 keeps the last axis)."""
    y_true, y_pred = as_pair(y_true, y_pred, "binary_accuracy")
    return (y_true == (y_pred > threshold).astype(np.float32)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the target class is among the k largest predictions (ties in), per sample."""
    y_true, y_pred = as_pair(y_true, y_pred, "top_k_categorical_accuracy")
    target = np.take_along_axis(y_pred, y_true.argmax(-1)[..., None], axis=-1)
    return (((y_pred > target).sum(-1) < k) & ~np.isnan(target[..., 0])).astype(np.float32)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """top_k_categorical_accuracy for integer labels."""
    y_true, y_pred = as_pair(y_true, y_pred, "sparse_top_k_categorical_accuracy", sparse=True)
    return top_k_categorical_accuracy(y_true, y_pred, k)


mean_squared_error = mse = losses.mean_squared_error
mean_absolute_error = mae = losses.mean_absolute_error


# -- metric objects ---------------------------------------------------------------------------
class Metric:
    """A mean of per-sample values (Keras's MeanMetricWrapper); see the module docstring."""

    default_name = "metric"
    per_value = False   # True: one value per output (binary accuracy), else one per row

    def __init__(self, name=None, dtype=None):
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: minicnn computes metrics in float32. "
                             f"Received: dtype={dtype!r}")
        self.name = name or self.default_name
        self.reset_state()

    # the training loop's side: backend arrays, y as the model's one-hot / 0-1 rows
    def batch_total(self, p, y):
        """The sum of this batch's values (a backend scalar, no host sync)."""
        raise NotImplementedError

    def values_per_sample(self, output_shape):
        """How many values one sample of ``output_shape`` (batch axis first) contributes."""
        n = int(np.prod(output_shape[1:-1])) if len(output_shape) > 2 else 1
        return n * int(output_shape[-1]) if self.per_value else n

    # Keras's NumPy side
    def fn(self, y_true, y_pred):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch: its per-sample means (weighted by sample_weight) to the total."""
        values = np.asarray(self.fn(y_true, y_pred), np.float32)
        values = values.reshape(len(values), -1).mean(axis=1) if values.ndim > 1 else values.reshape(-1)
        w = np.ones_like(values) if sample_weight is None else np.asarray(sample_weight, np.float32).reshape(-1)
        if w.shape != values.shape:
            raise ValueError(f"{self.name}: sample_weight has {w.size} values for {values.size} samples")
        self._total += float((values * w).sum())
        self._count += float(w.sum())

    def result(self):
        return np.float32(self._total / self._count if self._count else 0.0)

    def reset_state(self):
        self._total, self._count = 0.0, 0.0

    def get_config(self):
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) == argmax(y_true), as ``keras.metrics.CategoricalAccuracy``."""

    default_name = "categorical_accuracy"

    def batch_total(self, p, y):
        return softmax_xent.accuracy_count(p, y)

    def fn(self, y_true, y_pred):
        return categorical_accuracy(y_true, y_pred)


class SparseCategoricalAccuracy(CategoricalAccuracy):
    """CategoricalAccuracy for integer labels (``keras.metrics.SparseCategoricalAccuracy``)."""

    default_name = "sparse_categorical_accuracy"

    def fn(self, y_true, y_pred):
        return sparse_categorical_accuracy(y_true, y_pred)


class BinaryAccuracy(Metric):
    """How often y_true == (y_pred > threshold), as ``keras.metrics.BinaryAccuracy``."""

    default_name = "binary_accuracy"
    per_value = True

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        ok = isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(threshold, bool)
        if not ok or not 0 <= threshold <= 1:
            raise ValueError(f"BinaryAccuracy: `threshold` must be a float in [0, 1]. "
                             f"Received: threshold={threshold!r}")
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def batch_total(self, p, y):
        return accuracy_counts.binary_match_count(p, y, self.threshold)

    def fn(self, y_true, y_pred):
        return binary_accuracy(y_true, y_pred, self.threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class TopKCategoricalAccuracy(Metric):
    """How often the target is in the top k predictions (``keras.metrics.TopKCategoricalAccuracy``)."""

    default_name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{type(self).__name__}: `k` must be a positive int. Received: k={k!r}")
        self.k = int(k)
        super().__init__(name, dtype)

    def batch_total(self, p, y):
        return accuracy_counts.top_k_count(p, y, self.k)

    def fn(self, y_true, y_pred):
        return top_k_categorical_accuracy(y_true, y_pred, self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """TopKCategoricalAccuracy for integer labels."""

    default_name = "sparse_top_k_categorical_accuracy"

    def fn(self, y_true, y_pred):
        return sparse_top_k_categorical_accuracy(y_true, y_pred, self.k)


class _LossMean(Metric):
    """The mean of a loss's per-sample values (``keras.metrics.MeanSquaredError``, ...)."""

    loss_class = None

    def __init__(self, name=None, dtype=None):
        self._loss = self.loss_class()
        super().__init__(name, dtype)

    def batch_total(self, p, y):
        return self._loss.sample_losses(p, y).sum()

    def fn(self, y_true, y_pred):
        return self._loss.call(y_true, y_pred)


def _loss_metric(loss_class):
    name = loss_class.default_name
    doc = (f"The mean over the samples seen of losses.{loss_class.__name__}'s per-sample value, as "
           f"``keras.metrics.{loss_class.__name__}``.")
    return type(loss_class.__name__, (_LossMean,), {"loss_class": loss_class, "default_name": name,
                                                      "__doc__": doc, "__module__": __name__})


MeanSquaredError = _loss_metric(losses.MeanSquaredError)
MeanAbsoluteError = _loss_metric(losses.MeanAbsoluteError)
CategoricalCrossentropy = _loss_metric(losses.CategoricalCrossentropy)
SparseCategoricalCrossentropy = _loss_metric(losses.SparseCategoricalCrossentropy)
BinaryCrossentropy = _loss_metric(losses.BinaryCrossentropy)

CLASSES = (CategoricalAccuracy, SparseCategoricalAccuracy, BinaryAccuracy, TopKCategoricalAccuracy,
           SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, CategoricalCrossentropy,
           SparseCategoricalCrossentropy, BinaryCrossentropy)
FUNCTIONS = {categorical_accuracy: CategoricalAccuracy, sparse_categorical_accuracy: SparseCategoricalAccuracy,
             binary_accuracy: BinaryAccuracy, top_k_categorical_accuracy: TopKCategoricalAccuracy,
             sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
             **{f: globals()[cls.__name__] for f, cls in losses.FUNCTIONS.items()}}
NAMES = {**{f.__name__: cls for f, cls in FUNCTIONS.items()}, **{cls.__name__: cls for cls in CLASSES},
         "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError}
ACCURACY = ("accuracy", "acc")   # resolved by the loss and the output (see the module docstring)


def get(identifier, loss=None, output_units=None):
    """A Metric for a name, one of our functions, a Metric instance or class, or a
    Keras-serialized dict. 'accuracy'/'acc' need ``loss`` and ``output_units``.

    Example: ``metrics.get('top_k_categorical_accuracy').k`` -> ``5``."""
    if isinstance(identifier, Metric):
        return identifier
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ACCURACY:
            if output_units == 1:
                return BinaryAccuracy(name=identifier)
            if loss is not None and loss.sparse_labels:
                return SparseCategoricalAccuracy(name=identifier)
            return CategoricalAccuracy(name=identifier)
        cls = NAMES.get(identifier) or NAMES.get(identifier.lower())
        if cls is not None:
            return cls(name=identifier)
    elif callable(identifier) and identifier in FUNCTIONS:
        return FUNCTIONS[identifier]()
    raise ValueError(f"Unknown metric: {identifier!r}. Expected one of {sorted(list(ACCURACY) + list(NAMES))}, "
                     "a minicnn.metrics function or a Metric instance.")


def serialize(metric):
    """Keras 3's serialized form: names as given, a dict for a function or a Metric."""
    if isinstance(metric, str):
        return metric
    if inspect.isfunction(metric) and metric in FUNCTIONS:
        return {"module": "builtins", "class_name": "function", "config": metric.__name__,
                "registered_name": "function"}
    metric = get(metric)   # a class or a dict: as the Metric it stands for
    return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
            "registered_name": None}


def deserialize(config):
    """A Metric from ``serialize``'s dict (Keras 3's or tf.keras 2's)."""
    name, body = config.get("class_name"), config.get("config")
    if name == "function" and isinstance(body, str):
        return get(body)
    if name == "MeanMetricWrapper" and isinstance(body, dict) and isinstance(body.get("fn"), str):
        metric = get(body["fn"])   # tf.keras 2 saved a function metric so
        metric.name = body.get("name") or metric.name
        return metric
    cls = NAMES.get(name) if isinstance(name, str) else None
    if cls is None or not inspect.isclass(cls):
        raise ValueError(f"Unknown metric: {name!r} (in {config!r}). Expected one of "
                         f"{[c.__name__ for c in CLASSES]}.")
    return cls.from_config(dict(body or {}))


def unique_names(metric_list):
    """Keras's History keys: a repeated name gets _1, _2, ... (renames the objects)."""
    seen = {}
    for m in metric_list:
        base = m.name
        if base in seen:
            seen[base] += 1
            m.name = f"{base}_{seen[base]}"
        else:
            seen[base] = 0
    return metric_list


def to_host(total):
    """A running total (backend scalar) as a Python float: the one device read."""
    return float(backend.to_numpy(total))
