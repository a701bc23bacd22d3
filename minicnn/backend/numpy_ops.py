"""NumPy backend: the CPU reference implementation of every backend op.

Arrays are NHWC (batch, height, width, channels). Every op keeps the dtype it
is given (float32 in training, float64 in the gradient-check tests) and never
loops in Python over pixels: convolution and pooling loop over the KH*KW
window offsets, each step one vectorised strided copy or add.

Padding is always given as ``pads = (top, bottom, left, right)`` and strides as
``(sh, sw)``; the layers work them out (TensorFlow's SAME rule) before calling.

Two versions of the heavy ops live side by side:

- the REFERENCE code in this file (``*_reference``): the plain math, short
  and readable, correct for every shape and dtype;
- the FAST paths in :mod:`cpu_fast` (used by the public ops when they apply):
  the same math split over the CPU cores, with scratch buffers reused across
  steps and fewer passes over memory, and one-pass compiled kernels
  (:mod:`cpu_numba`) when Numba is installed. The tests hold them to the
  reference.

Set ``MINICNN_CPU_FAST=0`` (or ``numpy_ops.FAST = False``) to run the reference
code alone, ``MINICNN_NUMBA=0`` to keep Numba out, and ``MINICNN_NUM_THREADS``
to choose the thread count.
"""

import numpy as np

from .. import config
from . import cpu_fast as _fast

xp = np  # the array module of this backend

FAST = config.get("MINICNN_CPU_FAST")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _fast_ok(*arrays):
    """The fast paths take NumPy float32/float64 arrays of one dtype, none empty."""
    if not FAST:
        return False
    dt = getattr(arrays[0], "dtype", None)
    if dt not in _FLOATS:
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == dt and a.size > 0 for a in arrays)


# ----------------------------------------------------------------------------
# arrays
# ----------------------------------------------------------------------------
def asarray(a, dtype="float32"):
    """A C-contiguous NumPy array of ``a`` (float32 unless ``dtype`` says)."""
    return np.ascontiguousarray(a, dtype=dtype)


def to_numpy(a):
    """``a`` as a NumPy array (no copy when it already is one)."""
    return np.asarray(a)


def empty(shape, dtype="float32"):
    return np.empty(shape, dtype=dtype)


def zeros(shape, dtype="float32"):
    return np.zeros(shape, dtype=dtype)


# ----------------------------------------------------------------------------
# helpers: padding and output sizes
# ----------------------------------------------------------------------------
def _pad(x, pads, value=0.0):
    """x padded on H (top, bottom) and W (left, right); x itself if no padding."""
    top, bottom, left, right = pads
    if not (top or bottom or left or right):
        return x
    n, h, w, c = x.shape
    out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
    out[:, top:top + h, left:left + w, :] = x
    return out


def _out_size(size, k, stride, pad_total):
    return (size + pad_total - k) // stride + 1


def _window(xp_, i, j, oh, ow, strides):
    """The input cells that window offset (i, j) touches, one per output cell.

    Output cell (r, c) reads padded input row ``r*sh + i`` and column
    ``c*sw + j``, so offset (i, j) sees rows i, i+sh, ..., i+(oh-1)*sh: one
    strided slice covers the whole output at once.
    """
    sh, sw = strides
    return xp_[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


# ----------------------------------------------------------------------------
# convolution: im2col + one GEMM; backward = GEMMs + col2im
# ----------------------------------------------------------------------------
def _im2col(x, kh, kw, strides, pads):
    """Patches of x as a (N, OH, OW, KH, KW, C) array: KH*KW strided copies."""
    xp_ = _pad(x, pads)
    n, hp, wp, c = xp_.shape
    oh = (hp - kh) // strides[0] + 1
    ow = (wp - kw) // strides[1] + 1
    col = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, :, :, i, j, :] = _window(xp_, i, j, oh, ow, strides)
    return col


def _col2im(dcol, x_shape, strides, pads):
    """Adjoint of _im2col: every patch entry is added back to the input cell
    it was copied from (overlapping windows add up), then padding is cut off."""
    n, oh, ow, kh, kw, c = dcol.shape
    top, bottom, left, right = pads
    h, w = x_shape[1], x_shape[2]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dcol.dtype)
    for i in range(kh):
        for j in range(kw):
            _window(dxp, i, j, oh, ow, strides)[...] += dcol[:, :, :, i, j, :]
    return dxp[:, top:top + h, left:left + w, :]


def conv2d_forward(x, w, strides, pads):
    """y[n, r, c, f] = sum_{i,j,ch} xpad[n, r*sh+i, c*sw+j, ch] * w[i, j, ch, f].

    x (N, H, W, C), w (KH, KW, C, F) -> y (N, OH, OW, F); no bias (see
    bias_act_forward)."""
    if _fast_ok(x, w) and x.ndim == 4 and w.ndim == 4 and x.shape[3] == w.shape[2] \
            and min(_fast.conv_out_size(x.shape[1], x.shape[2], w.shape[0], w.shape[1], strides, pads)) > 0:
        return _fast.conv2d_forward(x, w, strides, pads)
    return conv2d_forward_reference(x, w, strides, pads)


def conv2d_forward_reference(x, w, strides, pads):
    """conv2d_forward as im2col + one GEMM, the readable way."""
    kh, kw, c, f = w.shape
    col = _im2col(x, kh, kw, strides, pads)
    n, oh, ow = col.shape[:3]
    y = col.reshape(n * oh * ow, kh * kw * c) @ w.reshape(kh * kw * c, f)
    return y.reshape(n, oh, ow, f)


def conv2d_backward(dy, x, w, strides, pads, need_dx=True):
    """Gradients of conv2d_forward: ``(dx or None, dw)``.

    With the patch matrix P (rows: output cells, cols: KH*KW*C) and y = P @ W:
    dW = P^T @ dY, and dP = dY @ W^T, which col2im scatters back onto dx."""
    if _fast_ok(dy, x, w) and x.ndim == 4 and w.ndim == 4 and x.shape[3] == w.shape[2] \
            and dy.shape == (x.shape[0],) + _fast.conv_out_size(x.shape[1], x.shape[2], w.shape[0],
                                                                w.shape[1], strides, pads) + (w.shape[3],):
        return _fast.conv2d_backward(dy, x, w, strides, pads, need_dx)
    return conv2d_backward_reference(dy, x, w, strides, pads, need_dx)


def conv2d_backward_reference(dy, x, w, strides, pads, need_dx=True):
    """conv2d_backward the readable way: rebuild P, two GEMMs, col2im."""
    kh, kw, c, f = w.shape
    col = _im2col(x, kh, kw, strides, pads)
    n, oh, ow = col.shape[:3]
    dy2 = dy.reshape(n * oh * ow, f)
    dw = (col.reshape(n * oh * ow, kh * kw * c).T @ dy2).reshape(w.shape)
    if not need_dx:
        return None, dw
    dcol = (dy2 @ w.reshape(kh * kw * c, f).T).reshape(n, oh, ow, kh, kw, c)
    return _col2im(dcol, x.shape, strides, pads), dw


def dense_forward(x, w):
    """x (N, IN) @ w (IN, OUT) -> (N, OUT)."""
    if _fast_ok(x, w) and x.ndim == 2 and w.ndim == 2:
        return _fast.dense_forward(x, w)  # rows split over the cores
    return x @ w


def dense_backward(dy, x, w, need_dx=True):
    """``(dx or None, dw)`` for y = x @ w: dw = x^T dy, dx = dy w^T."""
    if _fast_ok(dy, x, w) and x.ndim == 2 and w.ndim == 2:
        return _fast.dense_backward(dy, x, w, need_dx)  # same GEMMs, OpenBLAS kept at 1 thread
    dw = x.T @ dy
    return (dy @ w.T if need_dx else None), dw


# ----------------------------------------------------------------------------
# bias + activation (applied in place on z)
# ----------------------------------------------------------------------------
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


def bias_act_forward(z, b, activation):
    """a = activation(z + b), b broadcast over the last axis; overwrites z.

    ``b`` may be None; activation is one of ACTIVATIONS (softmax over the last
    axis, shifted by the row max so exp never overflows)."""
    if activation in ("relu", "linear") and (activation == "relu" or b is not None) and _fast_ok(z) \
            and z.ndim >= 1 and z.flags.c_contiguous \
            and (b is None or (isinstance(b, np.ndarray) and b.shape == z.shape[-1:])):
        return _fast.bias_act_forward(z, b, activation)  # chunked, over the cores
    return bias_act_forward_reference(z, b, activation)


def bias_act_forward_reference(z, b, activation):
    """bias_act_forward, the readable way: whole-array in-place NumPy."""
    if b is not None:
        z += b
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation == "sigmoid":
        # 1/(1+exp(-z)) overflows exp for z << 0; tanh form is stable everywhere
        np.multiply(z, 0.5, out=z)
        np.tanh(z, out=z)
        z += 1
        z *= 0.5
    elif activation == "tanh":
        np.tanh(z, out=z)
    elif activation == "softmax":
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
    elif activation != "linear":
        raise ValueError(f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    return z


def bias_act_backward(da, a, activation, has_bias):
    """``(dz, db or None)`` from the upstream gradient da and the OUTPUT a.

    Each derivative is written in terms of the output, so the input need not
    be kept: relu' = [a > 0], sigmoid' = a(1-a), tanh' = 1-a^2, and softmax's
    Jacobian-vector product dz = a * (da - sum(da * a))."""
    if activation in ("relu", "linear") and _fast_ok(da) and da.ndim >= 1 \
            and (activation == "linear" or (isinstance(a, np.ndarray) and a.shape == da.shape)):
        return _fast.bias_act_backward(da, a, activation, has_bias)  # chunked, over the cores
    return bias_act_backward_reference(da, a, activation, has_bias)


def bias_act_backward_reference(da, a, activation, has_bias):
    """bias_act_backward, the readable way."""
    if activation == "linear":
        dz = da
    elif activation == "relu":
        dz = da * (a > 0)
    elif activation == "sigmoid":
        dz = da * a * (1 - a)
    elif activation == "tanh":
        dz = da * (1 - a * a)
    elif activation == "softmax":
        dz = a * (da - (da * a).sum(axis=-1, keepdims=True))
    else:
        raise ValueError(f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    db = dz.reshape(-1, dz.shape[-1]).sum(axis=0) if has_bias else None
    return dz, db


# ----------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------
def maxpool_forward(x, pool, strides, pads):
    """``(y, argmax)``: the max of each window and where it was.

    argmax (int32, shape of y) holds the window offset ``i*PW + j`` of the
    first maximum; padded cells are -inf so they never win (TensorFlow's SAME
    pooling ignores them)."""
    if _pool_tiles(x, pool, strides, pads):
        return _fast.maxpool_forward_tiled(x, tuple(pool))  # windows tile x: views, no masks
    return maxpool_forward_reference(x, pool, strides, pads)


def _pool_tiles(x, pool, strides, pads):
    """Fast pooling applies when the windows tile the input (stride = pool, no padding)."""
    return (_fast_ok(x) and x.ndim == 4 and tuple(pool) == tuple(strides) and not any(pads)
            and x.shape[1] >= pool[0] and x.shape[2] >= pool[1])


def maxpool_forward_reference(x, pool, strides, pads):
    """maxpool_forward the readable way: one strided compare per window offset."""
    ph, pw = pool
    xp_ = _pad(x, pads, value=-np.inf)
    oh = (xp_.shape[1] - ph) // strides[0] + 1
    ow = (xp_.shape[2] - pw) // strides[1] + 1
    y = _window(xp_, 0, 0, oh, ow, strides).copy()
    argmax = np.zeros(y.shape, dtype=np.int32)
    for i in range(ph):
        for j in range(pw):
            if i == 0 and j == 0:
                continue
            cand = _window(xp_, i, j, oh, ow, strides)
            better = cand > y  # strict: ties keep the first offset
            np.copyto(y, cand, where=better)
            argmax[better] = i * pw + j
    return y, argmax


def maxpool_backward(dy, argmax, x_shape, pool, strides, pads):
    """dx: each output's gradient goes to the input cell that was its max.

    One masked strided add per window offset; overlapping windows (stride <
    pool) add up correctly, with no scatter and no np.add.at."""
    if _fast_ok(dy) and dy.ndim == 4 and tuple(pool) == tuple(strides) and not any(pads) \
            and len(x_shape) == 4 and isinstance(argmax, np.ndarray) and argmax.shape == dy.shape \
            and (x_shape[0], x_shape[1] // pool[0], x_shape[2] // pool[1], x_shape[3]) == dy.shape:
        return _fast.maxpool_backward_tiled(dy, argmax, tuple(x_shape), tuple(pool))
    return maxpool_backward_reference(dy, argmax, x_shape, pool, strides, pads)


def maxpool_backward_reference(dy, argmax, x_shape, pool, strides, pads):
    """maxpool_backward the readable way."""
    ph, pw = pool
    top, bottom, left, right = pads
    n, h, w, c = x_shape
    oh, ow = dy.shape[1], dy.shape[2]
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dy.dtype)
    for i in range(ph):
        for j in range(pw):
            _window(dxp, i, j, oh, ow, strides)[...] += dy * (argmax == i * pw + j)
    return dxp[:, top:top + h, left:left + w, :]


# ----------------------------------------------------------------------------
# categorical cross-entropy on probabilities, and accuracy
# ----------------------------------------------------------------------------
EPSILON = 1e-7  # Keras's backend epsilon: probabilities are clipped to [eps, 1-eps]


def xent_loss(p, y):
    """Per-sample loss -sum(y * log(clip(p / sum(p)))) as Keras computes it."""
    q = p / p.sum(axis=-1, keepdims=True)
    np.clip(q, EPSILON, 1 - EPSILON, out=q)
    return -(y * np.log(q)).sum(axis=-1)


def xent_backward(p, y):
    """Gradient of the MEAN xent_loss over the batch with respect to p.

    Chain rule through the three steps: d/dq of -y log q is -y/q (zero where
    the clip was active), and q = p/s with s = sum(p) gives
    dp_j = (dq_j - sum_k dq_k q_k) / s."""
    s = p.sum(axis=-1, keepdims=True)
    q = p / s
    inside = (q >= EPSILON) & (q <= 1 - EPSILON)
    dq = -y / np.clip(q, EPSILON, 1 - EPSILON) * inside / p.shape[0]
    return (dq - (dq * q).sum(axis=-1, keepdims=True)) / s


def softmax_xent_backward(p, y):
    """Fused gradient w.r.t. the logits of mean xent(softmax(z)): (p - y) / N."""
    return (p - y) / p.dtype.type(p.shape[0])


def accuracy_count(p, y):
    """How many rows have argmax(p) == argmax(y) (ties: first index)."""
    return np.count_nonzero(p.argmax(axis=-1) == y.argmax(axis=-1))


# ----------------------------------------------------------------------------
# optimizers (update the arrays in place)
# ----------------------------------------------------------------------------
def rmsprop_update(param, grad, v, lr, rho, eps):
    """Keras 3 RMSprop: v = rho v + (1-rho) g^2; param -= lr g / sqrt(v + eps)."""
    if _fast_ok(param, grad, v) and param.shape == grad.shape == v.shape:
        return _fast.rmsprop_update(param, grad, v, lr, rho, eps)  # same bits, no temporaries
    return rmsprop_update_reference(param, grad, v, lr, rho, eps)


def rmsprop_update_reference(param, grad, v, lr, rho, eps):
    """rmsprop_update, the readable way."""
    dt = param.dtype.type
    v *= dt(rho)
    v += dt(1 - rho) * grad * grad
    param -= dt(lr) * grad / np.sqrt(v + dt(eps))


def sgd_update(param, grad, lr):
    """Plain SGD: param -= lr * grad."""
    param -= param.dtype.type(lr) * grad
