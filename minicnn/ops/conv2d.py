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
3. The CPU fast path, when compiled kernels run (Numba installed) and the
   arrays are float32 and C-contiguous: im2col and col2im as one-pass
   kernels on all cores, the GEMMs split over the same threads.
4. The CUDA path: ``kernels/conv2d.cu`` (``im2col_nhwc``, ``col2im_nhwc``)
   and cuBLAS GEMMs (``device.matmul``), on a GPU or on the emulator.

The patch matrix that forward builds is what backward needs: with
``training=True`` it travels to backward in the returned :class:`Context`.

Example::

    >>> y, ctx = conv2d.forward(x, w, strides=(1, 1), pads=(0, 0, 0, 0), training=True)
    >>> dx, dw = conv2d.backward(dy, ctx, w)
    >>> y, _ = conv2d.forward(x, w, (1, 1), (0, 0, 0, 0), dilation=(2, 2))   # dilated
"""
from typing import NamedTuple

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import pads4, pair, prange, require_array, require_same_dtype, require_shape
from .geometry import output_hw, span, window_view

KERNELS = ("im2col_nhwc", "col2im_nhwc")   # in kernels/conv2d.cu

# The compiled path puts (i, j, ch) on the patch matrix's fast axis when KW*C
# is at least this, else the output cells (long runs either way; the first
# layer, C = 1, needs the latter).
MIN_RUN_FOR_ROW_PATCHES = 16
# An inference batch whose patch matrix is bigger than this goes through in
# slices of the batch (bounds the memory, keeps a training batch in one GEMM).
MAX_SLICE_BYTES = 8 << 20
_ZERO = np.float32(0)


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
    elif _cpu_fast(x, w):
        y, patches = _forward_cpu(x, w, g, training)
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
    if _cpu_fast(dy, ctx.x, w):
        return _backward_cpu(dy, ctx, w, need_dx)
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
# 3. the CPU fast path: compiled im2col / col2im, GEMMs over the threads
# ----------------------------------------------------------------------------
def _cpu_fast(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def _rows_first(g):
    return g.kw * g.c >= MIN_RUN_FOR_ROW_PATCHES


def _im2col_cpu(x, g, col):
    """col = the patch matrix of x: (P, K) rows of patches if _rows_first, else (K, P)."""
    from ..backend.cpu import runtime
    kernel = im2col_rows_kernel if _rows_first(g) else im2col_columns_kernel
    runtime().compile(kernel)(x, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.oh, g.ow, col)
    return col


def _patches_as_rows(col, g):
    """The (P, K) patch matrix, a transposed view when it was built as (K, P)."""
    return col if _rows_first(g) else col.T


def _forward_cpu(x, w, g, training):
    from ..backend.cpu import runtime
    cpu = runtime()
    rows, k = g.n * g.oh * g.ow, g.kh * g.kw * g.c
    shape = (rows, k) if _rows_first(g) else (k, rows)
    w2 = w.reshape(k, g.f)
    y = np.empty((g.n, g.oh, g.ow, g.f), dtype=x.dtype)
    if not training and rows * k * x.itemsize > MAX_SLICE_BYTES:
        return _forward_cpu_sliced(x, w2, g, y), None
    # the patch matrix outlives this call when training: backward reuses it
    col = cpu.take(shape, x.dtype) if training else cpu.scratch("conv2d patches", shape, x.dtype)
    _im2col_cpu(x, g, col)
    with cpu.one_blas_thread:
        cpu.gemm(_patches_as_rows(col, g), w2, y.reshape(rows, g.f))
    return y, (col if training else None)


def _forward_cpu_sliced(x, w2, g, y):
    """A big (inference) batch: im2col + GEMM a slice of the batch at a time."""
    from ..backend.cpu import runtime
    cpu = runtime()
    per_image = g.oh * g.ow * g.kh * g.kw * g.c * x.itemsize
    step = max(1, MAX_SLICE_BYTES // per_image)
    y2 = y.reshape(-1, g.f)
    for a in range(0, g.n, step):
        b = min(g.n, a + step)
        gs = g._replace(n=b - a)
        rows, k = gs.n * g.oh * g.ow, g.kh * g.kw * g.c
        col = cpu.scratch("conv2d patches", (rows, k) if _rows_first(g) else (k, rows), x.dtype)
        _im2col_cpu(x[a:b], gs, col)
        with cpu.one_blas_thread:
            cpu.gemm(_patches_as_rows(col, g), w2, y2[a * g.oh * g.ow:b * g.oh * g.ow])
    return y


def _backward_cpu(dy, ctx, w, need_dx):
    from ..backend.cpu import runtime
    cpu = runtime()
    g = ctx.g
    rows, k = g.n * g.oh * g.ow, g.kh * g.kw * g.c
    col = ctx.patches
    if col is None:
        col = _im2col_cpu(ctx.x, g, cpu.scratch("conv2d patches",
                                                (rows, k) if _rows_first(g) else (k, rows), dy.dtype))
    dy2 = dy.reshape(rows, g.f)
    try:
        with cpu.one_blas_thread:
            dw = cpu.gemm_tn(_patches_as_rows(col, g), dy2).reshape(w.shape)   # dW = P^T dY
            if not need_dx:
                return None, dw
            dcol = cpu.gemm(dy2, w.reshape(k, g.f).T,                         # dP = dY W^T
                            cpu.scratch("conv2d patch gradients", (rows, k), dy.dtype))
    finally:
        cpu.give_back(ctx.patches)  # forward took it for this backward alone
    dx = np.empty((g.n, g.h, g.w, g.c), dtype=dy.dtype)
    cpu.compile(col2im_kernel)(dcol, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.oh, g.ow, dx)
    return dx, dw


def im2col_rows_kernel(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, col):
    """col (N*OH*OW, KH*KW*C): one row of patches per output cell, padding read as 0.

    With stride 1 and no dilation along W and the window inside the row, a
    patch row's KW*C values for one kernel row i are one contiguous run of x:
    copied in one loop. Kernel tap (i, j) reads input row r*sh + i*dh - top,
    column q*sw + j*dw - left."""
    n, h, w, c = x.shape
    run = kw * c
    dense_w = sw == 1 and dw == 1      # a kernel row's taps are adjacent columns
    for nr in prange(n * oh):          # one output row of one image per iteration
        b = nr // oh
        r = nr % oh
        xb = x[b].reshape(h, w * c)
        for q in range(ow):
            p = nr * ow + q            # the patch row of output cell (b, r, q)
            w0 = q * sw - left         # input column of the window's left edge
            for i in range(kh):
                hh = r * sh + i * dh - top     # input row of kernel row i
                dst = col[p, i * run:(i + 1) * run]
                if hh < 0 or hh >= h:
                    for t in range(run):
                        dst[t] = _ZERO
                elif dense_w and w0 >= 0 and w0 + kw <= w:
                    src = xb[hh, w0 * c:w0 * c + run]
                    for t in range(run):
                        dst[t] = src[t]
                else:
                    for j in range(kw):
                        ww = w0 + j * dw
                        for ch in range(c):
                            dst[j * c + ch] = x[b, hh, ww, ch] if 0 <= ww < w else _ZERO


def im2col_columns_kernel(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, colt):
    """The transposed patch matrix colt (KH*KW*C, N*OH*OW): for small C (the
    first layer) each of its rows is a long run of output cells.

    Row (i, j, ch) of image b holds, for each output cell (r, q), the input
    cell (r*sh + i*dh - top, q*sw + j*dw - left). The columns q whose input
    column is inside the image form one range [q_lo, q_hi), worked out once
    per row, so the copy loop has no bounds test (and vectorizes); the cells
    before and after it, and whole rows r outside the image, are padding: 0."""
    n, h, w, c = x.shape
    for t in prange(kh * kw * c * n):
        kk = t // n                    # the column (i, j, ch) of the patch matrix
        b = t % n
        i = kk // (kw * c)
        j = (kk // c) % kw
        ch = kk % c
        row = colt[kk]
        i0 = i * dh - top              # tap (i, j)'s offset from its window's corner
        j0 = j * dw - left
        q_lo = min(ow, (sw - 1 - j0) // sw) if j0 < 0 else 0   # first q with q*sw + j0 >= 0
        q_hi = max(q_lo, min(ow, (w - 1 - j0) // sw + 1))      # past the last q with q*sw + j0 < w
        for r in range(oh):
            hh = r * sh + i0
            base = (b * oh + r) * ow
            if hh < 0 or hh >= h:
                for q in range(ow):
                    row[base + q] = _ZERO
                continue
            for q in range(q_lo):
                row[base + q] = _ZERO
            for q in range(q_lo, q_hi):
                row[base + q] = x[b, hh, q * sw + j0, ch]
            for q in range(q_hi, ow):
                row[base + q] = _ZERO


def col2im_kernel(dcol, kh, kw, sh, sw, dh, dw, top, left, oh, ow, dx):
    """dx = col2im(dcol), one image per thread at a time (no shared writes).

    As in the reference: a zeroed accumulator (the padded image), the patch
    entries added offset by offset, (i, j) in order, so each cell sums the
    same numbers in the same order (the reference's bits); then the padding
    is cut off."""
    n, h, w, c = dx.shape
    hp = (oh - 1) * sh + (kh - 1) * dh + 1     # the padded rows the windows reach
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    for b in prange(n):
        acc = np.zeros((max(hp, top + h), max(wp, left + w), c), dtype=dx.dtype)
        for i in range(kh):
            for j in range(kw):
                base = (i * kw + j) * c
                for r in range(oh):
                    hh = r * sh + i * dh       # padded row of tap i in output row r
                    for q in range(ow):
                        src = dcol[(b * oh + r) * ow + q, base:base + c]
                        dst = acc[hh, q * sw + j * dw]
                        for ch in range(c):
                            dst[ch] += src[ch]
        for hh in range(h):
            for ww in range(w):
                for ch in range(c):
                    dx[b, hh, ww, ch] = acc[hh + top, ww + left, ch]


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
