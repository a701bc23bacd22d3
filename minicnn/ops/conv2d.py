"""conv2d: the 2-D convolution over NHWC inputs and its gradients, on every device.

    y[n, r, q, f] = sum over i, j, ch of  xpad[n, r*sh + i*dh, q*sw + j*dw, ch] * w[i, j, ch, f]

x (N, H, W, C), w (KH, KW, C, F) -> y (N, OH, OW, F); no bias (see bias_act).
The dilation (dh, dw) spaces the kernel's taps (Keras's dilation_rate; 1
for the ordinary convolution): a 3x3 kernel dilated by 2 reads a 5x5 area,
every other cell. As a matrix product: the patch matrix P has one row per
output cell (n, r, q) and one column per (i, j, ch), P[(n, r, q), (i, j, ch)] =
xpad[n, r*sh + i*dh, q*sw + j*dw, ch] ("im2col"); then Y = P @ W with W
reshaped to (KH*KW*C, F). The gradients follow from Y = P @ W:

    dW = P^T @ dY          dP = dY @ W^T          dx = col2im(dP)

where col2im adds every entry of dP back onto the input cell it was copied
from (overlapping windows add up) and drops the padding.

This module holds every version, in this order:

1. ``check``: shapes and geometry, for every device, before any work.
2. The reference (``forward_reference`` / ``backward_reference``): NumPy,
   short, any float dtype. It is the specification the others are tested
   against.
3. The CPU fast path, when compiled kernels run (Numba installed, BLAS's
   sgemm found) and the arrays are float32 and C-contiguous: the batch a few
   images at a time on all cores, each chunk's im2col (or col2im) and its
   GEMM back to back while its patches are in cache. For length it lives in
   minicnn/ops/conv2d_cpu.py.
4. The CUDA path: ``kernels/conv2d.cu`` (``im2col_nhwc``, ``col2im_nhwc``)
   and cuBLAS GEMMs (``device.matmul``), on a GPU or on the emulator.

On the CUDA path the patch matrix that forward builds is what backward
needs: with ``training=True`` it travels to backward in the returned
:class:`Context`. The CPU fast path keeps none (backward builds each chunk's
patches again, which is faster than reading them back from memory).

Example::

    >>> y, ctx = conv2d.forward(x, w, strides=(1, 1), pads=(0, 0, 0, 0), training=True)
    >>> dx, dw = conv2d.backward(dy, ctx, w)
    >>> y, _ = conv2d.forward(x, w, (1, 1), (0, 0, 0, 0), dilation=(2, 2))   # dilated
"""
from typing import NamedTuple

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from . import conv2d_cpu
from .common import pads4, pair, require_array, require_same_dtype, require_shape
from .geometry import output_hw, span, window_view

KERNELS = ("im2col_nhwc", "col2im_nhwc")   # in kernels/conv2d.cu


class Geometry(NamedTuple):
    """Sizes of one convolution: the kernels' int arguments are its first 14."""
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    top: int
    left: int
    oh: int
    ow: int
    f: int
    pads: tuple


class Context(NamedTuple):
    """What backward needs, kept by the layer from a training forward."""
    x: object          # the input
    g: Geometry
    patches: object    # forward's patch matrix, or None (backward rebuilds it)


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(x, w, strides, pads, op="conv2d", dilation=(1, 1)):
    """The geometry of conv2d(x, w), or a TypeError/ValueError naming what is wrong."""
    require_array(op, "x", x, 4)
    require_array(op, "w", w, 4)
    require_same_dtype(op, x=x, w=w)
    n, h, wd, c = (int(d) for d in x.shape)
    kh, kw, wc, f = (int(d) for d in w.shape)
    if wc != c:
        raise ValueError(f"{op}: x has {c} channels but the kernel expects {wc}. "
                         f"Received: x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}")
    sh, sw = pair(op, "strides", strides)
    dh, dw = pair(op, "dilation", dilation)
    pads = pads4(op, pads)
    oh, ow = output_hw(h, wd, (span(kh, dh), span(kw, dw)), (sh, sw), pads)
    if oh < 1 or ow < 1:
        window = f"{kh}x{kw}" + (f" (dilated by {(dh, dw)}: {span(kh, dh)}x{span(kw, dw)})"
                                 if (dh, dw) != (1, 1) else "")
        raise ValueError(f"{op}: a {window} window does not fit a {h}x{wd} input with pads {pads}")
    return Geometry(n, h, wd, c, kh, kw, sh, sw, dh, dw, pads[0], pads[2], oh, ow, f, pads)


def forward(x, w, strides, pads, training=False, dilation=(1, 1)):
    """``(y, ctx)``: the convolution, and what backward needs (see the module docstring)."""
    g = check(x, w, strides, pads, dilation=dilation)
    device = backend.device()
    if device.kind == "cuda":
        y, patches = _forward_cuda(device, x, w, g)
    elif conv2d_cpu.applies(x, w):
        y, patches = conv2d_cpu.forward(x, w, g, training)
    else:
        y, patches = forward_reference(x, w, (g.sh, g.sw), g.pads, (g.dh, g.dw)), None
    return y, Context(x, g, patches if training else None)


def backward(dy, ctx, w, need_dx=True, dw_out=None):
    """``(dx or None, dw)`` for the forward that returned ``ctx``.

    ``dw_out``: an array of w's shape (say, a view of a model's flat gradient buffer)
    that the CUDA path's GEMM writes dw into, saving a copy; the CPU paths return a new dw."""
    g = ctx.g
    require_array("conv2d backward", "dy", dy, 4)
    require_shape("conv2d backward", "dy", dy, (g.n, g.oh, g.ow, g.f))
    require_shape("conv2d backward", "w", w, (g.kh, g.kw, g.c, g.f))
    if dw_out is not None:
        require_shape("conv2d backward", "dw_out", dw_out, tuple(w.shape))
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, dy, ctx, w, need_dx, dw_out)
    if conv2d_cpu.applies(dy, ctx.x, w):
        return conv2d_cpu.backward(dy, ctx, w, need_dx)[:2]
    return backward_reference(dy, ctx.x, w, (g.sh, g.sw), g.pads, need_dx, (g.dh, g.dw))


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def _pad(x, pads, value=0.0):
    """x padded on H (top, bottom) and W (left, right); x itself if no padding."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def im2col_reference(x, kh, kw, strides, pads, dilation=(1, 1)):
    """Patches of x as a (N, OH, OW, KH, KW, C) array: KH*KW strided copies
    (tap (i, j) of every window is the padded cell offset (i*dh, j*dw))."""
    dh, dw = dilation
    xp_ = _pad(x, pads)
    oh, ow = output_hw(x.shape[1], x.shape[2], (span(kh, dh), span(kw, dw)), strides, pads)
    col = np.empty((x.shape[0], oh, ow, kh, kw, x.shape[3]), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, :, :, i, j, :] = window_view(xp_, i * dh, j * dw, oh, ow, strides)
    return col


def col2im_reference(dcol, x_shape, strides, pads, dilation=(1, 1)):
    """The adjoint of im2col: each patch entry is added back onto the input cell
    it was copied from (overlapping windows add up), then the padding is cut off."""
    n, oh, ow, kh, kw, c = dcol.shape
    dh, dw = dilation
    top, bottom, left, right = pads
    h, w = x_shape[1], x_shape[2]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dcol.dtype)
    for i in range(kh):
        for j in range(kw):
            window_view(dxp, i * dh, j * dw, oh, ow, strides)[...] += dcol[:, :, :, i, j, :]
    return dxp[:, top:top + h, left:left + w, :]


def forward_reference(x, w, strides, pads, dilation=(1, 1)):
    """y = P @ W, the readable way."""
    kh, kw, c, f = w.shape
    col = im2col_reference(x, kh, kw, strides, pads, dilation)
    n, oh, ow = col.shape[:3]
    y = col.reshape(n * oh * ow, kh * kw * c) @ w.reshape(kh * kw * c, f)
    return y.reshape(n, oh, ow, f)


def backward_reference(dy, x, w, strides, pads, need_dx=True, dilation=(1, 1)):
    """``(dx or None, dw)``: rebuild P; dW = P^T dY; dx = col2im(dY W^T)."""
    kh, kw, c, f = w.shape
    col = im2col_reference(x, kh, kw, strides, pads, dilation)
    n, oh, ow = col.shape[:3]
    dy2 = dy.reshape(n * oh * ow, f)
    dw = (col.reshape(n * oh * ow, kh * kw * c).T @ dy2).reshape(w.shape)
    if not need_dx:
        return None, dw
    dcol = (dy2 @ w.reshape(kh * kw * c, f).T).reshape(n, oh, ow, kh, kw, c)
    return col2im_reference(dcol, x.shape, strides, pads, dilation), dw


# ----------------------------------------------------------------------------
# 3. the CPU fast path: minicnn/ops/conv2d_cpu.py (chunks of images, patches in cache)
# ----------------------------------------------------------------------------


# ----------------------------------------------------------------------------
# 4. CUDA: kernels/conv2d.cu for im2col / col2im, cuBLAS for the GEMMs
# ----------------------------------------------------------------------------
def _pointwise(g):
    """1x1 kernel, stride 1, no padding: the patch matrix is x itself (a
    single tap has nothing to dilate)."""
    return g.kh == g.kw == g.sh == g.sw == 1 and not any(g.pads)


def _ints(g):
    return tuple(np.int32(v) for v in g[:14])   # N, H, W, C, KH, KW, SH, SW, DH, DW, PT, PL, OH, OW


def _im2col_cuda(device, x, g):
    if _pointwise(g):
        return x.reshape(g.n * g.h * g.w, g.c)
    col = device.empty((g.n * g.oh * g.ow, g.kh * g.kw * g.c))
    if col.size:  # one thread per patch entry
        device.launch("conv2d", "conv2d", "im2col_nhwc", grid_1d(col.size), (BLOCK_1D, 1, 1),
                      (x, col) + _ints(g))
    return col


def _forward_cuda(device, x, w, g):
    device.require("conv2d", "x", x)
    device.require("conv2d", "w", w)
    col = _im2col_cuda(device, x, g)
    y = device.matmul(col, w.reshape(g.kh * g.kw * g.c, g.f))
    return y.reshape(g.n, g.oh, g.ow, g.f), col


def _backward_cuda(device, dy, ctx, w, need_dx, dw_out=None):
    g = ctx.g
    device.require("conv2d backward", "dy", dy)
    col = ctx.patches if ctx.patches is not None else _im2col_cuda(device, ctx.x, g)
    dy2 = dy.reshape(-1, g.f)
    if dw_out is None:
        dw = device.matmul(col.T, dy2).reshape(w.shape)
    else:   # the GEMM writes the (KH*KW*C, F) matrix view of dw_out; dw_out itself is returned
        device.require("conv2d backward", "dw_out", dw_out)
        device.matmul(col.T, dy2, out=dw_out.reshape(-1, g.f))
        dw = dw_out
    if not need_dx:
        return None, dw
    dcol = device.matmul(dy2, w.reshape(g.kh * g.kw * g.c, g.f).T)
    if _pointwise(g):
        return dcol.reshape(g.n, g.h, g.w, g.c), dw
    dx = device.empty((g.n, g.h, g.w, g.c))
    if dx.size:  # one thread per input cell, gathering its patch entries (no atomics)
        device.launch("conv2d backward", "conv2d", "col2im_nhwc", grid_1d(dx.size), (BLOCK_1D, 1, 1),
                      (dcol, dx) + _ints(g))
    return dx, dw
