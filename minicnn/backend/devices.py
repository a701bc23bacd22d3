"""The devices the ops run on: arrays, transfers and (for CUDA) kernel launches. No math.

- :class:`CpuDevice`: NumPy arrays; the ops' CPU paths get threads, memory
  and compiled kernels from :func:`minicnn.backend.cpu.runtime`.
- :class:`CudaDevice`: our kernels in ``kernels/*.cu``, on CuPy arrays on a
  GPU (target ``'cupy'``), or the very same text compiled by g++ and run on
  NumPy arrays by the emulator (target ``'emulator'``): one launch path for
  both, so the tests prove the GPU code without a GPU.

An op asks ``device.kind`` ('cpu' or 'cuda') which version to run; the
layers above never do.
"""
import math
import threading

import numpy as np

INT32_LIMIT = 2 ** 31 - 1   # kernels index with 32-bit ints
BLOCK_1D = 256              # threads per block of one-thread-per-element kernels
MAX_GRID_X = 65535          # grid cap of grid-stride kernels (any grid is correct)


class CpuDevice:
    """NumPy arrays on the CPU."""

    kind = "cpu"
    name = "numpy"

    def __init__(self):
        self.xp = np

    def asarray(self, a, dtype="float32"):
        """A C-contiguous NumPy array of ``a`` (float32 unless ``dtype`` says)."""
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype="float32"):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)

    def copy(self, dst, src):
        """Copy ``src`` into ``dst`` (same shape), no allocation."""
        np.copyto(dst, src)

    def clone(self, a):
        """A new array holding ``a``."""
        return a.copy()


class CudaDevice:
    """Our CUDA kernels on ``xp`` arrays: ``cupy`` on a GPU, or ``numpy`` in the emulator."""

    kind = "cuda"

    def __init__(self, xp, target):
        if target not in ("cupy", "emulator"):
            raise ValueError(f"CudaDevice: unknown target {target!r}; expected 'cupy' or 'emulator'")
        self.xp = xp
        self.target = self.name = target
        self._functions = {}   # (module, kernel) -> launchable function
        self._lock = threading.Lock()
        self.recording = None  # a step_plan.Recording while a step plan records (else None)

    def __repr__(self):
        return f"CudaDevice(xp={self.xp.__name__}, target={self.target!r})"

    # -- arrays ------------------------------------------------------------------
    def asarray(self, a, dtype="float32"):
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a):
        """``a`` as a NumPy array (a device-to-host copy on the GPU)."""
        return self.xp.asnumpy(a) if self.target == "cupy" else np.asarray(a)

    def empty(self, shape, dtype="float32"):
        a = self.xp.empty(shape, dtype=dtype)
        if self.recording is not None:   # a buffer of the recorded step (its arena)
            self.recording.allocated(a)
        return a

    def zeros(self, shape, dtype="float32"):
        if self.recording is None:
            return self.xp.zeros(shape, dtype=dtype)
        a = self.empty(shape, dtype)
        self.recording.fill(a, 0)   # a replay clears it again: a memset in the plan
        return a

    def copy(self, dst, src):
        """Copy device array ``src`` into ``dst`` (same shape; a device-to-device copy, which
        a step plan records)."""
        if self.recording is None:
            self.xp.copyto(dst, src)
        else:
            self.recording.copy(dst, src)

    def clone(self, a):
        """A new array holding device array ``a`` (made and filled through the seam, so that a
        step plan records both)."""
        out = self.empty(a.shape, a.dtype)
        self.copy(out, a)
        return out

    def matmul(self, a, b, out=None):
        """``a @ b`` of two 2-D float32 arrays (a cuBLAS GEMM; views such as ``x.T`` are
        read in place), into ``out`` when given (e.g. a view of a model's flat gradient
        buffer): the one way the ops multiply matrices, so a step plan sees it."""
        if self.recording is None:
            return self.xp.matmul(a, b, out=out)
        if out is None:
            out = self.empty((a.shape[0], b.shape[1]), np.result_type(a.dtype, b.dtype))
        self.recording.gemm(a, b, out)
        return out

    def take_rows(self, src, idx, out):
        """``out[i] = src[idx[i]]`` for device arrays (a device-side gather of batch rows into
        ``out``, no allocation): how fit takes a batch of a training set kept on the device."""
        self.xp.take(src, idx, axis=0, out=out)

    def upload(self, dst, host):
        """Copy host array ``host`` into device array ``dst`` (same shape; no allocation)."""
        if self.target == "cupy":
            dst.set(np.ascontiguousarray(host, dtype=dst.dtype))
        else:
            np.copyto(dst, host, casting="unsafe")

    def constant(self, host, dtype="float32"):
        """A new device array holding host array ``host``: a small table a kernel reads (a
        dropout mask's layout). A step plan holds it as one of its buffers, filled once,
        with its values part of the recorded work (other values: another step)."""
        host = np.ascontiguousarray(host, dtype=dtype)
        a = self.empty(host.shape, dtype)
        self.upload(a, host)
        if self.recording is not None:
            self.recording.constant(a, host)
        return a

    def require(self, op, name, a, dtype=np.float32):
        """Refuse an array the kernels cannot read: another device's, another
        dtype (the CUDA path computes in float32 only), or not C-contiguous."""
        if not isinstance(a, self.xp.ndarray):
            raise TypeError(f"{op}: {name} must be a {self.xp.__name__} array on the '{self.target}' "
                            f"backend, got {type(a).__module__}.{type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{op}: {name} must be {np.dtype(dtype).name} (the CUDA backend computes "
                            f"in float32 only; labels too), got {a.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (kernels read it row-major); "
                             f"pass xp.ascontiguousarray({name})")
        if a.size > INT32_LIMIT:
            raise ValueError(f"{op}: {a.size} elements exceed the kernels' 32-bit indexing "
                             f"(at most {INT32_LIMIT}); use smaller batches")
        return a

    # -- launches ------------------------------------------------------------------
    def function(self, module, kernel):
        """Kernel ``kernel`` of ``kernels/<module>.cu``, loaded once."""
        key = (module, kernel)
        fn = self._functions.get(key)
        if fn is None:
            from . import loader  # late: pulls in CuPy or g++ only when used
            with self._lock:
                fn = self._functions[key] = loader.load_module(module, self.target).get_function(kernel)
        return fn

    def launch(self, op, module, kernel, grid, block, args):
        """Launch ``module.kernel`` after checking the configuration and every
        argument's type; any failure names the op, kernel and configuration."""
        where = f"{op}: kernel {module}.{kernel} (grid={grid}, block={block})"
        if math.prod(block) > 1024 or min(block) < 1:
            raise ValueError(f"{where}: a block holds 1 to 1024 threads")
        if not (1 <= grid[0] <= INT32_LIMIT and 1 <= grid[1] <= 65535 and 1 <= grid[2] <= 65535):
            raise ValueError(f"{where}: grid out of range")
        for i, a in enumerate(args):
            if isinstance(a, self.xp.ndarray):
                if a.dtype not in (np.float32, np.int32) or not a.flags.c_contiguous:
                    raise TypeError(f"{where}: argument {i} must be a C-contiguous float32/int32 "
                                    f"array, got {a.dtype} contiguous={a.flags.c_contiguous}")
            elif not isinstance(a, (np.int32, np.float32)):
                # CuPy would pass a Python int as int64 and a float as float64,
                # which a kernel's int/float parameter silently misreads
                raise TypeError(f"{where}: argument {i} must be an array, np.int32 or np.float32, "
                                f"got {type(a).__name__}")
        fn = self.function(module, kernel)
        args = tuple(args)
        try:
            fn(grid, block, args)
        except Exception as e:
            raise _with_context(e, f"{where} failed: {type(e).__name__}: {e}") from e
        if self.recording is not None:
            self.recording.launched(fn, grid, block, args)


def grid_1d(total, block=BLOCK_1D):
    """Blocks of a grid-stride kernel over ``total`` items (at least one)."""
    return (max(1, min(-(-total // block), MAX_GRID_X)), 1, 1)


def _with_context(error, message):
    """``error``'s class with ``message`` (callers can still catch e.g. the
    emulator's RaceError), or a RuntimeError when that class needs other
    constructor arguments (CuPy's CUDA errors take a status code)."""
    try:
        return type(error)(message)
    except Exception:
        return RuntimeError(message)
