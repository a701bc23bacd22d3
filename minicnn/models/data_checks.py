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
