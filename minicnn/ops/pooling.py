"""pooling: 2-D max pooling over NHWC inputs and its gradient, on every device.

    y[n, r, q, ch] = max over (i, j) of  xpad[n, r*sh + i, q*sw + j, ch]
    argmax[n, r, q, ch] = i*PW + j of the FIRST maximum in row-major order

x (N, H, W, C), a PH x PW window at strides (sh, sw) -> y (N, OH, OW, C).
Padded cells are -inf: they never win (TensorFlow's SAME pooling ignores
them). The scan over the window is a strict ``>``: ties keep the earlier
offset, and a NaN at offset (0, 0) stays (nothing is ``>`` NaN) while a NaN
elsewhere never wins. Every version follows this scan, so they all give the
same y and argmax, bit for bit. The gradient sends each output's dy to the
input cell that was its max:

    dx[n, h, w, ch] = sum of dy[n, r, q, ch] over the windows (r, q) whose
                      argmax points at (h, w)

Overlapping windows (stride < pool) add up; cells no window picked get 0.
Backward needs argmax alone, never x. GlobalMaxPooling2D is this op with
the whole image as its one window (so the same first-maximum rule).

This module holds every version, in this order:

1. ``check``: shapes and geometry, for every device, before any work.
2. The reference (``forward_reference`` / ``backward_reference``): NumPy,
   any float dtype, one strided compare (or add) per window offset.
3. The CPU fast path, when the windows tile the input (strides == pool, no
   padding; the last rows/cols that do not fill a window are dropped, as in
   'valid') and compiled kernels run (Numba, MINICNN_CPU_FAST on, float32
   C-contiguous arrays): one pass over x on all cores. Otherwise the reference.
4. The CUDA path: ``kernels/pooling.cu`` (``maxpool_forward_nhwc``,
   ``maxpool_backward_nhwc``), on a GPU or on the emulator.

Every version computes argmax on the way to y, so the returned
:class:`Context` carries it, except an inference forward (``training=False``)
on the CPU fast path: there nothing will run backward, and not writing an
int32 per output (a quarter of the pass's memory traffic) makes inference
faster; its context holds ``argmax=None``.

Example::

    >>> y, ctx = pooling.forward(x, pool=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), training=True)
    >>> dx = pooling.backward(dy, ctx)
"""
from typing import NamedTuple

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, INT32_LIMIT, grid_1d
from .common import pads4, pair, prange, require_array, require_shape
from .geometry import output_hw, window_view

KERNELS = ("maxpool_forward_nhwc", "maxpool_backward_nhwc")   # in kernels/pooling.cu

_INT32 = (np.dtype(np.int32),)
_ONE = np.float32(1)    # float32 constants keep the kernels' arithmetic in float32
_ZERO = np.float32(0)
_K00, _K01, _K10, _K11 = (np.int32(k) for k in range(4))   # a 2 x 2 tile's offsets i*2 + j


class Geometry(NamedTuple):
    """Sizes of one pooling: the kernels' int arguments are its first 12."""
    n: int
    h: int
    w: int
    c: int
    ph: int
    pw: int
    sh: int
    sw: int
    top: int
    left: int
    oh: int
    ow: int
    pads: tuple


class Context(NamedTuple):
    """What backward needs, kept by the layer from a forward."""
    argmax: object     # int32, y's shape: the window offset i*PW + j of each max
    x_shape: tuple     # (N, H, W, C) of the input
    g: Geometry


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(x, pool, strides, pads, op="maxpool"):
    """The geometry of maxpool(x), or a TypeError/ValueError naming what is wrong."""
    require_array(op, "x", x, 4)
    return geometry(op, tuple(int(d) for d in x.shape), pool, strides, pads)


def geometry(op, x_shape, pool, strides, pads):
    """The geometry of maxpool over an input of shape x_shape (N, H, W, C), or a ValueError."""
    n, h, w, c = x_shape
    ph, pw = pair(op, "pool", pool)
    sh, sw = pair(op, "strides", strides)
    pads = pads4(op, pads)
    oh, ow = output_hw(h, w, (ph, pw), (sh, sw), pads)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: a {ph}x{pw} window does not fit a {h}x{w} input with pads {pads}")
    return Geometry(n, h, w, c, ph, pw, sh, sw, pads[0], pads[2], oh, ow, pads)


def forward(x, pool, strides, pads, training=False):
    """``(y, ctx)``: each window's max, and its argmax for backward (see the module docstring)."""
    g = check(x, pool, strides, pads)
    device = backend.device()
    if device.kind == "cuda":
        y, argmax = _forward_cuda(device, x, g)
    elif tiles(g) and _cpu_fast(x):
        y, argmax = _forward_tiled_cpu(x, g) if training else (_max_tiled_cpu(x, g), None)
    else:
        y, argmax = forward_reference(x, (g.ph, g.pw), (g.sh, g.sw), g.pads)
    return y, Context(argmax, (g.n, g.h, g.w, g.c), g)


def backward(dy, ctx):
    """dx for the forward that returned ``ctx``: each dy onto the cell that was its max."""
    g = ctx.g
    op = "maxpool backward"
    require_array(op, "dy", dy, 4)
    require_shape(op, "dy", dy, (g.n, g.oh, g.ow, g.c))
    if ctx.argmax is None:
        raise ValueError(f"{op}: the context is from an inference forward, which keeps no argmax; "
                         "call forward(..., training=True) before backward")
    require_array(op, "argmax", ctx.argmax, 4, dtypes=_INT32)
    require_shape(op, "argmax", ctx.argmax, (g.n, g.oh, g.ow, g.c))
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, dy, ctx.argmax, g)
    if tiles(g) and _cpu_fast(dy) and ctx.argmax.flags.c_contiguous:   # argmax: int32 (checked)
        return _backward_tiled_cpu(dy, ctx.argmax, g)
    return backward_reference(dy, ctx.argmax, ctx.x_shape, (g.ph, g.pw), (g.sh, g.sw), g.pads)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def forward_reference(x, pool, strides, pads):
    """``(y, argmax)`` the readable way: one strided compare per window offset.

    y starts as offset (0, 0) of every window; each later offset (i, j), in
    row-major order, replaces it where it is strictly greater."""
    ph, pw = pool
    top, bottom, left, right = pads
    xp_ = x
    if any(pads):   # padded cells are -inf: never strictly greater than anything
        xp_ = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    oh, ow = output_hw(x.shape[1], x.shape[2], pool, strides, pads)
    y = window_view(xp_, 0, 0, oh, ow, strides).copy()
    argmax = np.zeros(y.shape, dtype=np.int32)
    for i in range(ph):
        for j in range(pw):
            if i == 0 and j == 0:
                continue
            cand = window_view(xp_, i, j, oh, ow, strides)
            better = cand > y  # strict: ties keep the first offset, NaN never wins
            np.copyto(y, cand, where=better)
            argmax[better] = i * pw + j
    return y, argmax


def backward_reference(dy, argmax, x_shape, pool, strides, pads):
    """dx the readable way: per window offset (i, j), one masked strided add of
    dy onto the cells that offset touches (overlapping windows add up, in (i, j)
    order; no scatter, no np.add.at); then the padding is cut off."""
    ph, pw = pool
    top, bottom, left, right = pads
    n, h, w, c = x_shape
    oh, ow = dy.shape[1], dy.shape[2]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            window_view(dxp, i, j, oh, ow, strides)[...] += dy * (argmax == i * pw + j)
    return dxp[:, top:top + h, left:left + w, :]


# ----------------------------------------------------------------------------
# 3. the CPU fast path: windows that tile the input, compiled kernels
# ----------------------------------------------------------------------------
def tiles(g):
    """The windows tile x: stride = pool and no padding (leftover rows/cols dropped)."""
    return g.sh == g.ph and g.sw == g.pw and not any(g.pads)


def _cpu_fast(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def _forward_tiled_cpu(x, g):
    from ..backend.cpu import runtime
    y = np.empty((g.n, g.oh, g.ow, g.c), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int32)
    runtime().compile(forward_tiled_kernel)(x, g.ph, g.pw, y, argmax)
    return y, argmax


def _max_tiled_cpu(x, g):
    from ..backend.cpu import runtime
    y = np.empty((g.n, g.oh, g.ow, g.c), dtype=x.dtype)
    runtime().compile(max_tiled_kernel)(x, g.ph, g.pw, y)
    return y


def _backward_tiled_cpu(dy, argmax, g):
    from ..backend.cpu import runtime
    dx = np.empty((g.n, g.h, g.w, g.c), dtype=dy.dtype)   # the kernel writes every cell
    runtime().compile(backward_tiled_kernel)(dy, argmax, g.ph, g.pw, dx)
    return dx


def forward_tiled_kernel(x, ph, pw, y, arg):
    """Tiled max pooling: :func:`max_argmax_tiles_row` for every output row of every image,
    on all cores."""
    n, oh = y.shape[0], y.shape[1]
    for nr in prange(n * oh):          # one output row of one image per iteration
        max_argmax_tiles_row(x[nr // oh], nr % oh, ph, pw, y[nr // oh], arg[nr // oh])


def max_argmax_tiles_row(x, r, ph, pw, y, arg):
    """Output row r of one image's tiled max pooling and its argmax, x (H, W, C) -> y, arg
    (OH, OW, C) (a part of forward_tiled_kernel and of conv2d's fused CPU kernel): the
    reference's strict-> scan over each window in row-major order (so the same max and
    argmax, NaNs and ties included), the channels innermost (contiguous in NHWC).

    Window (r, q) covers rows r*ph .. r*ph + ph-1 and columns q*pw .. q*pw + pw-1:
    no padding, no overlap, and rows/cols past oh*ph, ow*pw are never read."""
    if ph == 2 and pw == 2:
        max_argmax_2x2_row(x, r, y, arg)
        return
    for q in range(y.shape[1]):
        best = y[r, q]                 # the C running maxima of window (r, q)
        kk = arg[r, q]
        first = x[r * ph, q * pw]
        for ch in range(y.shape[2]):   # seeded with offset (0, 0), as the reference
            best[ch] = first[ch]
            kk[ch] = 0
        for i in range(ph):
            for j in range(pw):
                if i == 0 and j == 0:
                    continue
                v = x[r * ph + i, q * pw + j]
                k = i * pw + j
                for ch in range(y.shape[2]):
                    if v[ch] > best[ch]:
                        best[ch] = v[ch]
                        kk[ch] = k


def max_argmax_2x2_row(x, r, y, arg):
    """max_argmax_tiles_row for 2 x 2 tiles: the same scan, each channel's running max
    and its offset in registers, as selects (they vectorize; 2.6x faster)."""
    upper, lower = x[2 * r], x[2 * r + 1]          # the tile row's two input rows
    for q in range(y.shape[1]):
        t00, t01 = upper[2 * q], upper[2 * q + 1]  # the tile's four cells (C values each)
        t10, t11 = lower[2 * q], lower[2 * q + 1]
        out, where = y[r, q], arg[r, q]
        for ch in range(y.shape[2]):
            best, k = t00[ch], _K00
            v = t01[ch]
            k = _K01 if v > best else k
            best = v if v > best else best
            v = t10[ch]
            k = _K10 if v > best else k
            best = v if v > best else best
            v = t11[ch]
            k = _K11 if v > best else k
            best = v if v > best else best
            out[ch], where[ch] = best, k


def max_tiled_kernel(x, ph, pw, y):
    """forward_tiled_kernel's y alone (inference): :func:`max_tiles_row` for every output
    row of every image."""
    n, oh = y.shape[0], y.shape[1]
    for nr in prange(n * oh):
        max_tiles_row(x[nr // oh], nr % oh, ph, pw, y[nr // oh])


def max_tiles_row(x, r, ph, pw, y):
    """Output row r of one image's tiled max pooling, x (H, W, C) -> y (OH, OW, C) (a part
    of max_tiled_kernel and of conv2d's fused CPU kernel): the strict-> scan of
    forward_tiled_kernel, so the same bits, NaNs included; written as a select so that
    the channel loop vectorizes."""
    if ph == 2 and pw == 2:
        max_2x2_row(x, r, y)
        return
    ow, c = y.shape[1], y.shape[2]
    for q in range(ow):
        for ch in range(c):
            y[r, q, ch] = x[r * ph, q * pw, ch]
        for i in range(ph):
            for j in range(pw):
                if i == 0 and j == 0:
                    continue
                for ch in range(c):
                    v = x[r * ph + i, q * pw + j, ch]
                    best = y[r, q, ch]
                    y[r, q, ch] = v if v > best else best


def max_2x2_row(x, r, y):
    """max_tiles_row for 2 x 2 tiles (the book's pool, Keras's default): the same scan,
    offsets (0, 0), (0, 1), (1, 0), (1, 1) in turn, with each channel's running max held
    in a register across the four rather than stored to y after each (2.4x faster)."""
    upper, lower = x[2 * r], x[2 * r + 1]          # the tile row's two input rows
    for q in range(y.shape[1]):
        t00, t01 = upper[2 * q], upper[2 * q + 1]  # the tile's four cells (C values each)
        t10, t11 = lower[2 * q], lower[2 * q + 1]
        out = y[r, q]
        for ch in range(y.shape[2]):
            best = t00[ch]
            v = t01[ch]
            best = v if v > best else best
            v = t10[ch]
            best = v if v > best else best
            v = t11[ch]
            best = v if v > best else best
            out[ch] = best


def backward_tiled_kernel(dy, arg, ph, pw, dx):
    """dx from dy and argmax: :func:`max_unpool_row` for every input row of every image, on
    all cores."""
    n, h = dx.shape[0], dx.shape[1]
    for nh in prange(n * h):           # one input row of one image per iteration
        max_unpool_row(dy[nh // h], arg[nh // h], dy[nh // h], nh % h, ph, pw, False, dx[nh // h])


def max_unpool_row(dy, arg, a, hh, ph, pw, relu, dx):
    """Input row hh of one image's dx (H, W, C) from its dy and argmax (OH, OW, C) (a part
    of backward_tiled_kernel and of conv2d's fused CPU kernel): dx cell = dy * [it was its
    window's argmax]; cells no window covers: 0.

    Windows tile x, so input cell (hh, ww) lies in exactly one window,
    (r, q) = (hh // ph, ww // pw), at offset (i, j) = (hh % ph, ww % pw): each
    cell is written once (a gather, no shared writes). As the reference,
    dy * 1 or dy * 0 (so an inf or NaN dy poisons its whole window alike).
    With ``relu``, times [a > 0] too, for a (OH, OW, C) the pooled output of a ReLU:
    the ReLU's backward of this gradient, as at the argmax cell a is that cell's value,
    and elsewhere the gradient is dy * 0 whatever the mask (the same bits)."""
    oh, ow, c = dy.shape
    r = hh // ph
    i = hh % ph
    for ww in range(dx.shape[1]):
        q = ww // pw
        j = ww % pw
        if r < oh and q < ow:
            k = i * pw + j
            for ch in range(c):
                g = dy[r, q, ch] * (_ONE if arg[r, q, ch] == k else _ZERO)
                dx[hh, ww, ch] = g * (_ONE if a[r, q, ch] > 0 else _ZERO) if relu else g
        else:                          # a dropped row/column: no window covers it
            for ch in range(c):
                dx[hh, ww, ch] = _ZERO


# ----------------------------------------------------------------------------
# 4. CUDA: kernels/pooling.cu
# ----------------------------------------------------------------------------
def _ints(g):
    return tuple(np.int32(v) for v in g[:12])   # N, H, W, C, PH, PW, SH, SW, PT, PL, OH, OW


def _forward_cuda(device, x, g):
    device.require("maxpool", "x", x)
    if g.n * g.oh * g.ow * g.c > INT32_LIMIT:   # y can outgrow x (padding, stride 1)
        raise ValueError(f"maxpool: {g.n * g.oh * g.ow * g.c} output elements exceed the kernels' "
                         f"32-bit indexing (at most {INT32_LIMIT}); use smaller batches")
    y = device.empty((g.n, g.oh, g.ow, g.c))
    argmax = device.empty((g.n, g.oh, g.ow, g.c), dtype="int32")
    if y.size:  # one thread per output element, scanning its window
        device.launch("maxpool", "pooling", "maxpool_forward_nhwc", grid_1d(y.size), (BLOCK_1D, 1, 1),
                      (x, y, argmax) + _ints(g))
    return y, argmax


def _backward_cuda(device, dy, argmax, g):
    op = "maxpool backward"
    device.require(op, "dy", dy)
    device.require(op, "argmax", argmax, dtype=np.int32)
    dx = device.empty((g.n, g.h, g.w, g.c))
    if dx.size:  # one thread per input element, gathering from the windows over it (no atomics)
        device.launch(op, "pooling", "maxpool_backward_nhwc", grid_1d(dx.size), (BLOCK_1D, 1, 1),
                      (dy, argmax, dx) + _ints(g))
    return dx
