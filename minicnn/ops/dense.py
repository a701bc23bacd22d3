"""dense: the dense (fully connected) layer's matrix product and its gradients, on every device.

    y = x @ w          x (N, IN), w (IN, OUT) -> y (N, OUT); no bias (see bias_act)

From y[n, o] = sum over i of x[n, i] w[i, o] the gradients are two more
matrix products:

    dw = x^T @ dy      dx = dy @ w^T

This module holds every version, in this order:

1. ``check``: shapes and dtypes, for every device, before any work.
2. The reference (``forward_reference`` / ``backward_reference``): the three
   NumPy products, any float dtype.
3. The CPU fast path, for C-contiguous float32 when compiled kernels run:
   the forward's rows split over the threads (``runtime().gemm``) when the
   product is big enough for parts of at least ``MIN_PART_MACS``
   multiply-adds, else one GEMM; the backward's two GEMMs as they are (small:
   a batch's weight gradient). Either way with OpenBLAS held at one thread
   (its spinning workers would steal the cores of the other ops' threads).
4. The CUDA path: cuBLAS (``xp.matmul``), on a GPU or on the emulator. No
   kernel file.

Example::

    >>> y = dense.forward(x, w)
    >>> dx, dw = dense.backward(dy, x, w)
"""
import numpy as np

from .. import backend
from .common import require_array, require_same_dtype, require_shape

# A part of the forward's rows must hold at least this many multiply-adds to
# be worth its own thread (a training batch of the book's model runs in one GEMM).
MIN_PART_MACS = 1 << 22


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(x, w, op="dense"):
    """A TypeError/ValueError naming what is wrong with x @ w."""
    require_array(op, "x", x, 2)
    require_array(op, "w", w, 2)
    require_same_dtype(op, x=x, w=w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"{op}: x has {x.shape[1]} features but w expects {w.shape[0]}. "
                         f"Received: x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}")


def forward(x, w):
    """y = x @ w."""
    check(x, w)
    device = backend.device()
    if device.kind == "cuda":
        device.require("dense", "x", x)
        device.require("dense", "w", w)
        return device.xp.matmul(x, w)
    if _cpu_fast(x, w):
        return _forward_cpu(x, w)
    return forward_reference(x, w)


def backward(dy, x, w, need_dx=True):
    """``(dx or None, dw)`` for y = x @ w: dw = x^T dy, dx = dy w^T."""
    op = "dense backward"
    check(x, w, op)
    require_array(op, "dy", dy, 2)
    require_same_dtype(op, dy=dy, x=x)
    require_shape(op, "dy", dy, (x.shape[0], w.shape[1]))
    device = backend.device()
    if device.kind == "cuda":
        for name, a in (("dy", dy), ("x", x), ("w", w)):
            device.require(op, name, a)
        dw = device.xp.matmul(x.T, dy)
        return (device.xp.matmul(dy, w.T) if need_dx else None), dw
    if _cpu_fast(dy, x, w):
        from ..backend.cpu import runtime
        with runtime().one_blas_thread:   # small GEMMs: one thread, OpenBLAS's workers asleep
            return backward_reference(dy, x, w, need_dx)
    return backward_reference(dy, x, w, need_dx)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def forward_reference(x, w):
    return x @ w


def backward_reference(dy, x, w, need_dx=True):
    dw = x.T @ dy
    return (dy @ w.T if need_dx else None), dw


# ----------------------------------------------------------------------------
# 3. the CPU fast path: the forward's rows over the threads
# ----------------------------------------------------------------------------
def _cpu_fast(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def _forward_cpu(x, w):
    from ..backend.cpu import runtime
    cpu = runtime()
    n, k = x.shape
    out = w.shape[1]
    # rows per part for MIN_PART_MACS multiply-adds each; one part: no split
    min_rows = max(1, -(-MIN_PART_MACS // max(1, k * out)))
    with cpu.one_blas_thread:
        if cpu.plan(n, min_rows)[1] > 1:
            return cpu.gemm(x, w, np.empty((n, out), dtype=x.dtype))
        return x @ w
