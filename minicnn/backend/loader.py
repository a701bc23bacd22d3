"""One loader for the CUDA kernels, whatever runs them.

``kernels/<name>.cu`` is compiled either by CuPy (NVRTC, for a real GPU) or by
the CPU emulator (g++); both give an object with ``get_function(kernel)``
returning a callable ``fn(grid, block, args, shared_mem=0)``. Modules are
cached per (name, target) for the life of the process.

Example::

    >>> from minicnn.backend.loader import load_module
    >>> mod = load_module('softmax_xent', 'emulator')
    >>> fn = mod.get_function('accuracy_count')
"""
import threading
from pathlib import Path

# minicnn/kernels: in a checkout a symlink to the top-level kernels/ folder, in
# an installed wheel a real folder (setuptools copies what the link points to).
KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"

# Options for NVRTC. Kept minimal; CuPy adds the arch and its own defaults
# (-ftz=true, --device-as-default-execution-space, include paths).
CUDA_OPTIONS = ("--std=c++17",)

TARGETS = ("cupy", "emulator")

_modules = {}
_lock = threading.Lock()


def kernel_path(name):
    """Path of kernels/<name>.cu; FileNotFoundError listing the sources there."""
    path = KERNEL_DIR / f"{name}.cu"
    if not path.is_file():
        have = sorted(p.stem for p in KERNEL_DIR.glob("*.cu")) if KERNEL_DIR.is_dir() else []
        raise FileNotFoundError(f"no kernel source {path}; available: {', '.join(have) or 'none'}")
    return path


def _compile(name, target):
    path = kernel_path(name)
    if target == "cupy":
        import cupy  # lazy: the package must import without CuPy
        return cupy.RawModule(code=path.read_text(), options=CUDA_OPTIONS, name_expressions=None)
    from .emulator import RawModule
    return RawModule(path=path, options=CUDA_OPTIONS)


def load_module(name, target):
    """Compiled module for kernels/<name>.cu.

    target 'cupy' -> ``cupy.RawModule(code=src, options=CUDA_OPTIONS)``;
    target 'emulator' -> :class:`minicnn.backend.emulator.RawModule` for the
    same file. Cached per (name, target) per process.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, received {target!r}")
    key = (name, target)
    with _lock:
        if key not in _modules:
            _modules[key] = _compile(name, target)
        return _modules[key]
