"""Checks shared by the ops, run for every device before any work.

Each raises a TypeError or ValueError naming the op, the argument, what was
expected and what was received. ``prange`` is the parallel loop of the ops'
CPU kernels: plain ``range`` here (so a kernel reads, and runs, as ordinary
Python), Numba's ``prange`` once :meth:`CpuRuntime.compile` compiles it.
Likewise ``gemm_nn`` / ``gemm_tn``, a matrix product inside a kernel's loop:
NumPy here, one call of BLAS's sgemm on the calling thread once compiled; and
``thread_id``, the core an iteration runs on.
"""
import numpy as np

prange = range


def thread_id():
    """The index of the core running this iteration of a ``prange`` loop (0 as plain
    Python; Numba's ``get_thread_id`` compiled), for a buffer of its own."""
    return 0


def gemm_nn(a, b, out):
    """out = a @ b (2-D, C-contiguous float32 arrays)."""
    np.matmul(a, b, out=out)


def gemm_tn(a, b, out):
    """out = a.T @ b (2-D, C-contiguous float32 arrays)."""
    np.matmul(a.T, b, out=out)

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def require_array(op, name, a, ndim=None, dtypes=FLOATS):
    """``a`` must be an array (NumPy or CuPy) of one of ``dtypes`` with ``ndim`` axes."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{op}: {name} must be an array. Received: {name}={type(a).__name__}")
    if a.dtype not in dtypes:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{op}: {name} must be {names}. Received: {name}.dtype={a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} axes. Received: {name}.shape={tuple(a.shape)}")
    return a


def require_same_dtype(op, **arrays):
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        raise TypeError(f"{op}: {', '.join(dtypes)} must have one dtype. Received: "
                        + ", ".join(f"{n}.dtype={d}" for n, d in dtypes.items()))


def require_shape(op, name, a, expected):
    if tuple(a.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} must have shape {tuple(expected)}. "
                         f"Received: {name}.shape={tuple(a.shape)}")


def pair(op, name, value):
    """Two positive ints (strides, a window's size)."""
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a pair of ints. Received: {name}={value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{op}: {name} must be positive. Received: {name}={value!r}")
    return a, b


def pads4(op, pads):
    """(top, bottom, left, right) as four non-negative ints."""
    try:
        top, bottom, left, right = (int(v) for v in pads)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: pads must be (top, bottom, left, right) ints. Received: pads={pads!r}") from None
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"{op}: pads must be non-negative. Received: pads={pads!r}")
    return top, bottom, left, right
