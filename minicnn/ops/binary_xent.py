"""binary_xent: Keras's binary cross-entropy, per sample, and its gradients.

p and y have one shape (..., K): K independent labels per row (usually 1).
Each value's loss, as TensorFlow's Keras backend computes it
(``keras/src/backend/tensorflow/nn.py``, ``binary_crossentropy``):

    on probabilities:  q = clip(p, eps, 1 - eps)
                       l = -(y log q + (1 - y) log(1 - q))
    on logits z:       l = max(z, 0) - z y + log(1 + exp(-|z|))

(the second is ``sigmoid_cross_entropy_with_logits``, stable for any z),
with ``EPSILON`` = 1e-7; ``loss`` returns the mean over the last axis, one
value per row (shape ``p.shape[:-1]``), as ``keras.losses.binary_crossentropy``.

``backward`` is the gradient of the MEAN of l over all n = p.size values
(the batch mean of the row means), for one of three inputs (``mode``):

- ``'probabilities'``: w.r.t. p, ``(-y/p + (1 - y)/(1 - p)) / n`` where the
  clip is inactive, 0 where it clipped p;
- ``'sigmoid'``: p = sigmoid(z) is given, the gradient is w.r.t. z: the
  sigmoid's derivative p (1 - p) cancels the log's, ``(p - y) / n`` (the
  fused gradient: exact where no clip is active);
- ``'logits'``: z is given: ``(sigmoid(z) - y) / n``.

Versions: ``check`` (every device), the reference (NumPy, any float dtype:
the specification; it also runs on the CPU device, the arrays being one
(batch, K) matrix), the CUDA launch (``kernels/binary_xent.cu``: one thread
per row for the loss, one per element for the gradient).

Example::

    >>> loss = binary_xent.loss(p, y)                     # (N,)
    >>> dz = binary_xent.backward(p, y, "sigmoid")        # p = sigmoid(z)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .softmax_xent import EPSILON, check

KERNELS = ("binary_xent_loss_rows", "binary_xent_backward")   # in kernels/binary_xent.cu

MODES = {"probabilities": 0, "sigmoid": 1, "logits": 2}   # MODE_* of kernels/binary_xent.cu


def loss(p, y, from_logits=False):
    """Per-row mean binary cross-entropy of probabilities (or logits), shape p.shape[:-1]."""
    rows, cols = check(p, y, "binary_xent")
    device = backend.device()
    if device.kind == "cuda":
        device.require("binary_xent", "p", p)
        device.require("binary_xent", "y", y)
        out = device.empty(p.shape[:-1])
        if rows:
            device.launch("binary_xent", "binary_xent", "binary_xent_loss_rows", grid_1d(rows),
                          (BLOCK_1D, 1, 1), (p, y, out, np.int32(rows), np.int32(cols))
                          + _clip_bounds() + (np.int32(bool(from_logits)),))
        return out
    return loss_reference(p, y, from_logits)


def backward(p, y, mode="probabilities"):
    """The gradient of the mean of all values' losses, for input ``mode`` (see above)."""
    check(p, y, "binary_xent backward")
    if mode not in MODES:
        raise ValueError(f"binary_xent backward: mode must be one of {list(MODES)}. Received: mode={mode!r}")
    device = backend.device()
    if device.kind == "cuda":
        device.require("binary_xent backward", "p", p)
        device.require("binary_xent backward", "y", y)
        d = device.empty(p.shape)
        if p.size:
            device.launch("binary_xent backward", "binary_xent", "binary_xent_backward",
                          grid_1d(p.size), (BLOCK_1D, 1, 1),
                          (p, y, d, np.int32(p.size), np.float32(p.size)) + _clip_bounds()
                          + (np.int32(MODES[mode]),))
        return d
    return backward_reference(p, y, mode)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def loss_reference(p, y, from_logits=False):
    if from_logits:
        values = np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
    else:
        q = np.clip(p, EPSILON, 1 - EPSILON)
        values = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return values.mean(axis=-1)


def backward_reference(p, y, mode="probabilities"):
    n = p.dtype.type(p.size)
    if mode == "sigmoid":
        return (p - y) / n
    if mode == "logits":
        return (0.5 * (np.tanh(0.5 * p) + 1) - y) / n   # sigmoid in bias_act's stable form
    inside = (p >= EPSILON) & (p <= 1 - EPSILON)
    with np.errstate(divide="ignore", invalid="ignore"):   # 0 or 1 sit outside the clip anyway
        grad = -y / p + (1 - y) / (1 - p)
    return np.where(inside, grad, 0).astype(p.dtype) / n


def _clip_bounds():
    return np.float32(EPSILON), np.float32(1 - EPSILON)
