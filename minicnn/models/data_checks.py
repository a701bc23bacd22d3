"""Checks of the data given to fit / evaluate / predict, before any work.

Each check raises a ValueError or TypeError that names the call (``where``),
what was expected and what was received; none of them copies a big array.
"""
import numpy as np

# Finite checks go through the data this many values at a time: their
# temporary bool arrays stay small however big x is.
CHECK_CHUNK_VALUES = 1 << 22


def as_number_array(a, where, what):
    """``a`` as a NumPy array of numbers (no copy when it already is one)."""
    if not isinstance(a, np.ndarray) and not hasattr(a, "__array__") and not isinstance(a, (list, tuple)):
        raise TypeError(f"{where}: {what} must be a NumPy array. Received: {type(a).__name__}")
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {what} must hold numbers. Received dtype {a.dtype}")
    return a


def require_samples(n, where):
    if n == 0:
        raise ValueError(f"{where}: the data has no samples (x has 0 rows); pass at least one sample.")


def first_nonfinite_sample(a):
    """Index of the first sample (row along axis 0) holding NaN or inf, or None."""
    if a.dtype.kind != "f" or a.size == 0:
        return None
    per_sample = max(1, a.size // max(1, len(a)))
    step = max(1, CHECK_CHUNK_VALUES // per_sample)
    for start in range(0, len(a), step):
        ok = np.isfinite(a[start:start + step]).reshape(min(step, len(a) - start), -1).all(axis=1)
        if not ok.all():
            return start + int(np.argmin(ok))
    return None


def require_finite(a, where, what):
    """A ValueError naming the first sample of ``a`` that holds NaN or inf."""
    bad = first_nonfinite_sample(a)
    if bad is not None:
        values = a[bad][~np.isfinite(a[bad])]
        raise ValueError(f"{where}: {what} holds a non-finite value ({values.flat[0]}) in sample {bad} "
                         f"({what}[{bad}]); training on it would turn every weight into NaN. "
                         "Clean the data first (e.g. drop or fix those samples).")


def sparse_labels_to_onehot(y, units, where):
    """Integer class labels of shape (n,) or (n, 1) as float32 one-hot rows."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{where}: sparse_categorical_crossentropy expects integer labels of "
                         f"shape (n,), got shape {y.shape}")
    if y.dtype.kind == "f":
        bad = first_nonfinite_sample(y)
        if bad is not None:
            raise ValueError(f"{where}: label {bad} is {y[bad]}; sparse labels must be integer class "
                             f"indices in [0, {units})")
        frac = np.flatnonzero(y != np.floor(y))
        if frac.size:
            raise ValueError(f"{where}: label {frac[0]} is {y[frac[0]]}; sparse labels must be integer "
                             f"class indices in [0, {units})")
    if y.size and (y.min() < 0 or y.max() >= units):
        raise ValueError(f"{where}: labels must be in [0, {units}), got range [{y.min()}, {y.max()}]")
    onehot = np.zeros((len(y), units), dtype=np.float32)
    onehot[np.arange(len(y)), y.astype(np.int64)] = 1
    return onehot


def check_sample_weight(sample_weight, n, where):
    """``sample_weight`` as float32 (n,): one finite weight per sample (shape (n,) or (n, 1))."""
    w = as_number_array(sample_weight, where, "sample_weight")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1:
        raise ValueError(f"{where}: sample_weight must be a 1-D array with one weight per sample. "
                         f"Received: sample_weight.shape={w.shape}")
    if len(w) != n:
        raise ValueError(f"{where}: sample_weight has {len(w)} values but x has {n} samples. Make sure "
                         "all arrays contain the same number of samples.")
    require_finite(w, where, "sample_weight")
    return np.ascontiguousarray(w, dtype=np.float32)


def check_class_weight(class_weight, num_classes, where):
    """``class_weight`` as a float32 table, one weight per class 0..num_classes-1.

    Every class needs a weight (tf.keras 2 refused a dict that lacked one;
    Keras 3 would silently weigh it 1.0: a typo in a key would go unnoticed)."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict mapping class indices to weights, e.g. "
                        f"{{0: 1.0, 1: 5.0}}. Received: class_weight={class_weight!r}")
    table = np.full(num_classes, np.nan, dtype=np.float32)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < num_classes:
            raise ValueError(f"{where}: class_weight key {key!r} is not a class of this model: expected "
                             f"ints in [0, {num_classes}). Received: class_weight={class_weight!r}")
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not np.isfinite(value) or value < 0:
            raise ValueError(f"{where}: class_weight[{key}] must be a finite number >= 0. "
                             f"Received: {value!r}")
        table[int(key)] = value
    missing = [k for k in range(num_classes) if np.isnan(table[k])]
    if missing:
        raise ValueError(f"{where}: class_weight has no weight for class(es) {missing}; give every class "
                         f"0..{num_classes - 1} a weight (1.0 leaves it as it is). "
                         f"Received: class_weight={class_weight!r}")
    return table


def class_weight_to_sample_weight(table, y, where):
    """Each sample's weight from its class: argmax of a one-hot row, or the 0/1
    label of a one-unit (binary) output, as Keras's class_weight_to_sample_weights."""
    if y.shape[-1] > 1:
        classes = y.reshape(len(y), -1, y.shape[-1])[:, 0].argmax(axis=-1)
    else:
        labels = y.reshape(len(y), -1)[:, 0]
        classes = np.round(labels).astype(np.int64)
        bad = np.flatnonzero((classes < 0) | (classes >= len(table)))
        if bad.size:
            raise ValueError(f"{where}: class_weight needs class labels in [0, {len(table)}); "
                             f"y[{bad[0]}] is {labels[bad[0]]}")
    return table[classes]
