"""classifier: a training step's softmax classifier head, fused: gradient, loss sum, accuracy count.

For a batch of N softmax probabilities p and targets y, (N, K) with one
sample per row, ``softmax_xent_step(p, y, sums)`` returns the gradient of the
MEAN categorical cross-entropy w.r.t. the logits z (p = softmax(z)),

    dz = (p - y) / N

and ADDS the batch's loss sum and accuracy count to ``sums``, a float32
vector of two that holds the epoch's running sums (on the device: the
progress line reads them, nothing else needs the host):

    sums[0] += sum_r loss_r,   loss_r = -sum_k y_rk log clip(p_rk / sum_j p_rj, eps, 1 - eps)
    sums[1] += #{r : argmax_k p_rk == argmax_k y_rk}

These are, value for value, ``softmax_xent.softmax_xent_backward``,
``softmax_xent.xent_loss`` (Keras's loss: renormalise, clip keeping NaN, so a
diverged model shows nan) and ``softmax_xent.accuracy_count`` (ties and NaN:
the first index, as ``numpy.argmax``): one op instead of those three plus the
loss sum. The count is exact while the epoch's count stays below 2**24.

Versions, in this order:

1. ``check``: shapes and dtypes, for every device, before any work.
2. The reference (``softmax_xent_step_reference``): NumPy, any float dtype,
   the specification, built from softmax_xent's references. It also runs on
   the CPU device (one pass over a small (batch, classes) matrix).
3. The CUDA path: ``kernels/classifier.cu``, ONE launch of one block of
   ``BLOCK`` threads for all of it. Groups of ``softmax_xent.row_block(K)``
   threads each compute one row as ``xent_loss_rows`` does, so each row's
   loss has its bits, and dz has ``softmax_xent_backward``'s. The batch's
   loss sum is added in the kernel's own fixed order (group g of
   ``G = BLOCK // row_block(K)`` adds rows g, g + G, g + 2G, ... in order from
   0; then a tree over the groups, ``v[i] += v[i + h]`` for h = G/2, ..., 1),
   not ``bias_act.sum_all``'s: the two agree to float32 rounding (about 1e-6
   relative), and ``loss_sum_order`` replays the kernel's order in NumPy bit
   for bit. No float atomics, one block: the same bits on every run.

Example::

    >>> sums = backend.device().zeros((2,))       # once per epoch
    >>> dz = classifier.softmax_xent_step(p, y, sums)   # each step
    >>> loss, accuracy = backend.to_numpy(sums) / seen_samples
"""
import numpy as np

from .. import backend
from .common import require_array, require_shape
from .softmax_xent import (EPSILON, accuracy_count_reference, row_block,
                           softmax_xent_backward_reference, xent_loss_reference)

KERNELS = ("softmax_xent_step",)   # in kernels/classifier.cu

BLOCK = 256   # BLOCK of kernels/classifier.cu: the one block's threads
OP = "softmax_xent_step"


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(p, y, sums, op=OP):
    """``(N, K)`` of p and y, or a TypeError/ValueError naming what is wrong:
    p and y float (N, K) matrices of one shape, N, K >= 1; sums a float32 (2,)."""
    require_array(op, "p", p, ndim=2)
    require_array(op, "y", y, ndim=2)
    if tuple(p.shape) != tuple(y.shape):
        raise ValueError(f"{op}: p and y must have the same shape. "
                         f"Received: p.shape={tuple(p.shape)}, y.shape={tuple(y.shape)}")
    if p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"{op}: p and y need at least one sample and one class. "
                         f"Received: p.shape={tuple(p.shape)}")
    require_array(op, "sums", sums, ndim=1, dtypes=(np.dtype(np.float32),))
    require_shape(op, "sums", sums, (2,))
    return int(p.shape[0]), int(p.shape[1])


def softmax_xent_step(p, y, sums):
    """dz = (p - y) / N; adds the batch's loss sum to sums[0], its accuracy count to sums[1]."""
    check(p, y, sums)
    device = backend.device()
    if device.kind == "cuda":
        return _step_cuda(device, p, y, sums)
    return softmax_xent_step_reference(p, y, sums)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def softmax_xent_step_reference(p, y, sums):
    """The three unfused references, and the sums added in place."""
    sums[0] += xent_loss_reference(p, y).sum()
    sums[1] += accuracy_count_reference(p, y)
    return softmax_xent_backward_reference(p, y)


def loss_sum_order(losses, cols):
    """The CUDA kernel's batch loss sum, replayed in float32 from the per-row
    ``losses`` (as ``softmax_xent.xent_loss`` gives them) of a K = cols batch:
    per group a running sum over its rows, then the tree over the groups."""
    losses = np.asarray(losses, np.float32)
    groups = BLOCK // row_block(cols)
    part = np.zeros(groups, np.float32)
    for g in range(groups):
        for loss in losses[g::groups]:   # in row order, as the group's lane 0 adds them
            part[g] = np.float32(part[g] + loss)
    h = groups // 2
    while h:
        part[:h] = part[:h] + part[h:2 * h]
        h //= 2
    return part[0]


# ----------------------------------------------------------------------------
# 3. CUDA: kernels/classifier.cu
# ----------------------------------------------------------------------------
def _step_cuda(device, p, y, sums):
    for name, a in (("p", p), ("y", y), ("sums", sums)):
        device.require(OP, name, a)
    rows, cols = p.shape
    dz = device.empty(p.shape)
    # one block: it reduces the whole batch itself (no second pass, no atomics);
    # row_block(cols) threads per row, as softmax_xent's xent_loss_rows runs it
    device.launch(OP, "classifier", "softmax_xent_step", (1, 1, 1), (BLOCK, 1, 1),
                  (p, y, dz, sums, np.int32(rows), np.int32(cols), np.int32(row_block(cols)),
                   np.float32(EPSILON), np.float32(1 - EPSILON), np.float32(rows)))
    return dz
