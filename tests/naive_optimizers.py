"""One optimizer step at a time, written from the formulas (float64 NumPy, new arrays out).

Independent of minicnn's code: each function is the update rule as Keras 3's docstrings
and papers state it, so a test can hold every implementation against it.
"""
import numpy as np


def sgd(p, g, lr, m=None, momentum=0.0, nesterov=False):
    if m is None:
        return p - lr * g, None
    m = momentum * m - lr * g
    return (p + momentum * m - lr * g if nesterov else p + m), m


def rmsprop(p, g, v, lr, rho, eps, momentum=0.0, m=None, avg=None):
    v = rho * v + (1 - rho) * g ** 2
    if avg is not None:
        avg = rho * avg + (1 - rho) * g
        inc = lr * g / np.sqrt(v - avg ** 2 + eps)
    else:
        inc = lr * g / np.sqrt(v + eps)   # epsilon inside the root (Keras 3)
    if m is not None:
        m = momentum * m + inc
        return p - m, v, m, avg
    return p - inc, v, m, avg


def adagrad(p, g, acc, lr, eps):
    acc = acc + g ** 2
    return p - lr * g / np.sqrt(acc + eps), acc


def adadelta(p, g, acc_g, acc_d, lr, rho, eps):
    acc_g = rho * acc_g + (1 - rho) * g ** 2
    delta = -np.sqrt(acc_d + eps) / np.sqrt(acc_g + eps) * g
    acc_d = rho * acc_d + (1 - rho) * delta ** 2
    return p + lr * delta, acc_g, acc_d


def adam(p, g, m, v, t, lr, b1, b2, eps, vhat=None):
    """Kingma and Ba with Keras's "epsilon hat": the corrections folded into the step size."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    if vhat is not None:
        vhat = np.maximum(vhat, v)
    step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return p - step * m / (np.sqrt(v if vhat is None else vhat) + eps), m, v, vhat


def adamax(p, g, m, u, t, lr, b1, b2, eps):
    m = b1 * m + (1 - b1) * g
    u = np.maximum(b2 * u, np.abs(g))
    return p - lr / (1 - b1 ** t) * m / (u + eps), m, u


def nadam_momentum(b1, t):
    """Dozat's schedule as Keras 3 has it: mu_t = b1 (1 - 0.5 * 0.96^t)."""
    return b1 * (1 - 0.5 * 0.96 ** t)


def nadam(p, g, m, v, t, lr, b1, b2, eps):
    """Step t (1-based); the momentum product is recomputed from the schedule."""
    prod = np.prod([nadam_momentum(b1, k) for k in range(1, t + 1)])
    mu, mu_next = nadam_momentum(b1, t), nadam_momentum(b1, t + 1)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    m_hat = mu_next * m / (1 - prod * mu_next) + (1 - mu) * g / (1 - prod)
    v_hat = v / (1 - b2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def clip_by_norm(g, c):
    n = np.sqrt((g.astype(np.float64) ** 2).sum())
    return g * c / max(n, c)


def clip_by_global_norm(grads, c):
    n = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    return [g * c / max(n, c) for g in grads]
