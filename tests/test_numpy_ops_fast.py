"""The NumPy backend's fast paths (cpu_fast: threads, scratch buffers, tiled
pooling) against the reference code in numpy_ops and against naive loops.

The fast paths only split work over threads for big arrays; the fixture
``split`` makes every op split even tiny test arrays into 3 uneven parts, so
the threaded code is what runs here. No timing in this file.
"""
import numpy as np
import pytest

from minicnn.backend import cpu_buffers, cpu_fast, cpu_numba, cpu_threads, numpy_ops as ops


@pytest.fixture
def split(monkeypatch):
    """Force every fast op to split its work into (up to) 3 parts."""
    old = cpu_threads.num_threads()
    monkeypatch.setattr(cpu_fast, "MIN_PART_ELEMS", 1)
    monkeypatch.setattr(cpu_fast, "CHUNK_ELEMS", 7)        # several chunks per part too
    monkeypatch.setattr(cpu_fast, "MAX_COL_BYTES", 1500)   # and patch matrices in slices
    monkeypatch.setattr(cpu_fast, "MAX_POOL_BYTES", 400)   # and pooling too
    cpu_threads.set_num_threads(3)
    yield
    cpu_threads.set_num_threads(old)


@pytest.fixture(params=["numpy", "numba"])
def path(request, monkeypatch):
    """Run a test through the NumPy fast paths, then through the compiled
    (Numba) kernels when Numba is installed, down to the smallest arrays."""
    if request.param == "numpy":
        monkeypatch.setattr(cpu_numba, "AVAILABLE", False)
    elif not cpu_numba.AVAILABLE:
        pytest.skip("numba is not installed")
    else:
        monkeypatch.setattr(cpu_fast, "NB_MIN_ELEMS", 0)
    return request.param


def conv_pads(size, k, s, padding):
    """TensorFlow's rule: (out, before, after) along one axis."""
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max(0, (out - 1) * s + k - size)
    return out, total // 2, total - total // 2


def naive_conv(x, w, strides, pads):
    """y[n, r, q, f] = sum over the window, cell by cell (float64)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    top, bottom, left, right = pads
    oh = (h + top + bottom - kh) // strides[0] + 1
    ow = (wd + left + right - kw) // strides[1] + 1
    y = np.zeros((n, oh, ow, f))
    for r in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    hr, wc = r * strides[0] + i - top, q * strides[1] + j - left
                    if 0 <= hr < h and 0 <= wc < wd:
                        y[:, r, q] += x[:, hr, wc].astype(np.float64) @ w[i, j]
    return y


def naive_conv_backward(dy, x, w, strides, pads):
    """(dx, dw) by the chain rule written out cell by cell (float64)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    top, _, left, _ = pads
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for r in range(dy.shape[1]):
        for q in range(dy.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    hr, wc = r * strides[0] + i - top, q * strides[1] + j - left
                    if 0 <= hr < h and 0 <= wc < wd:
                        dx[:, hr, wc] += dy[:, r, q] @ w[i, j].T
                        dw[i, j] += x[:, hr, wc].T @ dy[:, r, q]
    return dx, dw


def naive_pool(x, pool, argmax_too=True):
    """Tiled max pooling, window by window: the first max in row-major order."""
    n, h, w, c = x.shape
    ph, pw = pool
    oh, ow = h // ph, w // pw
    y = np.empty((n, oh, ow, c), x.dtype)
    arg = np.empty((n, oh, ow, c), np.int32)
    for b in range(n):
        for r in range(oh):
            for q in range(ow):
                for ch in range(c):
                    win = x[b, r * ph:(r + 1) * ph, q * pw:(q + 1) * pw, ch].ravel()
                    k = int(np.argmax(win))  # first occurrence of the max
                    y[b, r, q, ch], arg[b, r, q, ch] = win[k], k
    return y, arg


CONV_CASES = [
    # (x shape, kernel (kh, kw, c, f), strides, padding)
    ((2, 7, 6, 2), (3, 3, 2, 3), (1, 1), "valid"),
    ((1, 9, 8, 3), (2, 3, 3, 5), (2, 1), "valid"),     # rectangular kernel, stride on H only
    ((3, 7, 5, 1), (3, 3, 1, 4), (2, 2), "same"),      # C=1 (transposed patches), odd SAME
    ((1, 8, 9, 2), (1, 4, 2, 3), (3, 2), "same"),
    ((5, 6, 6, 17), (3, 3, 17, 4), (1, 1), "same"),    # rows-first patches (kw*c >= 16)
    ((4, 5, 7, 16), (2, 2, 16, 6), (2, 3), "valid"),
    ((1, 4, 4, 20), (5, 5, 20, 2), (1, 1), "same"),    # kernel larger than the input
]


def case_pads(x_shape, k_shape, strides, padding):
    _, t, b = conv_pads(x_shape[1], k_shape[0], strides[0], padding)
    _, l, r = conv_pads(x_shape[2], k_shape[1], strides[1], padding)
    return (t, b, l, r)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, k_shape, strides, padding", CONV_CASES)
def test_conv_fast_matches_loops_and_reference(split, path, dtype, x_shape, k_shape, strides, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(k_shape).astype(dtype)
    pads = case_pads(x_shape, k_shape, strides, padding)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)

    y = ops.conv2d_forward(x, w, strides, pads)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, naive_conv(x, w, strides, pads), **tol)
    np.testing.assert_allclose(y, ops.conv2d_forward_reference(x, w, strides, pads), **tol)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw = ops.conv2d_backward(dy, x, w, strides, pads)
    assert dx.dtype == dw.dtype == dtype and dx.shape == x.shape and dw.shape == w.shape
    ndx, ndw = naive_conv_backward(dy, x, w, strides, pads)
    np.testing.assert_allclose(dx, ndx, **tol)
    np.testing.assert_allclose(dw, ndw, **tol)
    rdx, rdw = ops.conv2d_backward_reference(dy, x, w, strides, pads)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(dw, rdw, **tol)

    none, dw2 = ops.conv2d_backward(dy, x, w, strides, pads, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)


def test_conv_book_shapes_over_real_thread_counts():
    """The book model's conv2 at batch 7, with the default split rules: 1, 2 and
    3 threads agree to float rounding, and each is bit-identical run to run."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 13, 13, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.1
    dy = rng.standard_normal((7, 11, 11, 64)).astype(np.float32)
    pads = (0, 0, 0, 0)
    old = cpu_threads.num_threads()
    results = {}
    try:
        for t in (1, 2, 3):
            cpu_threads.set_num_threads(t)
            first = (ops.conv2d_forward(x, w, (1, 1), pads),) + ops.conv2d_backward(dy, x, w, (1, 1), pads)
            again = (ops.conv2d_forward(x, w, (1, 1), pads),) + ops.conv2d_backward(dy, x, w, (1, 1), pads)
            for a, b in zip(first, again):
                np.testing.assert_array_equal(a, b)  # deterministic
            results[t] = first
    finally:
        cpu_threads.set_num_threads(old)
    ref = (ops.conv2d_forward_reference(x, w, (1, 1), pads),) + \
        ops.conv2d_backward_reference(dy, x, w, (1, 1), pads)
    for t, got in results.items():
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4 * np.abs(b).max())


def test_returned_arrays_are_not_reused(split, path):
    """Two layers with the same shapes: the second call must not overwrite what
    the first returned (layers hold these until their backward pass)."""
    rng = np.random.default_rng(2)
    x1, x2 = (rng.standard_normal((4, 6, 6, 3)).astype(np.float32) for _ in range(2))
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    pads = (1, 1, 1, 1)
    y1 = ops.conv2d_forward(x1, w, (1, 1), pads)
    keep = y1.copy()
    y2 = ops.conv2d_forward(x2, w, (1, 1), pads)
    np.testing.assert_array_equal(y1, keep)
    assert not np.shares_memory(y1, y2)

    dx1, dw1 = ops.conv2d_backward(y1, x1, w, (1, 1), pads)
    k1 = dx1.copy(), dw1.copy()
    dx2, dw2 = ops.conv2d_backward(y2, x2, w, (1, 1), pads)
    np.testing.assert_array_equal(dx1, k1[0])
    np.testing.assert_array_equal(dw1, k1[1])

    p1, a1 = ops.maxpool_forward(x1, (2, 2), (2, 2), (0, 0, 0, 0))
    kp = p1.copy(), a1.copy()
    p2, a2 = ops.maxpool_forward(x2, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(p1, kp[0])
    np.testing.assert_array_equal(a1, kp[1])
    g1 = ops.maxpool_backward(p1, a1, x1.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    kg = g1.copy()
    ops.maxpool_backward(p2, a2, x2.shape, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(g1, kg)

    z1 = rng.standard_normal((4, 5, 5, 3)).astype(np.float32)
    d1, b1 = ops.bias_act_backward(z1, np.maximum(z1, 0), "relu", True)
    kd = d1.copy(), b1.copy()
    ops.bias_act_backward(-z1, np.maximum(-z1, 0), "relu", True)
    np.testing.assert_array_equal(d1, kd[0])
    np.testing.assert_array_equal(b1, kd[1])


POOL_CASES = [
    ((2, 2), (2, 6, 6, 3)),
    ((2, 2), (1, 7, 5, 2)),    # odd: last row and column dropped
    ((2, 2), (3, 11, 11, 4)),  # the book's second pool
    ((3, 3), (2, 9, 8, 1)),
    ((2, 3), (2, 5, 7, 2)),    # rectangular
    ((1, 2), (1, 3, 4, 5)),
    ((3, 1), (2, 7, 2, 1)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pool, shape", POOL_CASES)
@pytest.mark.parametrize("data", ["random", "ties"])
def test_tiled_maxpool_matches_loops_and_reference(split, path, dtype, pool, shape, data):
    rng = np.random.default_rng(3)
    if data == "random":
        x = rng.standard_normal(shape).astype(dtype)
    else:  # ReLU-like: many zeros, and equal maxima inside windows
        x = np.maximum(rng.integers(-2, 3, shape), 0).astype(dtype)
    pads = (0, 0, 0, 0)
    y, arg = ops.maxpool_forward(x, pool, pool, pads)
    assert y.dtype == dtype and arg.dtype == np.int32
    ny, narg = naive_pool(x, pool)
    np.testing.assert_array_equal(y, ny)
    np.testing.assert_array_equal(arg, narg)
    ry, rarg = ops.maxpool_forward_reference(x, pool, pool, pads)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(arg, rarg)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.maxpool_backward(dy, arg, x.shape, pool, pool, pads)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(dx, ops.maxpool_backward_reference(dy, arg, x.shape, pool, pool, pads))
    # every gradient lands once, on its window's max; nothing else is touched
    assert np.isclose(dx.sum(), dy.sum())
    assert np.count_nonzero(dx) == np.count_nonzero(dy)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 5, 4, 7), (1, 1, 1, 2), (37, 9)])
@pytest.mark.parametrize("activation, has_bias", [("relu", True), ("relu", False), ("linear", True)])
def test_bias_act_fast_matches_reference(split, path, dtype, shape, activation, has_bias):
    rng = np.random.default_rng(4)
    z = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[-1]).astype(dtype) if has_bias else None
    got = ops.bias_act_forward(z.copy(), b, activation)
    want = ops.bias_act_forward_reference(z.copy(), b, activation)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dtype

    da = rng.standard_normal(shape).astype(dtype)
    dz, db = ops.bias_act_backward(da, got, activation, has_bias)
    rdz, rdb = ops.bias_act_backward_reference(da, got, activation, has_bias)
    np.testing.assert_array_equal(dz, rdz)
    assert dz.dtype == dtype
    if has_bias:
        assert db.dtype == dtype
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(db, rdb, rtol=rtol, atol=rtol * np.abs(rdz).sum(axis=tuple(range(dz.ndim - 1))).max())
    else:
        assert db is None and rdb is None


def test_bias_act_forward_is_in_place(split):
    z = np.random.default_rng(5).standard_normal((6, 4, 3)).astype(np.float32)
    out = ops.bias_act_forward(z, np.ones(3, np.float32), "relu")
    assert out is z and (z >= 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_fast_matches_reference(split, dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((13, 7)).astype(dtype)
    w = rng.standard_normal((7, 5)).astype(dtype)
    dy = rng.standard_normal((13, 5)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ops.dense_forward(x, w), x @ w, rtol=tol)
    dx, dw = ops.dense_backward(dy, x, w)
    np.testing.assert_allclose(dx, dy @ w.T, rtol=tol)
    np.testing.assert_allclose(dw, x.T @ dy, rtol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rmsprop_fast_is_bit_identical(path, dtype):
    rng = np.random.default_rng(7)
    p1 = rng.standard_normal((5, 3)).astype(dtype)
    v1 = np.abs(rng.standard_normal((5, 3))).astype(dtype)
    p2, v2 = p1.copy(), v1.copy()
    for step in range(3):
        g = rng.standard_normal((5, 3)).astype(dtype)
        ops.rmsprop_update(p1, g, v1, 1e-3, 0.9, 1e-7)
        ops.rmsprop_update_reference(p2, g, v2, 1e-3, 0.9, 1e-7)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(v1, v2)
    assert p1.dtype == dtype and v1.dtype == dtype


def test_reference_switch(monkeypatch):
    """FAST = False runs the reference code alone (MINICNN_CPU_FAST=0)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    calls = []
    monkeypatch.setattr(cpu_fast, "maxpool_forward_tiled", lambda *a: calls.append(a))
    monkeypatch.setattr(ops, "FAST", False)
    ops.maxpool_forward(x, (2, 2), (2, 2), (0, 0, 0, 0))
    assert calls == []


def test_worker_errors_reach_the_caller(split, monkeypatch):
    monkeypatch.setattr(cpu_threads, "PARTS_PER_THREAD", 2)

    def fn(lo, hi, part):
        if part == 2:
            raise RuntimeError("boom in part 2")
    with pytest.raises(RuntimeError, match="boom in part 2"):
        cpu_threads.parallel(9, fn)
    seen = []
    parts = cpu_threads.parallel(9, lambda lo, hi, p: seen.append((p, lo, hi)))  # the pool still works
    assert parts == cpu_threads.plan(9)[1] == 6  # 3 threads, 2 parts each
    assert sorted(seen) == [(k,) + b for k, b in enumerate(cpu_threads.split(9, 6))]


def test_parts_are_fixed_whoever_runs_them(split, monkeypatch):
    monkeypatch.setattr(cpu_threads, "PARTS_PER_THREAD", 1)
    seen = []
    assert cpu_threads.parallel(9, lambda lo, hi, p: seen.append((p, lo, hi))) == 3
    assert sorted(seen) == [(0, 0, 3), (1, 3, 6), (2, 6, 9)]
    assert cpu_threads.plan(2) == (2, 2) and cpu_threads.plan(1) == (1, 1)


def test_split_is_even_and_ordered():
    assert cpu_threads.split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert cpu_threads.split(2, 2) == [(0, 1), (1, 2)]


def test_blas_threads_are_restored():
    blas = cpu_threads._get_blas()
    if not blas.controllable:
        pytest.skip("no controllable OpenBLAS in this NumPy")
    before = [get() for get, _ in blas._fns]
    x = np.ones((64, 8, 8, 4), np.float32)
    w = np.ones((3, 3, 4, 8), np.float32)
    ops.conv2d_forward(x, w, (1, 1), (0, 0, 0, 0))
    assert [get() for get, _ in blas._fns] == before


def test_scratch_reuse_and_bounds(monkeypatch):
    cpu_buffers.clear()
    # fill=...: one array per exact shape, made once and filled once
    a = cpu_buffers.scratch("pad", (4, 4), np.float32, fill=0)
    a[0, 0] = 5
    assert cpu_buffers.scratch("pad", (4, 4), np.float32, fill=0) is a and a[0, 0] == 5
    assert cpu_buffers.scratch("pad", (4, 5), np.float32, fill=0) is not a
    # no fill: views of one growing buffer per purpose and dtype
    b = cpu_buffers.scratch("t", (4, 4), np.float32)
    c = cpu_buffers.scratch("t", (3, 5), np.float32)
    assert c.shape == (3, 5) and c.flags.c_contiguous and np.shares_memory(b, c)
    assert not np.shares_memory(b, cpu_buffers.scratch("u", (4, 4), np.float32))
    assert not np.shares_memory(b, cpu_buffers.scratch("t", (4, 4), np.float64))
    big = cpu_buffers.scratch("t", (10, 10), np.float32)
    assert big.shape == (10, 10) and not np.shares_memory(big, b)
    # least recently used arrays go beyond MAX_BYTES
    monkeypatch.setattr(cpu_buffers, "MAX_BYTES", 100)
    cpu_buffers.scratch("big", (40,), np.float32)  # 160 bytes: evicts everything older
    assert cpu_buffers.scratch("pad", (4, 4), np.float32, fill=0) is not a
    cpu_buffers.clear()


def test_scratch_is_per_thread():
    import threading
    mine = cpu_buffers.scratch("t", (8,), np.float32)
    other = []
    t = threading.Thread(target=lambda: other.append(cpu_buffers.scratch("t", (8,), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, other[0])


@pytest.mark.parametrize("rows_first_c", [1, 20])
def test_kept_patches_are_checked_against_x(path, rows_first_c):
    """Backward reuses forward's patch matrix only while x holds the same bits."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 9, 8, rows_first_c)).astype(np.float32)
    w = rng.standard_normal((3, 3, rows_first_c, 5)).astype(np.float32)
    pads = (1, 1, 1, 1)
    y = ops.conv2d_forward(x, w, (1, 1), pads)
    dy = rng.standard_normal(y.shape).astype(np.float32)

    def check(xx):
        got = ops.conv2d_backward(dy, xx, w, (1, 1), pads)
        want = ops.conv2d_backward_reference(dy, xx, w, (1, 1), pads)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)

    x[3, 4, 4, 0] += 1.0   # changed in place after the forward pass
    check(x)
    ops.conv2d_forward(x, w, (1, 1), pads)
    x2 = x.copy()           # same bits, another array: rebuilt, same answer
    check(x2)
    ops.conv2d_forward(x, w, (1, 1), pads)
    x[0, 0, 0, 0] = -0.0 if x[0, 0, 0, 0] == 0 else 0.0  # a sign or value flip anywhere
    check(x)
    check(x)                # and again, with nothing kept any more


def test_kept_patches_stay_bounded(monkeypatch):
    monkeypatch.setattr(cpu_fast, "MAX_KEPT_BYTES", 40000)  # 3 of these 12.4 kB entries
    cpu_fast.clear_kept()
    rng = np.random.default_rng(10)
    w = rng.standard_normal((3, 3, 4, 2)).astype(np.float32)
    for _ in range(20):  # inference-like: forwards with no backward
        ops.conv2d_forward(rng.standard_normal((2, 8, 8, 4)).astype(np.float32), w, (1, 1), (0, 0, 0, 0))
    assert cpu_fast._kept_bytes <= 40000 and 1 <= len(cpu_fast._kept) <= 3
    cpu_fast.clear_kept()


def test_fresh_reuses_memory_only_when_unreferenced():
    cpu_buffers.clear_pooled()
    shape = (300, 300)  # 360 kB: pooled
    a = cpu_buffers.fresh(shape, np.float32)
    a_id = id(a)
    view = a[10:20]
    del a
    b = cpu_buffers.fresh(shape, np.float32)
    assert id(b) != a_id and not np.shares_memory(b, view)  # a view keeps its base in use
    del view
    c = cpu_buffers.fresh(shape, np.float32)
    assert id(c) == a_id  # nobody holds it any more: recycled
    assert not np.shares_memory(c, b)
    d = cpu_buffers.fresh(shape, np.float32)  # b and c are held: a new one
    assert not np.shares_memory(d, b) and not np.shares_memory(d, c)
    assert cpu_buffers.fresh((3, 3), np.float32).shape == (3, 3)
    cpu_buffers.clear_pooled()


@pytest.mark.skipif(not cpu_numba.AVAILABLE, reason="numba is not installed")
def test_compiled_kernels_give_the_reference_bits():
    """im2col/col2im, pooling, ReLU backward and RMSprop: bit for bit (float32)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 7, 6, 4)).astype(np.float32)
    for kh, kw, sh, sw, pads in ((3, 3, 1, 1, (0, 0, 0, 0)), (3, 2, 2, 1, (1, 1, 0, 1)),
                                 (2, 3, 3, 2, (0, 1, 1, 1))):
        oh = (7 + pads[0] + pads[1] - kh) // sh + 1
        ow = (6 + pads[2] + pads[3] - kw) // sw + 1
        col = np.empty((3 * oh * ow, kh * kw * 4), np.float32)
        cpu_numba.im2col(x, kh, kw, sh, sw, pads[0], pads[2], oh, ow, col)
        np.testing.assert_array_equal(col, ops._im2col(x, kh, kw, (sh, sw), pads).reshape(col.shape))
        colt = np.empty(col.T.shape, np.float32)
        cpu_numba.im2col_t(x, kh, kw, sh, sw, pads[0], pads[2], oh, ow, colt)
        np.testing.assert_array_equal(colt, col.T)
        dcol = rng.standard_normal(col.shape).astype(np.float32)
        dx = np.empty_like(x)
        cpu_numba.col2im(dcol, kh, kw, sh, sw, pads[0], pads[2], oh, ow, dx)
        want = ops._col2im(dcol.reshape(3, oh, ow, kh, kw, 4), x.shape, (sh, sw), pads)
        assert np.array_equal(dx.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))

    # pooling with NaNs and ties behaves like the reference's strict-> scan
    xp = np.maximum(rng.integers(-2, 3, (2, 6, 7, 3)), 0).astype(np.float32)
    xp[0, 0, 0, 0] = np.nan
    xp[1, 2, 3, 1] = np.nan
    y = np.empty((2, 3, 3, 3), np.float32)
    arg = np.empty(y.shape, np.int32)
    cpu_numba.pool_forward(xp, 2, 2, y, arg)
    ry, rarg = ops.maxpool_forward_reference(xp, (2, 2), (2, 2), (0, 0, 0, 0))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(arg, rarg)

    a = np.maximum(rng.standard_normal((40, 12)), 0).astype(np.float32)
    da = rng.standard_normal((40, 12)).astype(np.float32)
    dz = np.empty_like(da)
    partial = np.empty((cpu_numba.DB_CHUNKS, 12), np.float32)
    cpu_numba.relu_backward(da, a, dz, partial, True)
    rdz, rdb = ops.bias_act_backward_reference(da, a, "relu", True)
    np.testing.assert_array_equal(dz, rdz)
    np.testing.assert_allclose(partial.sum(axis=0), rdb, rtol=1e-5, atol=1e-5)


def test_numba_is_optional(monkeypatch):
    """Without Numba every op still takes a fast NumPy path."""
    monkeypatch.setattr(cpu_numba, "AVAILABLE", False)
    assert not cpu_numba.usable(np.zeros(3, np.float32))


def test_conv_forward_in_slices(path, monkeypatch):
    """A big (inference) batch goes through im2col + GEMM a slice at a time."""
    monkeypatch.setattr(cpu_fast, "MAX_COL_BYTES", 2000)
    monkeypatch.setattr(cpu_fast, "MAX_NB_SLICE_BYTES", 4000)
    monkeypatch.setattr(cpu_fast, "MAX_KEPT_ENTRY_BYTES", 0)
    rng = np.random.default_rng(12)
    for c in (1, 20):
        x = rng.standard_normal((9, 7, 6, c)).astype(np.float32)
        w = rng.standard_normal((3, 3, c, 4)).astype(np.float32)
        pads = (1, 1, 1, 1)
        np.testing.assert_allclose(ops.conv2d_forward(x, w, (1, 1), pads),
                                   ops.conv2d_forward_reference(x, w, (1, 1), pads), rtol=1e-4, atol=1e-4)


def test_ops_work_in_a_forked_child():
    """After fork() the child cannot use the parent's thread pools: it must
    still compute (on the NumPy paths), not hang."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    x = np.random.default_rng(13).standard_normal((64, 13, 13, 32)).astype(np.float32)
    w = np.ones((3, 3, 32, 8), np.float32)
    want = ops.conv2d_forward(x, w, (1, 1), (0, 0, 0, 0))  # the parent's pools are warm now
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_child_conv, (x, w)).get(timeout=60)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def _child_conv(x, w):
    return ops.conv2d_forward(x, w, (1, 1), (0, 0, 0, 0))


def test_trim_drops_only_idle_arrays():
    cpu_buffers.clear_pooled()
    held = cpu_buffers.fresh((300, 300), np.float32)
    idle = cpu_buffers.fresh((300, 300), np.float32)
    idle_id = id(idle)
    del idle
    cpu_buffers.trim()
    pooled = [a for v in cpu_buffers._pooled.values() for a in v]
    assert any(a is held for a in pooled) and not any(id(a) == idle_id for a in pooled)
    cpu_buffers.clear_pooled()
