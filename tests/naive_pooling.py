"""Naive reference loops for average pooling, dilated convolution and padding:
cell by cell in float64, as a textbook writes them (see tests/naive.py).

Pads are (top, bottom, left, right), strides (sh, sw), dilations (dh, dw), arrays NHWC.
"""
import numpy as np


def out_hw(h, w, window, strides, pads, dilation=(1, 1)):
    top, bottom, left, right = pads
    kh, kw = (window[0] - 1) * dilation[0] + 1, (window[1] - 1) * dilation[1] + 1
    return ((h + top + bottom - kh) // strides[0] + 1,
            (w + left + right - kw) // strides[1] + 1)


def avg_pool(x, pool, strides, pads):
    """y: the mean of each window's real (unpadded) cells."""
    n, h, wd, c = x.shape
    top, _, left, _ = pads
    oh, ow = out_hw(h, wd, pool, strides, pads)
    y = np.zeros((n, oh, ow, c))
    for r in range(oh):
        for q in range(ow):
            cells = [(r * strides[0] + i - top, q * strides[1] + j - left)
                     for i in range(pool[0]) for j in range(pool[1])]
            cells = [(a, b) for a, b in cells if 0 <= a < h and 0 <= b < wd]
            for a, b in cells:
                y[:, r, q] += x[:, a, b]
            y[:, r, q] /= len(cells)
    return y


def avg_pool_backward(dy, x_shape, pool, strides, pads):
    """dx: each dy shared evenly by the real cells of its window."""
    n, h, wd, c = x_shape
    top, _, left, _ = pads
    dx = np.zeros(x_shape)
    for r in range(dy.shape[1]):
        for q in range(dy.shape[2]):
            cells = [(r * strides[0] + i - top, q * strides[1] + j - left)
                     for i in range(pool[0]) for j in range(pool[1])]
            cells = [(a, b) for a, b in cells if 0 <= a < h and 0 <= b < wd]
            for a, b in cells:
                dx[:, a, b] += dy[:, r, q] / len(cells)
    return dx


def conv2d(x, w, strides, pads, dilation):
    """y[n, r, q, f] = sum over taps (i, j) of x[r*sh + i*dh - top, q*sw + j*dw - left] @ w[i, j]."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    top, _, left, _ = pads
    oh, ow = out_hw(h, wd, (kh, kw), strides, pads, dilation)
    y = np.zeros((n, oh, ow, f))
    for r in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    a = r * strides[0] + i * dilation[0] - top
                    b = q * strides[1] + j * dilation[1] - left
                    if 0 <= a < h and 0 <= b < wd:
                        y[:, r, q] += x[:, a, b].astype(np.float64) @ w[i, j]
    return y


def conv2d_backward(dy, x, w, strides, pads, dilation):
    """(dx, dw) by the chain rule written out tap by tap."""
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
                    a = r * strides[0] + i * dilation[0] - top
                    b = q * strides[1] + j * dilation[1] - left
                    if 0 <= a < h and 0 <= b < wd:
                        dx[:, a, b] += dy[:, r, q] @ w[i, j].T
                        dw[i, j] += x[:, a, b].T @ dy[:, r, q]
    return dx, dw


def pad(x, pads):
    """x inside a frame of zeros, cell by cell."""
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    y = np.zeros((n, h + top + bottom, w + left + right, c))
    for a in range(h):
        for b in range(w):
            y[:, a + top, b + left] = x[:, a, b]
    return y


def crop(x, crops):
    top, bottom, left, right = crops
    n, h, w, c = x.shape
    y = np.zeros((n, h - top - bottom, w - left - right, c))
    for a in range(y.shape[1]):
        for b in range(y.shape[2]):
            y[:, a, b] = x[:, a + top, b + left]
    return y
