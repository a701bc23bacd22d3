"""What the 'cupy' backend needs, looked for once when it is chosen.

A machine with only the NVIDIA driver gets the rest from PyPI with
``pip install 'minicnn[gpu]'``: CuPy, cuBLAS (every GEMM: convolutions and
dense layers), NVRTC (compiles our kernels and CuPy's own) and the CUDA
runtime's headers (NVRTC compiles CuPy's kernels against them). Without a
check, a missing piece shows only deep inside the first step (the first
convolution's ``matmul`` fails with ``ImportError: libcublas.so.13``); here
every piece is looked for before any work and whatever is missing is
reported in one error, each line saying what to install.

None of this needs a GPU except the device count: the libraries are found
and loaded the way CuPy itself loads them (``cuda.pathfinder``), so the
library checks also run on a machine without one.

Example::

    >>> from minicnn.backend import cupy_check
    >>> cupy = cupy_check.load_cupy()   # CuPy, or a CudaSetupError listing what is missing
"""
import importlib
import os

INSTALL = "pip install 'minicnn[gpu]'"
# a header every CuPy elementwise kernel includes (cupy/float16.cuh)
HEADER = "cuda_fp16.h"


class CudaSetupError(RuntimeError):
    """The 'cupy' backend cannot run on this machine; the message lists every missing piece."""


def _first_line(error):
    """``Type: first line`` of an exception (CuPy's library errors run to many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _import_cupy():
    return importlib.import_module("cupy")


def gpu_problem(cupy):
    """Why CuPy sees no usable device (no driver, an old driver, no GPU), or None."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: cudaErrorInsufficientDriver, cudaErrorNoDevice, ...
        return (f"no usable GPU or NVIDIA driver: cupy.is_available() is False ({_first_line(e)}); "
                "CuPy for CUDA 13 needs an NVIDIA GPU and its driver >= 580 (check with nvidia-smi)")
    if count < 1:
        return "no CUDA device: cupy.is_available() is False (the driver reports 0 devices)"
    return None


def cublas_problem(cupy):
    """Why cuBLAS cannot be loaded, or None (CuPy loads it on the first matmul)."""
    try:
        getattr(cupy.cuda, "cublas")
    except Exception as e:
        return (f"cuBLAS not loadable ({_first_line(e)}): every convolution and dense layer "
                f"is a cuBLAS GEMM; {INSTALL} installs it (nvidia-cublas)")
    return None


def nvrtc_problem(cupy):
    """Why NVRTC cannot compile kernels (library missing, or no CUDA headers), or None."""
    try:
        cupy.cuda.nvrtc.getVersion()
    except Exception as e:
        return (f"NVRTC not loadable ({_first_line(e)}): it compiles the CUDA kernels; "
                f"{INSTALL} installs it (nvidia-cuda-nvrtc)")
    try:
        root = cupy.cuda.get_cuda_path()
    except Exception:
        root = None
    if not root or not os.path.isfile(os.path.join(root, "include", HEADER)):
        return (f"CUDA headers not found ({HEADER} under {root or 'no CUDA folder'}/include): "
                f"NVRTC compiles CuPy's kernels against them; {INSTALL} installs them "
                "(nvidia-cuda-runtime)")
    return None


def problems(cupy):
    """Every missing piece for ``cupy`` (a list of lines; empty when all is there)."""
    return [p for p in (gpu_problem(cupy), cublas_problem(cupy), nvrtc_problem(cupy)) if p]


def load_cupy():
    """The ``cupy`` module once everything the backend needs is there, else CudaSetupError."""
    try:
        cupy = _import_cupy()
    except ImportError as e:
        missing = [f"CuPy is not installed or does not import ({_first_line(e)}): {INSTALL}"]
    else:
        missing = problems(cupy)
        if not missing:
            return cupy
    raise CudaSetupError("backend 'cupy' cannot run on this machine:\n"
                         + "".join(f"  - {line}\n" for line in missing)
                         + "Use set_backend('numpy') (or MINICNN_BACKEND=numpy) for the CPU, or "
                         "set_backend('emulator') to run the CUDA kernels on the CPU.")
