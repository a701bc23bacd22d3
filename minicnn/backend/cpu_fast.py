"""Fast paths of the NumPy backend's heavy ops: the same math as the reference
code in numpy_ops.py, arranged for speed on a CPU.

Two tiers, each measured on the book's MNIST CNN at batch 64 (2 cores):

1. With Numba installed (float32, the training dtype): the memory-bound work
   (im2col, col2im, pooling, bias + ReLU, ReLU backward, RMSprop) runs as
   compiled one-pass kernels (:mod:`cpu_numba`), and the convolutions' GEMMs
   run on the same Numba threads, each part one call of NumPy's own OpenBLAS
   sgemm. 63 ms -> 15 ms per step.
2. Otherwise (no Numba, float64, odd layouts), NumPy with threads: each op
   splits the batch into one part per thread (:func:`cpu_threads.parallel`);
   NumPy and BLAS release the GIL, so the parts run at the same time. 63 ms ->
   25 ms per step. Its tricks:

   - fewer passes over memory: im2col is ONE strided copy (a view built with
     ``as_strided``, copied once) instead of KH*KW copies; GEMMs write straight
     into the output (``out=``); 2-D max pooling whose windows tile the input
     uses strided views and ``np.maximum``, not masked copies; bias + ReLU run
     in place on long rows (the bias tiled along W); bias gradients are one
     BLAS matrix-vector product;
   - OpenBLAS is held at one thread inside our ops (its spinning workers
     would otherwise steal the second core from the other part).

Both tiers: no allocation in the hot loop. The padded input, the patch matrix
and col2im's accumulator come from per-thread scratch (:mod:`cpu_buffers`);
the patch matrix built by the forward pass is kept for the backward pass
(checked bit for bit against x first); returned arrays are new to the
caller, their memory recycled only once nothing references them (glibc
otherwise hands it back to the OS and every step pays page faults).

Results equal the reference up to float rounding (the GEMMs are split by rows
and weight gradients summed over parts in a fixed order: same bits every run;
most compiled kernels give the reference's exact bits). With NaNs in a
pooling window the NumPy tier's max may differ from the reference, whose
answer depends on where the NaN sits (the compiled kernel follows it).
"""
import threading
from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import cpu_numba as _nb
from .cpu_buffers import fresh, on_trim, scratch
from .cpu_threads import num_threads, ops_region, parallel, plan, split

# A part smaller than this many output values is not worth a thread hand-off
# (about 10 microseconds); small ops run in the caller.
MIN_PART_ELEMS = 1 << 16
# In-place elementwise work goes in chunks of about this many values (1 MiB
# of float32) so that the second pass over a chunk finds it in L2; bigger
# chunks mean fewer NumPy calls (each one a chance to wait for the GIL).
CHUNK_ELEMS = 1 << 18
# im2col puts KH*KW*C on the fast axis when KW*C is at least this, else the
# output pixels (long contiguous runs either way; C=1 inputs need the latter).
MIN_INNER_FOR_ROW_PATCHES = 16
# The compiled kernels (cpu_numba) take arrays from this many values up.
NB_MIN_ELEMS = 1 << 16
# A thread builds the patch matrix for at most this many bytes of it at a
# time (a big inference batch goes through in slices): bounds the scratch
# memory without shrinking the GEMMs of a training batch.
MAX_COL_BYTES = 8 << 20
# The compiled path's patch matrix for a big (inference) batch: slices of
# at most this many bytes (all threads together).
MAX_NB_SLICE_BYTES = 8 << 20
# Likewise max pooling works through a big batch in slices whose row maxima
# take at most this much scratch (a training half-batch is one slice).
MAX_POOL_BYTES = 2 << 20


def _min_items(per_item):
    """How many batch items (or rows) make a part worth its own thread."""
    return max(1, -(-MIN_PART_ELEMS // max(1, per_item)))


# ----------------------------------------------------------------------------
# padding and patches
# ----------------------------------------------------------------------------
def _padded(xs, pads, value):
    """xs with `pads` around H and W, in per-thread scratch (xs itself when no padding).

    The border is written once, when the scratch array is made; later calls
    only overwrite the interior, so the key includes the pads and the value."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return xs
    m, h, w, c = xs.shape
    buf = scratch(("pad", tuple(pads), value), (m, h + top + bottom, w + left + right, c),
                  xs.dtype, fill=value)
    buf[:, top:top + h, left:left + w, :] = xs
    return buf


def _patch_view(xp, kh, kw, strides, oh, ow, rows_first):
    """The im2col matrix of xp as a strided VIEW (no copy).

    rows_first: shape (m, oh, ow, kh, kw, c), i.e. rows = output pixels and
    columns = (kh, kw, c), the reference layout. Otherwise the transpose,
    (kh, kw, c, m, oh, ow): better when kw*c is tiny (C=1 inputs), as the
    copy then runs along the output row instead of 1-3 values at a time."""
    s0, s1, s2, s3 = xp.strides
    sh, sw = strides
    m, c = xp.shape[0], xp.shape[3]
    if rows_first:
        return as_strided(xp, (m, oh, ow, kh, kw, c), (s0, s1 * sh, s2 * sw, s1, s2, s3), writeable=False)
    return as_strided(xp, (kh, kw, c, m, oh, ow), (s1, s2, s3, s0, s1 * sh, s2 * sw), writeable=False)


def _im2col(xs, kh, kw, strides, pads, oh, ow, rows_first, out=None):
    """The patch matrix of xs, (P, K) if rows_first else (K, P): in per-thread
    scratch, or in ``out`` (a C-contiguous array of the right size) if given."""
    m, c = xs.shape[0], xs.shape[3]
    p, k = m * oh * ow, kh * kw * c
    xp = _padded(xs, pads, 0)
    view = _patch_view(xp, kh, kw, strides, oh, ow, rows_first)
    col = scratch(("col", rows_first), view.shape, xs.dtype) if out is None else out.reshape(view.shape)
    np.copyto(col, view)
    return col.reshape(p, k) if rows_first else col.reshape(k, p)


def _rows_first(kw, c):
    return kw * c >= MIN_INNER_FOR_ROW_PATCHES


def _slices(lo, hi, item_bytes, limit=None):
    """Split range(lo, hi) into near-equal slices of at most ``limit`` bytes
    (MAX_COL_BYTES by default) each."""
    n = hi - lo
    count = max(1, -(-n * item_bytes // (limit or MAX_COL_BYTES)))
    count = min(count, n)
    q, r = divmod(n, count)
    start = lo
    for k in range(count):
        end = start + q + (1 if k < r else 0)
        yield start, end
        start = end


def conv_out_size(h, w, kh, kw, strides, pads):
    top, bottom, left, right = pads
    return (h + top + bottom - kh) // strides[0] + 1, (w + left + right - kw) // strides[1] + 1


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
# ----------------------------------------------------------------------------
# patches kept from the forward pass for the backward pass
# ----------------------------------------------------------------------------
# conv2d_backward needs the same patch matrix of x that conv2d_forward built,
# and a training step calls both with the same x. So forward keeps each part's
# patches and a copy of its slice of x; backward reuses the patches of a part
# only after checking, bit for bit, that x still holds what forward saw (same
# array, same geometry, same bytes); otherwise it rebuilds them as usual. The
# check costs a compare of x (1/9 of the patch matrix for a 3x3 kernel).
# Kept: patch matrices up to MAX_KEPT_ENTRY_BYTES (a training batch; an
# inference batch is not kept), at most MAX_KEPT_BYTES in all (oldest
# dropped); their buffers are recycled.
MAX_KEPT_BYTES = 32 << 20
MAX_KEPT_ENTRY_BYTES = 12 << 20  # a training batch's patches (8.5 MiB for the book's conv2)
_kept = OrderedDict()  # (id(x), geometry) -> _Kept
_kept_bytes = 0
_recycled = {}         # (shape, dtype) -> [arrays]
_kept_lock = threading.Lock()


class _Kept:
    def __init__(self, x, parts):
        self.x = x          # keeps x alive, so its id is not reused meanwhile
        self.parts = parts  # part -> (lo, hi, col, copy of x[lo:hi])
        self.nbytes = sum(col.nbytes + cp.nbytes for _, _, col, cp in parts.values())


@on_trim
def _drop_recycled():
    with _kept_lock:
        _recycled.clear()


def _take(shape, dtype):
    with _kept_lock:
        free = _recycled.get((shape, dtype))
        if free:
            return free.pop()
    return np.empty(shape, dtype)


def _recycle(entry):
    with _kept_lock:
        for _, _, col, cp in entry.parts.values():
            for a in (col, cp):
                free = _recycled.setdefault((a.shape, a.dtype), [])
                if len(free) < 2:
                    free.append(a)


def _keep(key, entry):
    global _kept_bytes
    dropped = []
    with _kept_lock:
        old = _kept.pop(key, None)
        if old is not None:
            _kept_bytes -= old.nbytes
            dropped.append(old)
        _kept[key] = entry
        _kept_bytes += entry.nbytes
        while _kept_bytes > MAX_KEPT_BYTES and len(_kept) > 1:
            _, e = _kept.popitem(last=False)
            _kept_bytes -= e.nbytes
            dropped.append(e)
    for e in dropped:
        _recycle(e)


def _claim(key, x):
    global _kept_bytes
    with _kept_lock:
        entry = _kept.get(key)
        if entry is None or entry.x is not x:
            return None
        del _kept[key]
        _kept_bytes -= entry.nbytes
        return entry


def _same_bits(a, b):
    u = np.dtype("u%d" % a.itemsize)
    if _nb.AVAILABLE and a.flags.c_contiguous and b.flags.c_contiguous:
        return a.shape == b.shape and _nb.same_bits(a.reshape(-1).view(u), b.reshape(-1).view(u))
    return np.array_equal(a.view(u), b.view(u))


def _kept_key(x, kh, kw, strides, pads, rows_first):
    return (id(x), x.shape, x.strides, x.dtype.str, kh, kw, tuple(strides), tuple(pads), rows_first)


def clear_kept():
    """Drop every kept patch matrix (frees their memory)."""
    global _kept_bytes
    with _kept_lock:
        _kept.clear()
        _recycled.clear()
        _kept_bytes = 0


# ----------------------------------------------------------------------------
# convolution
# ----------------------------------------------------------------------------
def conv2d_forward(x, w, strides, pads):
    if _nb.usable(x, w):
        return _conv2d_forward_nb(x, w, strides, pads)
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = conv_out_size(h, wd, kh, kw, strides, pads)
    k = kh * kw * c
    w2 = np.ascontiguousarray(w).reshape(k, f)
    y = fresh((n, oh, ow, f), x.dtype)
    y2 = y.reshape(n * oh * ow, f)
    rows = oh * ow
    rows_first = _rows_first(kw, c)
    item_bytes = rows * k * x.itemsize
    min_items = _min_items(rows * max(f, k))
    parts = plan(n, min_items)[1]
    keep = -(-n // parts) * item_bytes <= MAX_COL_BYTES and n * item_bytes <= MAX_KEPT_ENTRY_BYTES
    kept = {}

    def part(lo, hi, p):
        if keep:  # one slice: build the patches in a buffer that outlives this call
            m = hi - lo
            buf = _take((m * rows * k,), x.dtype)
            col = _im2col(x[lo:hi], kh, kw, strides, pads, oh, ow, rows_first, out=buf)
            cp = _take((m,) + x.shape[1:], x.dtype)
            np.copyto(cp, x[lo:hi])
            kept[p] = (lo, hi, buf, cp)
            np.matmul(col if rows_first else col.T, w2, out=y2[lo * rows:hi * rows])
            return
        for a, b in _slices(lo, hi, item_bytes):
            col = _im2col(x[a:b], kh, kw, strides, pads, oh, ow, rows_first)
            np.matmul(col if rows_first else col.T, w2, out=y2[a * rows:b * rows])

    with ops_region:
        parallel(n, part, min_items)
    if keep and kept:
        _keep(_kept_key(x, kh, kw, strides, pads, rows_first), _Kept(x, kept))
    return y


def conv2d_backward(dy, x, w, strides, pads, need_dx=True):
    if _nb.usable(dy, x, w):
        return _conv2d_backward_nb(dy, x, w, strides, pads, need_dx)
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = dy.shape[1], dy.shape[2]
    k = kh * kw * c
    rows = oh * ow
    wc = np.ascontiguousarray(w)
    dy2 = np.ascontiguousarray(dy).reshape(n * rows, f)
    rows_first = _rows_first(kw, c)
    dx = fresh(x.shape, x.dtype) if need_dx else None
    dws = {}
    entry = _claim(_kept_key(x, kh, kw, strides, pads, rows_first), x)

    def patches(a, b, p):
        if entry is not None:
            lo, hi, col, cp = entry.parts.get(p, (None, None, None, None))
            if (lo, hi) == (a, b) and _same_bits(x[a:b], cp):
                return col.reshape(-1, k) if rows_first else col.reshape(k, -1)
        return _im2col(x[a:b], kh, kw, strides, pads, oh, ow, rows_first)

    def part(lo, hi, p):
        dwp = tmp = None
        for a, b in _slices(lo, hi, rows * k * x.itemsize):
            col = patches(a, b, p)
            dyp = dy2[a * rows:b * rows]
            # dW = P^T dY, per part (slices added in order); the parts are summed below
            if dwp is None:
                dwp = np.empty((k, f), dtype=x.dtype)
                np.matmul(col.T if rows_first else col, dyp, out=dwp)
            else:
                tmp = np.empty((k, f), dtype=x.dtype) if tmp is None else tmp
                np.matmul(col.T if rows_first else col, dyp, out=tmp)
                dwp += tmp
            if need_dx:
                _col2im_part(dyp, wc, dx[a:b], strides, pads, oh, ow, rows_first)
        dws[p] = dwp

    try:
        with ops_region:
            parts = parallel(n, part, _min_items(rows * max(f, k)))
    finally:
        if entry is not None:
            _recycle(entry)
    dw = dws[0]
    for p in range(1, parts):
        dw += dws[p]
    return dx, dw.reshape(w.shape)


# ----------------------------------------------------------------------------
# convolution with the compiled kernels (float32, Numba available)
# ----------------------------------------------------------------------------
def _blas_operand(v):
    """(transpose flag, leading dimension) of a 2-D view for row-major cblas,
    or None when neither v nor v.T is C-contiguous."""
    if v.flags.c_contiguous:
        return 111, v.shape[1]
    if v.T.flags.c_contiguous:
        return 112, v.shape[0]
    return None


def _gemm_rows(a, b, out):
    """out = a @ b with a's rows split over the threads (one GEMM per part)."""
    m = a.shape[0]
    min_rows = max(1, -(-(1 << 21) // max(1, a.shape[1] * b.shape[1])))
    oa, ob = _blas_operand(a), _blas_operand(b)
    if _nb.GEMM and a.dtype == b.dtype == out.dtype == np.float32 and out.flags.c_contiguous \
            and oa and ob:
        parts = plan(m, min_rows)[1]
        bounds = np.array(split(m, parts), dtype=np.int64)
        lo, hi = bounds[:, 0], bounds[:, 1]
        step_a = oa[1] * 4 if oa[0] == 111 else 4   # bytes from one row of op(a) to the next
        a_ptrs = a.ctypes.data + lo * step_a
        c_ptrs = out.ctypes.data + lo * out.shape[1] * 4
        b_ptrs = np.full(parts, b.ctypes.data, dtype=np.int64)
        ks = np.full(parts, a.shape[1], dtype=np.int64)
        _nb.set_threads(num_threads())
        _nb.gemm_parts(oa[0], ob[0], hi - lo, b.shape[1], ks, a_ptrs, oa[1], b_ptrs, ob[1], c_ptrs,
                       out.shape[1])
        return

    def part(lo, hi, p):
        np.matmul(a[lo:hi], b, out=out[lo:hi])

    parallel(m, part, min_rows)


def _gemm_tn(a, b, dtype):
    """a.T @ b, the rows of a and b split over the threads; partial products
    are summed in part order (same bits every run)."""
    m = a.shape[0]
    min_rows = max(1, -(-(1 << 21) // max(1, a.shape[1] * b.shape[1])))
    oa = _blas_operand(a)
    if _nb.GEMM and a.dtype == b.dtype == np.float32 and b.flags.c_contiguous and oa:
        parts = plan(m, min_rows)[1]
        bounds = np.array(split(m, parts), dtype=np.int64)
        lo, hi = bounds[:, 0], bounds[:, 1]
        k, n = a.shape[1], b.shape[1]
        outs = np.empty((parts, k, n), dtype=np.float32)
        if oa[0] == 111:    # a (m, k) row-major: a[lo:hi].T is op = T of its rows
            ta, a_ptrs = 112, a.ctypes.data + lo * oa[1] * 4
        else:               # a = c.T, c (k, m) row-major: a[lo:hi].T = c[:, lo:hi]
            ta, a_ptrs = 111, a.ctypes.data + lo * 4
        b_ptrs = b.ctypes.data + lo * n * 4
        c_ptrs = outs.ctypes.data + np.arange(parts, dtype=np.int64) * (k * n * 4)
        _nb.set_threads(num_threads())
        _nb.gemm_parts(ta, 111, np.full(parts, k, dtype=np.int64), n, hi - lo, a_ptrs, oa[1], b_ptrs, n,
                       c_ptrs, n)
        total = outs[0].copy()
        for p in range(1, parts):
            total += outs[p]
        return total
    outs = {}

    def part(lo, hi, p):
        outs[p] = np.matmul(a[lo:hi].T, b[lo:hi])

    parts = parallel(m, part, min_rows)
    total = outs[0]
    for p in range(1, parts):
        total += outs[p]
    return total.astype(dtype, copy=False)


def _nb_im2col(x, kh, kw, strides, pads, oh, ow, rows_first, col):
    """col = the patch matrix of x, (P, K) if rows_first else (K, P), compiled."""
    _nb.set_threads(num_threads())
    if rows_first:
        _nb.im2col(x, kh, kw, strides[0], strides[1], pads[0], pads[2], oh, ow, col)
    else:
        _nb.im2col_t(x, kh, kw, strides[0], strides[1], pads[0], pads[2], oh, ow, col)
    return col


def _conv2d_forward_nb(x, w, strides, pads):
    """im2col (compiled, all cores), then one GEMM split over the threads."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = conv_out_size(h, wd, kh, kw, strides, pads)
    k = kh * kw * c
    rows = n * oh * ow
    rows_first = _rows_first(kw, c)
    shape = (rows, k) if rows_first else (k, rows)
    w2 = w.reshape(k, f)
    y = fresh((n, oh, ow, f), x.dtype)
    keep = rows * k * x.itemsize <= MAX_KEPT_ENTRY_BYTES
    if keep:
        buf = _take((rows * k,), x.dtype)
        col = buf.reshape(shape)
    elif rows * k * x.itemsize > MAX_NB_SLICE_BYTES:
        return _conv2d_forward_nb_sliced(x, w, strides, pads, oh, ow, y)
    else:
        col = scratch(("col", rows_first), shape, x.dtype)
    _nb_im2col(x, kh, kw, strides, pads, oh, ow, rows_first, col)
    with ops_region:
        _gemm_rows(col if rows_first else col.T, w2, y.reshape(rows, f))
    if keep:
        cp = _take(x.shape, x.dtype)
        np.copyto(cp, x)
        _keep(_kept_key(x, kh, kw, strides, pads, "nb"), _Kept(x, {0: (0, n, buf, cp)}))
    return y


def _conv2d_forward_nb_sliced(x, w, strides, pads, oh, ow, y):
    """A big (inference) batch: im2col + GEMM a slice of the batch at a time."""
    n, kh, kw, c, f = x.shape[0], w.shape[0], w.shape[1], x.shape[3], w.shape[3]
    k = kh * kw * c
    rows_first = _rows_first(kw, c)
    w2 = w.reshape(k, f)
    y2 = y.reshape(-1, f)
    per = oh * ow
    for a, b in _slices(0, n, per * k * x.itemsize, MAX_NB_SLICE_BYTES):
        rows = (b - a) * per
        col = scratch(("col", rows_first), (rows, k) if rows_first else (k, rows), x.dtype)
        _nb_im2col(x[a:b], kh, kw, strides, pads, oh, ow, rows_first, col)
        with ops_region:
            _gemm_rows(col if rows_first else col.T, w2, y2[a * per:b * per])
    return y


def _conv2d_backward_nb(dy, x, w, strides, pads, need_dx):
    """dW = P^T dY and dP = dY W^T as GEMMs split over the threads; P kept from
    the forward pass when x is bit-for-bit unchanged; dx = col2im(dP), compiled."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    oh, ow = dy.shape[1], dy.shape[2]
    k = kh * kw * c
    rows = n * oh * ow
    rows_first = _rows_first(kw, c)
    shape = (rows, k) if rows_first else (k, rows)
    w2 = w.reshape(k, f)
    dy2 = dy.reshape(rows, f)
    entry = _claim(_kept_key(x, kh, kw, strides, pads, "nb"), x)
    try:
        col = None
        if entry is not None:
            _, _, buf, cp = entry.parts[0]
            if _same_bits(x, cp):
                col = buf.reshape(shape)
        if col is None:
            col = _nb_im2col(x, kh, kw, strides, pads, oh, ow, rows_first,
                             scratch(("col", rows_first), shape, x.dtype))
        with ops_region:
            dw = _gemm_tn(col if rows_first else col.T, dy2, x.dtype).reshape(w.shape)
            if not need_dx:
                return None, dw
            dcol = scratch(("dcol", True), (rows, k), x.dtype)
            _gemm_rows(dy2, w2.T, dcol)
    finally:
        if entry is not None:
            _recycle(entry)
    dx = fresh(x.shape, x.dtype)
    _nb.set_threads(num_threads())
    _nb.col2im(dcol, kh, kw, strides[0], strides[1], pads[0], pads[2], oh, ow, dx)
    return dx, dw


def _col2im_part(dyp, w, dxs, strides, pads, oh, ow, rows_first):
    """dxs = col2im(dY @ W^T) for one part of the batch.

    rows_first (C large): one small GEMM per window offset, dY @ W[i, j]^T ->
    (P, C), added into the offset's strided window of dx right away, while it
    is still in cache. The window's (OW, C) block is contiguous, so each add
    runs along OW*C values at a time; adding slices of one big (P, KH*KW*C)
    matrix instead would run along C values only, and cost 5x more here.

    Otherwise (C tiny): one GEMM for dP^T (K, P) and KH*KW*C adds, each along
    the output rows."""
    m, h, wd, c = dxs.shape
    kh, kw, _, f = w.shape
    top, bottom, left, right = pads
    sh, sw = strides
    padded = bool(top or bottom or left or right)
    if padded:
        dxp = scratch(("dxpad", tuple(pads)), (m, h + top + bottom, wd + left + right, c), dxs.dtype)
    else:
        dxp = dxs
    dxp.fill(0)

    def window(i, j):
        return dxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]

    if rows_first:
        wt = w.transpose(0, 1, 3, 2)  # W[i, j]^T: (F, C) blocks
        t = scratch(("dcol_ij",), (m * oh * ow, c), dxs.dtype)
        t4 = t.reshape(m, oh, ow, c)
        for i in range(kh):
            for j in range(kw):
                np.matmul(dyp, wt[i, j], out=t)
                win = window(i, j)
                np.add(win, t4, out=win)
    else:
        dcol = scratch(("dcolT",), (kh * kw * c, m * oh * ow), dxs.dtype)
        np.matmul(w.reshape(kh * kw * c, f), dyp.T, out=dcol)
        d6 = dcol.reshape(kh, kw, c, m, oh, ow).transpose(3, 4, 5, 0, 1, 2)
        for i in range(kh):
            for j in range(kw):
                win = window(i, j)
                np.add(win, d6[:, :, :, i, j, :], out=win)
    if padded:
        np.copyto(dxs, dxp[:, top:top + h, left:left + wd, :])


# ----------------------------------------------------------------------------
# dense
# ----------------------------------------------------------------------------
def dense_forward(x, w):
    n = x.shape[0]
    y = fresh((n, w.shape[1]), np.result_type(x, w))

    def part(lo, hi, p):
        np.matmul(x[lo:hi], w, out=y[lo:hi])

    with ops_region:  # a part of at least ~4M multiply-adds (a training batch runs in one)
        parallel(n, part, max(1, -(-(1 << 22) // max(1, w.shape[0] * w.shape[1]))))
    return y


def dense_backward(dy, x, w, need_dx=True):
    with ops_region:  # small GEMMs: one thread, but keep OpenBLAS's workers asleep
        dw = x.T @ dy
        dx = dy @ w.T if need_dx else None
    return dx, dw


# ----------------------------------------------------------------------------
# bias + ReLU / linear
# ----------------------------------------------------------------------------
def _rows(a):
    """a (C-contiguous) as a 2-D view (rows, W*F) when it has a width axis before
    the channels, else (rows, F): long rows make NumPy's inner loops long (a
    broadcast bias of 32 values would otherwise restart the loop every 32)."""
    if a.ndim >= 3:
        return a.reshape(-1, a.shape[-2] * a.shape[-1])
    return a.reshape(-1, a.shape[-1])


def _column_sum(a2, out):
    """out = a2.sum(axis=0) as one BLAS matrix-vector product (several times
    faster than NumPy's axis-0 reduction on (rows, 32) arrays)."""
    n = a2.shape[0]
    size = 1 << max(10, (n - 1).bit_length())  # one ones-vector per power of two
    ones = scratch(("ones", size), (size,), a2.dtype, fill=1)
    np.matmul(ones[:n], a2, out=out)


def bias_act_forward(z, b, activation):
    """In place on z (C-contiguous), activation 'relu' or 'linear'."""
    z2 = _rows(z)
    reps = z2.shape[1] // z.shape[-1]
    bt = None if b is None else (np.tile(b, reps) if reps > 1 else b)  # bias for one whole row
    relu = activation == "relu"
    if z.size >= NB_MIN_ELEMS and _nb.usable(z) and (bt is None or _nb.usable(bt)):
        _nb.set_threads(num_threads())
        _nb.bias_relu(z2, bt if bt is not None else z2[0], bt is not None, relu)
        return z
    step = max(1, CHUNK_ELEMS // z2.shape[1])

    def part(lo, hi, p):
        for r in range(lo, hi, step):
            zc = z2[r:min(hi, r + step)]
            if bt is not None:
                np.add(zc, bt, out=zc)
            if relu:
                np.maximum(zc, 0, out=zc)

    parallel(z2.shape[0], part, _min_items(z2.shape[1]))
    return z


def bias_act_backward(da, a, activation, has_bias):
    """``(dz, db)`` for 'relu' (dz = da * [a > 0], new array) or 'linear' (dz = da)."""
    f = da.shape[-1]
    da2 = _rows(da)
    nrows, width = da2.shape
    relu = activation == "relu"
    if relu:
        dz = fresh(da.shape, np.result_type(da.dtype, np.bool_))
        dz2 = _rows(dz)
        a2 = _rows(a)
    else:
        dz, dz2 = da, da2
    if da.size >= NB_MIN_ELEMS and _nb.usable(da) and (not relu or _nb.usable(a)):
        _nb.set_threads(num_threads())
        partial = np.empty((min(_nb.DB_CHUNKS, nrows), width), dtype=da.dtype)
        _nb.relu_backward(da2, a2 if relu else da2, dz2, partial, relu)
        db = None
        if has_bias:
            db = np.add.reduce(partial, axis=0)
            if width != f:
                db = db.reshape(-1, f).sum(axis=0)
        return dz, db
    step = max(1, CHUNK_ELEMS // width)
    dbs = {}

    def part(lo, hi, p):
        acc = np.zeros(width, dtype=dz.dtype) if has_bias else None
        tmp = np.empty(width, dtype=dz.dtype) if has_bias else None
        for r in range(lo, hi, step):
            e = min(hi, r + step)
            if relu:
                mask = scratch(("relu_mask",), (e - r, width), np.bool_)
                np.greater(a2[r:e], 0, out=mask)
                np.multiply(da2[r:e], mask, out=dz2[r:e])
            if has_bias:
                _column_sum(dz2[r:e], tmp)
                acc += tmp
        dbs[p] = acc

    with ops_region:
        parts = parallel(nrows, part, _min_items(width))
    db = None
    if has_bias:
        db = dbs[0]
        for p in range(1, parts):
            db += dbs[p]
        if width != f:  # per-(w, channel) sums -> per channel
            db = db.reshape(-1, f).sum(axis=0)
    return dz, db


# ----------------------------------------------------------------------------
# max pooling whose windows tile the input (strides == pool, no padding)
# ----------------------------------------------------------------------------
def _tiles(a, ph, pw, oh, ow):
    """(m, oh, ph, ow, pw, c) view of a's top-left oh*ph x ow*pw region: element
    [n, r, i, q, j, ch] is a[n, r*ph + i, q*pw + j, ch], window (r, q) offset (i, j)."""
    s0, s1, s2, s3 = a.strides
    return as_strided(a, (a.shape[0], oh, ph, ow, pw, a.shape[3]), (s0, s1 * ph, s1, s2 * pw, s2, s3),
                      writeable=a.flags.writeable)


def maxpool_forward_tiled(x, pool):
    """``(y, argmax)`` when the windows tile x (the last rows/cols that do not
    fill a window are dropped, as in 'valid' pooling).

    First max in row-major window order, like the reference: first within
    each window row (left to right, strict >), then across rows (top to
    bottom, strict >). The row winner's column index ``hidx`` rides along."""
    n, h, w, c = x.shape
    ph, pw = pool
    oh, ow = h // ph, w // pw
    y = fresh((n, oh, ow, c), x.dtype)
    argmax = fresh((n, oh, ow, c), np.int32)
    if _nb.usable(x):
        _nb.set_threads(num_threads())
        _nb.pool_forward(x, ph, pw, y, argmax)
        return y, argmax
    idx_t = np.int8 if ph * pw <= 127 else np.int32

    def part(lo, hi, p):
        for a, b in _slices(lo, hi, oh * ph * ow * c * x.itemsize, MAX_POOL_BYTES):
            if ph == pw == 2:
                _pool2x2_part(_tiles(x[a:b], 2, 2, oh, ow), y[a:b], argmax[a:b])
            else:
                slice_(a, b)

    def slice_(lo, hi):
        m = hi - lo
        t6 = _tiles(x[lo:hi], ph, pw, oh, ow)
        # along each window row: hm[n, r, i, q, ch] = max_j t6[n, r, i, q, j, ch]
        hm = scratch(("pool_hm",), (m, oh, ph, ow, c), x.dtype)
        hidx = scratch(("pool_hidx",), (m, oh, ph, ow, c), idx_t)
        better = scratch(("pool_better",), (m, oh, ph, ow, c), np.bool_)
        np.copyto(hm, t6[:, :, :, :, 0, :])
        hidx.fill(0)
        for j in range(1, pw):
            v = t6[:, :, :, :, j, :]
            np.greater(v, hm, out=better)
            np.maximum(hm, v, out=hm)
            if pw == 2:
                np.copyto(hidx, better)  # bool -> 0/1
            else:
                np.copyto(hidx, j, where=better)
        # across window rows: y = max_i hm[:, :, i], argmax = i*pw + hidx[winning i]
        yp, ap = y[lo:hi], argmax[lo:hi]
        bv = scratch(("pool_bv",), (m, oh, ow, c), np.bool_)
        t = scratch(("pool_t",), (m, oh, ow, c), np.int32)
        np.copyto(yp, hm[:, :, 0])
        np.copyto(ap, hidx[:, :, 0])
        for i in range(1, ph):
            row = hm[:, :, i]
            np.greater(row, yp, out=bv)
            np.maximum(yp, row, out=yp)
            # ap = where(bv, i*pw + hidx_i, ap), as ap += bv * (i*pw + hidx_i - ap)
            np.add(hidx[:, :, i], i * pw, out=t)
            np.subtract(t, ap, out=t)
            np.multiply(t, bv, out=t)
            np.add(ap, t, out=ap)

    with ops_region:
        parallel(n, part, _min_items(h * w * c))
    return y, argmax


def _pool2x2_part(t6, yp, ap):
    """The 2x2 case of maxpool_forward_tiled's part, in 11 NumPy calls:

    left/right within each window row (strict >), then top/bottom row
    (strict >); argmax = bv ? 2 + bh_bottom : bh_top with bh, bv the 0/1
    "second one was bigger" flags, done in int8 on the flags' bytes."""
    m, oh, _, ow, _, c = t6.shape
    left, right = t6[:, :, :, :, 0, :], t6[:, :, :, :, 1, :]
    bh = scratch(("pool_better",), (m, oh, 2, ow, c), np.bool_)
    hm = scratch(("pool_hm",), (m, oh, 2, ow, c), yp.dtype)
    np.greater(right, left, out=bh)
    np.maximum(left, right, out=hm)
    bv = scratch(("pool_bv",), (m, oh, ow, c), np.bool_)
    np.greater(hm[:, :, 1], hm[:, :, 0], out=bv)
    np.maximum(hm[:, :, 0], hm[:, :, 1], out=yp)
    b8 = bh.view(np.int8)
    top, bot = b8[:, :, 0], b8[:, :, 1]
    t8 = scratch(("pool_t8",), (m, oh, ow, c), np.int8)
    np.subtract(bot, top, out=t8)
    np.add(t8, 2, out=t8)
    np.multiply(t8, bv.view(np.int8), out=t8)
    np.add(t8, top, out=t8)
    np.copyto(ap, t8)


def maxpool_backward_tiled(dy, argmax, x_shape, pool):
    """dx for maxpool_forward_tiled: each window offset is written once, as
    dy where argmax picked it and 0 elsewhere; uncovered rows/cols are 0."""
    n, h, w, c = x_shape
    ph, pw = pool
    oh, ow = dy.shape[1], dy.shape[2]
    dx = fresh(x_shape, dy.dtype)
    if _nb.usable(dy) and argmax.dtype == np.int32 and argmax.flags.c_contiguous:
        _nb.set_threads(num_threads())
        _nb.pool_backward(dy, argmax, ph, pw, dx)
        return dx

    def part(lo, hi, p):
        dxs = dx[lo:hi]
        if oh * ph < h:
            dxs[:, oh * ph:] = 0
        if ow * pw < w:
            dxs[:, :oh * ph, ow * pw:] = 0
        t6 = _tiles(dxs, ph, pw, oh, ow)
        eq = scratch(("pool_eq",), (hi - lo, oh, ow, c), np.bool_)
        dyp, ap = dy[lo:hi], argmax[lo:hi]
        for i in range(ph):
            for j in range(pw):
                np.equal(ap, i * pw + j, out=eq)
                np.multiply(dyp, eq, out=t6[:, :, i, :, j, :])

    with ops_region:
        parallel(n, part, _min_items(h * w * c))
    return dx


# ----------------------------------------------------------------------------
# optimizer
# ----------------------------------------------------------------------------
def rmsprop_update(param, grad, v, lr, rho, eps):
    """The reference's arithmetic in the same order (same bits), without temporaries."""
    dt = param.dtype.type
    if _nb.usable(param, grad, v):
        _nb.rmsprop(param, grad, v, dt(lr), dt(rho), dt(1 - rho), dt(eps))
        return
    t = scratch(("rms_t",), param.shape, param.dtype)
    np.multiply(grad, dt(1 - rho), out=t)  # (1-rho) g
    t *= grad                              # (1-rho) g g
    v *= dt(rho)
    v += t
    np.add(v, dt(eps), out=t)
    np.sqrt(t, out=t)                      # sqrt(v + eps)
    u = scratch(("rms_u",), param.shape, param.dtype)
    np.multiply(grad, dt(lr), out=u)       # lr g
    u /= t
    param -= u
