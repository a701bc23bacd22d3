"""bias_act: bias + activation, fused, and its gradient, on every device.

    a = act(z + b)          b broadcast over the last axis (the channels / units)

z is any (..., F) array, b an (F,) vector or None; act is one of
:data:`ACTIVATIONS` (softmax over the last axis, shifted by the row max so
exp never overflows). The forward overwrites z and returns it.

The backward needs only the OUTPUT a (the input z is not kept): each
derivative is written in terms of a,

    relu' = [a > 0]     sigmoid' = a (1 - a)     tanh' = 1 - a^2
    softmax (its Jacobian-vector product):  dz = a * (da - sum(da * a))

and dz = da * act'. Linear returns da itself. The bias gradient db is dz
summed over all axes but the last.

This module holds every version, in this order:

1. The checks (shapes, dtypes, the activation's name), for every device.
2. The reference (``forward_reference`` / ``backward_reference``): whole-array
   in-place NumPy, any float dtype; the specification.
3. The CPU fast path, for relu and linear(+bias) on C-contiguous float32
   arrays of at least ``NB_MIN_ELEMS`` values when compiled kernels run: one
   pass over memory on all cores. The forward gives the reference's bits;
   the backward's dz too, and db is summed in ``DB_CHUNKS`` fixed row chunks
   added in order (the same bits whatever the thread count). Everything else
   runs the reference.
4. The CUDA path: ``kernels/bias_act.cu``, on a GPU or on the emulator
   (elementwise kernels, one block per row for softmax, and a deterministic
   two-pass column sum for db).

Example::

    >>> a = bias_act.forward(z, b, "relu")          # a is z, overwritten
    >>> dz, db = bias_act.backward(da, a, "relu", has_bias=True)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, MAX_GRID_X, grid_1d
from .common import prange, require_array, require_same_dtype, require_shape

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")

KERNELS = ("bias_act_forward", "act_backward", "column_sum_partials", "column_sum_finish",
           "bias_softmax_rows", "softmax_backward_rows")   # in kernels/bias_act.cu

# The ACT_* codes of kernels/bias_act.cu (softmax has its own row kernels).
ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}

# The compiled CPU kernels take arrays from this many values up (below, the
# reference's whole-array NumPy calls cost less than a kernel launch).
NB_MIN_ELEMS = 1 << 16
# The compiled bias gradient sums dz over this many fixed row chunks, then
# adds the chunks in order: the same bits whatever the thread count.
DB_CHUNKS = 16

MAX_ROW_BLOCK = 256                 # MAX_BLOCK of kernels/bias_act.cu
COLSUM_COLS, COLSUM_LANES = 32, 8   # CS_COLS, CS_LANES of kernels/bias_act.cu
COLSUM_MIN_ROWS = 64                # rows per chunk at least, so each lane sums >= 8 rows
COLSUM_MAX_CHUNKS = 1024

_ZERO = np.float32(0)   # float32 constants keep the compiled arithmetic in float32
_ONE = np.float32(1)


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check_activation(op, activation):
    """``activation`` if it is one of ACTIVATIONS, else a ValueError naming the op."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {activation!r}; expected one of "
                         f"{ACTIVATIONS}. Received: activation={activation!r}")
    return activation


def check(z, b, activation, op="bias_act"):
    """A TypeError/ValueError naming what is wrong with bias_act(z, b, activation)."""
    check_activation(op, activation)
    require_array(op, "z", z)
    if z.ndim < 1:
        raise ValueError(f"{op}: z must have at least one axis. Received: z.shape={tuple(z.shape)}")
    if b is not None:
        require_array(op, "b", b, 1)
        require_same_dtype(op, z=z, b=b)
        if b.shape[0] != z.shape[-1]:
            raise ValueError(f"{op}: b must have one entry per column of z's last axis "
                             f"({z.shape[-1]}). Received: b.shape={tuple(b.shape)}, "
                             f"z.shape={tuple(z.shape)}")


def check_backward(da, a, activation, op="bias_act backward"):
    check_activation(op, activation)
    require_array(op, "da", da)
    require_array(op, "a", a)
    require_same_dtype(op, da=da, a=a)
    if da.ndim < 1:
        raise ValueError(f"{op}: da must have at least one axis. Received: da.shape={tuple(da.shape)}")
    require_shape(op, "a", a, da.shape)


def forward(z, b, activation):
    """a = activation(z + b), computed in place on z (and returned); b may be None."""
    check(z, b, activation)
    device = backend.device()
    if device.kind == "cuda":
        return _forward_cuda(device, z, b, activation)
    if _cpu_fast_forward(z, b, activation):
        return _forward_cpu(z, b, activation)
    return forward_reference(z, b, activation)


def backward(da, a, activation, has_bias):
    """``(dz, db or None)`` from the upstream gradient da and the OUTPUT a."""
    check_backward(da, a, activation)
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, da, a, activation, has_bias)
    if _cpu_fast_backward(da, a, activation, has_bias):
        return _backward_cpu(da, a, activation, has_bias)
    return backward_reference(da, a, activation, has_bias)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def forward_reference(z, b, activation):
    """The forward, the readable way: whole-array in-place NumPy."""
    if b is not None:
        z += b
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation == "sigmoid":
        # 1/(1+exp(-z)) overflows exp for z << 0; the tanh form is stable everywhere
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
        check_activation("bias_act", activation)
    return z


def backward_reference(da, a, activation, has_bias):
    """The backward, the readable way (see the module docstring for the math)."""
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
        check_activation("bias_act backward", activation)
    db = dz.reshape(-1, dz.shape[-1]).sum(axis=0) if has_bias else None
    return dz, db


# ----------------------------------------------------------------------------
# 3. the CPU fast path: relu / linear in one compiled pass
# ----------------------------------------------------------------------------
def _uses_kernels(*arrays):
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def _cpu_fast_forward(z, b, activation):
    # linear without a bias changes nothing: the reference returns z at once
    return (activation == "relu" or (activation == "linear" and b is not None)) \
        and z.size >= NB_MIN_ELEMS and _uses_kernels(z, *(() if b is None else (b,)))


def _cpu_fast_backward(da, a, activation, has_bias):
    # linear: dz is da itself, only db is work
    return (activation == "relu" or (activation == "linear" and has_bias)) \
        and da.size >= NB_MIN_ELEMS and _uses_kernels(da, *((a,) if activation == "relu" else ()))


def _rows(a):
    """a (C-contiguous) as a 2-D view (rows, W*F) when it has a width axis before
    the channels, else (rows, F): long rows keep the kernels' inner loops long
    (32 channels alone would restart the loop every 32 values)."""
    if a.ndim >= 3:
        return a.reshape(-1, a.shape[-2] * a.shape[-1])
    return a.reshape(-1, a.shape[-1])


def _forward_cpu(z, b, activation):
    from ..backend.cpu import runtime
    z2 = _rows(z)
    reps = z2.shape[1] // z.shape[-1]     # a row of z2 holds W pixels of F channels
    bt = None if b is None else (np.tile(b, reps) if reps > 1 else b)   # bias for one whole row
    # without a bias the kernel never reads bt: any float32 row will do
    runtime().compile(bias_relu_kernel)(z2, z2[0] if bt is None else bt, bt is not None,
                                        activation == "relu")
    return z


def _backward_cpu(da, a, activation, has_bias):
    from ..backend.cpu import runtime
    f = da.shape[-1]
    da2 = _rows(da)
    rows, width = da2.shape
    relu = activation == "relu"
    if relu:
        dz = np.empty(da.shape, dtype=da.dtype)
        dz2, a2 = _rows(dz), _rows(a)
    else:   # linear: dz is da; the kernel reads only da and writes only the partial sums
        dz, dz2, a2 = da, da2, da2
    partial = np.empty((min(DB_CHUNKS, rows), width), dtype=da.dtype)
    runtime().compile(relu_backward_kernel)(da2, a2, dz2, partial, relu)
    if not has_bias:
        return dz, None
    db = np.add.reduce(partial, axis=0)   # the chunks in order
    if width != f:                         # per (w, channel) sums -> per channel, w in order
        db = db.reshape(-1, f).sum(axis=0)
    return dz, db


def bias_relu_kernel(z2, bt, has_bias, relu):
    """z2 (R, L) in place: z += bt (one whole row of bias); then ReLU.

    The reference's float32 arithmetic element by element: the same bits."""
    rows, width = z2.shape
    for r in prange(rows):
        for j in range(width):
            v = z2[r, j]
            if has_bias:
                v = v + bt[j]
            if relu and v < 0:  # NaN stays NaN, like np.maximum(z, 0)
                v = _ZERO
            z2[r, j] = v


def relu_backward_kernel(da2, a2, dz2, partial, relu):
    """dz = da * [a > 0] (relu; linear leaves dz = da alone), and per-chunk
    column sums of dz in partial (C, L).

    Chunk ch covers rows [ch*R//C, (ch+1)*R//C): the boundaries depend only
    on R and C, never on the threads, so each partial sum is the same
    numbers added in the same order on every run."""
    rows, width = da2.shape
    chunks = partial.shape[0]
    for ch in prange(chunks):
        lo = ch * rows // chunks
        hi = (ch + 1) * rows // chunks
        for j in range(width):
            partial[ch, j] = _ZERO
        for r in range(lo, hi):
            for j in range(width):
                if relu:
                    d = da2[r, j] * (_ONE if a2[r, j] > 0 else _ZERO)
                    dz2[r, j] = d
                else:
                    d = da2[r, j]
                partial[ch, j] += d


# ----------------------------------------------------------------------------
# 4. CUDA: kernels/bias_act.cu
# ----------------------------------------------------------------------------
def _row_block(cols):
    """Threads per block of a one-block-per-row kernel: a power of two in
    [32, MAX_ROW_BLOCK], no more than the row needs (the tree reduction
    requires a power of two)."""
    return min(MAX_ROW_BLOCK, max(32, 1 << (max(cols, 1) - 1).bit_length()))


def _rows_launch(device, op, kernel, rows, cols, args):
    """One block per row of a (rows, cols) matrix (grid-stride past MAX_GRID_X rows)."""
    device.launch(op, "bias_act", kernel, (min(rows, MAX_GRID_X), 1, 1), (_row_block(cols), 1, 1), args)


def _forward_cuda(device, z, b, activation):
    op = "bias_act"
    device.require(op, "z", z)
    if b is not None:
        device.require(op, "b", b)
    if z.size == 0 or (b is None and activation == "linear"):
        return z
    cols = z.shape[-1]
    has_bias = np.int32(b is not None)
    bias = z if b is None else b   # never read when has_bias == 0
    if activation == "softmax":
        rows = z.size // cols
        _rows_launch(device, op, "bias_softmax_rows", rows, cols,
                     (z, bias, np.int32(rows), np.int32(cols), has_bias))
    else:   # one thread per element; its bias is b[idx % cols]
        device.launch(op, "bias_act", "bias_act_forward", grid_1d(z.size), (BLOCK_1D, 1, 1),
                      (z, bias, np.int32(z.size), np.int32(cols), has_bias,
                       np.int32(ACT_CODES[activation])))
    return z


def _backward_cuda(device, da, a, activation, has_bias):
    op = "bias_act backward"
    device.require(op, "da", da)
    device.require(op, "a", a)
    cols = da.shape[-1]
    if activation == "linear":
        dz = da
    else:
        dz = device.empty(da.shape)
        if da.size and activation == "softmax":
            rows = da.size // cols
            _rows_launch(device, op, "softmax_backward_rows", rows, cols,
                         (da, a, dz, np.int32(rows), np.int32(cols)))
        elif da.size:
            device.launch(op, "bias_act", "act_backward", grid_1d(da.size), (BLOCK_1D, 1, 1),
                          (da, a, dz, np.int32(da.size), np.int32(ACT_CODES[activation])))
    return dz, (_column_sum_cuda(device, op, dz) if has_bias else None)


def _column_sum_cuda(device, op, a):
    """a summed over all axes but the last, in two passes without float atomics:
    pass 1 sums chunks of rows per 32-column strip, pass 2 adds the chunks in order."""
    cols = a.shape[-1]
    rows = a.size // cols if cols else 0
    if cols == 0 or rows == 0:
        return device.zeros((cols,))
    nchunks = min(-(-rows // COLSUM_MIN_ROWS), COLSUM_MAX_CHUNKS)
    rows_per_chunk = -(-rows // nchunks)
    partial = device.empty((nchunks, cols))
    device.launch(op, "bias_act", "column_sum_partials",
                  (-(-cols // COLSUM_COLS), nchunks, 1), (COLSUM_COLS, COLSUM_LANES, 1),
                  (a, partial, np.int32(rows), np.int32(cols), np.int32(rows_per_chunk)))
    out = device.empty((cols,))
    device.launch(op, "bias_act", "column_sum_finish", grid_1d(cols), (BLOCK_1D, 1, 1),
                  (partial, out, np.int32(nchunks), np.int32(cols)))
    return out
