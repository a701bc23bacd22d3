"""Both CPU cores for the NumPy backend: a tiny worker pool and BLAS thread control.

NumPy releases the GIL inside its loops and inside BLAS, so Python threads
that each run NumPy calls on their own slice of the batch really do run in
parallel. :func:`parallel` splits ``range(n)`` into one contiguous part per
thread, runs part 0 in the calling thread and the others on persistent worker
threads, and returns when every part is done.

Why not let OpenBLAS use both cores instead? Measured on a 2-core machine:
after each multi-threaded GEMM, OpenBLAS's worker threads keep spinning for a
while and take the second core away from the memory-bound work (im2col,
pooling, ReLU) that makes up half of a training step. So while an op of ours
runs, :func:`ops_region` holds OpenBLAS at one thread per caller, and the
parallelism comes from splitting the batch here, for the GEMMs and the
memory-bound work alike. The user's own NumPy code outside our ops keeps
whatever BLAS threading it had.

Determinism: the split depends only on ``n`` and the thread count, and every
reduction over parts (weight gradients, bias gradients) is summed in part
order, so a run gives the same bits every time on the same machine.

Settings: ``MINICNN_NUM_THREADS`` (default: the CPUs this process may use,
at most 8) and :func:`set_num_threads`. With one thread everything runs in the
caller, in the same part order.
"""
import _thread
import ctypes
import itertools
import os
import threading

_MAX_DEFAULT_THREADS = 8


def _default_threads():
    env = os.environ.get("MINICNN_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"MINICNN_NUM_THREADS must be a positive int, got {env!r}") from None
        if n < 1:
            raise ValueError(f"MINICNN_NUM_THREADS must be a positive int, got {env!r}")
        return n
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _MAX_DEFAULT_THREADS))


# ----------------------------------------------------------------------------
# BLAS threads: one per caller while our ops run
# ----------------------------------------------------------------------------
class _Blas:
    """Get/set OpenBLAS's thread count through its C API (found with threadpoolctl).

    We call ``openblas_set_num_threads`` ourselves rather than through
    threadpoolctl's ``set_num_threads``, which ignores calls from any thread
    but the first one that used it. Without threadpoolctl the library is found
    in /proc/self/maps (Linux); with another BLAS (MKL, Accelerate) this does
    nothing and BLAS keeps its own threading."""

    def __init__(self):
        self._get = self._set = None
        self._fns = []
        for path in self._openblas_paths():
            try:
                fns = self._find(ctypes.CDLL(path))
            except OSError:
                continue
            if fns:
                self._fns.append(fns)

    @staticmethod
    def _openblas_paths():
        """Paths of the OpenBLAS libraries loaded in this process (pthreads builds)."""
        import numpy  # noqa: F401  (loads NumPy's BLAS)
        try:
            from threadpoolctl import ThreadpoolController
            return [c.filepath for c in ThreadpoolController().lib_controllers
                    if c.internal_api == "openblas" and getattr(c, "threading_layer", "") != "openmp"]
        except ImportError:
            pass
        # no threadpoolctl: on Linux the loaded libraries are listed in /proc/self/maps
        paths = []
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    path = line.split()[-1] if line.strip() else ""
                    name = os.path.basename(path)
                    if "openblas" in name and ".so" in name and path not in paths:
                        paths.append(path)
        except OSError:
            pass
        return paths

    @staticmethod
    def _find(dll):
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                try:
                    get = getattr(dll, f"{prefix}openblas_get_num_threads{suffix}")
                    set_ = getattr(dll, f"{prefix}openblas_set_num_threads{suffix}")
                except AttributeError:
                    continue
                get.restype = ctypes.c_int
                get.argtypes = []
                set_.restype = None
                set_.argtypes = [ctypes.c_int]
                return get, set_
        return None

    @property
    def controllable(self):
        return bool(self._fns)

    def limit_to_one(self):
        """Set every OpenBLAS to 1 thread; returns what to pass to restore()."""
        saved = []
        for get, set_ in self._fns:
            n = get()
            if n != 1:
                set_(1)
            saved.append(n)
        return saved

    def restore(self, saved):
        for (get, set_), n in zip(self._fns, saved):
            if n != 1:
                set_(n)


_blas = None


def _get_blas():
    global _blas
    if _blas is None:
        _blas = _Blas()
    return _blas


class _OpsRegion:
    """Context: OpenBLAS at one thread while an op runs (nestable, per process)."""

    def __init__(self):
        self._depth = 0
        self._saved = None
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = _get_blas().limit_to_one() if LIMIT_BLAS else []
            self._depth += 1

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                _get_blas().restore(self._saved)
                self._saved = None
        return False


LIMIT_BLAS = True  # False: leave OpenBLAS's threads alone inside our ops (for experiments)
ops_region = _OpsRegion()


# ----------------------------------------------------------------------------
# the worker pool
# ----------------------------------------------------------------------------
class _Worker:
    """One persistent thread that runs ``fn(part)`` each time it is started."""

    def __init__(self, part):
        self.part = part
        self.go = _thread.allocate_lock()
        self.go.acquire()
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.fn = None
        self.error = None
        self.thread = threading.Thread(target=self._loop, name=f"minicnn-cpu-{part}", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.go.acquire()
            fn = self.fn
            try:
                fn(self.part)
            except BaseException as e:  # handed back to the caller
                self.error = e
            self.done.release()

    def start(self, fn):
        self.fn = fn
        self.error = None
        self.go.release()

    def join(self):
        self.done.acquire()
        self.fn = None
        err, self.error = self.error, None
        return err


class _Pool:
    def __init__(self, threads):
        self.threads = threads
        self.workers = [_Worker(k) for k in range(1, threads)]
        self.busy = _thread.allocate_lock()  # one caller at a time; others run serially


_pools = {}  # thread count -> _Pool (kept, so switching counts back and forth is cheap)
_num_threads = None
_pool_lock = threading.Lock()


def num_threads():
    """How many threads the CPU ops split their work over."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def set_num_threads(n):
    """Use ``n`` threads (>= 1) in the CPU ops from now on."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int, got {n!r}")
    _num_threads = n


def _get_pool(threads):
    pool = _pools.get(threads)
    if pool is None:
        with _pool_lock:
            pool = _pools.get(threads)
            if pool is None:
                pool = _pools[threads] = _Pool(threads)
    return pool


def _after_fork_in_child():
    # threads do not survive fork(): the child builds its own pool on first use
    global _pools, _pool_lock
    _pools = {}
    _pool_lock = threading.Lock()
    ops_region.__init__()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def split(n, parts):
    """``parts`` contiguous (lo, hi) ranges covering range(n), sizes differing by at most 1."""
    q, r = divmod(n, parts)
    bounds, lo = [], 0
    for k in range(parts):
        hi = lo + q + (1 if k < r else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


# Parts per thread. The threads take parts in order as they come free, so
# with several parts each, a thread that starts late (a wake-up costs 50-150
# us in a VM) or runs on a core the host slows down would take fewer. Which
# part a thread runs varies; what each part computes does not. Measured on
# the book model, 2 or 3 were slower than 1: smaller GEMMs and more NumPy
# calls (each a chance to wait for the GIL) cost more than the balance gains.
PARTS_PER_THREAD = 1


def plan(n, min_per_part=1):
    """``(threads, parts)`` that :func:`parallel` uses for ``n`` items."""
    most = max(1, n // max(1, min_per_part))
    threads = max(1, min(num_threads(), most))
    if threads == 1:
        return 1, 1
    return threads, min(most, threads * PARTS_PER_THREAD)


def parallel(n, fn, min_per_part=1):
    """Run ``fn(lo, hi, part)`` over contiguous parts of range(n); returns the part count.

    Part ``k`` always covers the same range for the same ``n`` (and thread
    count), so per-part results combined in part order are bit-identical from
    run to run, whichever thread ran which part. Parts get at least
    ``min_per_part`` items; a single part runs in the caller. If the pool is
    already in use (an op called from another Python thread, or from inside a
    part), this call runs its parts one after another in the caller.
    """
    threads, parts = plan(n, min_per_part)
    bounds = split(n, parts)
    if parts == 1:
        fn(0, n, 0)
        return 1
    pool = _get_pool(threads)
    if not pool.busy.acquire(False):
        for k, (lo, hi) in enumerate(bounds):
            fn(lo, hi, k)
        return parts
    try:
        claim = itertools.count()  # next() is atomic under the GIL

        def run(_):
            for k in iter(claim.__next__, None):
                if k >= parts:
                    return
                lo, hi = bounds[k]
                fn(lo, hi, k)
        started = []
        try:
            for w in pool.workers:
                w.start(run)
                started.append(w)
            run(0)
        finally:
            errors = [w.join() for w in started]
        for e in errors:
            if e is not None:
                raise e
    finally:
        pool.busy.release()
    return parts
