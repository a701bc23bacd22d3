"""The CUDA emulator: run ``kernels/*.cu`` on the CPU, with bug checks.

g++ compiles the very same CUDA text (``cuda_emu.h`` maps the CUDA
built-ins to C++) into a shared library; ctypes launches it on NumPy
arrays with CuPy's call shape. The threads of a block run as fibers that
meet at ``__syncthreads()``; blocks run one after another. Each launch
checks what a GPU silently gets wrong:

- argument types: Python ints/floats refused, numpy scalar dtypes and
  array dtypes matched against the C parameter types, contiguity checked;
- launch configuration (block size, grid limits, dynamic shared memory);
- out-of-bounds array access (guard pages; a fault becomes an exception),
  stack overflow, integer division by zero, hangs (a time limit);
- unwritten shared memory reads (filled with NaN at each block start);
- divergent ``__syncthreads()``, warp intrinsics whose lanes or masks
  disagree, deadlocks;
- order dependence (``order='all'`` or :func:`run_in_all_orders`).

Example::

    >>> import numpy as np
    >>> from minicnn.backend.emulator import RawModule
    >>> mod = RawModule(code='''
    ... extern "C" __global__ void scale(const float* x, float* y, float a, int n) {
    ...     int i = blockIdx.x * blockDim.x + threadIdx.x;
    ...     if (i < n) y[i] = a * x[i];
    ... }''')
    >>> x = np.arange(5, dtype=np.float32); y = np.empty_like(x)
    >>> mod.get_function('scale')((1,), (32,), (x, y, np.float32(2), np.int32(5)))
    >>> y
    array([0., 2., 4., 6., 8.], dtype=float32)
"""
from .errors import (BuildError, EmulatorError, KernelError, KernelFault, KernelNotFound,
                     KernelTimeout, RaceError)
from .launch import ORDERS, Kernel
from .module import RawModule
from .orders import run_in_all_orders

__all__ = [
    "RawModule", "Kernel", "ORDERS", "run_in_all_orders",
    "EmulatorError", "BuildError", "KernelNotFound", "KernelError", "KernelFault",
    "KernelTimeout", "RaceError",
]
