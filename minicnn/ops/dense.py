"""dense: the dense (fully connected) layer's matrix product and its gradients, on every device.

    y = x @ w          x (N, IN), w (IN, OUT) -> y (N, OUT); no bias (see bias_act)

From y[n, o] = sum over i of x[n, i] w[i, o] the gradients are two more
matrix products:

    dw = x^T @ dy      dx = dy @ w^T

An x of higher rank (N, ..., IN) is multiplied along its last axis, as
Keras's Dense does: its leading axes are one long batch of rows, so the op
runs on the (N * ..., IN) view of x (no copy when x is C-contiguous) and y
gets x's leading axes back, (N, ..., OUT); dw sums over all those rows.

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
4. The CUDA path: cuBLAS (``device.matmul``), on a GPU or on the emulator. No
   kernel file.

Example::

    >>> y = dense.forward(x, w)
    >>> dx, dw = dense.backward(dy, x, w)
    >>> dense.forward(np.ones((2, 7, 5, 3), np.float32), np.ones((3, 4), np.float32)).shape
    (2, 7, 5, 4)
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
    require_array(op, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must have at least 2 axes (batch, ..., features). "
                         f"Received: x.shape={tuple(x.shape)}")
    require_array(op, "w", w, 2)
    require_same_dtype(op, x=x, w=w)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"{op}: x has {x.shape[-1]} features but w expects {w.shape[0]}. "
                         f"Received: x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}")


def _rows(a):
    """a (N, ..., K) as the 2-D (N * ..., K) matrix (a view when C-contiguous)."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


def forward(x, w):
    """y = x @ w (along x's last axis)."""
    check(x, w)
    if x.ndim > 2:
        return _forward_rows(_rows(x), w).reshape(tuple(x.shape[:-1]) + (w.shape[1],))
    return _forward_rows(x, w)


def _forward_rows(x, w):
    device = backend.device()
    if device.kind == "cuda":
        device.require("dense", "x", x)
        device.require("dense", "w", w)
        return device.matmul(x, w)
    if _cpu_fast(x, w):
        return _forward_cpu(x, w)
    return forward_reference(x, w)


def backward(dy, x, w, need_dx=True, dw_out=None):
    """``(dx or None, dw)`` for y = x @ w: dw = x^T dy, dx = dy w^T.

    ``dw_out``: an array of w's shape (say, a view of a model's flat gradient buffer)
    that the CUDA path's GEMM writes dw into, saving a copy; the CPU paths return a new dw."""
    op = "dense backward"
    check(x, w, op)
    require_array(op, "dy", dy, x.ndim)
    require_same_dtype(op, dy=dy, x=x)
    require_shape(op, "dy", dy, tuple(x.shape[:-1]) + (w.shape[1],))
    if dw_out is not None:
        require_shape(op, "dw_out", dw_out, tuple(w.shape))
    if x.ndim > 2:
        dx, dw = _backward_rows(_rows(dy), _rows(x), w, need_dx, dw_out)
        return (dx.reshape(x.shape) if need_dx else None), dw
    return _backward_rows(dy, x, w, need_dx, dw_out)


def _backward_rows(dy, x, w, need_dx, dw_out=None):
    op = "dense backward"
    device = backend.device()
    if device.kind == "cuda":
        for name, a in (("dy", dy), ("x", x), ("w", w)) + ((("dw_out", dw_out),) if dw_out is not None else ()):
            device.require(op, name, a)
        dw = device.matmul(x.T, dy, out=dw_out)
        return (device.matmul(dy, w.T) if need_dx else None), dw
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
