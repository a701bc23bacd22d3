"""The device side of the seam: which device the ops run on.

The math lives in :mod:`minicnn.ops`, one module per op family; each op asks
:func:`device` which version to run. Three backends:

- ``'numpy'``:    :class:`~minicnn.backend.devices.CpuDevice`, NumPy arrays; the
  ops' CPU paths (reference code, compiled kernels) run (default without a GPU).
- ``'cupy'``:     :class:`~minicnn.backend.devices.CudaDevice` on CuPy arrays: our
  CUDA kernels on the GPU (default when ``cupy.is_available()``).
- ``'emulator'``: the very same ``CudaDevice`` on NumPy arrays: the same
  ``kernels/*.cu`` text, compiled by g++ and run on CPU threads. The tests use
  it to prove the GPU path without a GPU.

Choose with ``set_backend(name)`` or the ``MINICNN_BACKEND`` setting. Example::

    >>> from minicnn import backend
    >>> backend.set_backend('numpy')
    >>> x = backend.asarray([[1, 2], [3, 4]])
    >>> backend.to_numpy(x).dtype
    dtype('float32')
"""
from .. import config
from ..naming import reset_names

BACKENDS = ("numpy", "cupy", "emulator")

_device = None
_name = None


def _gpu_usable():
    try:
        import cupy
    except ImportError:
        return False
    try:
        return bool(cupy.is_available())
    except Exception:  # a broken CUDA install counts as no GPU
        return False


def _make_device(name):
    from .devices import CpuDevice, CudaDevice
    if name == "numpy":
        return CpuDevice()
    if name == "cupy":
        # GPU, driver, cuBLAS, NVRTC: all looked for now, one error naming what
        # is missing (rather than an ImportError in the first matmul)
        from .cupy_check import load_cupy
        return CudaDevice(load_cupy(), "cupy")
    if name == "emulator":
        import numpy
        return CudaDevice(numpy, "emulator")
    raise ValueError(f"Unknown backend: {name!r}. Expected one of {BACKENDS}.")


def set_backend(name):
    """Select the backend for all following work: 'numpy', 'cupy' or 'emulator'.

    Arrays made under one backend are not converted: build and train a model
    under one backend. Example: ``backend.set_backend('emulator')``.
    """
    global _device, _name
    if not isinstance(name, str):
        raise TypeError(f"set_backend expects a string, got {type(name).__name__}: {name!r}")
    name = name.lower()
    _device = _make_device(name)
    _name = name


def device():
    """The active device (chosen on first use): what the ops run on."""
    if _device is None:
        chosen = config.get("MINICNN_BACKEND")
        set_backend(chosen if chosen else ("cupy" if _gpu_usable() else "numpy"))
    return _device


def backend_name():
    """The active backend's name ('numpy', 'cupy' or 'emulator')."""
    device()
    return _name


def clear_session():
    """Reset layer and model name counters and the memory the CPU ops keep for
    reuse, as ``keras.backend.clear_session()``: after it the next Conv2D is
    named 'conv2d' again."""
    import sys
    reset_names()
    cpu = sys.modules.get("minicnn.backend.cpu")  # only if the CPU path was ever used
    if cpu is not None and cpu._runtime is not None:
        cpu._runtime.clear()


def image_data_format():
    """'channels_last', as ``keras.backend.image_data_format()``: minicnn is NHWC."""
    return "channels_last"


def floatx():
    """'float32', as ``keras.backend.floatx()``."""
    return "float32"


def asarray(a, dtype="float32"):
    """Copy or move array-like ``a`` to the active backend (float32 by default)."""
    return device().asarray(a, dtype)


def to_numpy(a):
    """A NumPy copy (or view, on the CPU backends) of backend array ``a``."""
    return device().to_numpy(a)
