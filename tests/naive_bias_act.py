"""Naive loops for bias_act's backward, from the INPUT z (the ops use the output).

Textbook derivatives, row by row, in float64: relu'(u) = [u > 0],
sigmoid'(u) = s(u)(1 - s(u)), tanh'(u) = 1 - tanh(u)^2, and softmax's full
Jacobian J = diag(p) - p p^T applied to the upstream gradient.
"""
import numpy as np

import naive

DERIVATIVES = {
    "linear": lambda u: 1.0,
    "relu": lambda u: 1.0 if u > 0 else 0.0,
    "sigmoid": lambda u: naive.ACTIVATIONS["sigmoid"](u) * (1 - naive.ACTIVATIONS["sigmoid"](u)),
    "tanh": lambda u: 1 - np.tanh(u) ** 2,
}


def bias_act_backward(da, z, b, activation):
    """(dz, db) of a = activation(z + b) for the upstream gradient da."""
    f = z.shape[-1]
    u = (z.astype(np.float64) + (0 if b is None else b)).reshape(-1, f)
    da = da.astype(np.float64).reshape(-1, f)
    dz = np.zeros(u.shape)
    for r in range(u.shape[0]):
        if activation == "softmax":
            p = naive.ACTIVATIONS["softmax"](u[r])
            jacobian = np.diag(p) - np.outer(p, p)   # d p_i / d u_j
            dz[r] = jacobian.T @ da[r]
        else:
            for j in range(f):
                dz[r, j] = da[r, j] * DERIVATIVES[activation](u[r, j])
    db = np.zeros(f)
    for r in range(u.shape[0]):
        db += dz[r]
    return dz.reshape(z.shape), db
