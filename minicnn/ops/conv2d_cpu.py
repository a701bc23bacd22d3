"""conv2d's CPU fast path: the batch a few images at a time, each chunk's patches in cache.

Part of minicnn/ops/conv2d.py (its section 3, here for length): the same
math, ``Y = P @ W``, ``dW = P^T @ dY``, ``dx = col2im(dY @ W^T)``, as its
reference, with compiled kernels (Numba) and BLAS's sgemm.

Why chunks: the book model's conv2 builds a 8.9 MB patch matrix at batch 64,
four times a core's L2 cache. Multiplied whole, the GEMMs stream it from
memory and run at 60-70 GFLOP/s per core on this machine; a chunk of four
images (0.5 MB) multiplied right after it was written, while it is still in
L2, runs at ~90 (measured, benchmarks/RESULTS.md). So each kernel here loops
over chunks of images on all cores (``prange``), and a chunk's im2col (or
col2im) and its GEMM run back to back on one core (``gemm_nn`` / ``gemm_tn``:
one sgemm call on that core; NumPy's matmul when the kernel runs as plain
Python, see minicnn/ops/common.py).

The chunks depend on the shapes alone, never on the thread count: dW is
summed chunk by chunk, in chunk order, so it has the same bits on 1, 2 or 8
threads. A first layer with few channels (KW*C < ``MIN_RUN_FOR_ROW_PATCHES``)
builds its patch matrix transposed instead, as long runs of output cells,
and multiplies it whole (its GEMM has K = 9: memory-bound either way).
"""
import numpy as np

from .common import gemm_nn, gemm_tn, prange

MIN_RUN_FOR_ROW_PATCHES = 16   # KW*C below this: the patch matrix as columns (C = 1, 3)
CHUNK_BYTES = 512 << 10        # a chunk's patch rows: well inside a core's L2 cache
MIN_CHUNKS = 8                 # a batch splits into at least this many (the cores share them)
MAX_CHUNKS = 64                # and at most this many (dW keeps one partial sum per chunk)
# An inference batch whose patch matrix is bigger than this goes through in
# slices of the batch (bounds the memory, keeps a training batch in one piece).
MAX_SLICE_BYTES = 8 << 20
_ZERO = np.float32(0)


def _runtime():
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime()


def applies(*arrays):
    """Compiled kernels run (float32, C-contiguous) and BLAS's sgemm was found."""
    cpu = _runtime()
    return cpu.uses_kernels(*arrays) and cpu.kernel_gemms is not None


def rows_first(g):
    return g.kw * g.c >= MIN_RUN_FOR_ROW_PATCHES


def chunk_images(g):
    """Images per chunk (from the shapes alone: see the module docstring)."""
    per_image = max(1, g.oh * g.ow * g.kh * g.kw * g.c * 4)
    per = max(1, min(CHUNK_BYTES // per_image, -(-g.n // MIN_CHUNKS)))
    return max(per, -(-g.n // MAX_CHUNKS))


def _ints(g):
    return g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.oh, g.ow


def _patches_and_product(x, w2, g, col, y2):
    """col = the patch matrix of x ((P, K) rows if rows_first, else (K, P)); y2 = P @ w2."""
    cpu = _runtime()
    with cpu.one_blas_thread:   # each core's sgemm on that core alone
        if rows_first(g):
            cpu.compile(forward_chunks_kernel)(x, w2, *_ints(g), chunk_images(g), col, y2)
            return
        cpu.compile(im2col_columns_kernel)(x, *_ints(g), col)
        cpu.gemm(col.T, w2, y2)


def _patch_shape(g):
    rows, k = g.n * g.oh * g.ow, g.kh * g.kw * g.c
    return (rows, k) if rows_first(g) else (k, rows)


def forward(x, w, g, training):
    """``(y, patches)``: a training forward keeps its patch matrix for backward (taken from
    the runtime's free buffers; backward gives it back); inference goes through the batch
    in slices of at most MAX_SLICE_BYTES of patches, one scratch matrix for all."""
    cpu = _runtime()
    w2 = w.reshape(-1, g.f)
    y = np.empty((g.n, g.oh, g.ow, g.f), dtype=x.dtype)
    y2 = y.reshape(-1, g.f)
    if training:
        col = cpu.take(_patch_shape(g), x.dtype)
        _patches_and_product(x, w2, g, col, y2)
        return y, col
    per_image = g.oh * g.ow * g.kh * g.kw * g.c * x.itemsize
    step = max(1, MAX_SLICE_BYTES // max(1, per_image))
    cells = g.oh * g.ow
    for a in range(0, g.n, step):
        b = min(g.n, a + step)
        gs = g._replace(n=b - a)
        col = cpu.scratch("conv2d patches", _patch_shape(gs), x.dtype)
        _patches_and_product(x[a:b], w2, gs, col, y2[a * cells:b * cells])
    return y, None


def backward(dy, ctx, w, need_dx):
    """``(dx or None, dw)``; the patches kept by the forward, or rebuilt (an inference
    context: forward's kernel runs again, its product going to a scratch buffer).
    dW = P^T dY per chunk of images, the chunks' sums added in chunk order; with rows
    of patches, the same kernel then makes the chunk's dx while its dY is in cache."""
    cpu = _runtime()
    g = ctx.g
    rows, k = g.n * g.oh * g.ow, g.kh * g.kw * g.c
    col = ctx.patches
    if col is None:
        col = cpu.scratch("conv2d patches", _patch_shape(g), dy.dtype)
        _patches_and_product(ctx.x, w.reshape(k, g.f), g, col,
                             cpu.scratch("conv2d rebuilt output", (rows, g.f), dy.dtype))
    dy2 = dy.reshape(rows, g.f)
    per = chunk_images(g)
    partial = np.empty((-(-g.n // per), k, g.f), dtype=dy.dtype)
    dx = np.empty((g.n, g.h, g.w, g.c), dtype=dy.dtype) if need_dx else dy[:0]   # dy[:0]: never written
    dcol = cpu.scratch("conv2d patch gradients", (rows, k) if need_dx else (0, k), dy.dtype)
    wt = np.ascontiguousarray(w.reshape(k, g.f).T)   # (F, K): dP = dY @ W^T as a plain product
    try:
        with cpu.one_blas_thread:   # each core's sgemm on that core alone
            if not rows_first(g):   # patches as columns: dW as one product split over the threads
                dw = cpu.gemm_tn(col.T, dy2)
            cpu.compile(backward_chunks_kernel)(col, dy2, wt, *_ints(g), per, rows_first(g), need_dx,
                                                partial, dcol, dx)
    finally:
        cpu.give_back(ctx.patches)  # forward took it for this backward alone
    if rows_first(g):
        dw = np.add.reduce(partial, axis=0)   # chunk 0, then 1, ...: the same bits on any threads
    return (dx if need_dx else None), dw.reshape(w.shape)


# ----------------------------------------------------------------------------
# the kernels (plain Python, compiled by the CPU runtime)
# ----------------------------------------------------------------------------
def forward_chunks_kernel(x, w2, kh, kw, sh, sw, dh, dw, top, left, oh, ow, per, col, y2):
    """col (N*OH*OW, KH*KW*C): one row of patches per output cell, padding read as 0;
    y2 = col @ w2; ``per`` images at a time, each chunk's rows multiplied right after
    they are written.

    With stride 1 and no dilation along W and the window inside the row, a
    patch row's KW*C values for one kernel row i are one contiguous run of x:
    copied in one loop. Kernel tap (i, j) reads input row r*sh + i*dh - top,
    column q*sw + j*dw - left."""
    n, h, w, c = x.shape
    run = kw * c
    dense_w = sw == 1 and dw == 1      # a kernel row's taps are adjacent columns
    cells = oh * ow
    for part in prange((n + per - 1) // per):
        b0 = part * per
        b1 = min(n, b0 + per)
        for b in range(b0, b1):
            xb = x[b].reshape(h, w * c)
            for r in range(oh):
                for q in range(ow):
                    p = (b * oh + r) * ow + q      # the patch row of output cell (b, r, q)
                    w0 = q * sw - left             # input column of the window's left edge
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
        gemm_nn(col[b0 * cells:b1 * cells], w2, y2[b0 * cells:b1 * cells])


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


def backward_chunks_kernel(col, dy2, wt, kh, kw, sh, sw, dh, dw, top, left, oh, ow, per,
                           weight_grad, input_grad, partial, dcol, dx):
    """``per`` images at a time: (``weight_grad``, patches as rows) partial[p] = P_p^T dY_p,
    chunk p's share of dW; (``input_grad``) dx = col2im(dcol) with dcol = dY @ wt (wt = W^T:
    dP = dY W^T), the chunk's patch gradients multiplied, then added back onto its images
    while they are in cache.

    col2im as in the reference: per image a zeroed accumulator (the padded image), the
    patch entries added offset by offset, (i, j) in order, so each cell sums the same
    numbers in the same order; then the padding is cut off."""
    n = dy2.shape[0] // (oh * ow)
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    hp = (oh - 1) * sh + (kh - 1) * dh + 1     # the padded rows the windows reach
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    cells = oh * ow
    for part in prange((n + per - 1) // per):
        b0 = part * per
        b1 = min(n, b0 + per)
        if weight_grad:
            gemm_tn(col[b0 * cells:b1 * cells], dy2[b0 * cells:b1 * cells], partial[part])
        if not input_grad:
            continue
        gemm_nn(dy2[b0 * cells:b1 * cells], wt, dcol[b0 * cells:b1 * cells])
        for b in range(b0, b1):
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
