"""minicnn.ops.pooling: every implementation against the naive loop, on odd shapes.

Max pooling selects, it does not add: y and argmax must equal the naive loop
and the reference exactly on every device; so must dx wherever each input
cell gets at most one gradient (windows that tile the input).
"""
import re
from pathlib import Path

import numpy as np
import pytest

import naive
from minicnn import backend, config
from minicnn.ops import pooling
from minicnn.ops.geometry import out_size_and_pads
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

CASES = [
    # (x shape, pool, strides, padding)
    ((2, 6, 6, 3), (2, 2), (2, 2), "valid"),
    ((1, 7, 5, 2), (2, 2), (2, 2), "valid"),     # odd: the last row and column dropped
    ((3, 11, 11, 4), (2, 2), (2, 2), "valid"),   # the book's second pool
    ((2, 9, 8, 1), (3, 3), (3, 3), "valid"),
    ((2, 5, 7, 2), (2, 3), (2, 3), "valid"),     # rectangular
    ((1, 3, 4, 5), (1, 2), (1, 2), "valid"),
    ((2, 7, 2, 1), (3, 1), (3, 1), "valid"),
    ((2, 9, 8, 1), (3, 3), (2, 2), "valid"),     # overlapping windows
    ((1, 7, 8, 33), (3, 3), (2, 2), "valid"),
    ((2, 7, 5, 3), (2, 2), (2, 2), "same"),      # odd: padded bottom/right
    ((1, 7, 5, 4), (2, 2), (2, 2), "same"),
    ((2, 6, 7, 2), (3, 3), (1, 1), "same"),      # overlap + padding on all sides
    ((1, 5, 9, 4), (2, 3), (1, 2), "same"),      # rectangular pool, unequal strides
    ((2, 5, 6, 2), (3, 2), (1, 2), "same"),
]
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture
def numpy_backend():
    previous = backend.backend_name()
    backend.set_backend("numpy")
    yield
    backend.set_backend(previous)


def pads_for(x_shape, pool, strides, padding):
    _, top, bottom = out_size_and_pads(x_shape[1], pool[0], strides[0], padding)
    _, left, right = out_size_and_pads(x_shape[2], pool[1], strides[1], padding)
    return top, bottom, left, right


def tiled(pool, strides, padding):
    return tuple(pool) == tuple(strides) and padding == "valid"


def data(kind, shape, rng):
    if kind == "random":
        return rng.standard_normal(shape).astype(np.float32)
    # ReLU-like: many zeros and equal maxima inside windows (the first-maximum rule)
    return np.maximum(rng.integers(-2, 3, shape), 0).astype(np.float32)


@pytest.mark.parametrize("kind", ["random", "ties"])
@pytest.mark.parametrize("x_shape, pool, strides, padding", CASES)
def test_forward_and_backward_match_the_naive_loop(impl, kind, x_shape, pool, strides, padding):
    rng = np.random.default_rng(3)
    x = data(kind, x_shape, rng)
    pads = pads_for(x_shape, pool, strides, padding)
    y, ctx = pooling.forward(dev(x), pool, strides, pads, training=True)
    y, argmax = host(y), host(ctx.argmax)
    assert y.dtype == np.float32 and argmax.dtype == np.int32 and ctx.x_shape == x_shape
    ny, narg = naive.maxpool(x, pool, strides, pads)
    np.testing.assert_array_equal(y, ny)
    np.testing.assert_array_equal(argmax, narg)
    ry, rarg = pooling.forward_reference(x, pool, strides, pads)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(argmax, rarg)

    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = host(pooling.backward(dev(dy), ctx))
    assert dx.dtype == np.float32 and dx.shape == x_shape
    np.testing.assert_allclose(dx, naive.maxpool_backward(dy, narg, x_shape, pool, strides, pads), **TOL)
    rdx = pooling.backward_reference(dy, rarg, x_shape, pool, strides, pads)
    if tiled(pool, strides, padding):
        np.testing.assert_array_equal(dx, rdx)
        # every gradient lands once, on its window's max; nothing else is touched
        assert np.isclose(dx.sum(), dy.sum())
        assert np.count_nonzero(dx) == np.count_nonzero(dy)
    else:
        np.testing.assert_allclose(dx, rdx, **TOL)


def test_nan_and_inf_like_the_reference(impl):
    """The strict-> scan: a NaN at offset (0, 0) stays, a later NaN never wins,
    padded cells (-inf) never win over a real -inf."""
    x = np.array([np.nan, 1, 2, 3, -np.inf, -np.inf, -np.inf, 5, 0, np.nan, 1, 7],
                 dtype=np.float32).reshape(1, 3, 4, 1)
    for pads in [(0, 0, 0, 0), (1, 0, 1, 0)]:
        y, ctx = pooling.forward(dev(x), (2, 2), (1, 1), pads, training=True)
        ry, rarg = pooling.forward_reference(x, (2, 2), (1, 1), pads)
        np.testing.assert_array_equal(host(y), ry)
        np.testing.assert_array_equal(host(ctx.argmax), rarg)
    # tiled windows (the compiled CPU kernel's case: 2 x 2 has a scan of its own), ties and
    # NaNs, at offset (0, 0) and later ones (a tile's largest value after its NaN still wins)
    rng = np.random.default_rng(11)
    x = np.maximum(rng.integers(-2, 3, (2, 6, 7, 3)), 0).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    x[1, 2, 3, 1] = np.nan
    x[1, 3, 3, 1] = 9
    for pool in [(2, 2), (3, 2), (2, 3)]:
        y, ctx = pooling.forward(dev(x), pool, pool, (0, 0, 0, 0), training=True)
        ry, rarg = pooling.forward_reference(x, pool, pool, (0, 0, 0, 0))
        np.testing.assert_array_equal(host(y), ry)
        np.testing.assert_array_equal(host(ctx.argmax), rarg)
        # inference (the CPU kernel then skips argmax): the same y, bit for bit
        np.testing.assert_array_equal(host(pooling.forward(dev(x), pool, pool, (0, 0, 0, 0))[0]), ry)


def test_returned_arrays_are_not_reused(impl):
    """Two layers with the same shapes: the second call must not overwrite what
    the first returned (layers hold these until their backward pass)."""
    rng = np.random.default_rng(2)
    x1, x2 = (dev(rng.standard_normal((4, 6, 6, 3)).astype(np.float32)) for _ in range(2))
    p1, c1 = pooling.forward(x1, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
    kp = host(p1).copy(), host(c1.argmax).copy()
    p2, c2 = pooling.forward(x2, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
    np.testing.assert_array_equal(host(p1), kp[0])
    np.testing.assert_array_equal(host(c1.argmax), kp[1])
    g1 = pooling.backward(p1, c1)
    kg = host(g1).copy()
    pooling.backward(p2, c2)
    np.testing.assert_array_equal(host(g1), kg)


@pytest.mark.parametrize("pool, strides, pads", [((2, 2), (2, 2), (0, 0, 0, 0)),
                                                 ((3, 2), (1, 2), (1, 1, 0, 1))])
def test_float64_keeps_its_dtype_on_the_cpu(impl, pool, strides, pads):
    if impl not in ("reference", "cpu_kernels"):
        pytest.skip("the CUDA path computes in float32 only")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 6, 3))
    y, ctx = pooling.forward(x, pool, strides, pads, training=True)
    ry, rarg = pooling.forward_reference(x, pool, strides, pads)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(ctx.argmax, rarg)
    dy = rng.standard_normal(y.shape)
    dx = pooling.backward(dy, ctx)
    assert dx.dtype == np.float64
    np.testing.assert_array_equal(dx, pooling.backward_reference(dy, rarg, x.shape, pool, strides, pads))


def test_the_reference_in_float64_is_exact():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 3))
    pool, strides, pads = (3, 2), (2, 1), (1, 1, 0, 1)
    y, argmax = pooling.forward_reference(x, pool, strides, pads)
    ny, narg = naive.maxpool(x, pool, strides, pads)
    np.testing.assert_array_equal(y, ny)
    np.testing.assert_array_equal(argmax, narg)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(pooling.backward_reference(dy, argmax, x.shape, pool, strides, pads),
                               naive.maxpool_backward(dy, narg, x.shape, pool, strides, pads), rtol=1e-12)


def test_the_kernels_read_as_plain_python():
    """Uncompiled (prange is range), the CPU kernels compute the reference's bits."""
    rng = np.random.default_rng(5)
    x = np.maximum(rng.integers(-2, 3, (2, 7, 5, 3)), 0).astype(np.float32)
    y = np.empty((2, 3, 2, 3), np.float32)
    arg = np.empty(y.shape, np.int32)
    pooling.forward_tiled_kernel(x, 2, 2, y, arg)
    ry, rarg = pooling.forward_reference(x, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(arg, rarg)
    y_only = np.full(y.shape, np.nan, np.float32)
    pooling.max_tiled_kernel(x, 2, 2, y_only)
    np.testing.assert_array_equal(y_only, ry)
    y_only = np.full((2, 2, 2, 3), np.nan, np.float32)     # not 2 x 2: the general scan
    pooling.max_tiled_kernel(x, 3, 2, y_only)
    np.testing.assert_array_equal(y_only, pooling.forward_reference(x, (3, 2), (3, 2), (0, 0, 0, 0))[0])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)   # every cell must be written
    pooling.backward_tiled_kernel(dy, arg, 2, 2, dx)
    np.testing.assert_array_equal(dx, pooling.backward_reference(dy, rarg, x.shape, (2, 2), (2, 2),
                                                                 (0, 0, 0, 0)))


def test_the_tiled_kernels_run_only_where_they_apply(numpy_backend, monkeypatch):
    from minicnn.backend.cpu import runtime
    calls = []
    real, real_back = pooling._forward_tiled_cpu, pooling._backward_tiled_cpu
    monkeypatch.setattr(pooling, "_forward_tiled_cpu", lambda x, g: calls.append("f") or real(x, g))
    monkeypatch.setattr(pooling, "_backward_tiled_cpu",
                        lambda dy, a, g: calls.append("b") or real_back(dy, a, g))
    x = np.random.default_rng(8).standard_normal((2, 4, 4, 3)).astype(np.float32)
    with config.override(MINICNN_CPU_FAST=False):   # the reference alone
        pooling.forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert calls == []
    with config.override(MINICNN_CPU_FAST=True):
        pooling.forward(x, (2, 2), (1, 1), (0, 0, 0, 0))          # overlapping: the reference
        pooling.forward(x, (2, 2), (2, 2), (0, 1, 0, 1))          # padded: the reference
        pooling.forward(x.astype(np.float64), (2, 2), (2, 2), (0, 0, 0, 0))
        assert calls == []
        y, ctx = pooling.forward(x, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
        pooling.backward(y, ctx)
    assert calls == (["f", "b"] if runtime().kernels else [])


def test_backward_after_an_inference_forward_says_what_to_do(numpy_backend):
    x = np.random.default_rng(9).standard_normal((2, 4, 4, 3)).astype(np.float32)
    y, ctx = pooling.forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    if ctx.argmax is not None:
        pytest.skip("no compiled kernels: every path keeps argmax")
    with pytest.raises(ValueError, match=r"maxpool backward: the context is from an inference forward"):
        pooling.backward(y, ctx)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    x = dev(np.zeros((2, 5, 5, 3), np.float32))
    with pytest.raises(TypeError, match=r"maxpool: x must be float32 or float64. Received: x.dtype=int64"):
        pooling.forward(np.zeros((2, 5, 5, 3), np.int64), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: x must have 4 axes. Received: x.shape=\(5, 5, 3\)"):
        pooling.forward(x[0], (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: pool must be positive"):
        pooling.forward(x, (0, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: strides must be positive"):
        pooling.forward(x, (2, 2), (0, 1), (0, 0, 0, 0))
    with pytest.raises(TypeError, match=r"maxpool: strides must be a pair of ints"):
        pooling.forward(x, (2, 2), 2, (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: pads must be non-negative"):
        pooling.forward(x, (2, 2), (2, 2), (-1, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: a 6x6 window does not fit a 5x5 input"):
        pooling.forward(x, (6, 6), (1, 1), (0, 0, 0, 0))
    _, ctx = pooling.forward(x, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
    with pytest.raises(ValueError, match=r"maxpool backward: dy must have shape \(2, 2, 2, 3\). "
                                         r"Received: dy.shape=\(2, 2, 2, 4\)"):
        pooling.backward(dev(np.zeros((2, 2, 2, 4), np.float32)), ctx)
    with pytest.raises(TypeError, match=r"maxpool backward: argmax must be int32. Received: argmax.dtype=int64"):
        pooling.backward(dev(np.zeros((2, 2, 2, 3), np.float32)), ctx._replace(argmax=ctx.argmax.astype(np.int64)))


def test_the_cuda_path_refuses_what_its_kernels_cannot_read(impl):
    if impl not in ("emulator", "gpu"):
        pytest.skip("CUDA-path checks")
    x = np.zeros((1, 4, 6, 2), np.float64)
    with pytest.raises(TypeError, match=r"maxpool: x must be float32 \(the CUDA backend computes in float32"):
        pooling.forward(backend.device().xp.asarray(x), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"maxpool: x must be C-contiguous"):
        pooling.forward(dev(x)[:, :, ::2], (2, 2), (2, 2), (0, 0, 0, 0))


def test_kernels_names_the_entry_points_of_pooling_cu():
    text = (Path(__file__).resolve().parents[2] / "kernels" / "pooling.cu").read_text()
    assert sorted(re.findall(r'extern "C" __global__ void (\w+)\(', text)) == sorted(pooling.KERNELS)
