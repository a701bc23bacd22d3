"""conv2d's CPU fast path: the batch a few images at a time, each chunk's patches in cache.

Part of minicnn/ops/conv2d.py (its section 3, here for length): the same
math, ``Y = P @ W``, ``dW = P^T @ dY``, ``dx = col2im(dY @ W^T)``, as its
reference, with compiled kernels (Numba) and BLAS's sgemm.

Why chunks: the book model's conv2 has an 8.9 MB patch matrix at batch 64,
four times a core's L2 cache. Built whole and multiplied whole, it goes out
to memory and back, and its GEMMs run at 60-70 GFLOP/s per core on this
machine; a chunk of a few images (0.5 MB) multiplied right after it was
built, while it is in L2, runs at ~90 (benchmarks/RESULTS.md). So
:func:`chunks_kernel` loops over chunks of images on all cores (``prange``),
and for each chunk, on one core: its patches (im2col) into that core's own
small buffer (``thread_id``), then forward ``Y_c = P_c W``, or backward
``dW_c = P_c^T dY_c`` and ``dx = col2im(dY_c W^T)``, through a second small
buffer. Nothing of the size of the patch matrix is ever written: backward
builds each chunk's patches again (im2col costs far less than reading them
back from memory would). ``gemm_nn`` / ``gemm_tn`` are one sgemm call on the
calling core; NumPy's matmul when a kernel runs as plain Python (see
minicnn/ops/common.py).

The chunks depend on the shapes alone, never on the thread count: dW is
summed chunk by chunk, in chunk order, so it has the same bits on 1, 2 or 8
threads. A first layer with few channels (KW*C < ``MIN_RUN_FOR_ROW_PATCHES``)
builds each chunk's patches transposed instead, one long run of output cells
per tap, rather than runs of KW*C = 3 values.
"""
import numpy as np

from .common import gemm_nn, gemm_tn, prange, thread_id

MIN_RUN_FOR_ROW_PATCHES = 16   # KW*C below this: the patch matrix as columns (C = 1, 3)
CHUNK_BYTES = 512 << 10        # a chunk's patch rows: well inside a core's L2 cache
MIN_CHUNKS = 8                 # a batch splits into at least this many (the cores share them)
MAX_CHUNKS = 64                # and at most this many (dW keeps one partial sum per chunk)
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


def _core_buffers(cpu, name, g, per, dtype):
    """One (per*OH*OW, K) buffer per core that a kernel may run on (reused between calls)."""
    cores = cpu.numba.config.NUMBA_NUM_THREADS
    return cpu.scratch(name, (cores, per * g.oh * g.ow, g.kh * g.kw * g.c), dtype)


def _chunks(cpu, x, w, g, dy2=None, need_dx=False, y2=None):
    """Run chunks_kernel: forward (dy2 None) into y2, or backward: returns (dW's per-chunk
    sums, dx or None)."""
    per = chunk_images(g)
    k = g.kh * g.kw * g.c
    backward = dy2 is not None
    f32 = x.dtype
    patches = _core_buffers(cpu, "conv2d chunk patches", g, per, f32)
    # (without dx: an empty array of the same kind, so that the kernel compiles once)
    dpatches = _core_buffers(cpu, "conv2d chunk patch gradients", g, per, f32) if need_dx \
        else np.empty((patches.shape[0], 0, k), dtype=f32)
    partial = np.empty((-(-g.n // per) if backward else 0, k, g.f), dtype=f32)
    w2 = w.reshape(k, g.f)
    # (F, K): dP = dY @ W^T as a plain product (only dx reads it)
    wt = np.ascontiguousarray(w2.T) if need_dx else np.empty((0, k), dtype=f32)
    empty_rows = np.empty((0, g.f), dtype=f32)
    dx = np.empty((g.n, g.h, g.w, g.c), dtype=f32) if need_dx else x[:0]   # x[:0]: never written
    with cpu.one_blas_thread:   # each core's sgemm on that core alone
        cpu.compile(chunks_kernel)(x, w2, wt, empty_rows if dy2 is None else dy2, *_ints(g), per,
                                   rows_first(g), backward, need_dx, patches, dpatches,
                                   empty_rows if y2 is None else y2, partial, dx)
    return partial, (dx if need_dx else None)


def forward(x, w, g, training):
    """``(y, None)``: nothing is kept for backward, which builds each chunk's patches again
    (``training`` changes nothing here)."""
    y = np.empty((g.n, g.oh, g.ow, g.f), dtype=x.dtype)
    _chunks(_runtime(), x, w, g, y2=y.reshape(-1, g.f))
    return y, None


def backward(dy, ctx, w, need_dx):
    """``(dx or None, dw)``: dW = P^T dY summed chunk by chunk, in chunk order."""
    g = ctx.g
    partial, dx = _chunks(_runtime(), ctx.x, w, g, dy2=dy.reshape(-1, g.f), need_dx=need_dx)
    return dx, np.add.reduce(partial, axis=0).reshape(w.shape)   # chunk 0, then 1, ...


# ----------------------------------------------------------------------------
# the kernels (plain Python, compiled by the CPU runtime)
# ----------------------------------------------------------------------------
def chunks_kernel(x, w2, wt, dy2, kh, kw, sh, sw, dh, dw, top, left, oh, ow, per, as_rows,
                  backward, need_dx, patches, dpatches, y2, partial, dx):
    """``per`` images at a time, each chunk on one core:

    1. its patches (padding read as 0) into that core's ``patches`` buffer: one row per
       output cell (``as_rows``), or transposed, one row per tap (i, j, ch) holding its
       value for every output cell (few channels: long runs instead of runs of KW*C);
    2. forward: ``y2 = P @ w2`` for its rows; backward: ``partial[c] = P^T dY`` (chunk
       c's share of dW) and, with ``need_dx``, ``dx = col2im(dY @ wt)`` (wt = W^T)
       through the core's ``dpatches`` buffer.

    Kernel tap (i, j) of output cell (r, q) reads input row r*sh + i*dh - top, column
    q*sw + j*dw - left. As rows: with stride 1 and no dilation along W and the window
    inside the row, a patch row's KW*C values for one kernel row i are one contiguous
    run of x, copied in one loop. Transposed: the output columns q whose input column
    is inside the image form one range [q_lo, q_hi), worked out once per tap, so the
    copy loop has no bounds test. col2im as in the reference: per image a zeroed
    accumulator (the padded image), the patch entries added offset by offset, (i, j) in
    order, so each cell sums the same numbers in the same order; then the padding is
    cut off."""
    n, h, w, c = x.shape
    cells = oh * ow
    run = kw * c
    dense_w = sw == 1 and dw == 1      # a kernel row's taps are adjacent columns
    hp = (oh - 1) * sh + (kh - 1) * dh + 1     # the padded rows the windows reach
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    for part in prange((n + per - 1) // per):
        b0 = part * per
        b1 = min(n, b0 + per)
        rows = (b1 - b0) * cells
        core = thread_id()
        col = patches[core]
        colt = col.reshape(-1)[:rows * col.shape[1]].reshape(col.shape[1], rows)   # as (K, rows)
        if not as_rows:                                   # 1. the chunk's patches, transposed
            for kk in range(kh * kw * c):
                i = kk // (kw * c)
                j = (kk // c) % kw
                ch = kk % c
                j0 = j * dw - left                        # tap (i, j)'s column offset
                q_lo = min(ow, (sw - 1 - j0) // sw) if j0 < 0 else 0   # first q with q*sw + j0 >= 0
                q_hi = max(q_lo, min(ow, (w - 1 - j0) // sw + 1))      # past the last q inside
                for b in range(b0, b1):
                    for r in range(oh):
                        hh = r * sh + i * dh - top
                        base = ((b - b0) * oh + r) * ow
                        if hh < 0 or hh >= h:
                            for q in range(ow):
                                colt[kk, base + q] = _ZERO
                            continue
                        for q in range(q_lo):
                            colt[kk, base + q] = _ZERO
                        for q in range(q_lo, q_hi):
                            colt[kk, base + q] = x[b, hh, q * sw + j0, ch]
                        for q in range(q_hi, ow):
                            colt[kk, base + q] = _ZERO
        else:                                             # 1. the chunk's patches, as rows
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
        if not backward:                                  # 2. forward
            if as_rows:
                gemm_nn(col[:rows], w2, y2[b0 * cells:b0 * cells + rows])
            else:
                gemm_tn(colt, w2, y2[b0 * cells:b0 * cells + rows])
            continue
        dy_c = dy2[b0 * cells:b0 * cells + rows]          # 2. backward
        if as_rows:
            gemm_tn(col[:rows], dy_c, partial[part])
        else:
            gemm_nn(colt, dy_c, partial[part])
        if not need_dx:
            continue
        dcol = dpatches[core]
        gemm_nn(dy_c, wt, dcol[:rows])
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
