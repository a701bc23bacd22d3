"""gradient_clipping: Keras 3's ``clipnorm``, ``global_clipnorm`` and ``clipvalue``, on every device.

Each op returns NEW gradient arrays (the layers' own are left as they are), computed as
Keras 3.15.1 does (``keras/src/optimizers/base_optimizer.py`` and, for clipnorm, TF's
``tf.clip_by_norm``, which the TensorFlow backend calls):

    clip_by_norm         n = sqrt(sum(g*g)) (0 when the sum is 0);   g' = (g*c) / max(n, c)
    clip_by_global_norm  n = sqrt(sum over all gradients of sum(g*g))
                         scale = c * min(1/n, 1/c) + (n - n);        g' = g * scale
                         (n - n is 0 for a finite n and NaN for inf/NaN: a NaN scale,
                         so a broken step shows instead of passing as a clipped one)
    clip_by_value        g' = max(min(g, c), -c)

The norms are sums of squares. Keras adds float32 squares in whatever order its kernel
likes; here every device adds them in DOUBLE, in a fixed order, and rounds each
gradient's sum once to the gradient's dtype: the same answer every run (no atomics),
and the same as Keras's up to the last bits of the sum. The reference uses NumPy's
float64 sum; the CUDA kernel (``kernels/gradient_clipping.cu``) one block per gradient,
a tree in shared memory. ``1/c`` is computed in double, then rounded, as Keras's
``1.0 / clip_norm`` is.

Example::

    >>> g1, g2 = gradient_clipping.clip_by_global_norm([dw, db], 1.0)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import require_array

KERNELS = ("sum_squares", "clip_by_norm", "global_norm_scale", "scale_by", "clip_by_value")
SUM_BLOCK = 256   # threads of the one block that adds up a gradient's squares (kernel's MAX_BLOCK)


def check(op, grads, clip):
    for i, g in enumerate(grads):
        require_array(op, f"grads[{i}]" if len(grads) > 1 else "grad", g)
    if not (isinstance(clip, (int, float, np.integer, np.floating)) and np.isfinite(clip) and clip > 0):
        raise ValueError(f"{op}: the clip value must be a finite number > 0. Received: {clip!r}")
    return float(clip)


# ----------------------------------------------------------------------------
# the ops
# ----------------------------------------------------------------------------
def clip_by_norm(grad, clipnorm):
    """``grad`` rescaled so that its L2 norm is at most ``clipnorm`` (a new array)."""
    c = check("clip_by_norm", [grad], clipnorm)
    device = backend.device()
    if device.kind != "cuda":
        return clip_by_norm_reference(grad, c)
    device.require("clip_by_norm", "grad", grad)
    out = device.empty(grad.shape)
    sumsq = _sums_of_squares(device, "clip_by_norm", [grad])
    if grad.size:
        device.launch("clip_by_norm", "gradient_clipping", "clip_by_norm", grid_1d(grad.size),
                      (BLOCK_1D, 1, 1), (grad, sumsq, out, np.int32(grad.size), np.float32(c)))
    return out


def clip_by_global_norm(grads, clipnorm):
    """The gradients scaled together so that their joint L2 norm is at most ``clipnorm``."""
    grads = list(grads)
    c = check("clip_by_global_norm", grads, clipnorm)
    device = backend.device()
    if device.kind != "cuda":
        return clip_by_global_norm_reference(grads, c)
    for i, g in enumerate(grads):
        device.require("clip_by_global_norm", f"grads[{i}]", g)
    sumsq = _sums_of_squares(device, "clip_by_global_norm", grads)
    scale = device.empty((1,))
    device.launch("clip_by_global_norm", "gradient_clipping", "global_norm_scale", (1, 1, 1), (1, 1, 1),
                  (sumsq, scale, np.int32(len(grads)), np.float32(c), np.float32(1.0 / c)))
    out = []
    for g in grads:
        o = device.empty(g.shape)
        if g.size:
            device.launch("clip_by_global_norm", "gradient_clipping", "scale_by", grid_1d(g.size),
                          (BLOCK_1D, 1, 1), (g, scale, o, np.int32(g.size)))
        out.append(o)
    return out


def clip_by_value(grad, clipvalue):
    """``grad`` with every element clipped into [-clipvalue, clipvalue] (a new array)."""
    c = check("clip_by_value", [grad], clipvalue)
    device = backend.device()
    if device.kind != "cuda":
        return clip_by_value_reference(grad, c)
    device.require("clip_by_value", "grad", grad)
    out = device.empty(grad.shape)
    if grad.size:
        device.launch("clip_by_value", "gradient_clipping", "clip_by_value", grid_1d(grad.size),
                      (BLOCK_1D, 1, 1), (grad, out, np.int32(grad.size), np.float32(c)))
    return out


def _sums_of_squares(device, op, grads):
    """One float32 per gradient on the device: its sum of squares, added in double."""
    sumsq = device.empty((len(grads),))
    for i, g in enumerate(grads):
        # one block: the whole sum in a fixed order; slot i of sumsq
        device.launch(op, "gradient_clipping", "sum_squares", (1, 1, 1), (SUM_BLOCK, 1, 1),
                      (g, sumsq, np.int32(g.size), np.int32(i)))
    return sumsq


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype (the scalars in the gradient's dtype)
# ----------------------------------------------------------------------------
def sum_squares_reference(grad):
    """sum(g*g) added in double, rounded once to the gradient's dtype."""
    g = np.asarray(grad, dtype=np.float64).reshape(-1)
    return grad.dtype.type(np.dot(g, g))


def clip_by_norm_reference(grad, clipnorm):
    dt = grad.dtype.type
    c = dt(clipnorm)
    sumsq = sum_squares_reference(grad)
    norm = np.sqrt(sumsq) if sumsq > 0 else sumsq
    return (grad * c) / np.maximum(norm, c)


def global_norm_reference(grads):
    """sqrt of the sum of the gradients' sums of squares (each rounded; added in double)."""
    dt = grads[0].dtype.type if grads else np.float32
    total = sum(float(sum_squares_reference(g)) for g in grads)
    return np.sqrt(dt(total))


def clip_by_global_norm_reference(grads, clipnorm):
    if not grads:
        return []
    dt = grads[0].dtype.type
    norm = global_norm_reference(grads)
    with np.errstate(divide="ignore", invalid="ignore"):   # a zero norm: 1/0 = inf, min picks 1/c
        scale = dt(clipnorm) * np.minimum(dt(1) / norm, dt(1.0 / clipnorm)) + (norm - norm)
    return [g * scale for g in grads]


def clip_by_value_reference(grad, clipvalue):
    c = grad.dtype.type(clipvalue)
    return np.maximum(np.minimum(grad, c), -c)
