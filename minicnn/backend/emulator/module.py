"""RawModule: CuPy's RawModule interface over a g++-built library.

Example::

    >>> mod = RawModule(path='kernels/softmax_xent.cu')
    >>> fn = mod.get_function('accuracy_count')
    >>> fn((1,), (256,), (p, y, count, np.int32(rows), np.int32(cols)))
"""
import ctypes
import os
import threading
from pathlib import Path

from . import build, params
from .errors import BuildError, KernelNotFound
from .launch import Kernel


def _declare(lib):
    """ctypes prototypes of the runtime's C interface (emu_launch.h)."""
    lib.emu_launch.restype = ctypes.c_int
    lib.emu_launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_ulonglong, ctypes.c_int, ctypes.c_ulonglong, ctypes.c_double,
                               ctypes.c_int]
    lib.emu_error.restype = ctypes.c_char_p
    lib.emu_error.argtypes = []
    lib.emu_fault.restype = None
    lib.emu_fault.argtypes = [ctypes.c_void_p]
    lib.emu_static_shared_bytes.restype = ctypes.c_ulonglong
    return lib


class RawModule:
    """The kernels of one CUDA source, compiled for the CPU emulator.

    Same call shape as ``cupy.RawModule(code=..., options=...)``; ``path``
    here names a .cu source (CuPy's names a cubin). Only ``extern "C"``
    kernels can be fetched (``name_expressions`` is not supported). The
    library is built (or found in the cache) on the first get_function().

    Example::

        >>> mod = RawModule(code='extern "C" __global__ void k(int* y) { y[threadIdx.x] = 1; }')
        >>> y = np.zeros(4, np.int32); mod.get_function('k')(1, 4, (y,)); y
        array([1, 1, 1, 1], dtype=int32)
    """

    def __init__(self, code=None, *, path=None, options=(), name_expressions=None):
        if (code is None) == (path is None):
            raise TypeError("RawModule needs exactly one of code= (CUDA source) or path= (a .cu file)")
        if name_expressions:
            raise ValueError("the emulator runs extern \"C\" kernels only; name_expressions "
                             "(C++ template kernels) are not supported")
        self.source = Path(path).read_text() if path is not None else code
        self.source_name = str(Path(path).resolve()) if path is not None else "<string>"
        self.include_dirs = (str(Path(path).resolve().parent),) if path is not None else ()
        self.options = tuple(options)
        self._lib = None
        self.library_path = None
        self._kernels = None
        self._functions = {}
        self._lock = threading.Lock()

    @property
    def library(self):
        """The loaded ctypes library (built on first use)."""
        with self._lock:
            if self._lib is None:
                path, kernels = build.build_library(self.source, self.source_name, self.options,
                                                    self.include_dirs)
                self._lib = _declare(ctypes.CDLL(str(path), mode=os.RTLD_LOCAL))
                self.library_path, self._kernels = path, kernels
        return self._lib

    @property
    def kernel_names(self):
        """Names of the extern "C" kernels of the source."""
        self.library
        return sorted(self._kernels)

    def get_function(self, name):
        """The kernel ``name`` as a callable ``fn(grid, block, args, shared_mem=0)``."""
        if name not in self._functions:
            self._functions[name] = self._make_function(name)
        return self._functions[name]

    def _make_function(self, name):
        lib = self.library
        if name not in self._kernels:
            raise KernelNotFound(f"no extern \"C\" __global__ kernel named {name!r} in "
                                 f"{self.source_name}; it has: {', '.join(sorted(self._kernels)) or 'none'}")
        entry = ctypes.cast(getattr(lib, f"__emu_kernel_{name}"), ctypes.c_void_p).value
        describe = getattr(lib, f"__emu_params_{name}")
        describe.restype = ctypes.POINTER(ctypes.c_long)
        n = describe()[0]
        table = describe()[:2 + 3 * n]
        specs = params.specs_from_table(table, self._kernels[name].params)
        if len(self._kernels[name].params) != n:
            raise BuildError(f"kernel {name!r}: read {len(self._kernels[name].params)} "
                                 f"parameters from the source but the compiler sees {n}")
        return Kernel(self, name, entry, specs, self._max_threads(lib, name))

    @staticmethod
    def _max_threads(lib, name):
        """The kernel's __launch_bounds__ (evaluated by the compiler), else 1024."""
        try:
            bounds = getattr(lib, f"__emu_bounds_{name}")
        except AttributeError:
            return 1024
        bounds.restype = ctypes.c_long
        return int(bounds())
