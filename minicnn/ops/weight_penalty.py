"""weight_penalty: Keras's L1/L2 weight penalty and its gradient.

    penalty(w) = l1 * sum |w| + l2 * sum w^2         (keras.regularizers.L1L2)
    d penalty / dw = l1 * sign(w) + 2 * l2 * w        (sign(0) = 0, as TensorFlow)

A term whose factor is 0 is left out of the penalty, as Keras does (so an
L2-only penalty of a weight holding inf is inf, not NaN).

Versions: ``check`` (every device); the reference (NumPy, any float dtype:
the specification, and what the CPU device runs: one pass over a weight);
the CUDA launch (``kernels/weight_penalty.cu``): the penalty is a two-pass
reduction, a fixed grid of partial sums then one block (no float atomics:
the same bits on every run), and stays a 0-d device array (no host sync);
the gradient is added in place, one thread per element.

Example::

    >>> loss = weight_penalty.penalty(kernel, 0.0, 0.01)           # 0-d array
    >>> weight_penalty.add_gradient(dkernel, kernel, 0.0, 0.01)    # dkernel += 0.02 * kernel
"""
import math

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import require_array, require_same_dtype, require_shape

KERNELS = ("penalty_partials", "penalty_finish", "penalty_gradient")   # in kernels/weight_penalty.cu

MAX_BLOCK = 256        # MAX_BLOCK of kernels/weight_penalty.cu
PARTIAL_BLOCKS = 120   # pass 1's grid: fixed (the bits may depend on it), enough for a GPU


def check_factors(l1, l2, op="weight_penalty"):
    """(l1, l2) as floats, or a ValueError: each a finite number >= 0."""
    for name, value in (("l1", l1), ("l2", l2)):
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise ValueError(f"{op}: {name} must be a finite number >= 0. Received: {name}={value!r}")
    return float(l1), float(l2)


def penalty(w, l1, l2):
    """l1 * sum|w| + l2 * sum w^2, a 0-d array on w's device."""
    require_array("penalty", "w", w)
    l1, l2 = check_factors(l1, l2, "penalty")
    device = backend.device()
    if device.kind == "cuda":
        device.require("penalty", "w", w)
        blocks = max(1, min(PARTIAL_BLOCKS, -(-w.size // MAX_BLOCK)))
        partial = device.zeros((2 * blocks,))
        out = device.zeros((1,))
        if w.size:
            device.launch("penalty", "weight_penalty", "penalty_partials", (blocks, 1, 1),
                          (MAX_BLOCK, 1, 1), (w, partial, np.int32(w.size)))
            device.launch("penalty", "weight_penalty", "penalty_finish", (1, 1, 1), (MAX_BLOCK, 1, 1),
                          (partial, out, np.int32(blocks), np.float32(l1), np.float32(l2)))
        return out.reshape(())
    return penalty_reference(w, l1, l2)


def add_gradient(g, w, l1, l2):
    """g += l1 * sign(w) + 2 * l2 * w, in place; returns g."""
    require_array("penalty gradient", "g", g)
    require_array("penalty gradient", "w", w)
    require_same_dtype("penalty gradient", g=g, w=w)
    require_shape("penalty gradient", "g", g, w.shape)
    l1, l2 = check_factors(l1, l2, "penalty gradient")
    device = backend.device()
    if device.kind == "cuda":
        device.require("penalty gradient", "g", g)
        device.require("penalty gradient", "w", w)
        if g.size:
            device.launch("penalty gradient", "weight_penalty", "penalty_gradient", grid_1d(g.size),
                          (BLOCK_1D, 1, 1), (g, w, np.int32(g.size), np.float32(l1), np.float32(l2)))
        return g
    return add_gradient_reference(g, w, l1, l2)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def penalty_reference(w, l1, l2):
    t = w.dtype.type
    total = t(0)
    if l1:
        total = total + t(l1) * np.abs(w).sum(dtype=w.dtype)
    if l2:
        total = total + t(l2) * (w * w).sum(dtype=w.dtype)
    return np.asarray(total, dtype=w.dtype)


def add_gradient_reference(g, w, l1, l2):
    t = w.dtype.type
    g += t(l1) * np.sign(w) + t(2 * l2) * w
    return g
