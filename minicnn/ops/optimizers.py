"""optimizers: the in-place updates of SGD, RMSprop, Adagrad and Adadelta, on every device,
and the decoupled weight decay any optimizer may apply first. (Adam's family: ops/adam.py.)

Element by element, in Keras 3.15.1's order of float operations
(``keras/src/optimizers/<name>.py``; every product and sum rounds on its own):

    sgd           momentum == 0:  p = p - g*lr
                  else:           m = m*momentum - g*lr;   p = p + m
                  nesterov:       m as above;               p = p + (m*momentum - g*lr)
    rmsprop       v = rho*v + (1-rho)*(g*g)
                  centered:  a = rho*a + (1-rho)*g;   d = (v - a*a) + eps     else  d = v + eps
                  inc = (lr*g) / sqrt(d)               (epsilon INSIDE the root)
                  momentum > 0:  m = momentum*m + inc;  p = p - m             else  p = p - inc
    adagrad       acc = acc + g*g;   p = p - (lr*g) / sqrt(acc + eps)
    adadelta      ag = rho*ag + (1-rho)*(g*g)
                  delta = -((sqrt(ad + eps) * g) / sqrt(ag + eps))
                  ad = rho*ad + (1-rho)*(delta*delta);   p = p + lr*delta
    weight_decay  p = p - (p*wd)*lr      (Keras's base optimizer, before the update step)

The scalars are rounded to the parameter's dtype as Keras's casts round them: ``1 - rho``
is computed in double, then rounded; ``lr`` arrives already evaluated (a schedule at this
step) from :mod:`minicnn.optimizers`, whose classes check the hyperparameters once, not
here on every step. Every op updates its arrays in place and returns None.

``lr``, the one number that changes from step to step (a schedule, Keras 2's ``decay``, a
callback), is a number or the optimizer's :class:`~minicnn.backend.step_values.StepValues`
(this step's values, the rate first). The CPU versions take it by value; the CUDA kernels
read it through a pointer (``lr[0]``) from the StepValues' fixed device buffer, so that a
step plan's replay, which refreshes that buffer before the work, reads each step's rate
(a plain number is copied to the device for the launch).

Versions, in this order: ``check`` (every device); the reference (NumPy, any float dtype:
the specification); the CPU kernels (Numba, float32 C-contiguous arrays: one pass, no
temporaries, the SAME BITS as the reference); the CUDA launches (``kernels/optimizers.cu``,
one fused launch per parameter, on a GPU or on the emulator).

Example::

    >>> optimizers.rmsprop_update(w, dw, v, lr=0.001, rho=0.9, eps=1e-7)          # w, v updated
    >>> optimizers.sgd_update(b, db, lr=0.01, m=mb, momentum=0.9, nesterov=True)  # b, mb updated
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from ..backend.step_values import device_values, host_values
from .common import require_array, require_same_dtype

KERNELS = ("sgd_update", "rmsprop_update", "adagrad_update", "adadelta_update",
           "weight_decay")   # in kernels/optimizers.cu

_NONE = np.zeros(0, np.float32)   # an absent slot, for the CPU kernels' fixed signatures


# ----------------------------------------------------------------------------
# 1. checks (every device), and the dispatch shared with ops/adam.py
# ----------------------------------------------------------------------------
def check(op, optional=(), **arrays):
    """Float arrays of one shape and dtype (those named in ``optional`` may be None: an
    unused slot), else a TypeError/ValueError naming the op and the argument."""
    arrays = {name: a for name, a in arrays.items() if a is not None or name not in optional}
    for name, a in arrays.items():
        require_array(op, name, a)
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{op}: {', '.join(shapes)} must have the same shape. Received: "
                         + ", ".join(f"{n}.shape={s}" for n, s in shapes.items()))
    require_same_dtype(op, **arrays)
    return arrays


def cpu_fast(*arrays):
    """True when the compiled CPU kernels run for these arrays (Numba there, float32, C order)."""
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*(a for a in arrays if a is not None))


def run_cpu(kernel, *args):
    """``kernel`` compiled, on flat views of its arrays (C-contiguous: no copies); an
    absent slot (None) becomes an empty array the kernel's flags never touch."""
    from ..backend.cpu import runtime
    flat = [_NONE if a is None else a.reshape(-1) if isinstance(a, np.ndarray) else a for a in args]
    runtime().compile(kernel)(*flat)


def launch(device, module, op, arrays, scalars):
    """One grid-stride launch of kernel ``op`` of ``kernels/<module>.cu`` over the elements.

    ``arrays``: {name: array or None} in the kernel's order, the parameter first; an
    absent slot passes the parameter itself, which the kernel's flag never lets it
    touch. Then the element count and the scalars (np.float32 / np.int32; the per-step
    values' device array first: see ``per_step``)."""
    for name, a in arrays.items():
        if a is not None:
            device.require(op, name, a)
    param = arrays["param"]
    if param.size:  # one thread per element
        args = [param if a is None else a for a in arrays.values()]
        device.launch(op, module, op, grid_1d(param.size), (BLOCK_1D, 1, 1),
                      (*args, np.int32(param.size), *scalars))


def _f32(*values):
    return tuple(np.float32(v) for v in values)


def per_step(device, step, count=1):
    """The kernel argument of this step's ``count`` values (``step``: a StepValues, a view of
    one, a tuple or a number): a float32 device array the kernel reads them from."""
    return device_values(device, step, count)


# ----------------------------------------------------------------------------
# 2. the ops
# ----------------------------------------------------------------------------
def sgd_update(param, grad, lr, m=None, momentum=0.0, nesterov=False):
    """Keras 3 SGD in place: plain when ``m`` is None, else with the velocity ``m``."""
    arrays = dict(param=param, grad=grad, m=m)
    check("sgd_update", ("m",), **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "optimizers", "sgd_update", arrays,
               (per_step(device, lr),) + _f32(momentum) + (np.int32(m is not None), np.int32(bool(nesterov))))
        return
    lr, = host_values(lr, 1)
    if cpu_fast(*arrays.values()):
        run_cpu(sgd_kernel, param, grad, m, *_f32(lr, momentum), m is not None, bool(nesterov))
    else:
        sgd_update_reference(param, grad, lr, m, momentum, nesterov)


def rmsprop_update(param, grad, v, lr, rho, eps, momentum=0.0, m=None, avg=None):
    """Keras 3 RMSprop in place; ``m`` (momentum > 0) and ``avg`` (centered) when used."""
    arrays = dict(param=param, grad=grad, v=v, avg=avg, m=m)
    check("rmsprop_update", ("m", "avg"), **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "optimizers", "rmsprop_update", arrays, (per_step(device, lr),)
               + _f32(rho, 1 - rho, eps, momentum) + (np.int32(avg is not None), np.int32(m is not None)))
        return
    lr, = host_values(lr, 1)
    if cpu_fast(*arrays.values()):
        run_cpu(rmsprop_kernel, param, grad, v, avg, m, *_f32(lr, rho, 1 - rho, eps, momentum),
                avg is not None, m is not None)
    else:
        rmsprop_update_reference(param, grad, v, lr, rho, eps, momentum, m, avg)


def adagrad_update(param, grad, acc, lr, eps):
    """Keras 3 Adagrad in place: acc += g^2; param -= lr g / sqrt(acc + eps)."""
    arrays = dict(param=param, grad=grad, acc=acc)
    check("adagrad_update", **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "optimizers", "adagrad_update", arrays, (per_step(device, lr),) + _f32(eps))
        return
    lr, = host_values(lr, 1)
    if cpu_fast(*arrays.values()):
        run_cpu(adagrad_kernel, param, grad, acc, *_f32(lr, eps))
    else:
        adagrad_update_reference(param, grad, acc, lr, eps)


def adadelta_update(param, grad, acc_grad, acc_delta, lr, rho, eps):
    """Keras 3 Adadelta in place (running means of g^2 and of the steps^2)."""
    arrays = dict(param=param, grad=grad, acc_grad=acc_grad, acc_delta=acc_delta)
    check("adadelta_update", **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "optimizers", "adadelta_update", arrays,
               (per_step(device, lr),) + _f32(rho, 1 - rho, eps))
        return
    lr, = host_values(lr, 1)
    if cpu_fast(*arrays.values()):
        run_cpu(adadelta_kernel, param, grad, acc_grad, acc_delta, *_f32(lr, rho, 1 - rho, eps))
    else:
        adadelta_update_reference(param, grad, acc_grad, acc_delta, lr, rho, eps)


def weight_decay(param, lr, wd):
    """Keras 3's decoupled weight decay in place: param -= param * wd * lr."""
    check("weight_decay", param=param)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "optimizers", "weight_decay", dict(param=param), (per_step(device, lr),) + _f32(wd))
        return
    lr, = host_values(lr, 1)
    if cpu_fast(param):
        run_cpu(weight_decay_kernel, param, *_f32(lr, wd))
    else:
        weight_decay_reference(param, lr, wd)


# ----------------------------------------------------------------------------
# 3. the reference: NumPy, any float dtype (the scalars in param's dtype)
# ----------------------------------------------------------------------------
def sgd_update_reference(param, grad, lr, m=None, momentum=0.0, nesterov=False):
    dt = param.dtype.type
    lr, momentum = dt(lr), dt(momentum)
    if m is None:
        param[...] = param - grad * lr
        return
    m[...] = m * momentum - grad * lr
    param[...] = param + (m * momentum - grad * lr if nesterov else m)


def rmsprop_update_reference(param, grad, v, lr, rho, eps, momentum=0.0, m=None, avg=None):
    dt = param.dtype.type
    lr, rho_, one_minus_rho, eps, momentum = dt(lr), dt(rho), dt(1 - rho), dt(eps), dt(momentum)
    v[...] = rho_ * v + one_minus_rho * (grad * grad)
    if avg is not None:   # centered: divide by an estimate of the variance, not the mean square
        avg[...] = rho_ * avg + one_minus_rho * grad
        denominator = (v - avg * avg) + eps
    else:
        denominator = v + eps
    increment = (lr * grad) / np.sqrt(denominator)
    if m is None:
        param[...] = param - increment
    else:
        m[...] = momentum * m + increment
        param[...] = param - m


def adagrad_update_reference(param, grad, acc, lr, eps):
    dt = param.dtype.type
    acc[...] = acc + grad * grad
    param[...] = param - (dt(lr) * grad) / np.sqrt(acc + dt(eps))


def adadelta_update_reference(param, grad, acc_grad, acc_delta, lr, rho, eps):
    dt = param.dtype.type
    rho_, one_minus_rho, eps = dt(rho), dt(1 - rho), dt(eps)
    acc_grad[...] = rho_ * acc_grad + one_minus_rho * (grad * grad)
    delta = -((np.sqrt(acc_delta + eps) * grad) / np.sqrt(acc_grad + eps))
    acc_delta[...] = rho_ * acc_delta + one_minus_rho * (delta * delta)
    param[...] = param + dt(lr) * delta


def weight_decay_reference(param, lr, wd):
    dt = param.dtype.type
    param[...] = param - (param * dt(wd)) * dt(lr)


# ----------------------------------------------------------------------------
# 4. the CPU kernels: the reference's float32 operations, one element at a time
#
# Flat float32 arrays and float32 scalars only (a float64 literal would widen
# the arithmetic and change the rounding). One thread: the pass over even the
# largest weight of a small CNN costs less than waking Numba's threads.
# ----------------------------------------------------------------------------
def sgd_kernel(p, g, m, lr, momentum, use_m, nesterov):
    for i in range(p.shape[0]):
        step = g[i] * lr
        if use_m:
            mi = m[i] * momentum - step
            m[i] = mi
            p[i] = p[i] + (mi * momentum - step if nesterov else mi)
        else:
            p[i] = p[i] - step


def rmsprop_kernel(p, g, v, avg, m, lr, rho, one_minus_rho, eps, momentum, centered, use_m):
    for i in range(p.shape[0]):
        gi = g[i]
        vi = rho * v[i] + one_minus_rho * (gi * gi)
        v[i] = vi
        if centered:
            ai = rho * avg[i] + one_minus_rho * gi
            avg[i] = ai
            d = (vi - ai * ai) + eps
        else:
            d = vi + eps
        inc = (lr * gi) / np.sqrt(d)
        if use_m:
            mi = momentum * m[i] + inc
            m[i] = mi
            p[i] = p[i] - mi
        else:
            p[i] = p[i] - inc


def adagrad_kernel(p, g, acc, lr, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        p[i] = p[i] - (lr * gi) / np.sqrt(a + eps)


def adadelta_kernel(p, g, acc_grad, acc_delta, lr, rho, one_minus_rho, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        ag = rho * acc_grad[i] + one_minus_rho * (gi * gi)
        acc_grad[i] = ag
        delta = -((np.sqrt(acc_delta[i] + eps) * gi) / np.sqrt(ag + eps))
        acc_delta[i] = rho * acc_delta[i] + one_minus_rho * (delta * delta)
        p[i] = p[i] + lr * delta


def weight_decay_kernel(p, lr, wd):
    for i in range(p.shape[0]):
        p[i] = p[i] - (p[i] * wd) * lr
