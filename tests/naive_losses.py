"""Naive loops for the loss and metric ops (minicnn.ops.softmax_xent), row by
row and class by class in float64, as a textbook writes them. The loss itself
is naive.xent_loss.
"""
import math

import numpy as np


def _rows(a):
    return np.asarray(a, np.float64).reshape(-1, a.shape[-1])


def xent_backward(p, y, eps=1e-7):
    """d/dp of sum(xent_loss(p, y)) / p.shape[0] (the mean over axis 0), by the
    chain rule written out: loss = -sum_k y_k log clip(p_k / s), s = sum_j p_j."""
    p2, y2 = _rows(p), _rows(y)
    n = p.shape[0]
    dp = np.zeros(p2.shape)
    for r in range(p2.shape[0]):
        s = sum(p2[r])
        for j in range(p2.shape[1]):
            total = 0.0
            for k in range(p2.shape[1]):
                q = p2[r, k] / s
                if not eps <= q <= 1 - eps:
                    continue  # the clip is flat there: no gradient through q_k
                dq_dpj = ((1.0 if j == k else 0.0) - q) / s   # d(p_k / s) / d p_j
                total += -y2[r, k] / q * dq_dpj
            dp[r, j] = total / n
    return dp.reshape(p.shape)


def softmax_xent_backward(p, y):
    """(p - y) / N, element by element."""
    out = np.zeros(p.shape)
    for i in np.ndindex(p.shape):
        out[i] = (float(p[i]) - float(y[i])) / p.shape[0]
    return out


def first_argmax(row):
    """numpy.argmax of one row: the first maximum, or the first NaN if any."""
    best = 0
    for j, v in enumerate(row):
        if math.isnan(v):
            return j
        if v > row[best]:
            best = j
    return best


def accuracy_count(p, y):
    """The rows whose first maxima of p and y sit at one index, counted."""
    return sum(first_argmax(a) == first_argmax(b) for a, b in zip(_rows(p), _rows(y)))
