"""minicnn.ops.conv2d: every implementation against the naive loop, on odd shapes."""
import numpy as np
import pytest

import naive
from minicnn import backend
from minicnn.ops import conv2d, conv2d_bias_act, conv2d_cpu, pooling
from minicnn.ops.geometry import out_size_and_pads
from device_arrays import dev

CASES = [
    # (x shape, kernel (kh, kw, c, f), strides, padding)
    ((2, 7, 6, 2), (3, 3, 2, 3), (1, 1), "valid"),
    ((1, 9, 8, 3), (2, 3, 3, 5), (2, 1), "valid"),     # rectangular kernel, stride on H only
    ((3, 7, 5, 1), (3, 3, 1, 4), (2, 2), "same"),      # C=1 (patches as columns), odd SAME
    ((1, 8, 9, 2), (1, 4, 2, 3), (3, 2), "same"),
    ((5, 6, 6, 17), (3, 3, 17, 4), (1, 1), "same"),    # patches as rows (kw*c >= 16)
    ((4, 5, 7, 16), (2, 2, 16, 6), (2, 3), "valid"),
    ((1, 4, 4, 20), (5, 5, 20, 2), (1, 1), "same"),    # kernel larger than the input
    ((2, 5, 5, 3), (1, 1, 3, 4), (1, 1), "valid"),     # pointwise: the patch matrix is x
]


def pads_for(x_shape, k_shape, strides, padding):
    _, top, bottom = out_size_and_pads(x_shape[1], k_shape[0], strides[0], padding)
    _, left, right = out_size_and_pads(x_shape[2], k_shape[1], strides[1], padding)
    return top, bottom, left, right


@pytest.mark.parametrize("x_shape, k_shape, strides, padding", CASES)
def test_forward_and_backward_match_the_naive_loop(impl, x_shape, k_shape, strides, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(k_shape).astype(np.float32)
    pads = pads_for(x_shape, k_shape, strides, padding)
    y, ctx = conv2d.forward(dev(x), dev(w), strides, pads, training=True)
    y = backend.to_numpy(y)
    np.testing.assert_allclose(y, naive.conv2d(x, w, strides, pads), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = conv2d.backward(dev(dy), ctx, dev(w))
    ndx, ndw = naive.conv2d_backward(dy, x, w, strides, pads)
    np.testing.assert_allclose(backend.to_numpy(dx), ndx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(dw), ndw, rtol=1e-4, atol=1e-4)
    # without the kept patches (an inference forward) backward rebuilds them: same numbers
    _, ctx2 = conv2d.forward(dev(x), dev(w), strides, pads)
    none, dw2 = conv2d.backward(dev(dy), ctx._replace(patches=None), dev(w), need_dx=False)
    assert none is None and ctx2.patches is None
    np.testing.assert_allclose(backend.to_numpy(dw2), ndw, rtol=1e-4, atol=1e-4)


def test_the_reference_in_float64_is_exact_to_rounding():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    pads = (1, 1, 0, 1)
    np.testing.assert_allclose(conv2d.forward_reference(x, w, (2, 1), pads),
                               naive.conv2d(x, w, (2, 1), pads), rtol=1e-12)
    dy = rng.standard_normal((2, 3, 5, 4))
    for got, want in zip(conv2d.backward_reference(dy, x, w, (2, 1), pads),
                         naive.conv2d_backward(dy, x, w, (2, 1), pads)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_batch_in_chunks_of_one_image_each(impl, monkeypatch):
    monkeypatch.setattr(conv2d_cpu, "CHUNK_BYTES", 3000)   # one image a chunk
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 9, 9, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    y, _ = conv2d.forward(dev(x), dev(w), (1, 1), (1, 1, 1, 1))
    np.testing.assert_allclose(backend.to_numpy(y), naive.conv2d(x, w, (1, 1), (1, 1, 1, 1)),
                               rtol=1e-4, atol=1e-4)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    x = dev(np.zeros((2, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"conv2d: x has 3 channels but the kernel expects 2"):
        conv2d.forward(x, dev(np.zeros((3, 3, 2, 4), np.float32)), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"conv2d: a 6x6 window does not fit a 5x5 input"):
        conv2d.forward(x, dev(np.zeros((6, 6, 3, 4), np.float32)), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"conv2d: strides must be positive"):
        conv2d.forward(x, dev(np.zeros((3, 3, 3, 4), np.float32)), (0, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"conv2d: x must have 4 axes. Received: x.shape=\(5, 5, 3\)"):
        conv2d.forward(x[0], dev(np.zeros((3, 3, 3, 4), np.float32)), (1, 1), (0, 0, 0, 0))
    _, ctx = conv2d.forward(x, dev(np.zeros((3, 3, 3, 4), np.float32)), (1, 1), (0, 0, 0, 0), training=True)
    with pytest.raises(ValueError, match=r"conv2d backward: dy must have shape \(2, 3, 3, 4\)"):
        conv2d.backward(dev(np.zeros((2, 3, 3, 5), np.float32)), ctx, dev(np.zeros((3, 3, 3, 4), np.float32)))


def test_book_shapes_over_real_thread_counts():
    """The book model's conv2 at batch 7: 1, 2 and 3 threads agree to float
    rounding, and each is bit-identical run to run."""
    from minicnn.backend import cpu_threads
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 13, 13, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.1
    dy = rng.standard_normal((7, 11, 11, 64)).astype(np.float32)
    pads = (0, 0, 0, 0)

    def run():
        y, ctx = conv2d.forward(x, w, (1, 1), pads, training=True)
        return (y,) + conv2d.backward(dy, ctx, w)
    old = cpu_threads.num_threads()
    results = {}
    try:
        for t in (1, 2, 3):
            cpu_threads.set_num_threads(t)
            first, again = run(), run()
            for a, b in zip(first, again):
                np.testing.assert_array_equal(a, b)  # deterministic
            results[t] = first
    finally:
        cpu_threads.set_num_threads(old)
    from minicnn.backend.cpu import runtime
    if runtime().kernel_gemms is not None:
        # the chunks depend on the shapes alone (conv2d_cpu.py): any thread count, the same bits
        for a, b in zip(results[1], results[3]):
            np.testing.assert_array_equal(a, b)
    ref = (conv2d.forward_reference(x, w, (1, 1), pads),) + conv2d.backward_reference(dy, x, w, (1, 1), pads)
    for got in results.values():
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4 * np.abs(b).max())


def test_returned_arrays_are_not_reused(impl):
    """Two layers with the same shapes: the second call must not overwrite what
    the first returned (layers hold these until their backward pass)."""
    rng = np.random.default_rng(2)
    x1, x2 = (dev(rng.standard_normal((4, 6, 6, 3)).astype(np.float32)) for _ in range(2))
    w = dev(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
    pads = (1, 1, 1, 1)
    y1, c1 = conv2d.forward(x1, w, (1, 1), pads, training=True)
    keep = backend.to_numpy(y1).copy()
    y2, c2 = conv2d.forward(x2, w, (1, 1), pads, training=True)
    np.testing.assert_array_equal(backend.to_numpy(y1), keep)
    dx1, dw1 = conv2d.backward(y1, c1, w)
    k1 = backend.to_numpy(dx1).copy(), backend.to_numpy(dw1).copy()
    conv2d.backward(y2, c2, w)
    np.testing.assert_array_equal(backend.to_numpy(dx1), k1[0])
    np.testing.assert_array_equal(backend.to_numpy(dw1), k1[1])


def test_padding_larger_than_needed(impl):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 2)).astype(np.float32)
    w = rng.standard_normal((2, 2, 2, 3)).astype(np.float32)
    pads = (3, 2, 0, 4)
    y, ctx = conv2d.forward(dev(x), dev(w), (2, 1), pads, training=True)
    np.testing.assert_allclose(backend.to_numpy(y), naive.conv2d(x, w, (2, 1), pads), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw = conv2d.backward(dev(dy), ctx, dev(w))
    ndx, ndw = naive.conv2d_backward(dy, x, w, (2, 1), pads)
    np.testing.assert_allclose(backend.to_numpy(dx), ndx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(dw), ndw, rtol=1e-4, atol=1e-4)


def test_compiled_col2im_gives_the_reference_bits():
    """col2im sums each cell's entries in the reference's (i, j) order: same bits."""
    from minicnn.backend.cpu import runtime
    if runtime().kernel_gemms is None:
        pytest.skip("needs Numba and BLAS's sgemm")
    rng = np.random.default_rng(4)
    kh, kw, strides, pads = 3, 2, (2, 1), (1, 1, 0, 1)
    x_shape = (3, 7, 6, 5)
    oh, ow = naive.out_hw(7, 6, (kh, kw), strides, pads)
    dcol = rng.standard_normal((3, oh, ow, kh, kw, 5)).astype(np.float32)
    dx = np.empty(x_shape, np.float32)
    # dcol = dy2 @ wt with wt the identity: the kernel's product gives dcol exactly;
    # two images per chunk, so the last chunk is short (dW of the zero x comes along)
    k = kh * kw * 5
    cores = runtime().numba.config.NUMBA_NUM_THREADS   # one patch-gradient buffer per core
    da = dcol.reshape(3, oh, ow, k)
    runtime().compile(conv2d_cpu.backward_kernel)(
        np.zeros(x_shape, np.float32), np.eye(k, dtype=np.float32), da, da, False, False,
        (kh, kw, *strides, 1, 1, pads[0], pads[2], oh, ow), 2, True, True, (0, 0),
        np.empty((0, 0, 0, k), np.int32), np.empty((cores, 2 * oh * ow, k), np.float32), np.empty((cores, 2 * oh * ow, k), np.float32),
        np.empty((cores, 0, k), np.float32), np.empty((2, k, k), np.float32), np.empty((0, k), np.float32), dx)
    want = conv2d.col2im_reference(dcol, x_shape, strides, pads)
    assert np.array_equal(dx.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))


def test_the_chunks_kernel_reads_as_plain_python():
    """Uncompiled (prange is range, the products NumPy's, one core), the chunked kernels are
    the reference's math: padded, strided, two images per chunk with a short last one, with
    and without the fused bias and ReLU, with a fused pool (inference, and training: argmax
    forward, the pooled gradient backward)."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 7, 6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    strides, pads = (2, 1), (1, 1, 0, 1)
    g = conv2d.check(x, w, strides, pads)
    k, cells = 3 * 2 * 5, g.oh * g.ow
    w2 = w.reshape(k, 4)
    patches, dpatches = (np.empty((1, 2 * cells, k), np.float32) for _ in range(2))
    dz_buffers, y_buffers = (np.empty((1, 2 * cells, 4), np.float32) for _ in range(2))
    y2 = np.empty((3 * cells, 4), np.float32)
    da = rng.standard_normal((3, g.oh, g.ow, 4)).astype(np.float32)
    geometry = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.oh, g.ow)
    for relu, bias in ((False, None), (True, b)):
        activation = "relu" if relu else "linear"
        ra = conv2d_bias_act.forward_reference(x, w, bias, activation, strides, pads)
        rdx, rdw, rdb = conv2d_bias_act.backward_reference(da, x, w, bias, activation, strides, pads)
        no_arg = np.empty((0, 0, 0, 4), np.int32)
        tiles = ((2, 1), (2, 1), (0, 0, 0, 0))
        rp, rarg = pooling.forward_reference(ra, *tiles)
        dp = rng.standard_normal(rp.shape).astype(np.float32)
        rpdx, rpdw, _ = conv2d_bias_act.backward_reference(
            pooling.backward_reference(dp, rarg, ra.shape, *tiles), x, w, bias, activation, strides, pads)
        for as_rows in (True, False):   # patches as rows, and transposed (the few-channel layout)
            conv2d_cpu.forward_kernel(x, w2, b, bias is not None, relu, geometry, 2, as_rows, patches, y2,
                                      (0, 0), y_buffers[:, :0], np.empty((0, 1, 1, 4), np.float32), no_arg)
            np.testing.assert_allclose(y2.reshape(ra.shape), ra, rtol=1e-5, atol=1e-5)
            pooled = np.empty((3, g.oh // 2, g.ow // 1, 4), np.float32)   # 2x1 tiles
            conv2d_cpu.forward_kernel(x, w2, b, bias is not None, relu, geometry, 2, as_rows, patches,
                                      y2[:0], (2, 1), y_buffers, pooled, no_arg)
            np.testing.assert_allclose(pooled, rp, rtol=1e-5, atol=1e-5)
            arg = np.empty(pooled.shape, np.int32)      # training: the argmax too
            conv2d_cpu.forward_kernel(x, w2, b, bias is not None, relu, geometry, 2, as_rows, patches,
                                      y2[:0], (2, 1), y_buffers, pooled, arg)
            np.testing.assert_allclose(pooled, rp, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(arg, rarg)
            partial, dx = np.empty((2, k, 4), np.float32), np.empty(x.shape, np.float32)
            db_partial = np.empty((2, 4), np.float32)
            conv2d_cpu.backward_kernel(x, w2.T.copy(), dp, pooled, relu, bias is not None, geometry, 2,
                                       as_rows, True, (2, 1), arg, patches, dpatches, dz_buffers,
                                       partial, db_partial, dx)
            np.testing.assert_allclose(dx, rpdx, rtol=1e-5, atol=1e-5)   # from the pooled gradient
            np.testing.assert_allclose(partial.sum(axis=0).reshape(w.shape), rpdw, rtol=1e-5, atol=1e-5)
            conv2d_cpu.backward_kernel(x, w2.T.copy(), da, y2.reshape(ra.shape), relu, bias is not None,
                                       geometry, 2, as_rows, True, (0, 0), no_arg, patches, dpatches,
                                       dz_buffers, partial, db_partial, dx)
            np.testing.assert_allclose(dx, rdx, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(partial.sum(axis=0).reshape(w.shape), rdw, rtol=1e-5, atol=1e-5)
            if bias is not None:
                np.testing.assert_allclose(db_partial.sum(axis=0), rdb, rtol=1e-5, atol=1e-5)