"""conv2d_bias_act: the Conv2D layer's whole computation, a = act(conv2d(x, w) + b).

    z = conv2d(x, w)          (minicnn/ops/conv2d.py)
    a = act(z + b)            (minicnn/ops/bias_act.py)

and backward, dz = bias_act's backward of da, then conv2d's backward of dz.
The math is those two ops', one after the other; nothing new. What this op
adds is where it runs on the CPU: for relu and linear (the book model's three
convolutions) the bias and the ReLU are applied to each chunk of y inside
conv2d's chunked CPU kernel, right after the chunk's GEMM wrote it, and
backward's ReLU mask and bias sum to each chunk of da just before the GEMMs
read it (minicnn/ops/conv2d_cpu.py). z and dz are never written to memory and
read back, which at inference (batch 1000) is 170 MB of traffic saved on the
first layer alone. A max pooling that follows (``pool=``: a model passes it for
Conv2D + MaxPooling2D, in training and at inference) runs on the same cached
rows, and only its output (and, training, its argmax) is written: 4x less than
the activation; backward unpools the pooled gradient into each chunk's dz. Every
bit is the ops' (db's summation order aside: it adds chunk by chunk, in chunk
order, still the same bits on any thread count).

Every version, in this order:

1. ``check``: conv2d's checks, then the bias and the activation's, before any work.
2. The reference: conv2d's and bias_act's references one after the other
   (:func:`forward_reference`, :func:`backward_reference`).
3. The CPU fast path (relu and linear, float32, compiled kernels): one call of
   conv2d_cpu's chunk kernels with the bias and the ReLU in them.
4. Everything else (the CUDA path, the other activations, no Numba): conv2d's
   and bias_act's own paths, one after the other.

Example::

    >>> a, ctx = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), training=True)
    >>> dx, dw, db = conv2d_bias_act.backward(da, ctx, w, "relu", has_bias=True)
    >>> p, ctx = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), training=True,
    ...                                  pool=((2, 2), (2, 2), (0, 0, 0, 0)))   # + MaxPooling2D
    >>> dx, dw, db = conv2d_bias_act.backward(dp, ctx, w, "relu", has_bias=True)   # dp: pooled
"""
from typing import NamedTuple

import numpy as np

from .. import backend
from . import activation as act_ops
from . import bias_act, conv2d, conv2d_cpu, pooling
from .common import require_array, require_same_dtype, require_shape

FUSED = ("relu", "linear")   # the activations conv2d_cpu's kernels apply themselves


class Context(NamedTuple):
    """What backward needs: conv2d's context and bias_act's (a, or u for gelu & co.); after
    ``pool=``, pooling's context too, and whether ``act`` is the pooled a (the CPU kernel
    pooled its cached rows, and its backward unpools them) rather than the whole a."""
    conv: conv2d.Context
    act: object
    pool: object = None
    act_pooled: bool = False


# ----------------------------------------------------------------------------
# 1. checks (every device)
# ----------------------------------------------------------------------------
def check(x, w, b, activation, strides, pads, dilation=(1, 1), op="conv2d"):
    """conv2d's geometry, or a TypeError/ValueError naming what is wrong."""
    g = conv2d.check(x, w, strides, pads, op=op, dilation=dilation)
    bias_act.check_activation(op, activation)
    if b is not None:
        require_array(op, "b", b, 1)
        require_same_dtype(op, x=x, b=b)
        require_shape(op, "b", b, (g.f,))
    return g


def _fused(activation, *arrays):
    """The CPU fast path applies: relu (Keras's, no arguments: a layer passes a name only)
    or linear, on the CPU, and arrays conv2d_cpu's kernels take."""
    return activation in FUSED and backend.device().kind != "cuda" and conv2d_cpu.applies(*arrays)


def forward(x, w, b, activation, strides, pads, training=False, dilation=(1, 1), pool=None):
    """``(a, ctx)``: a = activation(conv2d(x, w) + b) (b may be None); ctx (None unless
    ``training``) is what backward needs.

    ``pool`` = (pool_size, strides, pads) of a max pooling right after (MaxPooling2D after
    Conv2D in a model): a is then that pooling of the activation, backward takes its
    gradient, and on the CPU fast path only the pooled values (and argmax) are written."""
    g = check(x, w, b, activation, strides, pads, dilation)
    pg = None if pool is None else pooling.geometry("maxpool", (g.n, g.oh, g.ow, g.f), *pool)
    biases = () if b is None else (b,)
    if _fused(activation, x, w, *biases) and (pool is None or pooling.tiles(pg)):   # 3. fused
        relu = activation == "relu"
        a, argmax = conv2d_cpu.forward(x, w, g, training, b, relu,
                                       pool=None if pool is None else (pg.ph, pg.pw))
        if not training:
            return a, None
        pool_ctx = None if pool is None else pooling.Context(argmax, (g.n, g.oh, g.ow, g.f), pg)
        return a, Context(conv2d.Context(x, g, None), a, pool_ctx, pool is not None)
    z, conv_ctx = conv2d.forward(x, w, strides, pads, training, dilation)   # 4. the ops in turn
    if not training:
        a = bias_act.forward(z, b, activation)
        return (a if pool is None else pooling.forward(a, *pool)[0]), None
    a, act_ctx = bias_act.forward_training(z, b, activation)
    if pool is None:
        return a, Context(conv_ctx, act_ctx)
    pooled, pool_ctx = pooling.forward(a, *pool, training=True)
    return pooled, Context(conv_ctx, act_ctx, pool_ctx)


def backward(da, ctx, w, activation, has_bias, need_dx=True, dw_out=None, db_out=None):
    """``(dx or None, dw, db or None)`` for the forward that returned ``ctx`` (da: the
    gradient of its output, pooled after ``pool=``); ``dw_out`` / ``db_out`` as in
    conv2d.backward / bias_act.backward (the CUDA path writes into them)."""
    g = ctx.conv.g
    op = "conv2d backward"
    out = (g.n, g.oh, g.ow, g.f) if ctx.pool is None else (g.n, ctx.pool.g.oh, ctx.pool.g.ow, g.f)
    require_array(op, "da", da, 4)
    require_shape(op, "da", da, out)
    require_shape(op, "w", w, (g.kh, g.kw, g.c, g.f))
    bias_act.check_activation(op, activation)
    a = ctx.act if activation == "relu" else None
    if ctx.act_pooled:   # the CPU kernel pooled its rows: its backward unpools them
        require_same_dtype(op, da=da, x=ctx.conv.x)
        pool = (ctx.pool.g.ph, ctx.pool.g.pw, ctx.pool.argmax)
        return conv2d_cpu.backward(np.ascontiguousarray(da), ctx.conv, w, need_dx, a, has_bias, pool)
    if ctx.pool is not None:
        da = pooling.backward(da, ctx.pool)
    if ctx.conv.patches is None and _fused(activation, da, ctx.conv.x, w, *(() if a is None else (a,))):
        if a is not None:
            require_shape(op, "a", a, da.shape)
        return conv2d_cpu.backward(da, ctx.conv, w, need_dx, a, has_bias)
    dz, db = bias_act.backward(da, ctx.act, activation, has_bias, db_out=db_out)
    dx, dw = conv2d.backward(dz, ctx.conv, w, need_dx, dw_out)
    return dx, dw, db


# ----------------------------------------------------------------------------
# 2. the reference: the two ops' references, one after the other
# ----------------------------------------------------------------------------
def forward_reference(x, w, b, activation, strides, pads, dilation=(1, 1), pool=None):
    """a = activation(conv2d(x, w) + b), then max-pooled with ``pool``, the readable way."""
    z = conv2d.forward_reference(x, w, strides, pads, dilation)
    a = bias_act.forward_reference(z, b, activation)
    return a if pool is None else pooling.forward_reference(a, *pool)[0]


def backward_reference(da, x, w, b, activation, strides, pads, need_dx=True, dilation=(1, 1)):
    """``(dx or None, dw, db or None)``: the forward again, bias_act's backward, conv2d's."""
    z = conv2d.forward_reference(x, w, strides, pads, dilation)
    a = bias_act.forward_reference(z.copy(), b, activation)
    # bias_act's backward reads the output a of its own five, the pre-activation u of the others
    ctx = a if act_ops.is_bias_act_own(activation, act_ops.PARAMS[activation]) else \
        (z if b is None else z + b)
    dz, db = bias_act.backward_reference(da, ctx, activation, b is not None)
    dx, dw = conv2d.backward_reference(dz, x, w, strides, pads, need_dx, dilation)
    return dx, dw, db
