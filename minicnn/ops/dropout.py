"""dropout: inverted dropout with a counter-based mask, the same bits on every device.

Keras 3's rule (``keras/src/backend/numpy/random.py``, ``dropout``), with
``keep_prob = 1 - rate`` rounded once to the array's dtype:

    y = x / keep_prob   where the mask keeps the element,   else 0

and its gradient is the same map applied to dy: ``dx = dy / keep_prob`` where
kept, else 0. The mask has ``noise_shape`` (the input's shape, or one with
1s on the axes it broadcasts over: SpatialDropout2D drops whole channels
with (batch, 1, 1, channels)) and is drawn by a COUNTER-BASED generator, a
pure function of (seed, step, noise index) rather than a stream with state:

    key      = mix32(mix32(seed ^ 0x9E3779B9) + step)       (once per call)
    bits(n)  = ROUNDS rounds of  h = mix32(h + key),  from h = n
    kept(n)  = bits(n) >= threshold,   threshold = round(rate * 2**32)

all in unsigned 32-bit arithmetic (seed and step taken modulo 2**32), with
``mix32`` the "lowbias32" integer hash (xor-shift, multiply, twice). P(kept)
is (2**32 - threshold) / 2**32 = keep_prob to 2**-32. Integer arithmetic is
exact, so NumPy, the compiled CPU kernel, CUDA and the emulator give the
same mask bit for bit, and ``x / keep_prob`` is one correctly rounded
division everywhere: the outputs agree bit for bit too.

Backward REGENERATES the mask from (key, threshold) instead of keeping it:
the context is a few numbers, no batch-sized array stays alive between the
passes, and the hash is cheaper than reading a stored mask back.

A layer draws its keys from a :class:`MaskKeys` (as Keras's SeedGenerator:
each training forward takes the key of (seed, step) and counts the step).
The CUDA kernel reads the key through a pointer, from the MaskKeys' fixed
device buffer that the host writes before the forward (step values,
minicnn/backend/step_values.py): the launch's arguments are the same every
step, so a recorded training step replays, drawing each step's mask.

Versions, top to bottom: the checks (every device, before any work); the
reference (NumPy, any float dtype: the specification); the CPU kernel (one
pass on all cores, float32, from ``MIN_KERNEL_SIZE`` values); the CUDA
launch (``kernels/dropout.cu``).

Example::

    >>> y, ctx = dropout.forward(x, 0.5, seed=7, step=0, training=True)
    >>> dx = dropout.backward(dy, ctx)
"""
import math
from collections import namedtuple

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from ..backend.step_values import StepValues, device_values
from .common import prange, require_array, require_shape

KERNELS = ("dropout_apply",)   # in kernels/dropout.cu
MIN_KERNEL_SIZE = 1 << 16      # below this, waking the threads costs more than the pass
ROUNDS = 2                     # DROPOUT_ROUNDS of kernels/dropout.cu
SEED_SALT = 0x9E3779B9         # keeps seed 0 away from mix32's fixed point 0
MASK32 = 0xFFFFFFFF

# What backward needs to rebuild the mask: no array, just the recipe (``values``: the
# MaskKeys the key was drawn from, whose device buffer holds it; None for a one-off call).
Mask = namedtuple("Mask", "shape noise_shape key threshold keep_prob values", defaults=(None,))


# ----------------------------------------------------------------------------
# checks (every device)
# ----------------------------------------------------------------------------
def check_rate(rate, op="dropout"):
    """``rate`` as a float, or a ValueError: a finite number in [0, 1)."""
    ok = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, (bool, np.bool_))
    if not ok or not math.isfinite(rate) or not 0 <= rate < 1:
        raise ValueError(f"{op}: Invalid value received for argument `rate`. Expected a float value "
                         f"in [0, 1) (the fraction of the input units to drop). Received: rate={rate!r}")
    return float(rate)


def check_seed(seed, op="dropout"):
    """``seed`` as an int (or None), else a TypeError."""
    if seed is not None and (isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"{op}: `seed` must be an int or None. Received: seed={seed!r}")
    return None if seed is None else int(seed)


def check_noise_shape(noise_shape, op="dropout"):
    """``noise_shape`` as a tuple of positive ints and Nones (or None), as Keras validates it."""
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str) or not hasattr(noise_shape, "__iter__"):
        raise ValueError(f"{op}: Invalid value received for argument `noise_shape`. Expected a tuple "
                         f"or list of integers. Received: noise_shape={noise_shape!r}")
    noise_shape = tuple(noise_shape)
    for i, dim in enumerate(noise_shape):
        if dim is not None and (isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer))
                                or dim <= 0):
            raise ValueError(f"{op}: Invalid value received for argument `noise_shape`. Expected all "
                             f"elements to be positive integers or None. Received element at index "
                             f"{i}: {dim!r}")
    return tuple(None if d is None else int(d) for d in noise_shape)


def resolve_noise_shape(noise_shape, shape, op="dropout"):
    """The mask's shape for inputs of ``shape``: None entries take the input's
    dims; every dim must be the input's or 1 (a broadcast axis)."""
    if noise_shape is None:
        return tuple(shape)
    if len(noise_shape) != len(shape):
        raise ValueError(f"{op}: noise_shape must have one entry per input axis ({len(shape)}). "
                         f"Received: noise_shape={noise_shape}, input shape={tuple(shape)}")
    resolved = tuple(s if n is None else int(n) for n, s in zip(noise_shape, shape))
    for n, s in zip(resolved, shape):
        if s is not None and n not in (1, s):   # s is None: a symbolic batch axis, any size
            raise ValueError(f"{op}: each noise_shape entry must be the input's dim, 1 or None. "
                             f"Received: noise_shape={noise_shape}, input shape={tuple(shape)}")
    return resolved


# ----------------------------------------------------------------------------
# the generator (host side: plain Python ints)
# ----------------------------------------------------------------------------
def mix32(h):
    """lowbias32 (C. Wellons): a bijective 32-bit hash with good avalanche."""
    h &= MASK32
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK32
    h ^= h >> 15
    h = (h * 0x846CA68B) & MASK32
    h ^= h >> 16
    return h


def stream_key(seed, step):
    """The 32-bit key of one (seed, step): each training step draws a new mask."""
    return mix32(mix32((seed & MASK32) ^ SEED_SALT) + (step & MASK32))


def threshold_of(rate):
    """Kept iff bits >= threshold: P(kept) = 1 - rate (to 2**-32)."""
    return min(int(round(rate * 2.0 ** 32)), MASK32)


def make_mask(x_shape, rate, seed, step, noise_shape=None, dtype=np.float32):
    """The recipe (:class:`Mask`) of the mask for one call."""
    keep_prob = np.dtype(dtype).type(1.0 - rate)
    return Mask(tuple(x_shape), resolve_noise_shape(noise_shape, x_shape), stream_key(seed, step),
                threshold_of(rate), keep_prob)


class MaskKeys(StepValues):
    """A dropout layer's mask keys: each ``refresh()`` (one per training forward) draws the
    key of (seed, step) and counts the step, as Keras's SeedGenerator moves on with each
    draw. The key is this StepValues' one value (its 32 bits as an np.int32); on a CUDA
    device it lives in a fixed buffer the kernel reads.

    Example::

        >>> keys = MaskKeys(seed=7)
        >>> y, ctx = forward(x, 0.5, keys, None, training=True)   # step 0's mask; keys.step == 1
    """

    def __init__(self, seed, step=0):
        super().__init__(self._draw, np.int32)
        self.seed, self.step = int(seed), int(step)
        self.key = None   # the key drawn last (a Python int)

    def _draw(self):
        self.key = stream_key(self.seed, self.step)
        self.step += 1
        return (_bits32(self.key),)


# ----------------------------------------------------------------------------
# the op
# ----------------------------------------------------------------------------
def forward(x, rate, seed, step, noise_shape=None, training=False, op="dropout"):
    """``(y, ctx)``: x itself in inference (or at rate 0), else the dropped and rescaled x.

    The mask is that of (``seed``, ``step``); or ``seed`` is a layer's :class:`MaskKeys`
    (``step`` None), which draws this training forward's key (and counts the step)."""
    require_array(op, "x", x)
    rate = check_rate(rate, op)
    keys = seed if isinstance(seed, MaskKeys) else None
    if keys is None:
        seed = check_seed(seed, op) or 0
    noise_shape = resolve_noise_shape(check_noise_shape(noise_shape, op), x.shape, op)
    if not training:
        return x, None
    if keys is None:
        mask = make_mask(x.shape, rate, seed, int(step), noise_shape, x.dtype)
    else:
        keys.refresh()   # this forward's key, and the step counted
        mask = Mask(tuple(x.shape), noise_shape, keys.key, threshold_of(rate), x.dtype.type(1.0 - rate), keys)
    return apply(x, mask, op), mask


def backward(dy, ctx, op="dropout backward"):
    """dx for the forward whose context is ``ctx``: the same mask and scale applied to dy."""
    require_array(op, "dy", dy)
    require_shape(op, "dy", dy, ctx.shape)
    return apply(dy, ctx, op)


def apply(x, mask, op="dropout"):
    """``x / keep_prob`` where ``mask`` keeps, else 0 (x itself when nothing drops)."""
    if mask.threshold == 0:   # rate 0: keep_prob is 1, the identity
        return x
    device = backend.device()
    if device.kind == "cuda":
        return _apply_cuda(device, x, mask, op)
    if _cpu_kernel(x):
        return _apply_cpu_kernel(x, mask)
    return apply_reference(x, mask)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def mix32_reference(h):
    """mix32 on a uint32 array (its products wrap modulo 2**32, as in C)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


def bits_reference(n, key):
    """The random bits of noise indices ``n`` (uint32 array) under ``key``."""
    h = n
    for _ in range(ROUNDS):
        h = mix32_reference(h + np.uint32(key))
    return h


def keep_reference(mask):
    """The boolean mask of the input's shape: drawn at noise_shape, then broadcast."""
    n = np.arange(math.prod(mask.noise_shape), dtype=np.uint32)   # row-major noise index
    kept = bits_reference(n, mask.key) >= np.uint32(mask.threshold)
    return np.broadcast_to(kept.reshape(mask.noise_shape), mask.shape)


def apply_reference(x, mask):
    keep_prob = x.dtype.type(mask.keep_prob)
    return np.where(keep_reference(mask), x / keep_prob, x.dtype.type(0))


# ----------------------------------------------------------------------------
# the layout the kernels walk: element -> noise index
# ----------------------------------------------------------------------------
def noise_layout(shape, noise_shape):
    """``(dims, strides)`` (int32): element i's noise index is sum_d coord_d * strides[d],
    with coord_d the coordinates of i in ``dims`` (row-major).

    ``strides`` are the noise array's row-major strides, 0 on broadcast axes;
    then size-1 axes are dropped and neighbours that index alike merged, so
    Dropout walks one axis (stride 1) and SpatialDropout2D three
    (batch, pixels, channels with strides (C, 0, 1))."""
    axes, stride = [], 1
    for s, n in zip(reversed(shape), reversed(noise_shape)):
        if s != 1:
            axes.append([s, stride if n == s else 0])
        stride *= n
    merged = []
    for dim, st in axes:   # innermost first
        if merged:
            inner_dim, inner_stride = merged[-1]
            both_broadcast = st == 0 and inner_stride == 0
            contiguous = st != 0 and inner_stride != 0 and st == inner_dim * inner_stride
            if both_broadcast or contiguous:   # one axis of dim * inner_dim values
                merged[-1][0] *= dim
                continue
        merged.append([dim, st])
    merged = merged[::-1] or [[1, 0]]
    return (np.array([d for d, _ in merged], np.int32), np.array([s for _, s in merged], np.int32))


def _bits32(value):
    """An unsigned 32-bit value as the np.int32 with the same bits (kernels read it back unsigned)."""
    return np.uint32(value).view(np.int32)


# ----------------------------------------------------------------------------
# the CPU kernel (flat float32 arrays; compiled by the CPU runtime)
# ----------------------------------------------------------------------------
_U16, _U15 = np.uint64(16), np.uint64(15)            # uint64 constants: the compiled
_M1, _M2 = np.uint64(0x7FEB352D), np.uint64(0x846CA68B)  # arithmetic stays unsigned
_LOW32 = np.uint64(MASK32)


def _cpu_kernel(x):
    if x.size < MIN_KERNEL_SIZE:
        return False
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(x)


def _apply_cpu_kernel(x, mask):
    from ..backend.cpu import runtime
    dims, strides = noise_layout(mask.shape, mask.noise_shape)
    y = np.empty_like(x)
    runtime().compile(apply_kernel)(x.reshape(-1), y.reshape(-1), dims.astype(np.int64),
                                    strides.astype(np.int64), np.uint64(mask.key),
                                    np.uint64(mask.threshold), np.float32(mask.keep_prob))
    return y


def apply_kernel(x, y, dims, strides, key, threshold, keep_prob):
    for i in prange(x.shape[0]):
        n, below = 0, 1   # below: the number of elements one step of axis d spans
        for d in range(dims.shape[0] - 1, -1, -1):   # innermost axis first
            n += (i // below % dims[d]) * strides[d]
            below *= dims[d]
        h = np.uint64(n)
        for _ in range(ROUNDS):   # mix32(h + key), in uint64 cut to 32 bits
            h = (h + key) & _LOW32
            h ^= h >> _U16
            h = (h * _M1) & _LOW32
            h ^= h >> _U15
            h = (h * _M2) & _LOW32
            h ^= h >> _U16
        y[i] = x[i] / keep_prob if h >= threshold else np.float32(0)


# ----------------------------------------------------------------------------
# CUDA: kernels/dropout.cu
# ----------------------------------------------------------------------------
def _apply_cuda(device, x, mask, op):
    device.require(op, "x", x)
    y = device.empty(x.shape)
    if y.size:
        dims, strides = noise_layout(mask.shape, mask.noise_shape)
        # the key: the layer's MaskKeys buffer (this step's, written before the step) while
        # it holds this recipe's key, else a copy (a one-off call; an older recipe); the
        # layout: one small table, dims then strides
        key = (_bits32(mask.key),)
        if mask.values is not None and tuple(mask.values.values) == key:
            key = mask.values
        key = device_values(device, key, 1, np.int32)
        device.launch(op, "dropout", "dropout_apply", grid_1d(y.size), (BLOCK_1D, 1, 1),
                      (x, y, np.int32(y.size), np.int32(len(dims)),
                       device.constant(np.concatenate([dims, strides]), "int32"), key,
                       _bits32(mask.threshold), np.float32(mask.keep_prob)))
    return y
