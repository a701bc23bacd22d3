"""avg_pool: 2-D average pooling over NHWC inputs and its gradient, on every device.

    y[n, r, q, ch] = (sum over the REAL cells (h, w) of window (r, q) of x[n, h, w, ch]) / count[r, q]

x (N, H, W, C), a PH x PW window at strides (sh, sw) with pads (top, bottom,
left, right) -> y (N, OH, OW, C). Padded cells are not averaged in: count[r, q]
is the number of real cells in the window (its real rows times its real
columns), as TensorFlow's ``avg_pool`` and so Keras 3's AveragePooling2D with
padding='same' do: a 2x2 window over a 7x5 image's last column averages 2
cells, not 4. With padding 'valid' every window is full and count = PH*PW.

Each y is a linear function of its window, so the gradient spreads each
dy evenly over the real cells of its window:

    dx[n, h, w, ch] = sum over the windows (r, q) covering (h, w) of dy[n, r, q, ch] / count[r, q]

Backward needs the geometry alone, never x. Every version sums in the same
order, window offset (i, j) row-major from 0, then divides by the count in
the array's dtype: the reference, the CPU kernels and the CUDA kernels give
the same bits (a GPU flushes denormals to zero).

Versions, top to bottom: ``check`` (every device, before any work; the
geometry rules of minicnn.ops.pooling); the reference (NumPy, any float
dtype, one strided add per window offset); the CPU kernels (any geometry,
float32 C-contiguous arrays when compiled kernels run); the CUDA path
(``kernels/avg_pool.cu``). GlobalAveragePooling2D is this op with the window
the whole image.

Example::

    >>> y, ctx = avg_pool.forward(x, pool=(2, 2), strides=(2, 2), pads=(0, 1, 0, 1), training=True)
    >>> dx = avg_pool.backward(dy, ctx)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, INT32_LIMIT, grid_1d
from .common import prange, require_array, require_shape
from .geometry import window_view
from .pooling import check as window_check

KERNELS = ("avgpool_forward_nhwc", "avgpool_backward_nhwc")   # in kernels/avg_pool.cu


def check(x, pool, strides, pads, op="avg_pool"):
    """The geometry (minicnn.ops.pooling.Geometry) of avg_pool(x), or a TypeError/ValueError."""
    return window_check(x, pool, strides, pads, op)


def forward(x, pool, strides, pads, training=False):
    """``(y, ctx)``: each window's mean over its real cells; ctx (the geometry) is what backward needs."""
    g = check(x, pool, strides, pads)
    device = backend.device()
    if device.kind == "cuda":
        y = _forward_cuda(device, x, g)
    elif _cpu_fast(x):
        from ..backend.cpu import runtime
        y = np.empty((g.n, g.oh, g.ow, g.c), dtype=x.dtype)
        runtime().compile(forward_kernel)(x, g.ph, g.pw, g.sh, g.sw, g.top, g.left, y)
    else:
        y = forward_reference(x, (g.ph, g.pw), (g.sh, g.sw), g.pads)
    return y, g


def backward(dy, ctx):
    """dx for the forward that returned ``ctx``: each dy shared evenly by its window's real cells."""
    g = ctx
    op = "avg_pool backward"
    require_array(op, "dy", dy, 4)
    require_shape(op, "dy", dy, (g.n, g.oh, g.ow, g.c))
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, dy, g)
    if _cpu_fast(dy):
        from ..backend.cpu import runtime
        dx = np.empty((g.n, g.h, g.w, g.c), dtype=dy.dtype)   # the kernel writes every cell
        runtime().compile(backward_kernel)(dy, g.ph, g.pw, g.sh, g.sw, g.top, g.left, dx)
        return dx
    return backward_reference(dy, (g.n, g.h, g.w, g.c), (g.ph, g.pw), (g.sh, g.sw), g.pads)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def real_cells(size, k, stride, pad_before, out):
    """Per output position along one axis: how many of its window's k cells are real.

    Window r starts at unpadded cell r*stride - pad_before; the cells it covers
    are that start .. start + k - 1, clipped to 0 .. size - 1."""
    start = np.arange(out) * stride - pad_before
    return np.minimum(start + k, size) - np.maximum(start, 0)


def counts_reference(x_shape, pool, strides, pads, oh, ow):
    """count[r, q] (OH, OW): real rows times real columns of window (r, q)."""
    rows = real_cells(x_shape[1], pool[0], strides[0], pads[0], oh)
    cols = real_cells(x_shape[2], pool[1], strides[1], pads[2], ow)
    return np.outer(rows, cols)


def forward_reference(x, pool, strides, pads):
    """y the readable way: zero-pad, add the PH*PW strided views in (i, j) order,
    divide by the real-cell counts (padded zeros add nothing to the sum)."""
    ph, pw = pool
    top, bottom, left, right = pads
    xp_ = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))) if any(pads) else x
    oh = (x.shape[1] + top + bottom - ph) // strides[0] + 1
    ow = (x.shape[2] + left + right - pw) // strides[1] + 1
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    for i in range(ph):
        for j in range(pw):
            total += window_view(xp_, i, j, oh, ow, strides)
    counts = counts_reference(x.shape, pool, strides, pads, oh, ow).astype(x.dtype)
    return total / counts[None, :, :, None]


def backward_reference(dy, x_shape, pool, strides, pads):
    """dx the readable way: g = dy / count, then per window offset (i, j) one
    strided add of g onto the cells that offset touches; the padding is cut off."""
    ph, pw = pool
    top, bottom, left, right = pads
    n, h, w, c = x_shape
    oh, ow = dy.shape[1], dy.shape[2]
    g = dy / counts_reference(x_shape, pool, strides, pads, oh, ow).astype(dy.dtype)[None, :, :, None]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            window_view(dxp, i, j, oh, ow, strides)[...] += g
    return dxp[:, top:top + h, left:left + w, :]


# ----------------------------------------------------------------------------
# the CPU kernels (float32 C-contiguous NHWC arrays; compiled by the CPU runtime)
# ----------------------------------------------------------------------------
def _cpu_fast(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def forward_kernel(x, ph, pw, sh, sw, top, left, y):
    """One output row of one image per iteration; channels innermost (contiguous).

    Window (r, q) covers unpadded rows r*sh - top + i and columns q*sw - left + j;
    the padded ones are skipped, the real ones added in (i, j) order, as the reference."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for nr in prange(n * oh):
        b = nr // oh
        r = nr % oh
        h0 = r * sh - top
        rows = min(h0 + ph, h) - max(h0, 0)    # the window's real rows
        for q in range(ow):
            w0 = q * sw - left
            count = np.float32(rows * (min(w0 + pw, w) - max(w0, 0)))
            acc = y[b, r, q]
            for ch in range(c):
                acc[ch] = 0
            for i in range(ph):
                hh = h0 + i
                if hh < 0 or hh >= h:
                    continue
                for j in range(pw):
                    ww = w0 + j
                    if ww < 0 or ww >= w:
                        continue
                    v = x[b, hh, ww]
                    for ch in range(c):
                        acc[ch] += v[ch]
            for ch in range(c):
                acc[ch] = acc[ch] / count


def backward_kernel(dy, ph, pw, sh, sw, top, left, dx):
    """Each input cell gathers dy / count from the windows covering it (no shared
    writes), offsets (i, j) in the reference's order: the reference's bits."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    for nh in prange(n * h):
        b = nh // h
        hh = nh % h
        for ww in range(w):
            out = dx[b, hh, ww]
            for ch in range(c):
                out[ch] = 0
            for i in range(ph):
                # this cell is offset i of output row r when r*sh + i == hh + top
                dr = hh + top - i
                if dr < 0 or dr % sh != 0 or dr // sh >= oh:
                    continue
                r = dr // sh
                rows = min(r * sh - top + ph, h) - max(r * sh - top, 0)
                for j in range(pw):
                    dc = ww + left - j
                    if dc < 0 or dc % sw != 0 or dc // sw >= ow:
                        continue
                    q = dc // sw
                    count = np.float32(rows * (min(q * sw - left + pw, w) - max(q * sw - left, 0)))
                    g = dy[b, r, q]
                    for ch in range(c):
                        out[ch] += g[ch] / count


# ----------------------------------------------------------------------------
# CUDA: kernels/avg_pool.cu
# ----------------------------------------------------------------------------
def _ints(g):
    return tuple(np.int32(v) for v in g[:12])   # N, H, W, C, PH, PW, SH, SW, PT, PL, OH, OW


def _forward_cuda(device, x, g):
    device.require("avg_pool", "x", x)
    if g.n * g.oh * g.ow * g.c > INT32_LIMIT:   # y can outgrow x (padding, stride 1)
        raise ValueError(f"avg_pool: {g.n * g.oh * g.ow * g.c} output elements exceed the kernels' "
                         f"32-bit indexing (at most {INT32_LIMIT}); use smaller batches")
    y = device.empty((g.n, g.oh, g.ow, g.c))
    if y.size:  # one thread per output element, summing its window
        device.launch("avg_pool", "avg_pool", "avgpool_forward_nhwc", grid_1d(y.size), (BLOCK_1D, 1, 1),
                      (x, y) + _ints(g))
    return y


def _backward_cuda(device, dy, g):
    device.require("avg_pool backward", "dy", dy)
    dx = device.empty((g.n, g.h, g.w, g.c))
    if dx.size:  # one thread per input element, gathering from the windows over it (no atomics)
        device.launch("avg_pool backward", "avg_pool", "avgpool_backward_nhwc", grid_1d(dx.size),
                      (BLOCK_1D, 1, 1), (dy, dx) + _ints(g))
    return dx
