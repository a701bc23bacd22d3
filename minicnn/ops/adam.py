"""adam: the in-place updates of Adam (and AdamW, whose decay is ops.optimizers.weight_decay),
Adamax and Nadam, on every device.

Element by element, in Keras 3.15.1's order of float operations
(``keras/src/optimizers/adam.py``, ``adamax.py``, ``nadam.py``):

    adam     m = m + (g - m)*(1-b1);   v = v + (g*g - v)*(1-b2)
             amsgrad:  vhat = max(vhat, v), used in place of v below
             p = p - (m*alpha) / (sqrt(v) + eps)        (epsilon OUTSIDE the root)
    adamax   m = m + (g - m)*(1-b1);   u = max(b2*u, |g|)
             p = p - (lr*m) / ((1 - b1^t) * (u + eps))
    nadam    m, v as Adam's
             m_hat = (mu_next*m) / (1 - prod_next) + ((1 - mu_t)*g) / (1 - prod_t)
             p = p - (m_hat*lr) / (sqrt(v / (1 - b2^t)) + eps)

The factors that depend on the step t = iterations + 1 are scalars that the optimizer
computes on the host, in the parameter's dtype, as Keras does (minicnn/optimizers/adam.py):
Adam's bias corrections folded into ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``, Adamax's
``1 - b1^t``, Nadam's momentum schedule ``mu_t = b1 * (1 - 0.5 * 0.96^t)``, its running
product ``prod_t = mu_1 ... mu_t`` and ``prod_next = prod_t * mu_{t+1}``, and ``1 - b2^t``.
Adam's and Adamax's ``1 - b1`` and ``1 - b2`` are computed in double, then rounded, as
Keras computes them there; Nadam's arrive from the host, which rounds b1 and b2 first (so
does Keras's nadam.py: ``1 - cast(beta_1)``).

The factors that change per step come as one group, ``step``: Adam's ``alpha``; Adamax's
``(lr, 1 - b1^t)``; Nadam's ``(lr, mu_next, 1 - prod_next, 1 - mu_t, 1 - prod_t, 1 - b2^t)``:
numbers, or the optimizer's :class:`~minicnn.backend.step_values.StepValues` (or a view of
it) holding them in that order. The CPU versions take them by value; the CUDA kernels read
them through a pointer from that fixed device buffer, which a step plan's replay refreshes
before the work (see ops/optimizers.py).

Versions, as in ops/optimizers.py (whose check and dispatch these share): the reference
(NumPy, any float dtype: the specification); the CPU kernels (Numba, float32: one pass,
the reference's bits); the CUDA launches (``kernels/adam.cu``, one fused launch per
parameter).

Example::

    >>> adam.adam_update(w, dw, m, v, alpha=np.float32(3.2e-4), beta_1=0.9, beta_2=0.999, eps=1e-7)
    >>> adam.adamax_update(w, dw, m, u, (np.float32(2e-3), np.float32(0.1)), 0.9, 0.999, 1e-7)
"""
import numpy as np

from .. import backend
from ..backend.step_values import host_values
from .optimizers import check, cpu_fast, launch, per_step, run_cpu

KERNELS = ("adam_update", "adamax_update", "nadam_update")   # in kernels/adam.cu


def _f32(*values):
    return tuple(np.float32(v) for v in values)


# ----------------------------------------------------------------------------
# the ops
# ----------------------------------------------------------------------------
def adam_update(param, grad, m, v, alpha, beta_1, beta_2, eps, vhat=None):
    """Keras 3 Adam in place (AMSGrad when ``vhat`` is given); ``alpha`` holds lr and the
    bias corrections of this step (a number, or step values holding it first)."""
    arrays = dict(param=param, grad=grad, m=m, v=v, vhat=vhat)
    check("adam_update", ("vhat",), **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "adam", "adam_update", arrays, (per_step(device, alpha),)
               + _f32(1 - beta_1, 1 - beta_2, eps) + (np.int32(vhat is not None),))
        return
    alpha, = host_values(alpha, 1)
    if cpu_fast(*arrays.values()):
        run_cpu(adam_kernel, param, grad, m, v, vhat, *_f32(alpha, 1 - beta_1, 1 - beta_2, eps),
                vhat is not None)
    else:
        adam_update_reference(param, grad, m, v, alpha, beta_1, beta_2, eps, vhat)


def adamax_update(param, grad, m, u, step, beta_1, beta_2, eps):
    """Keras 3 Adamax in place: Adam with the infinity norm ``u`` of the gradients;
    ``step`` = (lr, 1 - beta_1^t)."""
    arrays = dict(param=param, grad=grad, m=m, u=u)
    check("adamax_update", **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "adam", "adamax_update", arrays, (per_step(device, step, 2),)
               + _f32(1 - beta_1, beta_2, eps))
        return
    lr, one_minus_b1_power = host_values(step, 2)
    if cpu_fast(*arrays.values()):
        run_cpu(adamax_kernel, param, grad, m, u, *_f32(lr, 1 - beta_1, beta_2, eps, one_minus_b1_power))
    else:
        adamax_update_reference(param, grad, m, u, lr, beta_1, beta_2, eps, one_minus_b1_power)


def nadam_update(param, grad, m, v, step, one_minus_b1, one_minus_b2, eps):
    """Keras 3 Nadam in place: Adam with Nesterov momentum on a schedule; ``step`` = the
    host's (lr, mu_next, 1 - prod_next, 1 - mu, 1 - prod, 1 - beta_2^t) (Keras's Nadam
    rounds beta_1 and beta_2 BEFORE subtracting them from 1)."""
    arrays = dict(param=param, grad=grad, m=m, v=v)
    check("nadam_update", **arrays)
    device = backend.device()
    if device.kind == "cuda":
        launch(device, "adam", "nadam_update", arrays, (per_step(device, step, 6),)
               + _f32(one_minus_b1, one_minus_b2, eps))
        return
    lr, mu_next, one_minus_prod_next, one_minus_mu, one_minus_prod, one_minus_b2_power = host_values(step, 6)
    scalars = _f32(lr, one_minus_b1, one_minus_b2, eps, mu_next, one_minus_prod_next, one_minus_mu,
                   one_minus_prod, one_minus_b2_power)
    if cpu_fast(*arrays.values()):
        run_cpu(nadam_kernel, param, grad, m, v, *scalars)
    else:
        nadam_update_reference(param, grad, m, v, lr, one_minus_b1, one_minus_b2, eps, mu_next,
                               one_minus_prod_next, one_minus_mu, one_minus_prod, one_minus_b2_power)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype (the scalars in param's dtype)
# ----------------------------------------------------------------------------
def adam_update_reference(param, grad, m, v, alpha, beta_1, beta_2, eps, vhat=None):
    dt = param.dtype.type
    m[...] = m + (grad - m) * dt(1 - beta_1)
    v[...] = v + (grad * grad - v) * dt(1 - beta_2)
    if vhat is not None:   # AMSGrad: the largest second moment so far
        vhat[...] = np.maximum(vhat, v)
        v = vhat
    param[...] = param - (m * dt(alpha)) / (np.sqrt(v) + dt(eps))


def adamax_update_reference(param, grad, m, u, lr, beta_1, beta_2, eps, one_minus_b1_power):
    dt = param.dtype.type
    m[...] = m + (grad - m) * dt(1 - beta_1)
    u[...] = np.maximum(dt(beta_2) * u, np.abs(grad))
    param[...] = param - (dt(lr) * m) / (dt(one_minus_b1_power) * (u + dt(eps)))


def nadam_update_reference(param, grad, m, v, lr, one_minus_b1, one_minus_b2, eps, mu_next,
                           one_minus_prod_next, one_minus_mu, one_minus_prod, one_minus_b2_power):
    dt = param.dtype.type
    m[...] = m + (grad - m) * dt(one_minus_b1)
    v[...] = v + (grad * grad - v) * dt(one_minus_b2)
    # Nesterov: next step's momentum on m, this step's on the fresh gradient
    m_hat = (dt(mu_next) * m) / dt(one_minus_prod_next) + (dt(one_minus_mu) * grad) / dt(one_minus_prod)
    v_hat = v / dt(one_minus_b2_power)
    param[...] = param - (m_hat * dt(lr)) / (np.sqrt(v_hat) + dt(eps))


# ----------------------------------------------------------------------------
# the CPU kernels: the reference's float32 operations, one element at a time
# (flat float32 arrays and float32 scalars only: see ops/optimizers.py)
# ----------------------------------------------------------------------------
def adam_kernel(p, g, m, v, vhat, alpha, one_minus_b1, one_minus_b2, eps, amsgrad):
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_b1
        m[i] = mi
        vi = v[i] + (gi * gi - v[i]) * one_minus_b2
        v[i] = vi
        if amsgrad:
            vi = np.maximum(vhat[i], vi)   # np.maximum: NaN wins, as in the reference
            vhat[i] = vi
        p[i] = p[i] - (mi * alpha) / (np.sqrt(vi) + eps)


def adamax_kernel(p, g, m, u, lr, one_minus_b1, beta_2, eps, one_minus_b1_power):
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_b1
        m[i] = mi
        ui = np.maximum(beta_2 * u[i], np.abs(gi))
        u[i] = ui
        p[i] = p[i] - (lr * mi) / (one_minus_b1_power * (ui + eps))


def nadam_kernel(p, g, m, v, lr, one_minus_b1, one_minus_b2, eps, mu_next, one_minus_prod_next,
                 one_minus_mu, one_minus_prod, one_minus_b2_power):
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_b1
        m[i] = mi
        vi = v[i] + (gi * gi - v[i]) * one_minus_b2
        v[i] = vi
        m_hat = (mu_next * mi) / one_minus_prod_next + (one_minus_mu * gi) / one_minus_prod
        p[i] = p[i] - (m_hat * lr) / (np.sqrt(vi / one_minus_b2_power) + eps)
