"""Naive reference loops, written once: each op cell by cell in float64, as a
textbook writes it. Every implementation of every op is tested against these.

Pads are (top, bottom, left, right), strides (sh, sw), arrays NHWC.
"""
import numpy as np


def out_hw(h, w, window, strides, pads):
    top, bottom, left, right = pads
    return ((h + top + bottom - window[0]) // strides[0] + 1,
            (w + left + right - window[1]) // strides[1] + 1)


def conv2d(x, w, strides, pads):
    """y[n, r, q, f] = sum over the window of x * w (padding reads as 0)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    top, _, left, _ = pads
    oh, ow = out_hw(h, wd, (kh, kw), strides, pads)
    y = np.zeros((n, oh, ow, f))
    for r in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    hr, wc = r * strides[0] + i - top, q * strides[1] + j - left
                    if 0 <= hr < h and 0 <= wc < wd:
                        y[:, r, q] += x[:, hr, wc].astype(np.float64) @ w[i, j]
    return y


def conv2d_backward(dy, x, w, strides, pads):
    """(dx, dw) by the chain rule written out cell by cell."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    top, _, left, _ = pads
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    dy = dy.astype(np.float64)
    for r in range(dy.shape[1]):
        for q in range(dy.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    hr, wc = r * strides[0] + i - top, q * strides[1] + j - left
                    if 0 <= hr < h and 0 <= wc < wd:
                        dx[:, hr, wc] += dy[:, r, q] @ w[i, j].T
                        dw[i, j] += x[:, hr, wc].T @ dy[:, r, q]
    return dx, dw


def maxpool(x, pool, strides, pads):
    """(y, argmax): each window's max (padding never wins) and the offset
    i*PW + j of its first maximum in row-major order."""
    n, h, wd, c = x.shape
    top, _, left, _ = pads
    oh, ow = out_hw(h, wd, pool, strides, pads)
    y = np.full((n, oh, ow, c), -np.inf)
    arg = np.zeros((n, oh, ow, c), np.int32)
    for b in range(n):
        for r in range(oh):
            for q in range(ow):
                for ch in range(c):
                    for i in range(pool[0]):
                        for j in range(pool[1]):
                            hr, wc = r * strides[0] + i - top, q * strides[1] + j - left
                            if 0 <= hr < h and 0 <= wc < wd and x[b, hr, wc, ch] > y[b, r, q, ch]:
                                y[b, r, q, ch] = x[b, hr, wc, ch]
                                arg[b, r, q, ch] = i * pool[1] + j
    return y, arg


def maxpool_backward(dy, argmax, x_shape, pool, strides, pads):
    """dx: each output's gradient added onto the input cell that was its max."""
    top, _, left, _ = pads
    dx = np.zeros(x_shape)
    n, oh, ow, c = dy.shape
    for b in range(n):
        for r in range(oh):
            for q in range(ow):
                for ch in range(c):
                    i, j = divmod(int(argmax[b, r, q, ch]), pool[1])
                    dx[b, r * strides[0] + i - top, q * strides[1] + j - left, ch] += dy[b, r, q, ch]
    return dx


ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softmax": lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True),
}


def bias_act(z, b, activation):
    z = z.astype(np.float64) + (0 if b is None else b)
    return ACTIVATIONS[activation](z)


def xent_loss(p, y, eps=1e-7):
    """Keras: renormalise, clip to [eps, 1 - eps], -sum(y log p) per sample."""
    q = np.clip(p / p.sum(-1, keepdims=True), eps, 1 - eps)
    return -(y * np.log(q)).sum(-1)


def rmsprop(param, grad, v, lr, rho, eps):
    """One Keras 3 RMSprop step (new param, new v)."""
    v = rho * v + (1 - rho) * grad * grad
    return param - lr * grad / np.sqrt(v + eps), v


def numeric_grad(f, arr, eps=1e-6):
    """d f() / d arr by central differences, one element at a time."""
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        hi = f()
        arr[i] = old - eps
        lo = f()
        arr[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g
