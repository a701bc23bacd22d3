"""bias_act: bias + activation, fused, and its gradient, on every device.

    a = act(z + b)          b broadcast over the last axis (the channels / units)

z is any (..., F) array, b an (F,) vector or None; act is one of
:data:`ACTIVATIONS` (Keras's names), its Keras arguments as keywords
(``alpha=0.5`` for elu, ...). ``forward`` is the inference call (a overwrites
z); ``forward_training`` also returns the context backward needs;
``activate`` is act(x) alone, x left as it is (the activation layers).

The five of the book model, linear, relu (no arguments), sigmoid, tanh and
softmax, are computed here, in place on z, and their backward needs only the
OUTPUT a (the context), each derivative written in terms of a,

    relu' = [a > 0]     sigmoid' = a (1 - a)     tanh' = 1 - a^2
    softmax (its Jacobian-vector product):  dz = a * (da - sum(da * a))

and dz = da * act'. Linear returns da itself. Softmax runs over the last axis,
shifted by the row max so exp never overflows (``axis=`` another one moves it
last and back). Every other activation (elu, gelu, silu, relu with arguments,
...) reads the pre-activation u = z + b (the context): minicnn/ops/activation.py
holds each one's f and f', every version. db is dz summed over all axes but
the last.

For the five, this module holds every version, in this order:

1. The checks (shapes, dtypes, the activation and its arguments), every device.
2. The reference (``forward_reference`` / ``backward_reference``, for every
   activation): whole-array in-place NumPy, any float dtype; the specification.
3. The CPU fast path, for relu and linear(+bias) on C-contiguous float32
   arrays of at least ``NB_MIN_ELEMS`` values when compiled kernels run: one
   pass over memory on all cores. The forward gives the reference's bits;
   the backward's dz too, and db is summed in ``DB_CHUNKS`` fixed row chunks
   added in order (the same bits whatever the thread count).
4. The CUDA path: ``kernels/bias_act.cu``, on a GPU or on the emulator
   (elementwise kernels, one block per row for softmax, and a deterministic
   two-pass column sum for db).

Example::

    >>> a = bias_act.forward(z, b, "relu")          # a is z, overwritten
    >>> a, ctx = bias_act.forward_training(z, b, "gelu")
    >>> dz, db = bias_act.backward(da, ctx, "gelu", has_bias=True)
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, MAX_GRID_X, grid_1d
from . import activation as act_ops
from .common import prange, require_array, require_same_dtype, require_shape

ACTIVATIONS = act_ops.NAMES

KERNELS = ("bias_act_forward", "act_backward", "column_sum_partials", "column_sum_finish",
           "bias_softmax_rows", "softmax_backward_rows", "act_backward_column_partials")   # kernels/bias_act.cu

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
def check_activation(op, activation, params=None):
    """The activation's arguments, defaults filled in, or an error naming the op (and ACTIVATIONS)."""
    return act_ops.check_params(op, activation, params or {})


def _check_axis(op, params, shape, has_bias):
    """softmax's axis as given, once it is known to exist (and, off the last axis, to have no bias)."""
    axis, ndim = params["axis"], len(shape)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: softmax's axis must be in [-{ndim}, {ndim}) for an input of "
                         f"{ndim} axes. Received: axis={axis}, shape={tuple(shape)}")
    if has_bias and axis % ndim != ndim - 1:
        raise ValueError(f"{op}: a bias runs along the last axis; softmax over axis {axis} takes "
                         f"none. Received: axis={axis}, shape={tuple(shape)}")


def check(z, b, activation, op="bias_act", params=None):
    """A TypeError/ValueError naming what is wrong with bias_act(z, b, activation);
    else the activation's arguments."""
    params = check_activation(op, activation, params)
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
    if activation == "softmax":
        _check_axis(op, params, z.shape, b is not None)
    return params


def check_backward(da, ctx, activation, op="bias_act backward", params=None, has_bias=False, db_out=None):
    """The checks of backward; ctx is named a (the five) or u (the others) in errors."""
    params = check_activation(op, activation, params)
    name = "a" if act_ops.is_bias_act_own(activation, params) else "u"
    require_array(op, "da", da)
    require_array(op, name, ctx)
    require_same_dtype(op, da=da, **{name: ctx})
    if da.ndim < 1:
        raise ValueError(f"{op}: da must have at least one axis. Received: da.shape={tuple(da.shape)}")
    require_shape(op, name, ctx, da.shape)
    if db_out is not None:
        require_shape(op, "db_out", require_array(op, "db_out", db_out, 1), da.shape[-1:])
    if activation == "softmax":
        _check_axis(op, params, da.shape, has_bias)
    return params


def forward(z, b, activation, **params):
    """a = activation(z + b) for inference, in z's memory (and returned); b may be None."""
    params = check(z, b, activation, params=params)
    if not act_ops.is_bias_act_own(activation, params):
        return act_ops.forward(z, b, activation, params, in_place=True)[0]
    return _forward_own(z, b, activation, params)


def forward_training(z, b, activation, **params):
    """``(a, ctx)``: the forward, and what backward needs. For the five ctx is a
    (z, overwritten); for the others u = z + b (z, overwritten) and a is new."""
    params = check(z, b, activation, params=params)
    if not act_ops.is_bias_act_own(activation, params):
        return act_ops.forward(z, b, activation, params, in_place=False)
    a = _forward_own(z, b, activation, params)
    return a, a


def activate(x, activation, training=False, **params):
    """``(y, ctx)``: y = activation(x), x left as it is; ctx (None unless training)
    is what backward (with has_bias False) needs."""
    params = check(x, None, activation, params=params)
    if act_ops.is_bias_act_own(activation, params):
        y = ctx = _forward_own(backend.device().clone(x), None, activation, params)
    else:
        y, ctx = act_ops.forward(x, None, activation, params, in_place=False)   # ctx is x
    return y, (ctx if training else None)


def backward(da, ctx, activation, has_bias, db_out=None, **params):
    """``(dz, db or None)`` from the upstream gradient da and forward's context ctx; the CUDA
    path writes db into ``db_out`` when given (a view of a model's flat gradient buffer)."""
    params = check_backward(da, ctx, activation, params=params, has_bias=has_bias, db_out=db_out)
    if not act_ops.is_bias_act_own(activation, params):
        dz = act_ops.backward(da, ctx, activation, params)
        return dz, (_column_sum(dz, db_out) if has_bias else None)
    if activation == "softmax" and params["axis"] % da.ndim != da.ndim - 1:
        return _on_last_axis(lambda d, a: _backward_own(d, a, "softmax", False)[0],
                             params["axis"], da, ctx), None
    return _backward_own(da, ctx, activation, has_bias, db_out)


def _forward_own(z, b, activation, params):
    if activation == "softmax" and params["axis"] % z.ndim != z.ndim - 1:
        return _on_last_axis(lambda t: _forward_own(t, None, "softmax", {"axis": -1}), params["axis"], z)
    device = backend.device()
    if device.kind == "cuda":
        return _forward_cuda(device, z, b, activation)
    if _cpu_fast_forward(z, b, activation):
        return _forward_cpu(z, b, activation)
    return forward_reference(z, b, activation)


def _backward_own(da, a, activation, has_bias, db_out=None):
    device = backend.device()
    if device.kind == "cuda":
        return _backward_cuda(device, da, a, activation, has_bias, db_out)
    if _cpu_fast_backward(da, a, activation, has_bias):
        return _backward_cpu(da, a, activation, has_bias)
    return backward_reference(da, a, activation, has_bias)


def _on_last_axis(fn, axis, *arrays):
    """fn of the arrays with ``axis`` moved last (softmax over another axis), its result moved back."""
    xp = backend.device().xp
    moved = [xp.ascontiguousarray(xp.moveaxis(a, axis, -1)) for a in arrays]
    return xp.ascontiguousarray(xp.moveaxis(fn(*moved), -1, axis))


def _column_sum(dz, out=None):
    """dz summed over all axes but the last (the bias gradient; into ``out`` on CUDA)."""
    device = backend.device()
    if device.kind == "cuda":
        return _column_sum_cuda(device, "bias_act backward", dz, out=out)
    return _sum_rows(dz)


def sum_all(a):
    """The sum of all values of ``a`` (a 0-d backend array, no host sync); on CUDA the
    column-sum kernels on ``a`` as one column (deterministic, recordable by a step plan,
    unlike a CuPy reduction). Example: ``loss_sum = bias_act.sum_all(per_sample_losses)``."""
    device = backend.device()
    if device.kind == "cuda" and a.size and a.dtype == np.float32 and a.flags.c_contiguous:
        return _column_sum_cuda(device, "sum_all", a.reshape(-1, 1)).reshape(())
    return a.sum()


def _sum_rows(dz):
    if dz.size == 0:   # reshape(-1, 0) is ambiguous
        return np.zeros(dz.shape[-1], dz.dtype)
    return dz.reshape(-1, dz.shape[-1]).sum(axis=0)


# ----------------------------------------------------------------------------
# 2. the reference: NumPy, any float dtype
# ----------------------------------------------------------------------------
def forward_reference(z, b, activation, **params):
    """The forward, the readable way: whole-array in-place NumPy (softmax on the last axis)."""
    if b is not None:
        z += b
    if activation == "relu" and params:
        z[...] = act_ops.value_reference(z, "relu", check_activation("bias_act", "relu", params))
    elif activation == "relu":
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
    elif activation != "linear":   # the others: minicnn/ops/activation.py
        z[...] = act_ops.value_reference(z, activation, check_activation("bias_act", activation, params))
    return z


def backward_reference(da, ctx, activation, has_bias, **params):
    """The backward, the readable way (see the module docstring for the math);
    ctx is a for the five, u for the others."""
    a = ctx
    if activation == "linear":
        dz = da
    elif activation == "relu" and not params:
        dz = da * (a > 0)
    elif activation == "sigmoid":
        dz = da * a * (1 - a)
    elif activation == "tanh":
        dz = da * (1 - a * a)
    elif activation == "softmax":
        dz = a * (da - (da * a).sum(axis=-1, keepdims=True))
    else:
        dz = da * act_ops.slope_reference(ctx, activation, check_activation("bias_act backward",
                                                                            activation, params))
    return dz, (_sum_rows(dz) if has_bias else None)


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
    """z2 (R, L) in place: z += bt (one whole row of bias); then ReLU, row by row on all cores."""
    for r in prange(z2.shape[0]):
        bias_relu_rows(z2[r:r + 1], bt, has_bias, relu)


def bias_relu_rows(z2, bt, has_bias, relu):
    """Rows in place, z += bt then ReLU, the reference's float32 arithmetic (the same bits); a
    part of bias_relu_kernel (a long row a call) and of conv2d's fused kernel (a chunk a call)."""
    for r in range(z2.shape[0]):
        for j in range(z2.shape[1]):
            v = z2[r, j] + bt[j] if has_bias else z2[r, j]
            z2[r, j] = _ZERO if relu and v < 0 else v   # NaN stays NaN, like np.maximum(z, 0)


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


def _backward_cuda(device, da, a, activation, has_bias, db_out=None):
    op = "bias_act backward"
    for name, arr in (("da", da), ("a", a), ("db_out", db_out)):
        if arr is not None:
            device.require(op, name, arr)
    cols = da.shape[-1]
    if activation == "linear":
        dz = da
    else:
        dz = device.empty(da.shape)
        if da.size and activation == "softmax":
            rows = da.size // cols
            _rows_launch(device, op, "softmax_backward_rows", rows, cols,
                         (da, a, dz, np.int32(rows), np.int32(cols)))
        elif da.size and has_bias:   # dz computed in the bias gradient's first pass
            return dz, _column_sum_cuda(device, op, dz, fold=(da, a, np.int32(ACT_CODES[activation])),
                                        out=db_out)
        elif da.size:
            device.launch(op, "bias_act", "act_backward", grid_1d(da.size), (BLOCK_1D, 1, 1),
                          (da, a, dz, np.int32(da.size), np.int32(ACT_CODES[activation])))
    return dz, (_column_sum_cuda(device, op, dz, out=db_out) if has_bias else None)


def _column_sum_cuda(device, op, a, fold=None, out=None):
    """a summed over all axes but the last, in two passes without float atomics:
    pass 1 sums chunks of rows per 32-column strip, pass 2 adds the chunks in order into
    ``out`` (if given). ``fold=(da, y, code)``: pass 1 first writes a = da * act'(y)."""
    cols = a.shape[-1]
    rows = a.size // cols if cols else 0
    if cols == 0 or rows == 0:
        return device.zeros((cols,))
    nchunks = min(-(-rows // COLSUM_MIN_ROWS), COLSUM_MAX_CHUNKS)
    rows_per_chunk = -(-rows // nchunks)
    partial = device.empty((nchunks, cols))
    kernel, inputs, code = ("column_sum_partials", (a,), ()) if fold is None else \
        ("act_backward_column_partials", (fold[0], fold[1], a), (fold[2],))
    device.launch(op, "bias_act", kernel, (-(-cols // COLSUM_COLS), nchunks, 1), (COLSUM_COLS, COLSUM_LANES, 1),
                  inputs + (partial, np.int32(rows), np.int32(cols), np.int32(rows_per_chunk)) + code)
    if out is None:
        out = device.empty((cols,))
    device.launch(op, "bias_act", "column_sum_finish", grid_1d(cols), (BLOCK_1D, 1, 1),
                  (partial, out, np.int32(nchunks), np.int32(cols)))
    return out
