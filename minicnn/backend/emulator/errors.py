"""Exceptions of the CUDA emulator. Every launch error names the kernel and its
launch configuration, e.g. ``kernel 'sgemm' <<<grid=(4,4,1), block=(16,16,1),
shared_mem=0>>>: ...``.
"""


class EmulatorError(RuntimeError):
    """Base class of the emulator's own errors."""


class BuildError(EmulatorError):
    """g++ could not compile a kernel source (the message has its output)."""


class KernelNotFound(EmulatorError, LookupError):
    """get_function() asked for a name that is no extern "C" __global__ kernel."""


class KernelError(EmulatorError):
    """A launch went wrong inside the kernel: a divergent barrier, a warp
    intrinsic whose lanes disagree, a deadlock, a failed assert()..."""


class KernelFault(KernelError):
    """The kernel touched memory it must not (out of bounds, stack overflow)
    or raised a CPU fault (integer division by zero)."""


class KernelTimeout(KernelError):
    """The kernel ran past the time limit (spin-wait, hang, or just too slow)."""


class RaceError(KernelError):
    """Results differ between thread orders: a missing __syncthreads(), a
    race on shared or global memory, or a dependence between blocks."""
