"""softmax_xent: categorical cross-entropy (Keras's, on probabilities or logits), its gradients, accuracy.

p and y have one shape (..., K): one sample per row, the K classes on the
last axis (the "class axis"). Keras renormalises and clips before the log:

    s = sum_k p_k      q = clip(p / s, eps, 1 - eps)      loss = -sum_k y_k log q_k

with ``EPSILON`` = 1e-7, one loss per row (shape ``p.shape[:-1]``). From
logits z (Keras's ``from_logits=True``, TensorFlow's
softmax_cross_entropy_with_logits), ``logits_xent_loss``:

    loss = -sum_k y_k log_softmax(z)_k,   log_softmax(z)_k = z_k - m - log sum_j exp(z_j - m)

with m = max_k z_k (exp never overflows; no clip). Its gradient w.r.t. z is
the fused one below, applied to p = softmax(z). The gradients, for the MEAN
loss over axis 0 (n = p.shape[0]):

- w.r.t. p (``xent_backward``), by the chain rule through the three steps:
  dq_k = -y_k / q_k / n where the clip is inactive, 0 where it clipped q_k;
  then q = p / s gives dp_j = (dq_j - sum_k dq_k q_k) / s.
- w.r.t. the logits z when p = softmax(z) (``softmax_xent_backward``, the
  fused gradient): softmax's Jacobian and the log cancel to (p - y) / n,
  exact when y's rows sum to 1 and no clip is active.

``accuracy_count``: the number of rows whose argmax(p) equals argmax(y)
(ties, and NaN, go to the first index, like ``numpy.argmax``).

This module holds every version, in this order:

1. ``check``: p and y float arrays of one shape with a class axis, for every
   device, before any work.
2. The reference (``*_reference``): NumPy, any float dtype, the
   specification. It also runs on the CPU device: these ops are one pass
   over a (batch, classes) matrix, too small for a compiled path to pay.
3. The CUDA path: ``kernels/softmax_xent.cu``, on a GPU or on the emulator.
   The row kernels run one block per row and reduce in shared memory in a
   fixed tree order (no float atomics: the same bits on every run); the
   accuracy count stays a 0-d int32 device array (no host sync).

Example::

    >>> loss = softmax_xent.xent_loss(p, y)               # (N,)
    >>> loss = softmax_xent.logits_xent_loss(z, y)        # (N,), from logits
    >>> dp = softmax_xent.xent_backward(p, y)             # d mean(loss) / dp
    >>> dz = softmax_xent.softmax_xent_backward(p, y)     # d mean(loss) / dz, p = softmax(z)
    >>> correct = softmax_xent.accuracy_count(p, y)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, MAX_GRID_X, grid_1d
from .common import require_array

KERNELS = ("xent_loss_rows", "logits_xent_loss_rows", "xent_backward_rows",
           "softmax_xent_backward", "accuracy_count")   # in kernels/softmax_xent.cu

EPSILON = 1e-7        # Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps]
MAX_ROW_BLOCK = 256   # MAX_BLOCK of kernels/softmax_xent.cu (its shared reduction buffer)


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(p, y, op="xent_loss"):
    """``(rows, cols)`` of the (samples, classes) matrix of p and y, or a
    TypeError/ValueError naming what is wrong."""
    require_array(op, "p", p)
    require_array(op, "y", y)
    if tuple(p.shape) != tuple(y.shape):
        raise ValueError(f"{op}: p and y must have the same shape. "
                         f"Received: p.shape={tuple(p.shape)}, y.shape={tuple(y.shape)}")
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"{op}: p and y need a class axis (the last) with at least one class. "
                         f"Received: p.shape={tuple(p.shape)}")
    cols = int(p.shape[-1])
    return int(p.size) // cols, cols


def xent_loss(p, y):
    """Per-sample loss -sum(y * log(clip(p / sum(p), eps, 1 - eps))), shape p.shape[:-1]."""
    rows, cols = check(p, y, "xent_loss")
    device = backend.device()
    if device.kind == "cuda":
        return _xent_loss_cuda(device, p, y, rows, cols)
    return xent_loss_reference(p, y)


def logits_xent_loss(z, y):
    """Per-sample loss -sum(y * log_softmax(z)) of logits z, shape z.shape[:-1]."""
    rows, cols = check(z, y, "logits_xent_loss")
    device = backend.device()
    if device.kind == "cuda":
        _require(device, "logits_xent_loss", z, y)
        loss = device.empty(z.shape[:-1])
        if rows:
            _rows_launch(device, "logits_xent_loss", "logits_xent_loss_rows", rows, cols,
                         (z, y, loss, np.int32(rows), np.int32(cols)))
        return loss
    return logits_xent_loss_reference(z, y)


def xent_backward(p, y):
    """Gradient of the MEAN xent_loss over axis 0 w.r.t. p (zero where the clip was active)."""
    rows, cols = check(p, y, "xent_backward")
    device = backend.device()
    if device.kind == "cuda":
        return _xent_backward_cuda(device, p, y, rows, cols)
    return xent_backward_reference(p, y)


def softmax_xent_backward(p, y):
    """The fused gradient w.r.t. the logits of mean xent(softmax(z)): (p - y) / N."""
    check(p, y, "softmax_xent_backward")
    device = backend.device()
    if device.kind == "cuda":
        return _softmax_xent_backward_cuda(device, p, y)
    return softmax_xent_backward_reference(p, y)


def accuracy_count(p, y):
    """How many rows have argmax(p) == argmax(y) (ties: the first index).

    A NumPy integer on the CPU; on the CUDA device a 0-d int32 device array,
    so that no host sync happens (``int(device.to_numpy(c))`` gives the number)."""
    rows, cols = check(p, y, "accuracy_count")
    device = backend.device()
    if device.kind == "cuda":
        return _accuracy_count_cuda(device, p, y, rows, cols)
    return accuracy_count_reference(p, y)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def xent_loss_reference(p, y):
    """-sum(y log q), q = clip(p / sum(p)): the readable way."""
    q = p / p.sum(axis=-1, keepdims=True)
    np.clip(q, EPSILON, 1 - EPSILON, out=q)
    return -(y * np.log(q)).sum(axis=-1)


def logits_xent_loss_reference(z, y):
    """-sum(y (z - m - log sum exp(z - m))), m the row max: the stable log-softmax."""
    shifted = z - z.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -(y * log_softmax).sum(axis=-1)


def xent_backward_reference(p, y):
    """dp = (dq - sum(dq q)) / s with dq = -y / clip(q) * [clip inactive] / n."""
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    inside = (q >= EPSILON) & (q <= 1 - EPSILON)   # where the clip is the identity
    dq = -y / np.clip(q, EPSILON, 1 - EPSILON) * inside / p.shape[0]
    return (dq - (dq * q).sum(axis=-1, keepdims=True)) / s


def softmax_xent_backward_reference(p, y):
    """(p - y) / N, N = p.shape[0] in p's dtype."""
    return (p - y) / p.dtype.type(p.shape[0])


def accuracy_count_reference(p, y):
    """The number of rows where the first maximum of p and of y sit at one index."""
    return np.int64(np.count_nonzero(p.argmax(axis=-1) == y.argmax(axis=-1)))


# ----------------------------------------------------------------------------
# 3. CUDA: kernels/softmax_xent.cu
# ----------------------------------------------------------------------------
def row_block(cols):
    """Threads per block of a one-block-per-row kernel: a power of two (the
    tree reduction halves it) in [32, MAX_ROW_BLOCK], no more than the row
    needs: a warp at least, and each thread strides over cols / block classes."""
    return min(MAX_ROW_BLOCK, max(32, 1 << (max(cols, 1) - 1).bit_length()))


def _require(device, op, p, y):
    device.require(op, "p", p)
    device.require(op, "y", y)


def _rows_launch(device, op, kernel, rows, cols, args):
    # one block per row; the kernels grid-stride over rows, so capping the
    # grid at MAX_GRID_X blocks still covers every row
    device.launch(op, "softmax_xent", kernel, (min(rows, MAX_GRID_X), 1, 1),
                  (row_block(cols), 1, 1), args)


def _clip_bounds():
    # rounded to float32 once, here: the kernels compare q (float32) with them
    return np.float32(EPSILON), np.float32(1 - EPSILON)


def _xent_loss_cuda(device, p, y, rows, cols):
    _require(device, "xent_loss", p, y)
    loss = device.empty(p.shape[:-1])
    if rows:
        _rows_launch(device, "xent_loss", "xent_loss_rows", rows, cols,
                     (p, y, loss, np.int32(rows), np.int32(cols)) + _clip_bounds())
    return loss


def _xent_backward_cuda(device, p, y, rows, cols):
    _require(device, "xent_backward", p, y)
    dp = device.empty(p.shape)
    if rows:
        # the mean is over axis 0: n = p.shape[0], not the row count of a >2-D p
        _rows_launch(device, "xent_backward", "xent_backward_rows", rows, cols,
                     (p, y, dp, np.int32(rows), np.int32(cols)) + _clip_bounds()
                     + (np.float32(p.shape[0]),))
    return dp


def _softmax_xent_backward_cuda(device, p, y):
    _require(device, "softmax_xent_backward", p, y)
    dz = device.empty(p.shape)
    if p.size:  # one thread per element
        device.launch("softmax_xent_backward", "softmax_xent", "softmax_xent_backward",
                      grid_1d(p.size), (BLOCK_1D, 1, 1),
                      (p, y, dz, np.int32(p.size), np.float32(p.shape[0])))
    return dz


def _accuracy_count_cuda(device, p, y, rows, cols):
    _require(device, "accuracy_count", p, y)
    count = device.zeros((1,), dtype="int32")   # the kernel adds to it atomically
    if rows:  # one thread per row
        device.launch("accuracy_count", "softmax_xent", "accuracy_count", grid_1d(rows),
                      (BLOCK_1D, 1, 1), (p, y, count, np.int32(rows), np.int32(cols)))
    return count.reshape(())
