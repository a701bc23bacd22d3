"""regression: Keras's mean squared and mean absolute errors, per sample, and their gradients.

p and y have one shape (..., K). As ``keras.losses.mean_squared_error`` /
``mean_absolute_error`` (``keras/src/losses/losses.py``), ``loss`` returns
one value per row (shape ``p.shape[:-1]``), the mean over the last axis:

    'squared':   mean_k (p_k - y_k)^2          'absolute':  mean_k |p_k - y_k|

``backward`` is the gradient w.r.t. p of the MEAN over all n = p.size
values (the batch mean of the row means):

    'squared':   2 (p - y) / n                 'absolute':  sign(p - y) / n

(sign(0) = 0: TensorFlow's gradient of |x| at 0).

Versions: ``check`` (every device); the reference (NumPy, any float dtype:
the specification; it also runs on the CPU device, one pass over a small
(batch, K) matrix); the CUDA launch (``kernels/regression.cu``: one thread
per row for the loss, one per element for the gradient).

Example::

    >>> loss = regression.loss(p, y, "squared")        # (N,)
    >>> dp = regression.backward(p, y, "squared")
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .softmax_xent import check

KERNELS = ("regression_loss_rows", "regression_backward")   # in kernels/regression.cu

KINDS = {"squared": 0, "absolute": 1}   # KIND_* of kernels/regression.cu


def check_kind(kind, op):
    if kind not in KINDS:
        raise ValueError(f"{op}: kind must be one of {list(KINDS)}. Received: kind={kind!r}")
    return KINDS[kind]


def loss(p, y, kind="squared"):
    """Per-row mean squared ('squared') or absolute ('absolute') error, shape p.shape[:-1]."""
    rows, cols = check(p, y, "regression")
    code = check_kind(kind, "regression")
    device = backend.device()
    if device.kind == "cuda":
        device.require("regression", "p", p)
        device.require("regression", "y", y)
        out = device.empty(p.shape[:-1])
        if rows:
            device.launch("regression", "regression", "regression_loss_rows", grid_1d(rows),
                          (BLOCK_1D, 1, 1), (p, y, out, np.int32(rows), np.int32(cols), np.int32(code)))
        return out
    return loss_reference(p, y, kind)


def backward(p, y, kind="squared"):
    """d mean(all values' errors) / dp."""
    check(p, y, "regression backward")
    code = check_kind(kind, "regression backward")
    device = backend.device()
    if device.kind == "cuda":
        device.require("regression backward", "p", p)
        device.require("regression backward", "y", y)
        dp = device.empty(p.shape)
        if p.size:
            device.launch("regression backward", "regression", "regression_backward", grid_1d(p.size),
                          (BLOCK_1D, 1, 1),
                          (p, y, dp, np.int32(p.size), np.float32(p.size), np.int32(code)))
        return dp
    return backward_reference(p, y, kind)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def loss_reference(p, y, kind="squared"):
    e = p - y
    return (e * e if kind == "squared" else np.abs(e)).mean(axis=-1)


def backward_reference(p, y, kind="squared"):
    e = p - y
    g = 2 * e if kind == "squared" else np.sign(e)
    return g / p.dtype.type(p.size)
