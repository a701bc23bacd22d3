"""conv2d's CPU fast path: the batch a few images at a time, each chunk's patches in cache.

Part of minicnn/ops/conv2d.py (its section 3, here for length): the same
math, ``Y = P @ W``, ``dW = P^T @ dY``, ``dx = col2im(dY @ W^T)``, as its
reference, with compiled kernels (Numba) and BLAS's sgemm.

Why chunks: the book model's conv2 has an 8.9 MB patch matrix at batch 64,
four times a core's L2 cache. Built whole and multiplied whole, it goes out
to memory and back, and its GEMMs run at 60-70 GFLOP/s per core on this
machine; a chunk of a few images (0.5 MB) multiplied right after it was
built, while it is in L2, runs at ~90 (benchmarks/RESULTS.md). So
:func:`forward_kernel` and :func:`backward_kernel` loop over chunks of images on
all cores (``prange``), and for each chunk, on one core: its patches (im2col)
into that core's own small buffer (``thread_id``), then forward ``Y_c = P_c W``,
or backward ``dW_c = P_c^T dY_c`` and ``dx = col2im(dY_c W^T)``, through a
second small buffer. Nothing of the size of the patch matrix is ever written:
backward builds each chunk's patches again (im2col costs far less than reading
them back from memory would). ``gemm_nn`` / ``gemm_tn`` are one sgemm call on
the calling core; NumPy's matmul when a kernel runs as plain Python (see
minicnn/ops/common.py). Each step of a chunk is a part of its own
(``patches_as_rows``, ``col2im_images``, ...), compiled with the kernel.

The same chunks carry the layer's bias and ReLU (minicnn/ops/conv2d_bias_act.py):
forward adds the bias and clips a chunk's rows of y right after its GEMM wrote
them, backward masks a chunk's rows of dY by ``a > 0`` and sums them for db
just before its GEMMs read them, while the rows are in cache; the separate
passes over y and dY (bias_act's) would go out to memory and back.

The chunks depend on the shapes alone, never on the thread count: dW is
summed chunk by chunk, in chunk order, so it has the same bits on 1, 2 or 8
threads. A first layer with few channels (KW*C < ``MIN_RUN_FOR_ROW_PATCHES``)
builds each chunk's patches transposed instead, one long run of output cells
per tap, rather than runs of KW*C = 3 values.
"""
import numpy as np

from .bias_act import bias_relu_rows
from .common import gemm_nn, gemm_tn, prange, thread_id
from .pooling import max_argmax_tiles_row, max_tiles_row, max_unpool_row

MIN_RUN_FOR_ROW_PATCHES = 16   # KW*C below this: the patch matrix as columns (C = 1, 3)
CHUNK_BYTES = 512 << 10        # a chunk's patch and output rows: well inside a core's L2
MIN_CHUNKS = 8                 # a batch splits into at least this many (the cores share them)
MAX_CHUNKS = 64                # and at most this many (dW keeps one partial sum per chunk)
_ZERO = np.float32(0)
_ONE = np.float32(1)
_at = np.uint64   # an index known to be >= 0, as Numba's unsigned index (see patches_as_taps)


def _runtime():
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime()


def applies(*arrays):
    """Compiled kernels run (float32, C-contiguous) and BLAS's sgemm was found."""
    cpu = _runtime()
    return cpu.uses_kernels(*arrays) and cpu.kernel_gemms is not None


def rows_first(g):
    return g.kw * g.c >= MIN_RUN_FOR_ROW_PATCHES


def chunk_images(g, forward=False):
    """Images per chunk, from the shapes alone (see the module docstring): their patch rows
    and their rows of y (forward: added to, clipped and pooled in cache) or of dZ (backward)
    within CHUNK_BYTES (conv1's output rows are 3.6 times its patch rows); at least
    MIN_CHUNKS chunks, and backward at most MAX_CHUNKS (one partial sum of dW each)."""
    per_image = max(1, g.oh * g.ow * (g.kh * g.kw * g.c + g.f) * 4)
    per = max(1, min(CHUNK_BYTES // per_image, -(-g.n // MIN_CHUNKS)))
    return per if forward else max(per, -(-g.n // MAX_CHUNKS))


def _geometry(g):
    """The kernels' window sizes, one tuple: (kh, kw, sh, sw, dh, dw, top, left, oh, ow)."""
    return g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.oh, g.ow


def _core_buffers(cpu, name, g, per, cols, dtype):
    """One (per*OH*OW, cols) buffer per core that a kernel may run on (reused between calls)."""
    cores = cpu.numba.config.NUMBA_NUM_THREADS
    return cpu.scratch(name, (cores, per * g.oh * g.ow, cols), dtype)


def forward(x, w, g, training, b=None, relu=False, pool=None):
    """``(y, argmax)``: y = conv(x, w), then ``+ b`` and ReLU when asked, each chunk's rows
    right after its GEMM, while they are in cache (conv2d_bias_act's fused forward).
    With ``pool`` = (ph, pw), y is then max-pooled by ph x pw tiles (stride = pool, no
    padding) from the same cached rows, and only the pooled y is written, with, when
    ``training``, its argmax (int32, as pooling's) for backward; else argmax is None.
    Nothing else is kept for backward, which builds each chunk's patches again."""
    cpu = _runtime()
    per, k = chunk_images(g, forward=True), g.kh * g.kw * g.c
    patches = _core_buffers(cpu, "conv2d chunk patches", g, per, k, x.dtype)
    bias = x[:0, 0, 0, 0] if b is None else b     # an empty vector: never read
    # (unused outputs and buffers: empty arrays of the same kinds, so the kernel compiles once)
    arg = np.empty((0, 0, 0, g.f), dtype=np.int32)
    if pool is None:
        y = np.empty((g.n, g.oh, g.ow, g.f), dtype=x.dtype)
        y2, pooled, ph, pw = y.reshape(-1, g.f), y[:0], 0, 0
        y_buffers = np.empty((patches.shape[0], 0, g.f), dtype=x.dtype)
    else:
        ph, pw = pool
        pooled = y = np.empty((g.n, g.oh // ph, g.ow // pw, g.f), dtype=x.dtype)
        arg = np.empty(y.shape, dtype=np.int32) if training else arg
        y2 = np.empty((0, g.f), dtype=x.dtype)
        y_buffers = _core_buffers(cpu, "conv2d chunk outputs", g, per, g.f, x.dtype)
    with cpu.one_blas_thread:   # each core's sgemm on that core alone
        cpu.compile(forward_kernel)(x, w.reshape(k, g.f), bias, b is not None, relu, _geometry(g), per,
                                    rows_first(g), patches, y2, (ph, pw), y_buffers, pooled, arg)
    return y, (arg if pool is not None and training else None)


def backward(da, ctx, w, need_dx, a=None, has_bias=False, pool=None):
    """``(dx or None, dw, db or None)``: dW = P^T dZ summed chunk by chunk, in chunk order.

    dZ is ``da`` itself, or, given ``a`` (the output of a ReLU that followed the
    convolution), ``da * [a > 0]``; with ``has_bias``, db is dZ summed over the cells
    (conv2d_bias_act's fused backward). With ``pool`` = (ph, pw, argmax) (forward pooled
    its rows), da and a are the pooled gradient and activation, and dZ is unpooled from
    them (pooling's backward, then the ReLU's). All per chunk, in a core's own buffer,
    just before the GEMMs read it: dZ is never written out."""
    cpu, g = _runtime(), ctx.g
    per, k = chunk_images(g), g.kh * g.kw * g.c
    f32 = da.dtype
    chunks = -(-g.n // per)
    patches = _core_buffers(cpu, "conv2d chunk patches", g, per, k, f32)
    # (unused buffers: empty arrays of the same kinds, so that the kernel compiles once)
    dpatches = _core_buffers(cpu, "conv2d chunk patch gradients", g, per, k, f32) if need_dx \
        else np.empty((patches.shape[0], 0, k), dtype=f32)
    relu = a is not None
    dz = _core_buffers(cpu, "conv2d chunk output gradients", g, per, g.f, f32) if relu or pool \
        else np.empty((patches.shape[0], 0, g.f), dtype=f32)
    partial = np.empty((chunks, k, g.f), dtype=f32)
    db_partial = np.empty((chunks if has_bias else 0, g.f), dtype=f32)
    # (F, K): dP = dZ @ W^T as a plain product (only dx reads it)
    wt = np.ascontiguousarray(w.reshape(k, g.f).T) if need_dx else np.empty((0, k), dtype=f32)
    dx = np.empty((g.n, g.h, g.w, g.c), dtype=f32) if need_dx else ctx.x[:0]   # x[:0]: never written
    ph, pw, arg = (0, 0, np.empty((0, 0, 0, g.f), dtype=np.int32)) if pool is None else pool
    with cpu.one_blas_thread:
        cpu.compile(backward_kernel)(ctx.x, wt, da, da if a is None else a, relu, has_bias,
                                     _geometry(g), per, rows_first(g), need_dx, (ph, pw), arg,
                                     patches, dpatches, dz, partial, db_partial, dx)
    dw = np.add.reduce(partial, axis=0).reshape(w.shape)        # chunk 0, then 1, ...
    db = np.add.reduce(db_partial, axis=0) if has_bias else None
    return (dx if need_dx else None), dw, db


# ----------------------------------------------------------------------------
# the kernels (plain Python, compiled by the CPU runtime with the parts they call)
# ----------------------------------------------------------------------------
def forward_kernel(x, w2, bias, has_bias, relu, geometry, per, as_rows, patches, y2, pool,
                   y_buffers, pooled, arg):
    """``per`` images at a time, each chunk on one core: its patches into that core's
    ``patches`` buffer (:func:`chunk_patches`), ``Y_c = P_c @ w2`` into its rows of y2,
    then, while those rows are in cache, ``+ bias`` and ReLU (:func:`bias_relu_rows`).
    With ``pool`` = (ph, pw) (not (0, 0)), Y_c goes to the core's ``y_buffers`` instead,
    and its ph x pw tiles' maxima into its images of ``pooled``:

    - training (``arg`` not empty): bias and ReLU, then the maxima and their offsets in
      ``arg`` (:func:`max_argmax_images`), the order of the two layers, so that among
      values the ReLU made equal the argmax is the same cell as theirs;
    - inference: the maxima (:func:`max_pool_images`), then the bias and ReLU on those
      alone (a quarter of the values for 2 x 2 tiles): the same numbers, as adding a
      finite b and clipping at 0 are monotone, so they never change which value of a
      tile is largest (and a NaN stays a NaN)."""
    oh, ow = geometry[8], geometry[9]
    cells = oh * ow
    for part in prange((x.shape[0] + per - 1) // per):
        b0, b1 = chunk_images_of(part, per, x.shape[0])
        rows = (b1 - b0) * cells                  # its rows of y / dY: from b0 * cells on
        core = thread_id()
        p_c = chunk_patches(x, patches[core], b0, b1, geometry, as_rows)
        y_c = y_buffers[core] if pool[0] else y2
        y_c = y_c[:rows] if pool[0] else y_c[b0 * cells:b0 * cells + rows]
        if as_rows:
            gemm_nn(p_c, w2, y_c)
        else:          # p_c holds P_c^T
            gemm_tn(p_c, w2, y_c)
        if pool[0] and not arg.shape[0]:          # inference: pool first
            max_pool_images(y_c, b0, b1, oh, ow, pool, pooled)
            y_c = pooled[b0:b1].reshape(-1, pooled.shape[3])
        if has_bias or relu:
            bias_relu_rows(y_c, bias, has_bias, relu)
        if pool[0] and arg.shape[0]:              # training: pool after
            max_argmax_images(y_c, b0, b1, oh, ow, pool, pooled, arg)


def backward_kernel(x, wt, da, a, relu, has_bias, geometry, per, as_rows, need_dx, pool, arg,
                    patches, dpatches, dz_buffers, partial, db_partial, dx):
    """``per`` images at a time, each chunk on one core:

    1. its dZ rows: da's, or ``da * [a > 0]`` (relu) into the core's ``dz_buffers``; with
       ``pool`` = (ph, pw) (not (0, 0)), unpooled from the pooled da, ``arg`` and a
       (:func:`unpool_images`); with ``has_bias``, their column sums, chunk c's share of
       db, in ``db_partial[c]``;
    2. its patches again (as forward), then ``partial[c] = P_c^T dZ_c``, chunk c's share
       of dW;
    3. with ``need_dx``: ``dP_c = dZ_c @ wt`` (wt = W^T) into the core's ``dpatches``,
       then col2im (:func:`col2im_images`) into its images of dx."""
    oh, ow = geometry[8], geometry[9]
    cells = oh * ow
    da2, a2 = da.reshape(-1, da.shape[3]), a.reshape(-1, a.shape[3])
    for part in prange((x.shape[0] + per - 1) // per):
        b0, b1 = chunk_images_of(part, per, x.shape[0])
        rows = (b1 - b0) * cells                  # its rows of y / dY: from b0 * cells on
        core = thread_id()
        if pool[0]:                                                   # 1. dZ
            dz_c = dz_buffers[core][:rows]
            unpool_images(da, arg, a, b0, b1, oh, ow, pool, relu, dz_c)
        elif relu:
            dz_c = dz_buffers[core][:rows]
            relu_mask_rows(da2[b0 * cells:b0 * cells + rows], a2[b0 * cells:b0 * cells + rows], dz_c)
        else:
            dz_c = da2[b0 * cells:b0 * cells + rows]
        if has_bias:
            column_sums(dz_c, db_partial[part])
        p_c = chunk_patches(x, patches[core], b0, b1, geometry, as_rows)   # 2. dW
        if as_rows:
            gemm_tn(p_c, dz_c, partial[part])
        else:          # p_c holds P_c^T
            gemm_nn(p_c, dz_c, partial[part])
        if need_dx:                                                   # 3. dx
            dcol = dpatches[core]
            gemm_nn(dz_c, wt, dcol[:rows])
            col2im_images(dcol, dx, b0, b1, geometry)


# ---- the kernels' parts (serial: one chunk, on the core running it) ----
def chunk_images_of(part, per, n):
    """Chunk ``part``'s images: b0..b1-1."""
    b0 = part * per
    return b0, min(n, b0 + per)


def chunk_patches(x, col, b0, b1, geometry, as_rows):
    """Images b0..b1-1's patches in a core's (rows_max, K) buffer col: P_c as its first
    rows (``as_rows``), or P_c^T, (K, rows), in its first K*rows values."""
    rows = (b1 - b0) * geometry[8] * geometry[9]
    if as_rows:
        patches_as_rows(x, col, b0, b1, geometry)
        return col[:rows]
    k = col.shape[1]
    colt = col.reshape(-1)[:rows * k].reshape(k, rows)
    patches_as_taps(x, colt, b0, b1, geometry)
    return colt


def patches_as_rows(x, col, b0, b1, geometry):
    """Images b0..b1-1's patch matrix into col, one row per output cell (b, r, q), its
    columns (i, j, ch); padding read as 0.

    Kernel tap (i, j) of output cell (r, q) reads input row r*sh + i*dh - top, column
    q*sw + j*dw - left. With stride 1 and no dilation along W and the window inside the
    row, a patch row's KW*C values for one kernel row i are one contiguous run of x,
    copied in one loop."""
    kh, kw, sh, sw, dh, dw, top, left, oh, ow = geometry
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    run = kw * c
    dense_w = sw == 1 and dw == 1      # a kernel row's taps are adjacent columns
    for b in range(b0, b1):
        xb = x[b].reshape(h, w * c)
        for r in range(oh):
            for q in range(ow):
                p = ((b - b0) * oh + r) * ow + q   # the patch row of output cell (b, r, q)
                w0 = q * sw - left                 # input column of the window's left edge
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


def patches_as_taps(x, colt, b0, b1, geometry):
    """The same patches transposed, for few channels: one row per tap (i, j, ch) holding its
    value for every output cell, long runs instead of runs of KW*C values. For each tap, the
    output columns q whose input column q*sw + j*dw - left is inside the image form one range
    [q_lo, q_hi), worked out once, so the copy loop has no bounds test.

    The indices in the loops over q are unsigned (``_at``): Numba then skips its test for
    negative indices, which kept these loops from vectorizing (5x slower for the book's
    conv1, measured). They are never negative: every cell read lies inside the image."""
    kh, kw, sh, sw, dh, dw, top, left, oh, ow = geometry
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    rows_of_x = x.reshape((x.shape[0], h, w * c))   # an input row's W*C values, in one run
    step = sw * c                                    # from output column q's value to q+1's
    for kk in range(kh * kw * c):
        i = kk // (kw * c)
        j = (kk // c) % kw
        ch = kk % c
        j0 = j * dw - left                        # tap (i, j)'s column offset
        q_lo = min(ow, (sw - 1 - j0) // sw) if j0 < 0 else 0   # first q with q*sw + j0 >= 0
        q_hi = max(q_lo, min(ow, (w - 1 - j0) // sw + 1))      # past the last q inside
        first = j0 * c + ch                       # output column q reads first + q*step of its row
        for b in range(b0, b1):
            for r in range(oh):
                hh = r * sh + i * dh - top
                base = ((b - b0) * oh + r) * ow   # output row r's cells in colt's row kk
                lo, hi = (q_lo, q_hi) if 0 <= hh < h else (ow, ow)   # an input row outside: all 0
                for q in range(lo):
                    colt[kk, _at(base + q)] = _ZERO
                if step == 1:                     # C = 1, stride 1: a plain copy
                    for q in range(lo, hi):
                        colt[kk, _at(base + q)] = rows_of_x[b, hh, _at(first + q)]
                else:
                    for q in range(lo, hi):
                        colt[kk, _at(base + q)] = rows_of_x[b, hh, _at(first + q * step)]
                for q in range(hi, ow):
                    colt[kk, _at(base + q)] = _ZERO


def max_pool_images(y_c, b0, b1, oh, ow, pool, pooled):
    """Images b0..b1-1 of ``pooled``: the max of each pool tile of their conv outputs y_c
    ((b1-b0)*oh*ow rows of F), by pooling's own scan (the same bits as the MaxPooling2D
    layer after the convolution)."""
    images = y_c.reshape((b1 - b0, oh, ow, y_c.shape[1]))
    for b in range(b0, b1):
        for r in range(pooled.shape[1]):
            max_tiles_row(images[b - b0], r, pool[0], pool[1], pooled[b])


def max_argmax_images(y_c, b0, b1, oh, ow, pool, pooled, arg):
    """max_pool_images with each maximum's offset in ``arg`` too (pooling's training scan)."""
    images = y_c.reshape((b1 - b0, oh, ow, y_c.shape[1]))
    for b in range(b0, b1):
        for r in range(pooled.shape[1]):
            max_argmax_tiles_row(images[b - b0], r, pool[0], pool[1], pooled[b], arg[b])


def unpool_images(da, arg, a, b0, b1, oh, ow, pool, relu, dz_c):
    """Images b0..b1-1's dZ rows dz_c ((b1-b0)*oh*ow rows of F) from their pooled gradient
    da, argmax and (``relu``) pooled activation a, by pooling's own unpooling of a row (the
    same bits as MaxPooling2D's backward, then the ReLU's, at every cell)."""
    images = dz_c.reshape((b1 - b0, oh, ow, dz_c.shape[1]))
    for b in range(b0, b1):
        for hh in range(oh):
            max_unpool_row(da[b], arg[b], a[b], hh, pool[0], pool[1], relu, images[b - b0])


def relu_mask_rows(da, a, dz):
    """dz = da * [a > 0] (bias_act's ReLU backward: the same bits)."""
    for r in range(da.shape[0]):
        for j in range(da.shape[1]):
            dz[r, j] = da[r, j] * (_ONE if a[r, j] > 0 else _ZERO)


def column_sums(dz, out):
    """out[j] = the sum of column j of dz, row after row (a fixed order)."""
    for j in range(dz.shape[1]):
        out[j] = _ZERO
    for r in range(dz.shape[0]):
        for j in range(dz.shape[1]):
            out[j] += dz[r, j]


def col2im_images(dcol, dx, b0, b1, geometry):
    """Images b0..b1-1 of dx from their patch gradients dcol, as in the reference: per image
    a zeroed accumulator (the padded image), the patch entries added offset by offset, (i, j)
    in order, so each cell sums the same numbers in the same order; then the padding is cut
    off."""
    kh, kw, sh, sw, dh, dw, top, left, oh, ow = geometry
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    hp = (oh - 1) * sh + (kh - 1) * dh + 1     # the padded rows the windows reach
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    for b in range(b0, b1):
        acc = np.zeros((max(hp, top + h), max(wp, left + w), c), dtype=dx.dtype)
        for i in range(kh):
            for j in range(kw):
                base = (i * kw + j) * c
                for r in range(oh):
                    hh = r * sh + i * dh       # padded row of tap i in output row r
                    for q in range(ow):
                        src = dcol[((b - b0) * oh + r) * ow + q, base:base + c]
                        dst = acc[hh, q * sw + j * dw]
                        for ch in range(c):
                            dst[ch] += src[ch]
        for hh in range(h):
            for ww in range(w):
                for ch in range(c):
                    dx[b, hh, ww, ch] = acc[hh + top, ww + left, ch]
