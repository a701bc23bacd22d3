"""accuracy_counts: the counts behind Keras's binary and top-k accuracies.

p and y have one shape (..., K), one sample per row (the categorical
accuracy count, argmax(p) == argmax(y), is ``softmax_xent.accuracy_count``).

- ``binary_match_count(p, y, threshold)``: how many VALUES have
  ``y == (p > threshold)`` (``keras.metrics.binary_accuracy``, which
  compares y exactly with the thresholded prediction 0 or 1).
- ``top_k_count(p, y, k)``: how many ROWS have their target class
  t = argmax(y) among the k largest predictions, i.e. fewer than k classes
  with p_j > p_t (``keras.metrics.top_k_categorical_accuracy``: TensorFlow's
  in_top_k counts ties at the boundary as in; a NaN p_t is never in).

Both return an integer (a NumPy integer on the CPU; on the CUDA device a 0-d
int32 device array, so that no host sync happens). Versions: ``check``,
the reference (NumPy: the specification, also what the CPU device runs),
the CUDA launch (``kernels/accuracy_counts.cu``, integer atomics: exact, order-free).

Example::

    >>> correct = accuracy_counts.binary_match_count(p, y, 0.5)
    >>> in_top_5 = accuracy_counts.top_k_count(p, y, 5)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .softmax_xent import check

KERNELS = ("binary_match_count", "top_k_count")   # in kernels/accuracy_counts.cu


def binary_match_count(p, y, threshold=0.5):
    """How many values have y == (p > threshold), as 0/1."""
    check(p, y, "binary_match_count")
    device = backend.device()
    if device.kind == "cuda":
        _require(device, "binary_match_count", p, y)
        count = device.zeros((1,), dtype="int32")
        if p.size:
            device.launch("binary_match_count", "accuracy_counts", "binary_match_count", grid_1d(p.size),
                          (BLOCK_1D, 1, 1), (p, y, count, np.int32(p.size), np.float32(threshold)))
        return count.reshape(())
    return binary_match_count_reference(p, y, threshold)


def top_k_count(p, y, k=5):
    """How many rows have argmax(y) among the k largest entries of p (ties in)."""
    rows, cols = check(p, y, "top_k_count")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_count: k must be a positive int. Received: k={k!r}")
    device = backend.device()
    if device.kind == "cuda":
        _require(device, "top_k_count", p, y)
        count = device.zeros((1,), dtype="int32")
        if rows:
            device.launch("top_k_count", "accuracy_counts", "top_k_count", grid_1d(rows), (BLOCK_1D, 1, 1),
                          (p, y, count, np.int32(rows), np.int32(cols), np.int32(min(k, cols + 1))))
        return count.reshape(())
    return top_k_count_reference(p, y, k)


# ----------------------------------------------------------------------------
# the reference: NumPy
# ----------------------------------------------------------------------------
def binary_match_count_reference(p, y, threshold=0.5):
    predicted = (p > threshold).astype(y.dtype)
    return np.int64(np.count_nonzero(y == predicted))


def top_k_count_reference(p, y, k=5):
    p2, y2 = p.reshape(-1, p.shape[-1]), y.reshape(-1, y.shape[-1])
    target = np.take_along_axis(p2, y2.argmax(axis=-1)[:, None], axis=-1)
    above = (p2 > target).sum(axis=-1)
    return np.int64(np.count_nonzero((above < k) & ~np.isnan(target[:, 0])))


def _require(device, op, p, y):
    device.require(op, "p", p)
    device.require(op, "y", y)
