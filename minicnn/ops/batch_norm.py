"""batch_norm: batch normalization over one axis (the channels), forward and backward.

The math of Keras 3.15.1 (``keras/src/layers/normalization/batch_normalization.py``,
``call``; ``keras/src/backend/numpy/nn.py``, ``moments`` and
``batch_normalization``), per channel c over the m = (all values but the
channel axis) values x_i of that channel:

    training:   mean = sum(x_i) / m,   var = sum((x_i - mean)^2) / m    (biased)
                moving_mean' = moving_mean * momentum + mean * (1 - momentum)
                moving_var'  = moving_var  * momentum + var  * (1 - momentum)
    inference:  mean = moving_mean,    var = moving_var                 (no update)
    both:       inv = 1 / sqrt(var + epsilon)
                scale = gamma * inv,   shift = beta - mean * scale
                y = x * scale + shift            (= gamma (x - mean) inv + beta)

The variance is the biased one in the moving update too (Keras 3; tf.keras 2's
fused kernel used m / (m - 1)). It is taken in two passes, mean then squared
deviations, as the TensorFlow backend's ``tf.nn.moments`` does (Keras's NumPy
backend writes E[x^2] - mean^2, equal in exact arithmetic, but a large mean
cancels its variance in float32). tests/fixtures/batch_norm holds Keras's
numbers (TensorFlow backend) that this matches. gamma None (scale=False) acts as 1,
beta None (center=False) as 0. Backward, with xhat = (x - mean) * inv:

    dbeta = sum(dy),   dgamma = sum(dy * xhat)
    training:   dx = scale * (dy - (dbeta + xhat * dgamma) / m)
    inference:  dx = scale * dy          (mean and var are constants there)

Any axis works: the input is read as (outer, channels, inner), inner = 1
for the channels-last axis -1. Versions, top to bottom: the checks (every
device, before any work); the reference (NumPy, any float dtype: the
specification); the CPU kernels (channels last, float32, from
``MIN_KERNEL_SIZE`` values; the sums run in ``PARTS`` fixed row parts in
float64, added in order: the same bits whatever the thread count); the CUDA
launches (``kernels/batch_norm.cu``: one block per channel reducing in shared
memory in a fixed tree order, no float atomics, then elementwise kernels).

The moving statistics are never changed here: a training forward RETURNS the
new ones, and the caller assigns them once everything succeeded (never a
half-applied update). Example::

    >>> y, ctx, (new_mean, new_var) = batch_norm.forward(x, gamma, beta, mean, var, training=True)
    >>> dx, dgamma, dbeta = batch_norm.backward(dy, ctx)
"""
import math
from collections import namedtuple

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, MAX_GRID_X, grid_1d
from .common import prange, require_array, require_same_dtype, require_shape

KERNELS = ("batch_norm_stats", "batch_norm_moving_update", "batch_norm_coefficients",
           "batch_norm_apply", "batch_norm_backward_sums", "batch_norm_backward_dx")  # kernels/batch_norm.cu
MIN_KERNEL_SIZE = 1 << 16   # below this, NumPy's whole-array passes cost less than waking threads
PARTS = 32                  # fixed row parts of the compiled sums (not the thread count: same bits anywhere)
MAX_CHANNEL_BLOCK = 256     # MAX_BLOCK of kernels/batch_norm.cu

# What backward needs: the input, the per-channel statistics used, and how it was normalized.
Context = namedtuple("Context", "x mean inv scale layout batch_stats")


# ----------------------------------------------------------------------------
# checks (every device)
# ----------------------------------------------------------------------------
def _number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_hyperparameters(momentum, epsilon, op="batch_norm"):
    """``(momentum, epsilon)`` as floats, or a ValueError: momentum in [0, 1], epsilon > 0."""
    if not _number(momentum) or not 0 <= momentum <= 1:
        raise ValueError(f"{op}: `momentum` must be a number in [0, 1]. Received: momentum={momentum!r}")
    if not _number(epsilon) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"{op}: `epsilon` must be a finite number > 0. Received: epsilon={epsilon!r}")
    return float(momentum), float(epsilon)


def channel_axis(axis, shape, op="batch_norm"):
    """``axis`` as a non-negative index into ``shape``, or a ValueError (Keras's wording)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{op}: `axis` must be one int (the channels axis). Received: axis={axis!r}")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"{op}: Axis {axis} is out of bounds for input shape {tuple(shape)}. "
                         f"Received: axis={axis}")
    return int(axis) % len(shape)


def layout(shape, axis):
    """``(outer, channels, inner)``: the input read as a 3-D array around the channel axis."""
    return math.prod(shape[:axis]), int(shape[axis]), math.prod(shape[axis + 1:])


def check(x, gamma, beta, moving_mean, moving_variance, axis, momentum, epsilon, training, op):
    require_array(op, "x", x)
    lay = layout(x.shape, channel_axis(axis, x.shape, op))
    params = {"gamma": gamma, "beta": beta, "moving_mean": moving_mean, "moving_variance": moving_variance}
    params = {name: a for name, a in params.items() if a is not None or name in ("moving_mean", "moving_variance")}
    for name, a in params.items():
        require_array(op, name, a)
        require_shape(op, name, a, (lay[1],))
    require_same_dtype(op, x=x, **params)
    check_hyperparameters(momentum, epsilon, op)
    if training and lay[0] * lay[2] == 0:
        raise ValueError(f"{op}: training needs at least one value per channel for the batch "
                         f"statistics. Received: x.shape={tuple(x.shape)}")
    return lay


# ----------------------------------------------------------------------------
# the op
# ----------------------------------------------------------------------------
def forward(x, gamma, beta, moving_mean, moving_variance, axis=-1, momentum=0.99, epsilon=1e-3,
            training=False, op="batch_norm"):
    """``(y, ctx, moving)``: moving is ``(new_moving_mean, new_moving_variance)`` after a
    training forward (batch statistics), None in inference (moving statistics)."""
    lay = check(x, gamma, beta, moving_mean, moving_variance, axis, momentum, epsilon, training, op)
    device = backend.device()
    if device.kind == "cuda":
        return _forward_cuda(device, x, gamma, beta, moving_mean, moving_variance, lay, momentum,
                             epsilon, training, op)
    if _cpu_kernel(x, lay):
        return _forward_cpu(x, gamma, beta, moving_mean, moving_variance, lay, momentum, epsilon, training)
    return forward_reference(x, gamma, beta, moving_mean, moving_variance, lay, momentum, epsilon, training)


def commit_moving(moving_mean, moving_variance, moving):
    """Write a training forward's new moving statistics (``moving``) into the layer's arrays,
    in place, through the device seam: on a CUDA device a step plan records the copies
    (an assignment around the seam would be missing from every replay)."""
    device = backend.device()
    device.copy(moving_mean, moving[0])
    device.copy(moving_variance, moving[1])


def backward(dy, ctx, op="batch_norm backward"):
    """``(dx, dgamma, dbeta)`` for the forward whose context is ``ctx``."""
    require_array(op, "dy", dy)
    require_shape(op, "dy", dy, ctx.x.shape)
    require_same_dtype(op, dy=dy, x=ctx.x)
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, dy, ctx, op)
    if _cpu_kernel(dy, ctx.layout) and _cpu_kernel(ctx.x, ctx.layout):
        return _backward_cpu(dy, ctx)
    return backward_reference(dy, ctx)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype; x3 is x read as (outer, channels, inner)
# ----------------------------------------------------------------------------
def forward_reference(x, gamma, beta, moving_mean, moving_variance, lay, momentum, epsilon, training):
    """``(y, ctx, moving)`` as :func:`forward`, for x read as ``lay`` = (outer, channels, inner)."""
    x3 = x.reshape(lay)
    moving = None
    if training:
        mean, var = moments_reference(x3)
        moving = moving_update_reference(moving_mean, moving_variance, mean, var, momentum)
    else:
        mean, var = moving_mean, moving_variance
    inv, scale, shift = coefficients_reference(mean, var, gamma, beta, epsilon)
    y = affine_reference(x3, scale, shift).reshape(x.shape)
    return y, Context(x, mean, inv, scale, lay, bool(training)), moving


def moments_reference(x3):
    """Batch mean and biased variance per channel, in two passes."""
    mean = x3.mean(axis=(0, 2))
    var = np.square(x3 - mean[:, None]).mean(axis=(0, 2))
    return mean, var


def moving_update_reference(moving_mean, moving_variance, mean, var, momentum):
    """Keras's moving averages: ``moving * momentum + batch * (1 - momentum)``."""
    t = moving_mean.dtype.type
    keep, take = t(momentum), t(1.0 - momentum)   # 1 - momentum in double, then rounded, as Keras
    return moving_mean * keep + mean * take, moving_variance * keep + var * take


def coefficients_reference(mean, var, gamma, beta, epsilon):
    """``(inv, scale, shift)`` per channel: y = x * scale + shift."""
    inv = 1 / np.sqrt(var + var.dtype.type(epsilon))
    scale = inv if gamma is None else inv * gamma
    shift = -mean * scale if beta is None else beta - mean * scale
    return inv, scale, shift


def affine_reference(x3, scale, shift):
    return x3 * scale[:, None] + shift[:, None]


def backward_reference(dy, ctx):
    x3, dy3 = ctx.x.reshape(ctx.layout), dy.reshape(ctx.layout)
    xhat = (x3 - ctx.mean[:, None]) * ctx.inv[:, None]
    dbeta = dy3.sum(axis=(0, 2))
    dgamma = (dy3 * xhat).sum(axis=(0, 2))
    if ctx.batch_stats:   # mean and var depend on x: the two extra terms
        m = dy.dtype.type(ctx.layout[0] * ctx.layout[2])
        dx = ctx.scale[:, None] * (dy3 - (dbeta[:, None] + xhat * dgamma[:, None]) / m)
    else:
        dx = dy3 * ctx.scale[:, None]
    return dx.reshape(dy.shape), dgamma, dbeta


# ----------------------------------------------------------------------------
# the CPU kernels: channels last, x read as (rows, channels) float32
# ----------------------------------------------------------------------------
def _cpu_kernel(x, lay):
    if x.size < MIN_KERNEL_SIZE or lay[2] != 1:
        return False
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(x)


def _parts(rows):
    return max(1, min(PARTS, rows))


def _forward_cpu(x, gamma, beta, moving_mean, moving_variance, lay, momentum, epsilon, training):
    """forward_reference with the passes over x compiled (the per-channel math stays NumPy)."""
    x2 = x.reshape(lay[:2])
    moving = None
    if training:
        mean, var = _moments_cpu(x2)
        moving = moving_update_reference(moving_mean, moving_variance, mean, var, momentum)
    else:
        mean, var = moving_mean, moving_variance
    inv, scale, shift = coefficients_reference(mean, var, gamma, beta, epsilon)
    y = _affine_cpu(x2, scale, shift).reshape(x.shape)
    return y, Context(x, mean, inv, scale, lay, bool(training)), moving


def _moments_cpu(x2):
    from ..backend.cpu import runtime
    kernel = runtime().compile(column_partials_kernel)
    rows, channels = x2.shape
    partial = np.empty((_parts(rows), channels))
    kernel(x2, np.zeros(channels), False, partial)
    mean = (partial.sum(axis=0) / rows).astype(np.float32)
    kernel(x2, mean.astype(np.float64), True, partial)
    return mean, (partial.sum(axis=0) / rows).astype(np.float32)


def _affine_cpu(x2, scale, shift):
    from ..backend.cpu import runtime
    y = np.empty_like(x2)
    runtime().compile(affine_kernel)(x2, scale, shift, y)
    return y


def _backward_cpu(dy, ctx):
    from ..backend.cpu import runtime
    rows, channels = ctx.layout[0], ctx.layout[1]
    dy2, x2 = dy.reshape(rows, channels), ctx.x.reshape(rows, channels)
    partial = np.empty((_parts(rows), 2, channels))
    runtime().compile(backward_partials_kernel)(dy2, x2, ctx.mean, ctx.inv, partial)
    sums = partial.sum(axis=0).astype(np.float32)
    dbeta, dgamma = sums[0], sums[1]
    dx = np.empty_like(dy2)
    runtime().compile(backward_dx_kernel)(dy2, x2, ctx.mean, ctx.inv, ctx.scale, dbeta, dgamma,
                                          np.float32(rows), ctx.batch_stats, dx)
    return dx.reshape(dy.shape), dgamma, dbeta


def column_partials_kernel(x, center, squared, out):
    """out[p, c] = sum over part p's rows of (x - center[c]), or of its square (float64)."""
    rows, parts = x.shape[0], out.shape[0]
    for p in prange(parts):
        out[p, :] = 0.0
        for r in range(p * rows // parts, (p + 1) * rows // parts):
            for c in range(x.shape[1]):
                v = np.float64(x[r, c]) - center[c]
                out[p, c] += v * v if squared else v


def affine_kernel(x, scale, shift, y):
    for r in prange(x.shape[0]):
        for c in range(x.shape[1]):
            y[r, c] = x[r, c] * scale[c] + shift[c]


def backward_partials_kernel(dy, x, mean, inv, out):
    """out[p, 0, c] = part p's sum of dy, out[p, 1, c] of dy * xhat (float64)."""
    rows, parts = x.shape[0], out.shape[0]
    for p in prange(parts):
        out[p, :, :] = 0.0
        for r in range(p * rows // parts, (p + 1) * rows // parts):
            for c in range(x.shape[1]):
                xhat = (x[r, c] - mean[c]) * inv[c]
                out[p, 0, c] += dy[r, c]
                out[p, 1, c] += np.float64(dy[r, c] * xhat)


def backward_dx_kernel(dy, x, mean, inv, scale, dbeta, dgamma, m, batch_stats, dx):
    for r in prange(x.shape[0]):
        for c in range(x.shape[1]):
            if batch_stats:
                xhat = (x[r, c] - mean[c]) * inv[c]
                dx[r, c] = scale[c] * (dy[r, c] - (dbeta[c] + xhat * dgamma[c]) / m)
            else:
                dx[r, c] = dy[r, c] * scale[c]


# ----------------------------------------------------------------------------
# CUDA: kernels/batch_norm.cu
# ----------------------------------------------------------------------------
def channel_block(count):
    """Threads per block of a one-block-per-channel kernel: a power of two (the tree
    reduction halves it) in [32, MAX_CHANNEL_BLOCK], no more than the channel's values need."""
    return min(MAX_CHANNEL_BLOCK, max(32, 1 << (max(count, 1) - 1).bit_length()))


def _ints(*values):
    return tuple(np.int32(v) for v in values)


def _per_channel(device, op, kernel, channels, count, args):
    # one block per channel; the kernels grid-stride over channels, so a grid
    # capped at MAX_GRID_X blocks still covers every one
    device.launch(op, "batch_norm", kernel, (min(channels, MAX_GRID_X), 1, 1),
                  (channel_block(count), 1, 1), args)


def _forward_cuda(device, x, gamma, beta, moving_mean, moving_variance, lay, momentum, epsilon,
                  training, op):
    for name, a in (("x", x), ("moving_mean", moving_mean), ("moving_variance", moving_variance),
                    ("gamma", gamma), ("beta", beta)):
        if a is not None:
            device.require(op, name, a)
    outer, channels, inner = lay
    # scale=False: a table of ones made through the seam (a step plan holds it, filled once)
    gamma = device.constant(np.ones(channels), "float32") if gamma is None else gamma
    beta = device.zeros((channels,)) if beta is None else beta
    moving = None
    if training:
        mean, var = device.empty((channels,)), device.empty((channels,))
        _per_channel(device, op, "batch_norm_stats", channels, outer * inner,
                     (x, mean, var) + _ints(outer, channels, inner))
        moving = device.empty((channels,)), device.empty((channels,))
        device.launch(op, "batch_norm", "batch_norm_moving_update", grid_1d(channels), (BLOCK_1D, 1, 1),
                      (moving_mean, moving_variance, mean, var) + moving
                      + (np.int32(channels), np.float32(momentum), np.float32(1.0 - momentum)))
    else:
        mean, var = moving_mean, moving_variance
    inv, scale, shift = (device.empty((channels,)) for _ in range(3))
    device.launch(op, "batch_norm", "batch_norm_coefficients", grid_1d(channels), (BLOCK_1D, 1, 1),
                  (mean, var, gamma, beta, inv, scale, shift, np.int32(channels), np.float32(epsilon)))
    y = device.empty(x.shape)
    if y.size:
        device.launch(op, "batch_norm", "batch_norm_apply", grid_1d(y.size), (BLOCK_1D, 1, 1),
                      (x, scale, shift, y) + _ints(y.size, channels, inner))
    return y, Context(x, mean, inv, scale, lay, bool(training)), moving


def _backward_cuda(device, dy, ctx, op):
    device.require(op, "dy", dy)
    outer, channels, inner = ctx.layout
    dbeta, dgamma = device.empty((channels,)), device.empty((channels,))
    _per_channel(device, op, "batch_norm_backward_sums", channels, outer * inner,
                 (dy, ctx.x, ctx.mean, ctx.inv, dbeta, dgamma) + _ints(outer, channels, inner))
    dx = device.empty(dy.shape)
    if dx.size:
        device.launch(op, "batch_norm", "batch_norm_backward_dx", grid_1d(dx.size), (BLOCK_1D, 1, 1),
                      (dy, ctx.x, ctx.mean, ctx.inv, ctx.scale, dbeta, dgamma, dx)
                      + _ints(dx.size, channels, inner)
                      + (np.float32(outer * inner), np.int32(ctx.batch_stats)))
    return dx, dgamma, dbeta
