"""minicnn.ops.conv2d_bias_act: the Conv2D layer's whole op, every implementation.

Its CPU fast path (the bias and the ReLU inside conv2d's chunk kernels) must give
the bits of conv2d then bias_act (db within tolerance: it adds chunk by chunk); every
implementation must match the naive loops; float64 gradients match finite differences.
"""
import numpy as np
import pytest

import naive
from minicnn import backend, config
from minicnn.backend import cpu_threads
from minicnn.ops import bias_act, conv2d, conv2d_bias_act
from device_arrays import dev

CASES = [
    # (x shape, kernel (kh, kw, c, f), strides, pads): odd batches, short last chunks
    ((5, 9, 8, 1), (3, 3, 1, 7), (1, 1), (0, 0, 0, 0)),     # C=1: patches transposed
    ((3, 7, 6, 17), (3, 2, 17, 5), (2, 1), (1, 1, 0, 1)),   # patches as rows, padded, strided
    ((9, 13, 13, 32), (3, 3, 32, 64), (1, 1), (0, 0, 0, 0)),  # the book's conv2, 9 images
]
ACTIVATIONS = [("relu", True), ("relu", False), ("linear", True), ("linear", False), ("gelu", True),
               ("sigmoid", True)]


def arrays(x_shape, k_shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal(k_shape) * 0.3).astype(dtype)
    b = rng.standard_normal(k_shape[-1]).astype(dtype)
    return rng, x, w, b


def two_ops(x, w, b, activation, strides, pads, da):
    """conv2d then bias_act, and back: what the fused op must equal."""
    z, ctx = conv2d.forward(x, w, strides, pads, training=True)
    a, act_ctx = bias_act.forward_training(z, b, activation)
    a = backend.to_numpy(a).copy()
    dz, db = bias_act.backward(da, act_ctx, activation, b is not None)
    dx, dw = conv2d.backward(dz, ctx, w)
    return a, backend.to_numpy(dx), backend.to_numpy(dw), None if db is None else backend.to_numpy(db)


@pytest.mark.parametrize("x_shape, k_shape, strides, pads", CASES)
@pytest.mark.parametrize("activation, has_bias", ACTIVATIONS)
def test_the_fused_op_is_conv2d_then_bias_act(impl, x_shape, k_shape, strides, pads, activation, has_bias):
    rng, x, w, b = arrays(x_shape, k_shape)
    b = b if has_bias else None
    a, ctx = conv2d_bias_act.forward(dev(x), dev(w), None if b is None else dev(b), activation, strides, pads,
                                     training=True)
    da = rng.standard_normal(a.shape).astype(np.float32)
    dx, dw, db = conv2d_bias_act.backward(dev(da), ctx, dev(w), activation, has_bias)
    want = two_ops(dev(x), dev(w), None if b is None else dev(b), activation, strides, pads, dev(da))
    got = (backend.to_numpy(a), backend.to_numpy(dx), backend.to_numpy(dw))
    for g, e in zip(got, want[:3]):   # the same float32 arithmetic: the same bits
        np.testing.assert_array_equal(g, e)
    if has_bias:   # summed in another order: close
        np.testing.assert_allclose(backend.to_numpy(db), want[3], rtol=1e-5, atol=1e-5 * np.abs(want[3]).max())
    else:
        assert db is None
    # and the naive loops
    z = naive.conv2d(x, w, strides, pads) + (0 if b is None else b)
    ref = conv2d_bias_act.forward_reference(x, w, b, activation, strides, pads)
    np.testing.assert_allclose(ref, bias_act.forward_reference(z, None, activation), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[0], ref, rtol=1e-4, atol=1e-4)


def test_db_has_the_same_bits_on_any_thread_count():
    _, x, w, b = arrays((9, 13, 13, 32), (3, 3, 32, 64))
    da = np.random.default_rng(1).standard_normal((9, 11, 11, 64)).astype(np.float32)
    old, results = cpu_threads.num_threads(), []
    try:
        for t in (1, 2, 3):
            cpu_threads.set_num_threads(t)
            a, ctx = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), training=True)
            results.append(conv2d_bias_act.backward(da, ctx, w, "relu", True))
    finally:
        cpu_threads.set_num_threads(old)
    for other in results[1:]:
        for u, v in zip(results[0], other):
            np.testing.assert_array_equal(u, v)


def test_float64_gradients_match_finite_differences():
    """float64 runs the reference (the fused CPU path is float32 only): the math itself."""
    rng, x, w, b = arrays((2, 5, 4, 2), (3, 2, 2, 3), seed=3, dtype=np.float64)
    strides, pads = (1, 2), (1, 1, 1, 0)
    for activation in ("relu", "linear", "tanh"):
        a = conv2d_bias_act.forward_reference(x, w, b, activation, strides, pads)
        da = rng.standard_normal(a.shape)
        loss = lambda: float((conv2d_bias_act.forward_reference(x, w, b, activation, strides, pads) * da).sum())
        dx, dw, db = conv2d_bias_act.backward_reference(da, x, w, b, activation, strides, pads)
        for arr, grad in ((x, dx), (w, dw), (b, db)):
            for i in rng.choice(arr.size, min(6, arr.size), replace=False):
                idx = np.unravel_index(i, arr.shape)
                keep = arr[idx]
                arr[idx] = keep + 1e-6
                up = loss()
                arr[idx] = keep - 1e-6
                down = loss()
                arr[idx] = keep
                assert abs((up - down) / 2e-6 - grad[idx]) < 1e-5 * max(1.0, abs(grad[idx])), (activation, idx)


def test_nan_stays_nan_through_the_fused_relu():
    _, x, w, b = arrays((3, 9, 8, 1), (3, 3, 1, 4))
    x[1, 4, 4, 0] = np.nan
    a, _ = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0))
    assert np.isnan(a[1, 2:5, 2:5]).all() and not np.isnan(a[0]).any() and not np.isnan(a[2]).any()


def test_bad_bias_fails_before_any_work():
    _, x, w, b = arrays((2, 6, 6, 1), (3, 3, 1, 4))
    with pytest.raises(ValueError, match=r"conv2d: b must have shape \(4,\)"):
        conv2d_bias_act.forward(x, w, b[:3], "relu", (1, 1), (0, 0, 0, 0))
    with pytest.raises(TypeError, match="conv2d"):
        conv2d_bias_act.forward(x, w, b.astype(np.float64), "relu", (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="conv2d.*swish"):
        conv2d_bias_act.forward(x, w, b, "swish", (1, 1), (0, 0, 0, 0))
    a, ctx = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), training=True)
    with pytest.raises(ValueError, match=r"conv2d backward: da must have shape \(2, 4, 4, 4\)"):
        conv2d_bias_act.backward(a[:1], ctx, w, "relu", True)


def test_the_layer_runs_the_fused_op_unless_the_cpu_fast_path_is_off(monkeypatch):
    """Conv2D's training step gives the same weights through the fused op and, with
    MINICNN_CPU_FAST=0, through the two references (within float32 tolerance)."""
    from minicnn import layers, models
    from minicnn.utils import set_random_seed
    x = np.random.default_rng(5).random((7, 12, 12, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(7) % 3]

    def trained():
        set_random_seed(2)
        model = models.Sequential([layers.Conv2D(6, 3, activation="relu", input_shape=(12, 12, 1)),
                                   layers.Conv2D(5, 3, strides=2, padding="same"),
                                   layers.Flatten(), layers.Dense(3, activation="softmax")])
        model.compile("rmsprop", "categorical_crossentropy")
        for _ in range(3):
            model.train_on_batch(x, y)
        return model.get_weights()
    fast = trained()
    with config.override(MINICNN_CPU_FAST=False):
        slow = trained()
    for u, v in zip(fast, slow):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)


POOLS = [((2, 2), (2, 2), (0, 0, 0, 0)),   # the book's: tiles, fused on the CPU
         ((2, 1), (2, 1), (0, 0, 0, 0)),   # other tiles (the odd last row/column dropped)
         ((3, 3), (2, 2), (0, 0, 0, 0)),   # overlapping windows: the two ops in turn
         ((2, 2), (2, 2), (0, 1, 0, 1))]   # padded ('same'): the two ops in turn


@pytest.mark.parametrize("x_shape, k_shape, strides, pads", CASES)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("activation", ["relu", "linear", "tanh"])
def test_a_pool_after_is_the_pooling_op_of_the_activation(impl, x_shape, k_shape, strides, pads, pool,
                                                          activation):
    from minicnn.ops import pooling
    _, x, w, b = arrays(x_shape, k_shape)
    a, _ = conv2d_bias_act.forward(dev(x), dev(w), dev(b), activation, strides, pads)
    try:
        want, _ = pooling.forward(a, *pool)
    except ValueError:
        pytest.skip("the pool does not fit this output")
    got, ctx = conv2d_bias_act.forward(dev(x), dev(w), dev(b), activation, strides, pads, pool=pool)
    assert ctx is None
    np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    np.testing.assert_allclose(backend.to_numpy(got), conv2d_bias_act.forward_reference(
        x, w, b, activation, strides, pads, pool=pool), rtol=1e-4, atol=1e-4)


def layers_with_pool(x, w, b, activation, strides, pads, pool, dp):
    """The Conv2D op, then the pooling op, and back: what the op with pool= must equal."""
    from minicnn.ops import pooling
    a, ctx = conv2d_bias_act.forward(x, w, b, activation, strides, pads, training=True)
    p, pool_ctx = pooling.forward(a, *pool, training=True)
    p, argmax = backend.to_numpy(p).copy(), backend.to_numpy(pool_ctx.argmax).copy()
    dx, dw, db = conv2d_bias_act.backward(pooling.backward(dp, pool_ctx), ctx, w, activation, b is not None)
    return p, argmax, backend.to_numpy(dx), backend.to_numpy(dw), None if db is None else backend.to_numpy(db)


@pytest.mark.parametrize("x_shape, k_shape, strides, pads", CASES)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("activation, has_bias", [("relu", True), ("linear", False), ("tanh", True)])
def test_a_pool_after_trains_as_the_two_ops(impl, x_shape, k_shape, strides, pads, pool, activation,
                                            has_bias):
    """Training with pool=: the pooled a, its argmax, dx and dw with the bits of the Conv2D op
    then the pooling op (db close: summed chunk by chunk). The inputs are rounded so that the
    ReLU makes ties (whole windows of 0) and the first of them must win, as in the layers."""
    rng, x, w, b = arrays(x_shape, k_shape, seed=5)
    x, w = np.round(x), np.round(w * 4) / 4
    b = np.round(b) if has_bias else None
    args = dev(x), dev(w), None if b is None else dev(b), activation, strides, pads
    try:
        p, ctx = conv2d_bias_act.forward(*args, training=True, pool=pool)
    except ValueError:
        pytest.skip("the pool does not fit this output")
    from minicnn.ops import pooling
    # the CPU kernels pool their own rows for relu/linear and tiles; else the two ops run
    assert ctx.act_pooled == (impl == "cpu_kernels" and activation != "tanh" and pooling.tiles(ctx.pool.g))
    dp = rng.standard_normal(p.shape).astype(np.float32)
    dp[0, 0, 0, 0] = np.nan                  # a NaN gradient poisons its window alike
    want = layers_with_pool(*args, pool, dev(dp))
    np.testing.assert_array_equal(backend.to_numpy(p), want[0])
    np.testing.assert_array_equal(backend.to_numpy(ctx.pool.argmax), want[1])
    dx, dw, db = conv2d_bias_act.backward(dev(dp), ctx, dev(w), activation, has_bias)
    np.testing.assert_array_equal(backend.to_numpy(dx), want[2])
    np.testing.assert_array_equal(backend.to_numpy(dw), want[3])
    if has_bias:
        np.testing.assert_allclose(backend.to_numpy(db), want[4], rtol=1e-5, atol=1e-5 * np.nanmax(np.abs(want[4])))


def test_a_pool_after_checks_its_geometry_and_the_gradient():
    _, x, w, b = arrays((2, 6, 6, 1), (3, 3, 1, 4))
    with pytest.raises(ValueError, match="maxpool: a 5x5 window does not fit a 4x4 input"):
        conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), pool=((5, 5), (1, 1), (0, 0, 0, 0)))
    p, ctx = conv2d_bias_act.forward(x, w, b, "relu", (1, 1), (0, 0, 0, 0), training=True,
                                     pool=((2, 2), (2, 2), (0, 0, 0, 0)))
    with pytest.raises(ValueError, match=r"conv2d backward: da must have shape \(2, 2, 2, 4\)"):
        conv2d_bias_act.backward(np.ones((2, 4, 4, 4), np.float32), ctx, w, "relu", True)   # the unpooled shape
    with pytest.raises(TypeError, match="conv2d backward: .*dtype"):
        conv2d_bias_act.backward(np.ones(p.shape), ctx, w, "relu", True)                       # float64


def test_predict_runs_conv_and_pool_as_one_op_with_the_layers_bits(monkeypatch):
    """A model's inference forward fuses Conv2D + MaxPooling2D: the same bits as the layers
    one by one; a subclass that changes Conv2D's forward keeps its own forward."""
    from minicnn import layers, models
    from minicnn.utils import set_random_seed
    x = np.random.default_rng(4).random((11, 14, 14, 3), dtype=np.float32)
    calls, pools = [], []
    forward = conv2d_bias_act.forward

    def spy(*args, pool=None, **kwargs):
        pools.append(pool)
        return forward(*args, pool=pool, **kwargs)
    monkeypatch.setattr(conv2d_bias_act, "forward", spy)

    class Traced(layers.Conv2D):
        def forward(self, x, training=False):
            calls.append(training)
            return super().forward(x, training)

    for conv in (layers.Conv2D, Traced):
        set_random_seed(3)
        model = models.Sequential([conv(8, 3, activation="relu", input_shape=(14, 14, 3)),
                                   layers.MaxPooling2D(2), layers.Conv2D(6, 2, padding="same"),
                                   layers.MaxPooling2D(2, padding="same"), layers.Flatten(), layers.Dense(4)])
        one_by_one = x
        for layer in model.layers:
            one_by_one = layer.forward(one_by_one)
        calls.clear()
        pools.clear()
        np.testing.assert_array_equal(model.predict(x, verbose=0), one_by_one)
        assert calls == ([False] if conv is Traced else [])   # Traced's own forward ran
        fused = [(p.pool_size, p.strides, p.pads) for p in model.layers if isinstance(p, layers.MaxPooling2D)]
        assert pools == ([None] + fused[1:] if conv is Traced else fused)   # each conv took its pool


@pytest.mark.parametrize("fast", [True, False])
def test_training_runs_conv_and_pool_as_one_op_with_the_layers_numbers(monkeypatch, fast):
    """A model's training step fuses Conv2D + MaxPooling2D too (forward and backward): its
    loss and weights after three steps are the layers' one by one (a subclass of
    MaxPooling2D with its own backward is never fused); with and without the CPU kernels."""
    from minicnn import layers, models
    from minicnn.utils import set_random_seed
    rng = np.random.default_rng(8)
    x = rng.random((13, 12, 12, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 13)]
    pools = []
    forward = conv2d_bias_act.forward

    def spy(*args, training=False, pool=None, **kwargs):
        pools.append((training, pool is not None))
        return forward(*args, training=training, pool=pool, **kwargs)
    monkeypatch.setattr(conv2d_bias_act, "forward", spy)

    class OwnBackward(layers.MaxPooling2D):
        def backward(self, dout, need_dx=True):
            return super().backward(dout, need_dx)

    def trained(pool):
        set_random_seed(5)
        model = models.Sequential([layers.Conv2D(6, 3, activation="relu", input_shape=(12, 12, 1)),
                                   pool(2), layers.Conv2D(5, 3, activation="relu"), pool(2),
                                   layers.Flatten(), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
        pools.clear()
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        return losses, model.get_weights(), list(pools)

    with config.override(MINICNN_CPU_FAST=fast):
        fused_losses, fused_weights, fused_calls = trained(layers.MaxPooling2D)
        losses, weights, calls = trained(OwnBackward)
    assert fused_calls == [(True, True)] * 6 and calls == [(True, False)] * 6
    np.testing.assert_allclose(fused_losses, losses, rtol=1e-6)
    for u, v in zip(fused_weights, weights):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
