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
import queue
import threading

from .. import config

_MAX_DEFAULT_THREADS = 8


def _default_threads():
    chosen = config.get("MINICNN_NUM_THREADS")
    if chosen:
        return chosen
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


def openblas_paths():
    """Paths of the (pthreads) OpenBLAS libraries loaded in this process."""
    return _Blas._openblas_paths()


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
# Ctrl-C: Python raises KeyboardInterrupt in the main thread, inside a
# blocking wait or between two bytecodes, so it can reach a caller of
# parallel() at any step: while it hands out jobs, in its own part, while it
# waits for the workers. The pool must come out of it whole: the interrupt
# goes on to the user only once no worker is still running a part of the
# op (the parts write into the op's arrays), and the next op finds every
# worker idle and its bookkeeping straight. So no step of the caller's may
# leave a state that a lost step would break:
#
# - a job is recorded on its worker before it is sent, and sending it twice
#   is harmless (a worker runs a job once), so should an interrupt come
#   between the two, the wait sends it;
# - waiting for a job takes nothing away (``with job.done: pass``), so a wait
#   cut short by an interrupt can simply be repeated, and a worker never
#   releases a lock twice: each job brings a fresh one;
# - the caller repeats the wait for all its jobs until they are done, and
#   only then raises the interrupt (_finish_all); should a second interrupt
#   hit the few bytecodes of that loop itself, the next call waits for any
#   job still running before it sends its own (_Worker.start);
# - the pool's busy flag is held by a ``with`` statement, which releases it
#   on every way out.
class _Job:
    """One worker's share of one :func:`parallel` call.

    ``done`` is locked from the start and released by the worker once it has
    run ``fn``: a new lock per job, released exactly once."""

    __slots__ = ("fn", "done", "error", "sent")

    def __init__(self, fn):
        self.fn = fn
        self.error = None
        self.sent = False  # surely in the worker's inbox
        self.done = _thread.allocate_lock()
        self.done.acquire()


class _Worker:
    """One persistent thread that runs the jobs sent to it, in order."""

    def __init__(self, part):
        self.part = part
        self.job = None  # the latest job (sent, or about to be)
        self.inbox = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name=f"minicnn-cpu-{part}", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            job = self.inbox.get()
            fn, job.fn = job.fn, None  # a copy of this job sent again finds None
            if fn is None:
                continue
            try:
                fn(self.part)
            except BaseException as e:  # handed back to the caller
                job.error = e
            job.done.release()

    def start(self, fn):
        """Send this worker a job that runs ``fn(part)``."""
        last = self.job
        if last is not None and last.done.locked():
            self.finish()  # a job of an interrupted earlier call may still be running: see above
        job = _Job(fn)
        self.job = job  # recorded before it is sent: finish() sends it if need be
        self.inbox.put(job)
        job.sent = True

    def finish(self):
        """Wait for the latest job to have run; returns its error, or None.

        Safe to repeat, and to call on a worker with no job running."""
        job = self.job
        if job is None:
            return None
        if not job.sent:  # an interrupt came between recording the job and sending it
            self.inbox.put(job)
            job.sent = True
        with job.done:  # waits until the worker has released it; takes nothing away
            pass
        err, job.error = job.error, None
        return err


def _finish_all(workers):
    """The workers' errors, once each has run its latest job.

    An interrupt (KeyboardInterrupt, or whatever another signal handler
    raises) does not cut this wait short: it is raised once all jobs are done.
    Nothing else can raise in here, so the loop ends."""
    interrupt = None
    while True:
        try:
            errors = [w.finish() for w in workers]
            break
        except BaseException as e:
            if interrupt is None:
                interrupt = e
    if interrupt is not None:
        raise interrupt
    return errors


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
    """Use ``n`` threads (>= 1) in the CPU ops from now on, whichever Python
    thread calls them (the Numba kernels apply it per calling thread)."""
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
    if pool.busy.locked():  # a call from inside a part, or another thread's op
        for k, (lo, hi) in enumerate(bounds):
            fn(lo, hi, k)
        return parts
    # (should another thread take the pool after that check, this waits for it)
    with pool.busy:
        claim = itertools.count()  # next() is atomic under the GIL

        def run(_):
            for k in iter(claim.__next__, None):
                if k >= parts:
                    return
                lo, hi = bounds[k]
                fn(lo, hi, k)
        try:
            for w in pool.workers:
                w.start(run)
            run(0)
        finally:
            errors = _finish_all(pool.workers)
        for e in errors:
            if e is not None:
                raise e
    return parts
