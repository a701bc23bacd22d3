"""optimizers: the in-place parameter updates of RMSprop and SGD, on every device.

RMSprop as in Keras 3 (epsilon INSIDE the square root), element by element:

    v     <- rho * v + (1 - rho) * g^2
    param <- param - lr * g / sqrt(v + eps)

SGD: ``param <- param - lr * g``. Both update ``param`` (and RMSprop's mean
square ``v``) in place and return None. The hyperparameters are checked
(finite, in range) by the Optimizer classes of :mod:`minicnn.optimizers`,
once, not here on every step.

In float32 the order of the operations decides the last bit, so every
version does them in the reference's order, with the scalars rounded to the
parameter's dtype the same way (``1 - rho`` computed in double, then rounded):

    v = (rho * v) + (((1 - rho) * g) * g);   param = param - ((lr * g) / sqrt(v + eps))

This module holds every version, in this order:

1. ``check``: param, grad (and v) float arrays of one shape, every device.
2. The reference (``*_reference``): NumPy, any float dtype.
3. The CPU fast path of RMSprop, when compiled kernels run (Numba installed)
   and param, grad and v are float32 and C-contiguous: one pass over memory,
   no temporaries, the SAME BITS as the reference (SGD's one NumPy line
   needs no kernel).
4. The CUDA path: ``kernels/optimizers.cu``, one fused launch per parameter,
   on a GPU or on the emulator.

Example::

    >>> optimizers.rmsprop_update(w, dw, v, lr=0.001, rho=0.9, eps=1e-7)   # w, v updated
    >>> optimizers.sgd_update(b, db, lr=0.01)                             # b updated
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import require_array

KERNELS = ("rmsprop_update", "sgd_update")   # in kernels/optimizers.cu


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(op, **arrays):
    """Each array a float array, all of one shape; else a TypeError/ValueError naming it."""
    for name, a in arrays.items():
        require_array(op, name, a)
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{op}: {', '.join(shapes)} must have the same shape. Received: "
                         + ", ".join(f"{n}.shape={s}" for n, s in shapes.items()))


def rmsprop_update(param, grad, v, lr, rho, eps):
    """Keras 3 RMSprop: v = rho v + (1-rho) g^2; param -= lr g / sqrt(v + eps). In place."""
    check("rmsprop_update", param=param, grad=grad, v=v)
    device = backend.device()
    if device.kind == "cuda":
        _rmsprop_cuda(device, param, grad, v, lr, rho, eps)
    elif _cpu_fast(param, grad, v):
        _rmsprop_cpu(param, grad, v, lr, rho, eps)
    else:
        rmsprop_update_reference(param, grad, v, lr, rho, eps)


def sgd_update(param, grad, lr):
    """Plain SGD: param -= lr * grad. In place."""
    check("sgd_update", param=param, grad=grad)
    device = backend.device()
    if device.kind == "cuda":
        _sgd_cuda(device, param, grad, lr)
    else:
        sgd_update_reference(param, grad, lr)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def rmsprop_update_reference(param, grad, v, lr, rho, eps):
    """rmsprop_update, the readable way (the scalars in param's dtype)."""
    dt = param.dtype.type
    v *= dt(rho)
    v += dt(1 - rho) * grad * grad
    param -= dt(lr) * grad / np.sqrt(v + dt(eps))


def sgd_update_reference(param, grad, lr):
    """sgd_update, the readable way."""
    param -= param.dtype.type(lr) * grad


# ----------------------------------------------------------------------------
# 3. the CPU fast path: one compiled pass for RMSprop
# ----------------------------------------------------------------------------
def _cpu_fast(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def _rmsprop_cpu(param, grad, v, lr, rho, eps):
    from ..backend.cpu import runtime
    dt = np.float32   # uses_kernels admitted float32 arrays only
    runtime().compile(rmsprop_kernel)(param, grad, v, dt(lr), dt(rho), dt(1 - rho), dt(eps))


def rmsprop_kernel(param, grad, v, lr, rho, one_minus_rho, eps):
    """The reference's float32 arithmetic, element by element, in one pass.

    Each step is one rounded float32 operation, in the reference's order
    (whose NumPy expressions round after every operation too): the same bits.
    The scalars come in float32 already, rounded as the reference rounds them."""
    p = param.reshape(-1)   # C-contiguous (uses_kernels): flat views, no copies
    g = grad.reshape(-1)
    vv = v.reshape(-1)
    # one thread: a pass over the book model's largest weight (37k values) costs
    # less than waking Numba's threads (measured 2x slower with prange)
    for i in range(p.shape[0]):
        gi = g[i]
        t = one_minus_rho * gi     # (1 - rho) g
        t = t * gi                 # ((1 - rho) g) g
        vi = vv[i] * rho           # rho v
        vi = vi + t
        vv[i] = vi
        s = np.sqrt(vi + eps)      # sqrt(v + eps)
        u = lr * gi                # lr g
        p[i] = p[i] - u / s


# ----------------------------------------------------------------------------
# 4. CUDA: kernels/optimizers.cu
# ----------------------------------------------------------------------------
def _rmsprop_cuda(device, param, grad, v, lr, rho, eps):
    for name, a in (("param", param), ("grad", grad), ("v", v)):
        device.require("rmsprop_update", name, a)
    if param.size:  # one thread per element
        # float32(1 - rho) rounded from double, exactly as the reference
        device.launch("rmsprop_update", "optimizers", "rmsprop_update", grid_1d(param.size),
                      (BLOCK_1D, 1, 1),
                      (param, grad, v, np.int32(param.size), np.float32(lr), np.float32(rho),
                       np.float32(1 - rho), np.float32(eps)))


def _sgd_cuda(device, param, grad, lr):
    device.require("sgd_update", "param", param)
    device.require("sgd_update", "grad", grad)
    if param.size:  # one thread per element
        device.launch("sgd_update", "optimizers", "sgd_update", grid_1d(param.size),
                      (BLOCK_1D, 1, 1), (param, grad, np.int32(param.size), np.float32(lr)))
