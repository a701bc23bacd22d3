"""The CPU as a device: ONE runtime object for threads, BLAS, memory and compiled kernels.

The ops' CPU fast paths ask :func:`runtime` for everything that is about the
machine rather than the math:

- ``threads`` / ``set_threads(n)``: how many threads the ops split work over
  ($MINICNN_NUM_THREADS, default the CPUs this process may use, at most 8);
- ``parallel(n, fn)``: ``fn(lo, hi, part)`` over contiguous parts of range(n)
  on the Python worker pool (:mod:`cpu_threads`); ``one_blas_thread``: a
  context holding OpenBLAS at one thread while an op splits the work itself;
- ``scratch``: reused memory (:mod:`cpu_scratch`);
- ``kernels``: whether compiled kernels run (Numba installed, $MINICNN_NUMBA
  not 0); ``compile(fn)`` turns an op's plain-Python kernel (written with
  ``prange`` for its parallel loop, ``thread_id`` for its core, ``gemm_nn`` /
  ``gemm_tn`` for one sgemm on that core) into a Numba function, cached on disk;
  ``gemm``: a matrix product split over the threads (:mod:`cpu_gemm`).

Nothing here knows any op. Example::

    >>> from minicnn.backend.cpu import runtime
    >>> cpu = runtime()
    >>> buf = cpu.scratch("my-op", (64, 576), "float32")
"""
import hashlib
import marshal
import os
import threading
import types

import numpy as np

from .. import config
from . import cpu_gemm, cpu_malloc, cpu_scratch, cpu_threads


class CpuRuntime:
    """Threads, BLAS scoping, scratch memory and compiled kernels of this process."""

    def __init__(self):
        self.malloc_tuned = cpu_malloc.tune()   # a step's big arrays reused, not faulted in again
        self.numba = _import_numba()
        self.kernels = self.numba is not None
        self.gemm_parts = self.kernel_gemms = None
        if self.kernels and config.get("MINICNN_NUMBA_GEMM"):
            self.gemm_parts = cpu_gemm.compile_gemm_parts(self.numba)
        # a kernel's gemm_nn / gemm_tn (minicnn.ops.common), compiled: one sgemm per call
        self.kernel_gemms = cpu_gemm.compile_kernel_gemms(self.numba) if self.gemm_parts else None
        self._compiled = {}               # plain kernel -> compiled kernel
        self._parts = {}                  # plain function a kernel calls -> its Numba function
        self._numba_threads = threading.local()
        self.one_blas_thread = cpu_threads.ops_region
        self.scratch = cpu_scratch.scratch

    # -- threads ---------------------------------------------------------------
    @property
    def threads(self):
        return cpu_threads.num_threads()

    def set_threads(self, n):
        cpu_threads.set_num_threads(n)

    def parallel(self, n, fn, min_per_part=1):
        """Run ``fn(lo, hi, part)`` over contiguous parts of range(n); returns the part count."""
        return cpu_threads.parallel(n, fn, min_per_part)

    def plan(self, n, min_per_part=1):
        return cpu_threads.plan(n, min_per_part)

    # -- compiled kernels ----------------------------------------------------------
    def uses_kernels(self, *arrays):
        """Compiled kernels take C-contiguous float32 arrays (float64 runs the reference)."""
        return (self.kernels and config.get("MINICNN_CPU_FAST")
                and all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays))

    def compile(self, kernel):
        """``kernel`` (a plain Python function whose parallel loop is ``prange``)
        compiled by Numba, once; calls run on ``threads`` threads. The plain functions
        of its package that it calls (its parts: one job each, such as one image's
        pooling, shared by the kernels of two ops) are compiled with it."""
        compiled = self._compiled.get(kernel)
        if compiled is None:
            parallel = "prange" in kernel.__code__.co_names  # a serial kernel stays serial
            compiled = self._compiled[kernel] = _Kernel(self, self._jit(kernel, parallel))
        return compiled

    def _jit(self, fn, parallel):
        # the kernel's module binds prange = range (readable, runs as plain
        # Python); compiled, the same code sees Numba's parallel prange
        given = dict(prange=self.numba.prange, thread_id=self.numba.get_thread_id)
        names = fn.__code__.co_names
        if "gemm_nn" in names or "gemm_tn" in names:
            if self.kernel_gemms is None:
                raise RuntimeError(f"{fn.__name__} multiplies with BLAS's sgemm, which was "
                                   "not found (check runtime().kernel_gemms first)")
            given.update(self.kernel_gemms)
        scope = dict(fn.__globals__, **given)
        package = fn.__module__.rpartition(".")[0]
        for name in names:   # the kernel's parts: plain functions of its package (minicnn.ops)
            part = fn.__globals__.get(name)
            if name not in given and isinstance(part, types.FunctionType) and part is not fn \
                    and part.__module__.rpartition(".")[0] == package:
                if part not in self._parts:
                    self._parts[part] = self._jit(part, parallel=False)
                scope[name] = self._parts[part]
        plain = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__)
        plain.__module__, plain.__doc__ = fn.__module__, fn.__doc__
        plain.__qualname__ = fn.__qualname__ + parts_stamp(fn, scope)
        return self.numba.njit(parallel=parallel, nogil=True, cache=True, fastmath=False,
                               error_model="numpy")(plain)

    def set_numba_threads(self):
        """Numba's thread count is per calling thread: set it for this one."""
        n = self.threads
        if getattr(self._numba_threads, "n", None) != n:
            self.numba.set_num_threads(max(1, min(n, self.numba.config.NUMBA_NUM_THREADS)))
            self._numba_threads.n = n

    def gemm(self, a, b, out):
        """out = a @ b with a's rows split over the threads."""
        return cpu_gemm.gemm(self, a, b, out)

    def clear(self):
        """Drop reused memory (this thread's scratch)."""
        cpu_scratch.clear()


def parts_stamp(fn, scope):
    """"" for a kernel without parts, else "_" + a digest of its parts' code (theirs included).

    Numba's disk cache knows a compiled kernel by its file's time stamp and its name, and
    does not look at the functions it calls: a part edited in another file would leave the
    cached kernel stale. The digest in the kernel's name gives it a new cache entry instead."""
    parts = sorted((name, part) for name, part in scope.items()
                   if name in fn.__code__.co_names and hasattr(part, "py_func"))
    if not parts:
        return ""
    digest = hashlib.sha1()
    for name, part in parts:
        digest.update(name.encode() + marshal.dumps(part.py_func.__code__)
                      + part.py_func.__qualname__.encode())   # the part's own parts' digest
    return "_" + digest.hexdigest()[:12]


class _Kernel:
    """A compiled kernel that runs on the runtime's thread count in any calling thread."""

    def __init__(self, runtime, jitted):
        self.runtime = runtime
        self.jitted = jitted

    def __call__(self, *args):
        self.runtime.set_numba_threads()
        return self.jitted(*args)


# How long Numba's OpenMP workers (GNU libgomp) spin waiting for the next parallel loop
# before they sleep. libgomp's default, 300,000 spins, is about a millisecond per pause: with
# another process busy on one of two cores, that spinning made the step 1.4-1.6x the
# one-thread step; 1,000 spins gave 1.06x, the quiet step unchanged (benchmarks/RESULTS.md).
# Set before libgomp loads (it reads its environment then); a value already set wins.
GOMP_SPINCOUNT = "1000"


def _import_numba():
    """Numba, or None when it is not installed, refused, or turned off."""
    if not config.get("MINICNN_NUMBA"):
        return None
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    try:
        import numba
    except Exception:  # not installed, or refusing this NumPy: the reference code runs
        return None
    return numba


_runtime = None
_runtime_lock = threading.Lock()


def runtime():
    """The process's CPU runtime (made on first use)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = CpuRuntime()
    return _runtime


def _after_fork_in_child():
    # Numba's OpenMP threads do not survive fork(): a child that used them
    # would hang, so a forked child runs without compiled kernels
    if _runtime is not None:
        _runtime.kernels = False
        _runtime.gemm_parts = _runtime.kernel_gemms = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
