"""leaky_relu: ``y = x`` where ``x > 0``, else ``slope * x``; and its gradient.

    dy/dx = 1 where x > 0, else slope      so      dx = dy * (1 if x > 0 else slope)

Versions, top to bottom: ``check`` (every device, before any work); the
reference (NumPy, any float dtype: the specification); the CPU kernel (one
pass on all cores, for float32 arrays of at least ``MIN_KERNEL_SIZE`` values
when compiled kernels run); the CUDA launch (``kernels/leaky_relu.cu``).
Backward needs the input's sign: forward returns the input as its context.

Example::

    >>> y, ctx = leaky_relu.forward(x, 0.3, training=True)
    >>> dx = leaky_relu.backward(dy, ctx, 0.3)
"""
import math

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import prange, require_array, require_shape

KERNELS = ("leaky_relu_forward", "leaky_relu_backward")   # in kernels/leaky_relu.cu
MIN_KERNEL_SIZE = 1 << 16   # below this, waking the threads costs more than the pass


def check_slope(slope, op="leaky_relu"):
    """``slope`` as a float, or a ValueError: it must be a finite number >= 0."""
    ok = isinstance(slope, (int, float, np.floating, np.integer)) and not isinstance(slope, bool)
    if not ok or not math.isfinite(slope) or slope < 0:
        raise ValueError(f"{op}: slope must be a finite number >= 0. Received: slope={slope!r}")
    return float(slope)


def check(x, slope, op="leaky_relu"):
    require_array(op, "x", x)
    return check_slope(slope, op)


def forward(x, slope, training=False):
    """``(y, ctx)``; ctx (the input) is what backward needs."""
    slope = check(x, slope)
    device = backend.device()
    if device.kind == "cuda":
        device.require("leaky_relu", "x", x)
        y = device.empty(x.shape)
        if y.size:
            device.launch("leaky_relu", "leaky_relu", "leaky_relu_forward", grid_1d(y.size),
                          (BLOCK_1D, 1, 1), (x, y, np.int32(y.size), np.float32(slope)))
    elif _cpu_kernel(x):
        from ..backend.cpu import runtime
        y = np.empty_like(x)
        runtime().compile(forward_kernel)(x.reshape(-1), y.reshape(-1), np.float32(slope))
    else:
        y = forward_reference(x, slope)
    return y, x


def backward(dy, ctx, slope):
    """dx for the forward whose context is ``ctx`` (its input x)."""
    x = ctx
    slope = check(x, slope, "leaky_relu backward")
    require_array("leaky_relu backward", "dy", dy)
    require_shape("leaky_relu backward", "dy", dy, x.shape)
    device = backend.device()
    if device.kind == "cuda":
        device.require("leaky_relu backward", "dy", dy)
        dx = device.empty(x.shape)
        if dx.size:
            device.launch("leaky_relu backward", "leaky_relu", "leaky_relu_backward", grid_1d(dx.size),
                          (BLOCK_1D, 1, 1), (dy, x, dx, np.int32(dx.size), np.float32(slope)))
        return dx
    if _cpu_kernel(dy, x):
        from ..backend.cpu import runtime
        dx = np.empty_like(dy)
        runtime().compile(backward_kernel)(dy.reshape(-1), x.reshape(-1), dx.reshape(-1), np.float32(slope))
        return dx
    return backward_reference(dy, x, slope)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def forward_reference(x, slope):
    return np.where(x > 0, x, x * x.dtype.type(slope))


def backward_reference(dy, x, slope):
    return np.where(x > 0, dy, dy * dy.dtype.type(slope))


# ----------------------------------------------------------------------------
# the CPU kernels (flat float32 arrays; compiled by the CPU runtime)
# ----------------------------------------------------------------------------
def _cpu_kernel(*arrays):
    if arrays[0].size < MIN_KERNEL_SIZE:
        return False
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def forward_kernel(x, y, slope):
    for i in prange(x.shape[0]):
        v = x[i]
        y[i] = v if v > 0 else slope * v   # NaN: slope * NaN = NaN, as the reference


def backward_kernel(dy, x, dx, slope):
    for i in prange(x.shape[0]):
        dx[i] = dy[i] if x[i] > 0 else slope * dy[i]
