"""Floors for profile_cpu.py: this machine's rates, and each op's work at those rates.

An op cannot take less time than its arithmetic at the machine's GEMM rate,
nor less than the bytes it must move at the machine's memory bandwidth. Its
floor is the larger of the two:

    floor = max(FLOPs / SGEMM rate, bytes / bandwidth)

and ``time / floor`` says how far the op is from it (1.0 = at the floor).

The rates, measured here (:func:`machine_rates`):

* bandwidth: a 256 MB float32 ``np.copyto``, read + write bytes (2 x 256 MB)
  over its median time, on one thread and split over the threads (NumPy drops
  the GIL in the copy); the better of the two is the bandwidth. (A cache line
  written is usually also read first, so the bus moves more than this: the
  number is what a copy achieves, the bandwidth an op can hope for.)
* SGEMM: a float32 1024 x 1024 x 1024 matmul, 2 * 1024^3 FLOPs over its
  median time, with BLAS held at 1 thread and at ``threads`` (threadpoolctl;
  minicnn's thread count); the better of the two is the SGEMM rate (on a quiet
  machine the one at ``threads``; with another process busy, threads that wait
  for a core can make it the 1-thread one).

The model of an op's work (:func:`op_cost`), a lower bound for the algorithm
minicnn runs (im2col + GEMM), float32 throughout:

* conv2d.forward(x, w, ...) -> y (N, OH, OW, F): P = N*OH*OW patch rows of
  K = KH*KW*C; FLOPs 2*P*K*F; bytes x + w + y + the patch matrix written by
  im2col and read by the GEMM (2 * P*K*4; none for a 1x1 stride-1 unpadded
  kernel, whose patch matrix is x).
* conv2d.backward(dy, ctx, w) -> (dx, dw): dW = P^T dY (2*P*K*F) and, when dx
  is asked for, dP = dY W^T (2*P*K*F); bytes dy + w + dw + the patch matrix
  read (written first too, and x read, when forward kept none) + with dx: dP
  written and read by col2im (2 * P*K*4) and dx written.
* conv2d_bias_act.forward / .backward (conv2d with the bias and ReLU fused in): as
  conv2d's, plus the bias read, and backward's ReLU output read.
* dense.forward / dense.backward: FLOPs 2*M*K*F per GEMM (M rows of x, w (K, F));
  bytes as below.
* every ``*_update`` (optimizer): every array read, every one but ``grad``
  written back (in place).
* every other op (pooling, bias_act, softmax_xent, ...): FLOPs 0 (a few per
  element, far below either floor); bytes = every array among its arguments
  (contexts included, each buffer once) read + every array it returns written
  (a returned array that shares an input's buffer counts as written when
  returned at the top level, the in-place ops; inside a returned context only
  new buffers count, so a context that only carries x along adds nothing).
  Each byte counted once: a lower bound that ignores re-reads from memory.
"""
import statistics
import threading
import time

import numpy as np

from minicnn.ops.geometry import output_hw, span

F32 = 4


# ----------------------------------------------------------------------------
# the machine's rates
# ----------------------------------------------------------------------------
def _median_time(fn, reps):
    fn()  # first touch / warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def copy_bandwidth(mb=256, threads=1, reps=7):
    """GB/s of np.copyto over an ``mb`` MB float32 array (read + write bytes), split over ``threads``."""
    n = mb * (1 << 20) // F32
    src = np.ones(n, np.float32)
    dst = np.zeros(n, np.float32)
    bounds = np.linspace(0, n, threads + 1).astype(int)

    def part(i):
        np.copyto(dst[bounds[i]:bounds[i + 1]], src[bounds[i]:bounds[i + 1]])

    def copy():
        if threads == 1:
            part(0)
            return
        workers = [threading.Thread(target=part, args=(i,)) for i in range(1, threads)]
        for t in workers:
            t.start()
        part(0)
        for t in workers:
            t.join()

    return 2 * src.nbytes / _median_time(copy, reps) / 1e9


def sgemm_rate(n=1024, threads=1, reps=7):
    """GFLOP/s of a float32 n x n x n matmul with BLAS held at ``threads`` threads."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        return 2.0 * n ** 3 / _median_time(lambda: np.matmul(a, b, out=out), reps) / 1e9


def machine_rates(threads, mb=256, gemm_n=1024):
    """{"bw_1", "bw_n", "bw", "gemm_1", "gemm_n", "gemm", "threads"}: GB/s and GFLOP/s as
    measured here; "bw" and "gemm" are the better of 1 and ``threads`` threads, the floors' rates."""
    r = {"threads": threads, "bw_1": copy_bandwidth(mb, 1)}
    r["bw_n"] = copy_bandwidth(mb, threads) if threads > 1 else r["bw_1"]
    r["bw"] = max(r["bw_1"], r["bw_n"])
    r["gemm_1"] = sgemm_rate(gemm_n, 1)
    r["gemm_n"] = sgemm_rate(gemm_n, threads) if threads > 1 else r["gemm_1"]
    r["gemm"] = max(r["gemm_1"], r["gemm_n"])  # on a busy machine more threads can be slower
    return r


# ----------------------------------------------------------------------------
# an op's work
# ----------------------------------------------------------------------------
def arrays_in(obj, depth=0):
    """Every ndarray in obj, looking into tuples, lists, dicts and NamedTuple contexts."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif depth < 4 and isinstance(obj, (tuple, list)):
        for o in obj:
            yield from arrays_in(o, depth + 1)
    elif depth < 4 and isinstance(obj, dict):
        for o in obj.values():
            yield from arrays_in(o, depth + 1)


def _buffer(a):
    return a.__array_interface__["data"][0], a.nbytes


def _unique_bytes(arrays, skip=()):
    seen = set(skip)
    total = 0
    for a in arrays:
        key = _buffer(a)
        if key not in seen:
            seen.add(key)
            total += a.nbytes
    return total


def generic_bytes(args, kwargs, result):
    """Bytes read (every input buffer once) + bytes written (see the module docstring)."""
    inputs = list(arrays_in(list(args) + list(kwargs.values())))
    read = _unique_bytes(inputs)
    top = [result] if isinstance(result, np.ndarray) else (
        [r for r in result if isinstance(r, np.ndarray)] if isinstance(result, (tuple, list)) else [])
    nested = [a for a in arrays_in(result) if not any(a is t for t in top)]
    written = _unique_bytes(top) + _unique_bytes(nested, skip={_buffer(a) for a in inputs + top})
    return read + written


def _conv_forward(x, w, strides, pads, y_shape, y_bytes):
    n, oh, ow, f = y_shape
    kh, kw, c, _ = w.shape
    p, k = n * oh * ow, kh * kw * c
    pointwise = (kh, kw) == (1, 1) and tuple(np.ravel(strides)) in ((1,), (1, 1)) and not any(np.ravel(pads))
    patches = 0 if pointwise else 2 * p * k * F32
    return 2 * p * k * f, x.nbytes + w.nbytes + y_bytes + patches


def _conv_backward(dy, ctx, w, dx, dw):
    g = ctx.g
    p, k, f = g.n * g.oh * g.ow, g.kh * g.kw * g.c, g.f
    pk = p * k * F32
    moved = dy.nbytes + w.nbytes + dw.nbytes + pk
    if getattr(ctx, "patches", None) is None:
        moved += pk + ctx.x.nbytes          # rebuilt: x read, patches written
    flops = 2 * p * k * f
    if dx is not None:
        flops += 2 * p * k * f
        moved += 2 * pk + dx.nbytes         # dP written, read by col2im; dx written
    return flops, moved


def _argmax_bytes(ctx):
    """The argmax a conv2d_bias_act context with a pool holds (written forward, read backward)."""
    pool = getattr(ctx, "pool", None)
    return 0 if pool is None or pool.argmax is None else pool.argmax.nbytes


def _conv_cost(name, args, kwargs, result):
    """conv2d.forward(x, w, strides, pads) / .backward(dy, ctx, w); conv2d_bias_act.forward(x, w,
    b, activation, strides, pads) / .backward(da, ctx, w, activation, has_bias)."""
    def arg(i, key, default=None):
        return args[i] if len(args) > i else kwargs.get(key, default)
    fused = name.startswith("conv2d_bias_act.")
    if name.endswith(".forward"):
        x, w = args[0], args[1]
        strides, pads = (arg(4, "strides"), arg(5, "pads", (0, 0, 0, 0))) if fused else \
            (arg(2, "strides"), arg(3, "pads", (0, 0, 0, 0)))
        # (with pool=, conv2d_bias_act returns the pooled output: the convolution's own is
        # never written, only the pooled one, and training, its argmax)
        dh, dw = arg(7 if fused else 5, "dilation", (1, 1))
        window = (span(w.shape[0], dh), span(w.shape[1], dw))
        n, oh, ow = x.shape[0], *output_hw(x.shape[1], x.shape[2], window, tuple(np.ravel(strides)),
                                            tuple(np.ravel(pads)))
        flops, moved = _conv_forward(x, w, strides, pads, (n, oh, ow, w.shape[3]), result[0].nbytes)
        b = arg(2, "b") if fused else None
        return flops, moved + (b.nbytes if b is not None else 0) + _argmax_bytes(result[1])
    dy, ctx, w = args[0], args[1], args[2]
    extra = 0
    if fused:   # the activation's context (relu: its output a, pooled after pool=) is read too
        extra = _argmax_bytes(ctx)
        ctx, act = ctx.conv, ctx.act
        extra += act.nbytes if arg(3, "activation") != "linear" and isinstance(act, np.ndarray) else 0
    flops, moved = _conv_backward(dy, ctx, w, result[0], result[1])
    return flops, moved + extra


def _dense_flops(name, args, result):
    if name == "dense.forward":        # forward(x, w) -> y: y = x w
        x, w, gemms = args[0], args[1], 1
    else:                              # backward(dy, x, w) -> (dx or None, dw): dw = x^T dy, dx = dy w^T
        x, w, gemms = args[1], args[2], (1 if result[0] is None else 2)
    k, f = w.shape
    return 2 * (x.size // k) * k * f * gemms


def op_cost(name, args, kwargs, result):
    """``(flops, bytes, how)`` of one call of op ``name`` ("conv2d.forward", ...); how is the
    model used: "conv", "gemm", "update" or "generic" (see the module docstring)."""
    try:
        if name.split(".")[0] in ("conv2d", "conv2d_bias_act"):
            return _conv_cost(name, args, kwargs, result) + ("conv",)
        if name in ("dense.forward", "dense.backward"):
            return _dense_flops(name, args, result), generic_bytes(args, kwargs, result), "gemm"
        if name.endswith("_update"):
            grad = args[1] if len(args) > 1 else kwargs.get("grad")
            arrays = list(arrays_in(list(args) + list(kwargs.values())))
            read = _unique_bytes(arrays)
            return 0, read + read - (grad.nbytes if grad is not None else 0), "update"
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # a signature this model does not know (yet): fall back on the generic count
    return 0, generic_bytes(args, kwargs, result), "generic"


def floor_ms(flops, nbytes, rates):
    """max(compute floor, memory floor) in ms, and which of the two binds ("flop"/"mem")."""
    compute = flops / (rates["gemm"] * 1e9) * 1e3
    memory = nbytes / (rates["bw"] * 1e9) * 1e3
    return (compute, "flop") if compute >= memory else (memory, "mem")
