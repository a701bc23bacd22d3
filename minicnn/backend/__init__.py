"""The seam between the math and the devices.

Every layer, loss, metric and optimizer calls the *active backend*'s ops and
nothing else; no layer branches on the device. Three backends implement the
same list of ops with the same signatures (the list is ``OPS`` below):

- ``'numpy'``:    :mod:`minicnn.backend.numpy_ops`, the CPU reference (default
  when no GPU is usable).
- ``'cupy'``:     :class:`minicnn.backend.cuda_ops.CudaOps` on CuPy arrays; our
  CUDA kernels run on the GPU (default when ``cupy.is_available()``).
- ``'emulator'``: the very same ``CudaOps`` code on NumPy arrays; the same
  ``kernels/*.cu`` text is compiled by g++ and run on CPU threads. Used by the
  tests to prove the GPU path without a GPU.

Choose with ``set_backend(name)`` or the ``MINICNN_BACKEND`` environment
variable. Example::

    >>> from minicnn import backend
    >>> backend.set_backend('numpy')
    >>> x = backend.asarray([[1, 2], [3, 4]])
    >>> backend.to_numpy(x).dtype
    dtype('float32')
"""
from .. import config

# The op list every backend provides (signatures in numpy_ops.py docstrings).
OPS = (
    # arrays
    "asarray", "to_numpy", "empty", "zeros",
    # convolution and dense products
    "conv2d_forward", "conv2d_backward", "dense_forward", "dense_backward",
    # bias + activation
    "bias_act_forward", "bias_act_backward",
    # pooling
    "maxpool_forward", "maxpool_backward",
    # loss and metric
    "xent_loss", "xent_backward", "softmax_xent_backward", "accuracy_count",
    # optimizers
    "rmsprop_update", "sgd_update",
)

BACKENDS = ("numpy", "cupy", "emulator")

_active = None
_active_name = None
_device = None


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
        import cupy
        return CudaDevice(cupy, "cupy")
    import numpy
    return CudaDevice(numpy, "emulator")


def _make(name):
    if name == "numpy":
        from . import numpy_ops
        return numpy_ops
    if name == "cupy":
        if not _gpu_usable():
            raise RuntimeError(
                "backend 'cupy' needs a usable CUDA GPU, but cupy.is_available() is False "
                "(or CuPy is not installed: pip install 'minicnn[gpu]'). "
                "Use set_backend('numpy') or set_backend('emulator').")
        import cupy
        from .cuda_ops import CudaOps
        return CudaOps(xp=cupy, target="cupy")
    if name == "emulator":
        import numpy
        from .cuda_ops import CudaOps
        return CudaOps(xp=numpy, target="emulator")
    raise ValueError(f"Unknown backend: {name!r}. Expected one of {BACKENDS}.")


def set_backend(name):
    """Select the backend for all following work: 'numpy', 'cupy' or 'emulator'.

    Arrays made under one backend are not converted: build and train a model
    under one backend. Example: ``backend.set_backend('emulator')``.
    """
    global _active, _active_name, _device
    if not isinstance(name, str):
        raise TypeError(f"set_backend expects a string, got {type(name).__name__}: {name!r}")
    name = name.lower()
    _active = _make(name)
    _device = _make_device(name)
    _active_name = name


def backend_name():
    """The active backend's name ('numpy', 'cupy' or 'emulator')."""
    get_ops()
    return _active_name


def get_ops():
    """The active backend's op namespace (chosen lazily on first use)."""
    if _active is None:
        name = config.get("MINICNN_BACKEND")
        set_backend(name if name else ("cupy" if _gpu_usable() else "numpy"))
    return _active


def device():
    """The active device (:mod:`minicnn.backend.devices`): what the ops run on."""
    if _device is None:
        get_ops()
    return _device


def clear_session():
    """Reset layer and model name counters (``keras.backend.clear_session()``)."""
    from ..utils import clear_session as _clear
    _clear()


def asarray(a, dtype="float32"):
    """Copy or move array-like ``a`` to the active backend (float32 by default)."""
    return get_ops().asarray(a, dtype)


def to_numpy(a):
    """A NumPy copy (or view, on the CPU backends) of backend array ``a``."""
    return get_ops().to_numpy(a)
