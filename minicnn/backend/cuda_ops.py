"""CUDA backend: every backend op as launches of our kernels in ``kernels/*.cu``.

One class, :class:`CudaOps`, serves two targets with the very same code:

- ``CudaOps(cupy, 'cupy')``: arrays are CuPy arrays, kernels are
  ``cupy.RawModule`` functions running on the GPU, matrix products are
  ``cupy.matmul`` (cuBLAS).
- ``CudaOps(numpy, 'emulator')``: arrays are NumPy arrays, kernels are the same
  ``.cu`` text compiled by g++ and run on CPU threads, matrix products are
  ``numpy.matmul``. The tests use it to prove the GPU path without a GPU.

Kernels come only from :func:`minicnn.backend.loader.load_module`. All grid
and block arithmetic and every argument check happen here, before each
launch, so the emulator tests them too. The CUDA backend is float32-only:
other dtypes raise ``TypeError``; arrays must be C-contiguous (``ValueError``
otherwise). Scalars go to kernels as explicit ``np.int32`` / ``np.float32``
(CuPy would pass a Python int as int64 and a float as float64, which a
kernel's ``int``/``float`` parameter silently misreads).

Ops never synchronise host and device: results stay device arrays (the
accuracy count is a 0-d int32 array; ``to_numpy`` turns it into a number).
Signatures and semantics are exactly those of :mod:`minicnn.backend.numpy_ops`.
"""
import math

import numpy as np

from .numpy_ops import ACTIVATIONS, EPSILON

TARGETS = ("cupy", "emulator")

# Every kernel this class launches, by module (kernels/<module>.cu). The
# compile tests check that each file defines exactly these entry points.
KERNELS = {
    "conv2d": ("im2col_nhwc", "col2im_nhwc"),
    "pooling": ("maxpool_forward_nhwc", "maxpool_backward_nhwc"),
    "elementwise": ("bias_act_forward", "act_backward", "column_sum_partials",
                    "column_sum_finish"),
    "softmax_xent": ("bias_softmax_rows", "softmax_backward_rows", "xent_loss_rows",
                     "xent_backward_rows", "softmax_xent_backward", "accuracy_count"),
    "optimizers": ("rmsprop_update", "sgd_update"),
}

# Activation codes of kernels/elementwise.cu (ACT_LINEAR ... ACT_TANH).
ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

BLOCK_1D = 256          # threads per block for one-thread-per-element kernels
MAX_GRID_X = 65535      # grid cap for grid-stride kernels (any grid is correct)
MAX_ROW_BLOCK = 256     # MAX_BLOCK of kernels/softmax_xent.cu
COLSUM_COLS, COLSUM_LANES = 32, 8   # CS_COLS, CS_LANES of elementwise.cu
COLSUM_MIN_ROWS = 64    # rows per chunk at least, so each lane sums >= 8 rows
COLSUM_MAX_CHUNKS = 1024
INT32_LIMIT = 2 ** 31 - 1   # kernels index with 32-bit ints


def _ceil_div(a, b):
    return -(-a // b)


def _grid_1d(total, block=BLOCK_1D):
    """Blocks for a grid-stride kernel over ``total`` items (at least one)."""
    return (max(1, min(_ceil_div(total, block), MAX_GRID_X)), 1, 1)


def _row_block(cols):
    """Threads per block of a one-block-per-row kernel: a power of two in
    [32, MAX_ROW_BLOCK], no more than the row needs (the tree reduction
    requires a power of two)."""
    return min(MAX_ROW_BLOCK, max(32, 1 << (max(cols, 1) - 1).bit_length()))


def _pair(op, name, value):
    """Two positive Python ints from ``value`` (a pair)."""
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a pair of ints, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{op}: {name} must be positive, got {value!r}")
    return a, b


def _pads4(op, pads):
    """(top, bottom, left, right) as four non-negative Python ints."""
    try:
        top, bottom, left, right = (int(v) for v in pads)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: pads must be (top, bottom, left, right) ints, got {pads!r}") from None
    if min(top, bottom, left, right) < 0:
        raise ValueError(f"{op}: pads must be non-negative, got {pads!r}")
    return top, bottom, left, right


def _out_size(op, size, k, stride, pad_total, axis):
    out = (size + pad_total - k) // stride + 1
    if out < 1:
        raise ValueError(f"{op}: window {k} does not fit {axis} {size} with padding {pad_total}")
    return out


def _check_count(op, *counts):
    """Refuse sizes the kernels' 32-bit index arithmetic cannot address."""
    for n in counts:
        if n > INT32_LIMIT:
            raise ValueError(f"{op}: {n} elements exceed the kernels' 32-bit indexing "
                             f"(at most {INT32_LIMIT}); use smaller batches")


def _with_context(error, message):
    """``error``'s class with ``message`` (so callers can still catch e.g. the
    emulator's RaceError), or a RuntimeError when that class needs other
    constructor arguments (CuPy's CUDA errors take a status code)."""
    try:
        return type(error)(message)
    except Exception:
        return RuntimeError(message)


class CudaOps:
    """The backend ops on ``xp`` arrays, computed by our CUDA kernels.

    ``xp`` is the ``cupy`` module (target ``'cupy'``) or ``numpy`` (target
    ``'emulator'``). Example::

        >>> import numpy
        >>> ops = CudaOps(numpy, 'emulator')
        >>> y, argmax = ops.maxpool_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    """

    def __init__(self, xp, target):
        if target not in TARGETS:
            raise ValueError(f"CudaOps: unknown target {target!r}; expected one of {TARGETS}")
        self.xp = xp
        self.target = target
        self._functions = {}   # (module, kernel) -> launchable function

    def __repr__(self):
        return f"CudaOps(xp={self.xp.__name__}, target={self.target!r})"

    # ------------------------------------------------------------------------
    # kernels and launches
    # ------------------------------------------------------------------------
    def _function(self, module, kernel):
        """The kernel ``kernel`` of ``kernels/<module>.cu``, loaded once."""
        key = (module, kernel)
        fn = self._functions.get(key)
        if fn is None:
            if kernel not in KERNELS.get(module, ()):
                raise ValueError(f"CudaOps: no kernel {kernel!r} in module {module!r} (see KERNELS)")
            from . import loader  # late: the loader pulls in CuPy or g++ only when used
            fn = loader.load_module(module, self.target).get_function(kernel)
            self._functions[key] = fn
        return fn

    def _check_launch_args(self, where, args):
        for i, a in enumerate(args):
            if isinstance(a, self.xp.ndarray):
                if a.dtype not in (np.float32, np.int32) or not a.flags.c_contiguous:
                    raise TypeError(f"{where}: argument {i} must be a C-contiguous float32/int32 "
                                    f"array, got {a.dtype} contiguous={a.flags.c_contiguous}")
            elif not isinstance(a, (np.int32, np.float32)):
                raise TypeError(f"{where}: argument {i} must be an array, np.int32 or np.float32, "
                                f"got {type(a).__name__}")

    def _launch(self, op, module, kernel, grid, block, args):
        """Launch ``module.kernel`` after checking the configuration and the
        argument types; any failure names the op, kernel and configuration."""
        where = f"{op}: kernel {module}.{kernel} (grid={grid}, block={block})"
        if math.prod(block) > 1024 or min(block) < 1:
            raise ValueError(f"{where}: a block holds 1 to 1024 threads")
        if not (1 <= grid[0] <= INT32_LIMIT and 1 <= grid[1] <= 65535 and 1 <= grid[2] <= 65535):
            raise ValueError(f"{where}: grid out of range")
        self._check_launch_args(where, args)
        fn = self._function(module, kernel)
        try:
            fn(grid, block, tuple(args))
        except Exception as e:
            raise _with_context(e, f"{where} failed: {type(e).__name__}: {e}") from e

    def _array(self, op, name, a, ndim=None, dtype=np.float32):
        """Check that ``a`` is a C-contiguous ``dtype`` array of this backend."""
        if not isinstance(a, self.xp.ndarray):
            raise TypeError(f"{op}: {name} must be a {self.xp.__name__} array on the "
                            f"'{self.target}' backend, got {type(a).__module__}.{type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{op}: {name} must be {np.dtype(dtype).name} (the CUDA backend "
                            f"computes in float32 only; labels too), got {a.dtype}")
        if ndim is not None and a.ndim != ndim:
            raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {a.shape}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} must be C-contiguous (kernels read it row-major); "
                             f"pass xp.ascontiguousarray({name})")
        return a

    @staticmethod
    def _same_shape(op, name_a, a, name_b, b):
        if a.shape != b.shape:
            raise ValueError(f"{op}: {name_a} {a.shape} and {name_b} {b.shape} must have the same shape")

    # ------------------------------------------------------------------------
    # arrays
    # ------------------------------------------------------------------------
    def asarray(self, a, dtype="float32"):
        """A C-contiguous backend array of ``a`` (float32 unless ``dtype`` says)."""
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a):
        """``a`` as a NumPy array (a device-to-host copy on the GPU)."""
        if self.target == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def empty(self, shape, dtype="float32"):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype="float32"):
        return self.xp.zeros(shape, dtype=dtype)

    # ------------------------------------------------------------------------
    # convolution: im2col kernel + GEMM; backward = GEMMs + col2im kernel
    # ------------------------------------------------------------------------
    def _conv_geometry(self, op, x_shape, w_shape, strides, pads):
        """Kernel int arguments (N, H, W, C, KH, KW, SH, SW, PT, PL, OH, OW)."""
        n, h, w, c = x_shape
        kh, kw, wc, _ = w_shape
        if wc != c:
            raise ValueError(f"{op}: x has {c} channels but the kernel expects {wc} (w {w_shape})")
        sh, sw = _pair(op, "strides", strides)
        top, bottom, left, right = _pads4(op, pads)
        oh = _out_size(op, h, kh, sh, top + bottom, "height")
        ow = _out_size(op, w, kw, sw, left + right, "width")
        _check_count(op, n * oh * ow * kh * kw * c, n * h * w * c)
        return n, h, w, c, kh, kw, sh, sw, top, left, oh, ow

    @staticmethod
    def _is_pointwise(g):
        """1x1 kernel, stride 1, no padding: the patch matrix is x itself."""
        _, _, _, _, kh, kw, sh, sw, top, left, oh, ow = g
        return kh == kw == sh == sw == 1 and top == left == 0 and (oh, ow) == (g[1], g[2])

    def _im2col(self, op, x, g):
        n, h, w, c, kh, kw, sh, sw, top, left, oh, ow = g
        if self._is_pointwise(g):
            return x.reshape(n * h * w, c)
        col = self.xp.empty((n * oh * ow, kh * kw * c), dtype=np.float32)
        if col.size:
            self._launch(op, "conv2d", "im2col_nhwc", _grid_1d(col.size), (BLOCK_1D, 1, 1),
                         (x, col) + tuple(np.int32(v) for v in g))
        return col

    def _col2im(self, op, dcol, x_shape, g):
        if self._is_pointwise(g):
            return dcol.reshape(x_shape)
        dx = self.xp.empty(x_shape, dtype=np.float32)
        if dx.size:
            self._launch(op, "conv2d", "col2im_nhwc", _grid_1d(dx.size), (BLOCK_1D, 1, 1),
                         (dcol, dx) + tuple(np.int32(v) for v in g))
        return dx

    def conv2d_forward(self, x, w, strides, pads):
        """y[n, r, c, f] = sum_{i,j,ch} xpad[n, r*sh+i, c*sw+j, ch] * w[i, j, ch, f].

        x (N, H, W, C), w (KH, KW, C, F) -> y (N, OH, OW, F); no bias."""
        op = "conv2d_forward"
        self._array(op, "x", x, 4)
        self._array(op, "w", w, 4)
        g = self._conv_geometry(op, x.shape, w.shape, strides, pads)
        kh, kw, c, f = w.shape
        col = self._im2col(op, x, g)
        y = self.xp.matmul(col, w.reshape(kh * kw * c, f))
        return y.reshape(g[0], g[10], g[11], f)

    def conv2d_backward(self, dy, x, w, strides, pads, need_dx=True):
        """Gradients of conv2d_forward: ``(dx or None, dw)``.

        dW = P^T @ dY with P the patch matrix (im2col); dx = col2im(dY @ W^T)."""
        op = "conv2d_backward"
        self._array(op, "dy", dy, 4)
        self._array(op, "x", x, 4)
        self._array(op, "w", w, 4)
        g = self._conv_geometry(op, x.shape, w.shape, strides, pads)
        kh, kw, c, f = w.shape
        expected = (g[0], g[10], g[11], f)
        if dy.shape != expected:
            raise ValueError(f"{op}: dy has shape {dy.shape}, expected {expected} for x {x.shape}, "
                             f"w {w.shape}")
        w2 = w.reshape(kh * kw * c, f)
        dy2 = dy.reshape(-1, f)
        dw = self.xp.matmul(self._im2col(op, x, g).T, dy2).reshape(w.shape)
        if not need_dx:
            return None, dw
        return self._col2im(op, self.xp.matmul(dy2, w2.T), x.shape, g), dw

    def dense_forward(self, x, w):
        """x (N, IN) @ w (IN, OUT) -> (N, OUT)."""
        op = "dense_forward"
        self._array(op, "x", x, 2)
        self._array(op, "w", w, 2)
        if x.shape[1] != w.shape[0]:
            raise ValueError(f"{op}: x {x.shape} and w {w.shape} do not chain")
        return self.xp.matmul(x, w)

    def dense_backward(self, dy, x, w, need_dx=True):
        """``(dx or None, dw)`` for y = x @ w: dw = x^T dy, dx = dy w^T."""
        op = "dense_backward"
        self._array(op, "dy", dy, 2)
        self._array(op, "x", x, 2)
        self._array(op, "w", w, 2)
        if x.shape[1] != w.shape[0] or dy.shape != (x.shape[0], w.shape[1]):
            raise ValueError(f"{op}: dy {dy.shape}, x {x.shape}, w {w.shape} do not match")
        dw = self.xp.matmul(x.T, dy)
        return (self.xp.matmul(dy, w.T) if need_dx else None), dw

    # ------------------------------------------------------------------------
    # bias + activation
    # ------------------------------------------------------------------------
    @staticmethod
    def _activation(activation):
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}")
        return activation

    def _rows_launch(self, op, kernel, rows, cols, args):
        """One block per row of a (rows, cols) matrix (softmax_xent.cu)."""
        self._launch(op, "softmax_xent", kernel, (min(rows, MAX_GRID_X), 1, 1),
                     (_row_block(cols), 1, 1), args)

    def bias_act_forward(self, z, b, activation):
        """a = activation(z + b), b broadcast over the last axis; overwrites z.

        ``b`` may be None; activation is one of ACTIVATIONS."""
        op = "bias_act_forward"
        self._activation(activation)
        self._array(op, "z", z)
        if z.ndim < 1:
            raise ValueError(f"{op}: z must have at least one axis")
        cols = z.shape[-1]
        if b is not None:
            self._array(op, "b", b, 1)
            if b.shape[0] != cols:
                raise ValueError(f"{op}: bias has {b.shape[0]} entries, z's last axis {cols}")
        _check_count(op, z.size)
        if z.size == 0 or (b is None and activation == "linear"):
            return z
        has_bias = np.int32(b is not None)
        bias = b if b is not None else z   # never read when has_bias == 0
        if activation == "softmax":
            rows = z.size // cols
            self._rows_launch(op, "bias_softmax_rows", rows, cols,
                              (z, bias, np.int32(rows), np.int32(cols), has_bias))
        else:
            self._launch(op, "elementwise", "bias_act_forward", _grid_1d(z.size), (BLOCK_1D, 1, 1),
                         (z, bias, np.int32(z.size), np.int32(cols), has_bias,
                          np.int32(ACT_CODES[activation])))
        return z

    def bias_act_backward(self, da, a, activation, has_bias):
        """``(dz, db or None)`` from the upstream gradient da and the OUTPUT a.

        relu' = [a > 0], sigmoid' = a(1-a), tanh' = 1-a^2, softmax: dz =
        a * (da - sum(da * a)); linear returns da itself. db sums dz over all
        axes but the last (deterministic two-pass column sum)."""
        op = "bias_act_backward"
        self._activation(activation)
        self._array(op, "da", da)
        self._array(op, "a", a)
        self._same_shape(op, "da", da, "a", a)
        if da.ndim < 1:
            raise ValueError(f"{op}: da must have at least one axis")
        _check_count(op, da.size)
        cols = da.shape[-1]
        if activation == "linear":
            dz = da
        else:
            dz = self.xp.empty(da.shape, dtype=np.float32)
            if da.size and activation == "softmax":
                rows = da.size // cols
                self._rows_launch(op, "softmax_backward_rows", rows, cols,
                                  (da, a, dz, np.int32(rows), np.int32(cols)))
            elif da.size:
                self._launch(op, "elementwise", "act_backward", _grid_1d(da.size), (BLOCK_1D, 1, 1),
                             (da, a, dz, np.int32(da.size), np.int32(ACT_CODES[activation])))
        return dz, (self._column_sum(op, dz) if has_bias else None)

    def _column_sum(self, op, a):
        """Sum of ``a`` over all axes but the last, without float atomics."""
        cols = a.shape[-1]
        rows = a.size // cols if cols else 0
        out = self.xp.empty((cols,), dtype=np.float32)
        if cols == 0:
            return out
        if rows == 0:
            out[...] = 0
            return out
        nchunks = min(_ceil_div(rows, COLSUM_MIN_ROWS), COLSUM_MAX_CHUNKS)
        rows_per_chunk = _ceil_div(rows, nchunks)
        partial = self.xp.empty((nchunks, cols), dtype=np.float32)
        self._launch(op, "elementwise", "column_sum_partials",
                     (_ceil_div(cols, COLSUM_COLS), nchunks, 1), (COLSUM_COLS, COLSUM_LANES, 1),
                     (a, partial, np.int32(rows), np.int32(cols), np.int32(rows_per_chunk)))
        self._launch(op, "elementwise", "column_sum_finish", _grid_1d(cols), (BLOCK_1D, 1, 1),
                     (partial, out, np.int32(nchunks), np.int32(cols)))
        return out

    # ------------------------------------------------------------------------
    # max pooling
    # ------------------------------------------------------------------------
    def _pool_geometry(self, op, x_shape, pool, strides, pads):
        """Kernel int arguments (N, H, W, C, PH, PW, SH, SW, PT, PL, OH, OW)."""
        n, h, w, c = (int(v) for v in x_shape)
        ph, pw = _pair(op, "pool", pool)
        sh, sw = _pair(op, "strides", strides)
        top, bottom, left, right = _pads4(op, pads)
        oh = _out_size(op, h, ph, sh, top + bottom, "height")
        ow = _out_size(op, w, pw, sw, left + right, "width")
        _check_count(op, n * h * w * c, n * oh * ow * c)
        return n, h, w, c, ph, pw, sh, sw, top, left, oh, ow

    def maxpool_forward(self, x, pool, strides, pads):
        """``(y, argmax)``: the max of each window and where it was.

        argmax (int32, shape of y) holds the window offset ``i*PW + j`` of the
        first maximum; padded cells are -inf so they never win."""
        op = "maxpool_forward"
        self._array(op, "x", x, 4)
        g = self._pool_geometry(op, x.shape, pool, strides, pads)
        shape = (g[0], g[10], g[11], g[3])
        y = self.xp.empty(shape, dtype=np.float32)
        argmax = self.xp.empty(shape, dtype=np.int32)
        if y.size:
            self._launch(op, "pooling", "maxpool_forward_nhwc", _grid_1d(y.size), (BLOCK_1D, 1, 1),
                         (x, y, argmax) + tuple(np.int32(v) for v in g))
        return y, argmax

    def maxpool_backward(self, dy, argmax, x_shape, pool, strides, pads):
        """dx: each output's gradient goes to the input cell that was its max
        (each input cell gathers; overlapping windows add up)."""
        op = "maxpool_backward"
        self._array(op, "dy", dy, 4)
        self._array(op, "argmax", argmax, 4, dtype=np.int32)
        if len(x_shape) != 4:
            raise ValueError(f"{op}: x_shape must be (N, H, W, C), got {x_shape!r}")
        g = self._pool_geometry(op, x_shape, pool, strides, pads)
        expected = (g[0], g[10], g[11], g[3])
        if dy.shape != expected or argmax.shape != expected:
            raise ValueError(f"{op}: dy {dy.shape} and argmax {argmax.shape} must both be "
                             f"{expected} for x_shape {tuple(x_shape)}")
        dx = self.xp.empty(tuple(g[:4]), dtype=np.float32)
        if dx.size:
            self._launch(op, "pooling", "maxpool_backward_nhwc", _grid_1d(dx.size), (BLOCK_1D, 1, 1),
                         (dy, argmax, dx) + tuple(np.int32(v) for v in g))
        return dx

    # ------------------------------------------------------------------------
    # categorical cross-entropy on probabilities, and accuracy
    # ------------------------------------------------------------------------
    def _prob_pair(self, op, p, y):
        """Check p and y; return (rows, cols) of their (..., classes) matrix."""
        self._array(op, "p", p)
        self._array(op, "y", y)
        self._same_shape(op, "p", p, "y", y)
        if p.ndim < 1 or p.shape[-1] < 1:
            raise ValueError(f"{op}: p must have a non-empty class axis, got shape {p.shape}")
        _check_count(op, p.size)
        return p.size // p.shape[-1], p.shape[-1]

    def xent_loss(self, p, y):
        """Per-sample loss -sum(y * log(clip(p / sum(p)))) as Keras computes it."""
        op = "xent_loss"
        rows, cols = self._prob_pair(op, p, y)
        loss = self.xp.empty(p.shape[:-1], dtype=np.float32)
        if rows:
            self._rows_launch(op, "xent_loss_rows", rows, cols,
                              (p, y, loss, np.int32(rows), np.int32(cols),
                               np.float32(EPSILON), np.float32(1 - EPSILON)))
        return loss

    def xent_backward(self, p, y):
        """Gradient of the MEAN xent_loss over the batch (axis 0) w.r.t. p."""
        op = "xent_backward"
        rows, cols = self._prob_pair(op, p, y)
        dp = self.xp.empty(p.shape, dtype=np.float32)
        if rows:
            self._rows_launch(op, "xent_backward_rows", rows, cols,
                              (p, y, dp, np.int32(rows), np.int32(cols), np.float32(EPSILON),
                               np.float32(1 - EPSILON), np.float32(p.shape[0])))
        return dp

    def softmax_xent_backward(self, p, y):
        """Fused gradient w.r.t. the logits of mean xent(softmax(z)): (p - y) / N."""
        op = "softmax_xent_backward"
        self._prob_pair(op, p, y)
        dz = self.xp.empty(p.shape, dtype=np.float32)
        if p.size:
            self._launch(op, "softmax_xent", "softmax_xent_backward", _grid_1d(p.size),
                         (BLOCK_1D, 1, 1), (p, y, dz, np.int32(p.size), np.float32(p.shape[0])))
        return dz

    def accuracy_count(self, p, y):
        """How many rows have argmax(p) == argmax(y) (ties: first index).

        Returned as a 0-d int32 device array (no host sync); ``int(to_numpy(c))``
        gives the number."""
        op = "accuracy_count"
        rows, cols = self._prob_pair(op, p, y)
        count = self.xp.zeros((1,), dtype=np.int32)
        if rows:
            self._launch(op, "softmax_xent", "accuracy_count", _grid_1d(rows), (BLOCK_1D, 1, 1),
                         (p, y, count, np.int32(rows), np.int32(cols)))
        return count.reshape(())

    # ------------------------------------------------------------------------
    # optimizers (update the arrays in place, one fused launch per parameter)
    # ------------------------------------------------------------------------
    def _param_grad(self, op, param, grad):
        self._array(op, "param", param)
        self._array(op, "grad", grad)
        self._same_shape(op, "param", param, "grad", grad)
        _check_count(op, param.size)

    def rmsprop_update(self, param, grad, v, lr, rho, eps):
        """Keras 3 RMSprop: v = rho v + (1-rho) g^2; param -= lr g / sqrt(v + eps)."""
        op = "rmsprop_update"
        self._param_grad(op, param, grad)
        self._array(op, "v", v)
        self._same_shape(op, "param", param, "v", v)
        if param.size:
            # float32(1 - rho) rounded from double, exactly as the reference
            self._launch(op, "optimizers", "rmsprop_update", _grid_1d(param.size), (BLOCK_1D, 1, 1),
                         (param, grad, v, np.int32(param.size), np.float32(lr), np.float32(rho),
                          np.float32(1 - rho), np.float32(eps)))

    def sgd_update(self, param, grad, lr):
        """Plain SGD: param -= lr * grad."""
        op = "sgd_update"
        self._param_grad(op, param, grad)
        if param.size:
            self._launch(op, "optimizers", "sgd_update", _grid_1d(param.size), (BLOCK_1D, 1, 1),
                         (param, grad, np.int32(param.size), np.float32(lr)))
