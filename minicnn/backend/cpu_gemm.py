"""Matrix products split over the CPU threads, for the ops' fast paths.

``gemm(a, b, out)`` computes ``out = a @ b`` with a's rows split into one part
per thread. :func:`compile_kernel_gemms` gives kernels that multiply inside
their own parallel loop one sgemm call on the calling thread.

With Numba and NumPy's bundled OpenBLAS, each part is one call of OpenBLAS's
own ``cblas_sgemm`` made from a Numba ``prange``: the GEMMs run on the same
threads as the compiled kernels (one pool, no GIL, no Python thread to wake;
two pools, Numba's and ours, were measured to slow each other's GEMMs by a
third). Otherwise each part is an ``np.matmul`` on our Python thread pool.
Either way OpenBLAS itself is held at one thread (:mod:`cpu_threads`).
"""
import ctypes
import types

import numpy as np

from . import cpu_threads

ROW_MAJOR, AS_IS, TRANSPOSED = 101, 111, 112   # the CBLAS enum values
MIN_PART_MACS = 1 << 21   # multiply-adds that make a part worth its own thread


def find_sgemm():
    """(address, 64-bit ints?) of NumPy's own OpenBLAS cblas_sgemm, or None."""
    for path in cpu_threads.openblas_paths():
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


def compile_gemm_parts(numba):
    """A compiled ``parts(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc)``:
    one row-major sgemm per part on all threads, C_p (ms[p] x n) = op(A_p) @
    op(B_p) with K = ks[p]; or None without a usable cblas_sgemm."""
    global _SGEMM64, _SGEMM32
    found = find_sgemm()
    if found is None:
        return None
    import llvmlite.binding as llvm
    from numba.core import types as t
    address, wide = found

    def declare(name, it):
        # an external symbol (not a ctypes pointer): the compiled caller can be
        # cached on disk; pointers travel as integers
        return t.ExternalFunction(name, t.void(t.int32, t.int32, t.int32, it, it, it, t.float32,
                                               t.intp, it, t.intp, it, t.float32, t.intp, it))
    name = "minicnn_cblas_sgemm64" if wide else "minicnn_cblas_sgemm32"
    llvm.add_symbol(name, address)
    # module globals, frozen into the function when Numba compiles it; one
    # function per integer width, so their disk caches never mix
    if wide:
        _SGEMM64 = declare(name, t.int64)
        body = _parts64
    else:
        _SGEMM32 = declare(name, t.int32)
        body = _parts32
    return numba.njit(parallel=True, nogil=True, cache=True)(
        _with_prange(body, numba.prange))


_SGEMM64 = _SGEMM32 = None
_ONE, _ZERO = np.float32(1), np.float32(0)
prange = range


def _parts64(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc):
    for p in prange(ms.shape[0]):
        _SGEMM64(ROW_MAJOR, ta, tb, ms[p], n, ks[p], _ONE, a_ptrs[p], lda, b_ptrs[p], ldb,
                 _ZERO, c_ptrs[p], ldc)


def _parts32(ta, tb, ms, n, ks, a_ptrs, lda, b_ptrs, ldb, c_ptrs, ldc):
    for p in prange(ms.shape[0]):
        _SGEMM32(ROW_MAJOR, ta, tb, ms[p], n, ks[p], _ONE, a_ptrs[p], lda, b_ptrs[p], ldb,
                 _ZERO, c_ptrs[p], ldc)


def compile_kernel_gemms(numba):
    """``{'gemm_nn': ..., 'gemm_tn': ...}``: Numba versions of minicnn.ops.common's
    products for kernels that multiply inside their own parallel loop (one row-major
    cblas_sgemm on the calling thread, which is then one of Numba's threads), or None
    without a usable cblas_sgemm. Call after :func:`compile_gemm_parts` (it declares sgemm)."""
    sgemm = _SGEMM64 if _SGEMM64 is not None else _SGEMM32
    if sgemm is None:
        return None
    out = {}
    for name, body in (("gemm_nn", _gemm_nn), ("gemm_tn", _gemm_tn)):
        scope = dict(body.__globals__, SGEMM=sgemm)
        fn = types.FunctionType(body.__code__, scope, name)
        out[name] = numba.njit(nogil=True, cache=True, inline="always")(fn)
    return out


SGEMM = None   # the declared cblas_sgemm, frozen into the functions below when they compile


def _gemm_nn(a, b, out):
    SGEMM(ROW_MAJOR, AS_IS, AS_IS, out.shape[0], out.shape[1], a.shape[1], _ONE, a.ctypes.data,
          a.shape[1], b.ctypes.data, b.shape[1], _ZERO, out.ctypes.data, out.shape[1])


def _gemm_tn(a, b, out):
    SGEMM(ROW_MAJOR, TRANSPOSED, AS_IS, out.shape[0], out.shape[1], a.shape[0], _ONE, a.ctypes.data,
          a.shape[1], b.ctypes.data, b.shape[1], _ZERO, out.ctypes.data, out.shape[1])


def _with_prange(fn, prange_):
    """``fn`` reading Numba's prange (its module binds plain range)."""
    g = fn.__globals__  # the module's own globals: _SGEMM64/32 as set above
    scope = dict(g, prange=prange_)
    out = types.FunctionType(fn.__code__, scope, fn.__name__)
    out.__qualname__, out.__module__ = fn.__qualname__, fn.__module__
    return out


def _operand(v):
    """(transpose flag, leading dimension) of a 2-D view for row-major cblas,
    or None when neither v nor v.T is C-contiguous."""
    if v.flags.c_contiguous:
        return AS_IS, v.shape[1]
    if v.T.flags.c_contiguous:
        return TRANSPOSED, v.shape[0]
    return None


def _min_rows(a, b):
    return max(1, -(-MIN_PART_MACS // max(1, a.shape[1] * b.shape[1])))


def gemm(runtime, a, b, out):
    """out = a @ b (2-D), a's rows split over the threads, one GEMM per part."""
    m = a.shape[0]
    oa, ob = _operand(a), _operand(b)
    if runtime.gemm_parts is not None and a.dtype == b.dtype == out.dtype == np.float32 \
            and out.flags.c_contiguous and oa and ob:
        parts = cpu_threads.plan(m, _min_rows(a, b))[1]
        bounds = np.array(cpu_threads.split(m, parts), dtype=np.int64)
        lo, hi = bounds[:, 0], bounds[:, 1]
        row_bytes = oa[1] * 4 if oa[0] == AS_IS else 4   # from one row of op(a) to the next
        runtime.set_numba_threads()
        runtime.gemm_parts(oa[0], ob[0], hi - lo, b.shape[1], np.full(parts, a.shape[1], np.int64),
                           a.ctypes.data + lo * row_bytes, oa[1],
                           np.full(parts, b.ctypes.data, np.int64), ob[1],
                           out.ctypes.data + lo * out.shape[1] * 4, out.shape[1])
        return out

    def part(lo, hi, p):
        np.matmul(a[lo:hi], b, out=out[lo:hi])

    cpu_threads.parallel(m, part, _min_rows(a, b))
    return out
