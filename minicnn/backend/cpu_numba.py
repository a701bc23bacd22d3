"""Optional compiled kernels (Numba) for the CPU fast paths' memory-bound work.

NumPy runs every elementwise step as its own pass over memory, and strided
views of NHWC data (pooling windows, im2col/col2im) make it restart its inner
loop every C values; with many such passes per op, the memory-bound half of a
training step costs more than its GEMMs. These kernels do each of those ops
in ONE pass over memory, on all cores (``prange``; Numba's threads do not hold
the GIL), with the same arithmetic as the reference code in numpy_ops.py:

- bias + ReLU in place; ReLU backward with the bias gradient;
- max pooling whose windows tile the input, forward (the reference's strict
  ``>`` scan in row-major window order, so the same max and argmax, NaNs
  included) and backward;
- im2col (padding read as zeros, no padded copy) and col2im as a gather (each
  input cell sums its patch entries in the reference's (i, j) order: the
  same bits, no write conflicts between threads).

The GEMMs stay in NumPy/BLAS. Numba is optional: without it (or with
``MINICNN_NUMBA=0``) the NumPy fast paths run. Kernels compile on first use
(a few seconds, cached on disk) for float32 only: float64 (gradient checks)
takes the NumPy paths. Sums over the batch (the bias gradient) are taken in
fixed chunks and added in order, so results do not depend on the thread
count or schedule.
"""
import os
import threading

import numpy as np

from .. import config

_WANTED = config.get("MINICNN_NUMBA")  # a bad value raises here, not hidden below
try:
    if not _WANTED:
        raise ImportError("disabled by MINICNN_NUMBA=0")
    import numba
    from numba import njit, prange
    AVAILABLE = True
except Exception:  # not installed, or refusing this NumPy: the NumPy paths run
    numba = None
    AVAILABLE = False
GEMM = False

# The bias gradient is summed over this many fixed row chunks, then in order.
DB_CHUNKS = 16


def _find_sgemm():
    """(address, 64-bit ints?) of NumPy's own OpenBLAS cblas_sgemm, or None.

    Calling it from a Numba ``prange`` runs the convolutions' GEMMs on the
    same threads as the other kernels: one thread pool, no GIL, no Python
    thread to wake (two pools, Numba's spinning OpenMP threads and our Python
    workers, were measured to slow each other's GEMMs down by a third). Only
    NumPy's bundled (scipy-)OpenBLAS is looked for; with any other BLAS the
    GEMMs stay on the Python threads."""
    import ctypes
    try:
        from .cpu_threads import _Blas
        paths = _Blas._openblas_paths()
    except Exception:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, wide in (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True),
                           ("scipy_cblas_sgemm", False), ("cblas_sgemm", False)):
            fn = getattr(lib, name, None)
            if fn is not None:
                return ctypes.cast(fn, ctypes.c_void_p).value, wide
    return None


def _after_fork_in_child():
    # Numba's OpenMP thread pool does not survive fork(): a child that used
    # it would hang. Children take the NumPy paths instead.
    global AVAILABLE, GEMM
    AVAILABLE = GEMM = False


if AVAILABLE and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def usable(*arrays):
    """Kernels take C-contiguous float32 arrays (and compiled Numba)."""
    if not AVAILABLE:
        return False
    for a in arrays:
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            return False
    return True


# What set_threads() last asked for, per Python thread: Numba's thread count
# belongs to the calling thread (numba.set_num_threads sets it for the caller
# alone; any other thread still has the default, NUMBA_NUM_THREADS), so a
# count set from one thread must not count as set in another.
_threads_set = threading.local()


def set_threads(n):
    """Make the kernels this thread calls next use n Numba threads (at most
    what Numba started with). Cheap when nothing changes: one attribute look-up."""
    if AVAILABLE and getattr(_threads_set, "n", None) != n:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        _threads_set.n = n


if AVAILABLE:
    _jit = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
    _ONE = np.float32(1)   # float32 constants keep the arithmetic in float32
    _ZERO = np.float32(0)

    @njit(parallel=True, **_jit)
    def bias_relu(z2, bt, has_bias, relu):
        """z2 (R, L) in place: z += bt (one whole row of bias); then ReLU."""
        rows, width = z2.shape
        for r in prange(rows):
            for j in range(width):
                v = z2[r, j]
                if has_bias:
                    v = v + bt[j]
                if relu and v < 0:  # NaN stays NaN, like np.maximum(z, 0)
                    v = _ZERO
                z2[r, j] = v

    @njit(parallel=True, **_jit)
    def relu_backward(da2, a2, dz2, partial, relu):
        """dz = da * [a > 0] (or da), and per-chunk column sums of dz in partial."""
        rows, width = da2.shape
        chunks = partial.shape[0]
        for ch in prange(chunks):
            lo = ch * rows // chunks
            hi = (ch + 1) * rows // chunks
            for j in range(width):
                partial[ch, j] = _ZERO
            for r in range(lo, hi):
                for j in range(width):
                    if relu:
                        d = da2[r, j] * (_ONE if a2[r, j] > 0 else _ZERO)
                        dz2[r, j] = d
                    else:
                        d = da2[r, j]
                    partial[ch, j] += d

    @njit(parallel=True, **_jit)
    def pool_forward(x, ph, pw, y, arg):
        """Tiled max pooling: the reference's strict-> scan over the window in
        row-major order, vectorised over the channels (innermost loop)."""
        n, oh, ow, c = y.shape
        for nr in prange(n * oh):
            b = nr // oh
            r = nr % oh
            for q in range(ow):
                best = y[b, r, q]
                kk = arg[b, r, q]
                first = x[b, r * ph, q * pw]
                for ch in range(c):
                    best[ch] = first[ch]
                    kk[ch] = 0
                for i in range(ph):
                    for j in range(pw):
                        if i == 0 and j == 0:
                            continue
                        v = x[b, r * ph + i, q * pw + j]
                        k = i * pw + j
                        for ch in range(c):
                            if v[ch] > best[ch]:
                                best[ch] = v[ch]
                                kk[ch] = k

    @njit(parallel=True, **_jit)
    def pool_backward(dy, arg, ph, pw, dx):
        """dx cell = dy * [it was its window's argmax]; cells no window covers: 0."""
        n, h, w, c = dx.shape
        oh, ow = dy.shape[1], dy.shape[2]
        for nh in prange(n * h):
            b = nh // h
            hh = nh % h
            r = hh // ph
            i = hh % ph
            for ww in range(w):
                q = ww // pw
                j = ww % pw
                if r < oh and q < ow:
                    k = i * pw + j
                    for ch in range(c):
                        dx[b, hh, ww, ch] = dy[b, r, q, ch] * (_ONE if arg[b, r, q, ch] == k else _ZERO)
                else:
                    for ch in range(c):
                        dx[b, hh, ww, ch] = _ZERO

    @njit(parallel=True, **_jit)
    def im2col(x, kh, kw, sh, sw, top, left, oh, ow, col):
        """col (N*OH*OW, KH*KW*C) rows of patches; padded cells read as 0.
        With stride 1 along W and the window inside the row, a patch row's
        KW*C values are one contiguous run of x: copied in one loop."""
        n, h, w, c = x.shape
        run = kw * c
        for nr in prange(n * oh):
            b = nr // oh
            r = nr % oh
            xb = x[b].reshape(h, w * c)
            for q in range(ow):
                p = nr * ow + q
                w0 = q * sw - left
                for i in range(kh):
                    hh = r * sh + i - top
                    dst = col[p, i * run:(i + 1) * run]
                    if hh < 0 or hh >= h:
                        for t in range(run):
                            dst[t] = _ZERO
                    elif sw == 1 and w0 >= 0 and w0 + kw <= w:
                        src = xb[hh, w0 * c:w0 * c + run]
                        for t in range(run):
                            dst[t] = src[t]
                    else:
                        for j in range(kw):
                            ww = w0 + j
                            for ch in range(c):
                                dst[j * c + ch] = x[b, hh, ww, ch] if 0 <= ww < w else _ZERO

    @njit(parallel=True, **_jit)
    def col2im(dcol, kh, kw, sh, sw, top, left, oh, ow, dx):
        """dx = col2im(dcol), one image per thread at a time (no shared writes).

        Like the reference: a zeroed accumulator (the padded image), then the
        patches' entries added offset by offset, (i, j) in order, so each
        cell sums the same numbers in the same order (same bits); then the
        padding is cut off."""
        n, h, w, c = dx.shape
        hp = (oh - 1) * sh + kh
        wp = (ow - 1) * sw + kw
        for b in prange(n):
            acc = np.zeros((max(hp, top + h), max(wp, left + w), c), dtype=dx.dtype)
            for i in range(kh):
                for j in range(kw):
                    base = (i * kw + j) * c
                    for r in range(oh):
                        hh = r * sh + i
                        for q in range(ow):
                            src = dcol[(b * oh + r) * ow + q, base:base + c]
                            dst = acc[hh, q * sw + j]
                            for ch in range(c):
                                dst[ch] += src[ch]
            for hh in range(h):
                for ww in range(w):
                    for ch in range(c):
                        dx[b, hh, ww, ch] = acc[hh + top, ww + left, ch]

    # cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc),
    # declared to Numba as an external symbol (so the kernels that call it can
    # be cached on disk); pointers are passed as integers.
    _found = _find_sgemm() if config.get("MINICNN_NUMBA_GEMM") else None
    GEMM = _found is not None
    if GEMM:
        import llvmlite.binding as _llvm
        from numba.core import types as _t
        _WIDE = _found[1]
        _llvm.add_symbol("minicnn_cblas_sgemm64" if _WIDE else "minicnn_cblas_sgemm32", _found[0])

        def _decl(name, it):
            return _t.ExternalFunction(name, _t.void(_t.int32, _t.int32, _t.int32, it, it, it, _t.float32,
                                                     _t.intp, it, _t.intp, it, _t.float32, _t.intp, it))
        _sgemm64 = _decl("minicnn_cblas_sgemm64", _t.int64)
        _sgemm32 = _decl("minicnn_cblas_sgemm32", _t.int32)

        @njit(parallel=True, **_jit)
        def _gemm_parts64(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc):
            for p in prange(ms.shape[0]):
                _sgemm64(101, ta, tb, ms[p], n, ks[p], _ONE, a_ptrs[p], lda, b_ptrs[p], ldb,
                         _ZERO, c_ptrs[p], ldc)

        @njit(parallel=True, **_jit)
        def _gemm_parts32(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc):
            for p in prange(ms.shape[0]):
                _sgemm32(101, ta, tb, ms[p], n, ks[p], _ONE, a_ptrs[p], lda, b_ptrs[p], ldb,
                         _ZERO, c_ptrs[p], ldc)

        def gemm_parts(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc):
            """One row-major sgemm per part, the parts on all threads:
            C_p (ms[p] x n) = op(A_p) @ op(B_p) with K = ks[p] (111: as is, 112:
            transposed). The arrays behind the pointers must stay alive."""
            (_gemm_parts64 if _WIDE else _gemm_parts32)(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb,
                                                        c_ptrs, ldc)

    @njit(**_jit)
    def same_bits(a, b):
        """True when the two flat integer views hold the same values."""
        for i in range(a.shape[0]):
            if a[i] != b[i]:
                return False
        return True

    @njit(parallel=True, **_jit)
    def im2col_t(x, kh, kw, sh, sw, top, left, oh, ow, colt):
        """The transposed patch matrix colt (KH*KW*C, N*OH*OW): for small C
        (the first layer), each row is a run of output pixels."""
        n, h, w, c = x.shape
        for t in prange(kh * kw * c * n):
            kk = t // n
            b = t % n
            i = kk // (kw * c)
            j = (kk // c) % kw
            ch = kk % c
            row = colt[kk]
            for r in range(oh):
                hh = r * sh + i - top
                base = (b * oh + r) * ow
                for q in range(ow):
                    ww = q * sw + j - left
                    if 0 <= hh < h and 0 <= ww < w:
                        row[base + q] = x[b, hh, ww, ch]
                    else:
                        row[base + q] = _ZERO

    @njit(**_jit)
    def rmsprop(param, grad, v, lr, rho, one_minus_rho, eps):
        """The reference's float32 arithmetic, element by element, in one pass."""
        p = param.reshape(-1)
        g = grad.reshape(-1)
        vv = v.reshape(-1)
        for i in range(p.shape[0]):
            gi = g[i]
            t = one_minus_rho * gi
            t = t * gi
            vi = vv[i] * rho
            vi = vi + t
            vv[i] = vi
            s = np.sqrt(vi + eps)
            u = lr * gi
            p[i] = p[i] - u / s
