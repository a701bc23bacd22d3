"""The CUDA backend (CudaOps) against the NumPy reference, op by op.

Most tests run CudaOps on the emulator: the very kernels/*.cu text, compiled
by g++ and run on CPU threads, with the same grid/block arithmetic and
argument checks as on a GPU. Shapes are small and odd on purpose: channel and
size counts that are not multiples of any block or tile, batch 1, strides,
SAME padding with odd sizes, rectangular windows.

Tests marked ``gpu`` repeat the parity checks with CuPy on a real GPU; they
are skipped when ``cupy.is_available()`` is False.
"""
import math

import numpy as np
import pytest

from minicnn.backend import numpy_ops as ref
from minicnn.backend.cuda_ops import KERNELS, CudaOps

TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def emu():
    return CudaOps(np, "emulator")


@pytest.fixture(autouse=True)
def every_thread_order(monkeypatch):
    """Every emulator launch runs in forward, reverse and seeded random thread
    order from the same inputs and must give bit-identical results: a missing
    __syncthreads() or a race in a block reduction fails here."""
    monkeypatch.setenv("MINICNN_EMU_ORDER", "all")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def f32(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def same_pads(size, k, s):
    """TensorFlow's SAME padding along one axis: (before, after)."""
    out = -(-size // s)
    total = max(0, (out - 1) * s + k - size)
    return total // 2, total - total // 2


def pads_for(h, w, kh, kw, strides, padding):
    if padding == "valid":
        return (0, 0, 0, 0)
    return same_pads(h, kh, strides[0]) + same_pads(w, kw, strides[1])


# ----------------------------------------------------------------------------
# convolution and dense
# ----------------------------------------------------------------------------
# (N, H, W, C, KH, KW, F, strides, padding)
CONV_CASES = [
    (1, 5, 7, 3, 3, 3, 5, (1, 1), "valid"),     # batch 1
    (2, 7, 6, 2, 3, 2, 3, (2, 2), "same"),      # odd sizes, SAME, stride 2, rectangular
    (3, 9, 8, 5, 2, 3, 7, (2, 1), "same"),      # unequal strides
    (2, 6, 5, 4, 1, 1, 6, (1, 1), "valid"),     # pointwise: im2col skipped
    (2, 5, 5, 3, 1, 1, 4, (2, 2), "valid"),     # 1x1 but strided: im2col used
    (1, 4, 5, 33, 3, 3, 2, (1, 1), "same"),     # channels past a warp
    (2, 11, 13, 1, 5, 4, 3, (3, 2), "same"),    # big window, stride 3
]


@pytest.mark.parametrize("n,h,w,c,kh,kw,f,strides,padding", CONV_CASES)
def test_conv2d_forward_matches_reference(emu, rng, n, h, w, c, kh, kw, f, strides, padding):
    x, wt = f32(rng, n, h, w, c), f32(rng, kh, kw, c, f)
    pads = pads_for(h, w, kh, kw, strides, padding)
    y = emu.conv2d_forward(x, wt, strides, pads)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, wt, strides, pads), **TOL)


@pytest.mark.parametrize("n,h,w,c,kh,kw,f,strides,padding", CONV_CASES)
def test_conv2d_backward_matches_reference(emu, rng, n, h, w, c, kh, kw, f, strides, padding):
    x, wt = f32(rng, n, h, w, c), f32(rng, kh, kw, c, f)
    pads = pads_for(h, w, kh, kw, strides, padding)
    dy = f32(rng, *ref.conv2d_forward(x, wt, strides, pads).shape)
    dx, dw = emu.conv2d_backward(dy, x, wt, strides, pads)
    rdx, rdw = ref.conv2d_backward(dy, x, wt, strides, pads)
    assert dx.shape == x.shape and dw.shape == wt.shape
    np.testing.assert_allclose(dx, rdx, **TOL)
    np.testing.assert_allclose(dw, rdw, **TOL)
    none, dw2 = emu.conv2d_backward(dy, x, wt, strides, pads, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)


def test_conv2d_padding_larger_than_needed(emu, rng):
    x, wt = f32(rng, 1, 3, 4, 2), f32(rng, 2, 2, 2, 3)
    pads = (2, 1, 0, 3)
    np.testing.assert_allclose(emu.conv2d_forward(x, wt, (1, 2), pads),
                               ref.conv2d_forward(x, wt, (1, 2), pads), **TOL)


def test_dense_forward_and_backward(emu, rng):
    x, w, dy = f32(rng, 3, 7), f32(rng, 7, 5), f32(rng, 3, 5)
    np.testing.assert_allclose(emu.dense_forward(x, w), ref.dense_forward(x, w), **TOL)
    dx, dw = emu.dense_backward(dy, x, w)
    rdx, rdw = ref.dense_backward(dy, x, w)
    np.testing.assert_allclose(dx, rdx, **TOL)
    np.testing.assert_allclose(dw, rdw, **TOL)
    assert emu.dense_backward(dy, x, w, need_dx=False)[0] is None


# ----------------------------------------------------------------------------
# bias + activation
# ----------------------------------------------------------------------------
ACT_SHAPES = [(2, 3, 5, 37), (7, 10), (1, 300)]   # 300 > 256: row kernels loop


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("shape", ACT_SHAPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_act_forward(emu, rng, activation, shape, with_bias):
    z = f32(rng, *shape, lo=-4, hi=4)
    b = f32(rng, shape[-1]) if with_bias else None
    expected = ref.bias_act_forward(z.copy(), b, activation)
    out = emu.bias_act_forward(z, b, activation)
    assert out is z  # in place, like the reference
    np.testing.assert_allclose(z, expected, **TOL)


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("shape", ACT_SHAPES)
def test_bias_act_backward(emu, rng, activation, shape):
    a = ref.bias_act_forward(f32(rng, *shape, lo=-3, hi=3), None, activation)
    a[..., 0] = 0.0  # relu' at exactly 0 must be 0
    da = f32(rng, *shape)
    dz, db = emu.bias_act_backward(da, a, activation, True)
    rdz, rdb = ref.bias_act_backward(da, a, activation, True)
    np.testing.assert_allclose(dz, rdz, **TOL)
    np.testing.assert_allclose(db, rdb, rtol=1e-5, atol=1e-5)
    dz2, none = emu.bias_act_backward(da, a, activation, False)
    assert none is None
    np.testing.assert_array_equal(dz2, dz)


def test_linear_backward_returns_da_itself(emu, rng):
    da = f32(rng, 4, 3)
    dz, _ = emu.bias_act_backward(da, da.copy(), "linear", False)
    assert dz is da


@pytest.mark.parametrize("rows,cols", [(1, 1), (5, 1), (1000, 37), (9000, 3), (130, 65)])
def test_bias_gradient_column_sums(emu, rng, rows, cols):
    # many rows: several chunks in pass 1; cols past 32: several column strips
    da = f32(rng, rows, cols)
    _, db = emu.bias_act_backward(da, da, "linear", True)
    np.testing.assert_allclose(db, da.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-4)


def test_relu_keeps_nan_like_the_reference(emu):
    z = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    expected = ref.bias_act_forward(z.copy(), None, "relu")
    np.testing.assert_array_equal(emu.bias_act_forward(z, None, "relu"), expected)


def test_softmax_extreme_logits_do_not_overflow(emu):
    z = np.array([[1000.0, 0.0, -1000.0], [-80.0, -80.0, -80.0]], dtype=np.float32)
    p = emu.bias_act_forward(z, None, "softmax")
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------
# (N, H, W, C, pool, strides, padding)
POOL_CASES = [
    (2, 6, 6, 3, (2, 2), (2, 2), "valid"),
    (1, 7, 5, 2, (2, 2), (2, 2), "valid"),     # odd sizes: last row/col dropped
    (2, 7, 5, 3, (2, 2), (2, 2), "same"),      # odd sizes: padded bottom/right
    (1, 7, 8, 33, (3, 3), (2, 2), "valid"),    # overlapping windows
    (2, 6, 7, 2, (3, 3), (1, 1), "same"),      # overlap + padding on all sides
    (1, 5, 9, 4, (2, 3), (1, 2), "same"),      # rectangular pool, unequal strides
]


def _pool_input(rng, n, h, w, c):
    # few distinct values: many ties, so the first-maximum rule is exercised
    return rng.integers(-3, 3, (n, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("n,h,w,c,pool,strides,padding", POOL_CASES)
def test_maxpool_forward_and_backward(emu, rng, n, h, w, c, pool, strides, padding):
    x = _pool_input(rng, n, h, w, c)
    pads = pads_for(h, w, pool[0], pool[1], strides, padding)
    y, am = emu.maxpool_forward(x, pool, strides, pads)
    ry, ram = ref.maxpool_forward(x, pool, strides, pads)
    assert am.dtype == np.int32
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)
    dy = f32(rng, *y.shape)
    dx = emu.maxpool_backward(dy, am, x.shape, pool, strides, pads)
    np.testing.assert_allclose(dx, ref.maxpool_backward(dy, ram, x.shape, pool, strides, pads), **TOL)


def test_maxpool_nan_and_inf_like_the_reference(emu):
    x = np.array([np.nan, 1, 2, 3, -np.inf, -np.inf, -np.inf, 5, 0, np.nan, 1, 7],
                 dtype=np.float32).reshape(1, 3, 4, 1)
    for pads in [(0, 0, 0, 0), (1, 0, 1, 0)]:
        y, am = emu.maxpool_forward(x, (2, 2), (1, 1), pads)
        ry, ram = ref.maxpool_forward(x, (2, 2), (1, 1), pads)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(am, ram)


# ----------------------------------------------------------------------------
# loss, metric
# ----------------------------------------------------------------------------
def _probs(rng, n, k, clip_some=True):
    p = ref.bias_act_forward(f32(rng, n, k, lo=-5, hi=5), None, "softmax")
    if clip_some:
        p[0, :] = 0.0
        p[0, 1] = 1.0          # q = 1 > 1 - eps: the clip is active
        p[-1, 2] = 1e-12       # tiny: clipped from below
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    y[0, 1] = 1.0
    return p, y


@pytest.mark.parametrize("n,k", [(1, 3), (6, 10), (3, 300)])
def test_xent_loss_and_gradients(emu, rng, n, k):
    p, y = _probs(rng, n, k)
    np.testing.assert_allclose(emu.xent_loss(p, y), ref.xent_loss(p, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emu.xent_backward(p, y), ref.xent_backward(p, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(emu.softmax_xent_backward(p, y), ref.softmax_xent_backward(p, y),
                               rtol=1e-6, atol=1e-7)


def test_xent_on_unnormalised_probabilities(emu, rng):
    p = rng.uniform(0.1, 3.0, (4, 5)).astype(np.float32)   # rows do not sum to 1
    y = rng.uniform(0, 1, (4, 5)).astype(np.float32)       # soft labels
    np.testing.assert_allclose(emu.xent_loss(p, y), ref.xent_loss(p, y), rtol=1e-5)
    np.testing.assert_allclose(emu.xent_backward(p, y), ref.xent_backward(p, y), rtol=1e-5, atol=1e-7)


def test_accuracy_count(emu, rng):
    p = rng.integers(0, 3, (300, 4)).astype(np.float32)    # ties: the first index wins
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 300)]
    p[5, :] = np.nan
    count = emu.accuracy_count(p, y)
    assert count.shape == () and count.dtype == np.int32   # a device scalar, no sync
    assert int(emu.to_numpy(count)) == ref.accuracy_count(p, y)
    assert float(emu.to_numpy(count + count)) == 2 * ref.accuracy_count(p, y)


# ----------------------------------------------------------------------------
# optimizers
# ----------------------------------------------------------------------------
def test_rmsprop_update_in_place(emu, rng):
    param, v = f32(rng, 3, 5, 7), np.zeros((3, 5, 7), np.float32)
    rparam, rv = param.copy(), v.copy()
    for step in range(3):
        g = f32(rng, 3, 5, 7) * (10.0 ** -step)
        assert emu.rmsprop_update(param, g, v, 0.001, 0.9, 1e-7) is None
        ref.rmsprop_update(rparam, g, rv, 0.001, 0.9, 1e-7)
    np.testing.assert_allclose(v, rv, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(param, rparam, rtol=1e-6, atol=1e-7)


def test_sgd_update_in_place(emu, rng):
    param, g = f32(rng, 1000), f32(rng, 1000)
    rparam = param.copy()
    emu.sgd_update(param, g, 0.01)
    ref.sgd_update(rparam, g, 0.01)
    np.testing.assert_allclose(param, rparam, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------
def test_other_dtypes_are_refused(emu, rng):
    x64 = rng.standard_normal((1, 4, 4, 2))
    with pytest.raises(TypeError, match="conv2d_forward: x must be float32"):
        emu.conv2d_forward(x64, f32(rng, 3, 3, 2, 1), (1, 1), (0, 0, 0, 0))
    with pytest.raises(TypeError, match="argmax must be int32"):
        emu.maxpool_backward(f32(rng, 1, 2, 2, 1), np.zeros((1, 2, 2, 1), np.int64),
                             (1, 4, 4, 1), (2, 2), (2, 2), (0, 0, 0, 0))
    with pytest.raises(TypeError, match="sgd_update: param must be"):
        emu.sgd_update([1.0, 2.0], f32(rng, 2), 0.1)


def test_non_contiguous_arrays_are_refused(emu, rng):
    z = f32(rng, 6, 8)[:, ::2]
    with pytest.raises(ValueError, match="bias_act_forward: z must be C-contiguous"):
        emu.bias_act_forward(z, None, "relu")


def test_shape_mismatches_are_refused(emu, rng):
    with pytest.raises(ValueError, match="channels"):
        emu.conv2d_forward(f32(rng, 1, 5, 5, 3), f32(rng, 3, 3, 2, 4), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="dy has shape"):
        emu.conv2d_backward(f32(rng, 1, 2, 2, 4), f32(rng, 1, 5, 5, 3), f32(rng, 3, 3, 3, 4),
                            (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        emu.maxpool_forward(f32(rng, 1, 2, 2, 1), (3, 3), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="bias has 3 entries"):
        emu.bias_act_forward(f32(rng, 2, 4), f32(rng, 3), "relu")
    with pytest.raises(ValueError, match="same shape"):
        emu.rmsprop_update(f32(rng, 4), f32(rng, 4), f32(rng, 5), 0.1, 0.9, 1e-7)
    with pytest.raises(ValueError, match="Unknown activation 'gelu'"):
        emu.bias_act_forward(f32(rng, 2, 4), None, "gelu")
    with pytest.raises(ValueError, match="strides must be positive"):
        emu.conv2d_forward(f32(rng, 1, 5, 5, 1), f32(rng, 3, 3, 1, 1), (0, 1), (0, 0, 0, 0))


def test_kernel_scalars_must_be_numpy_typed(emu, rng):
    p, g = f32(rng, 8), f32(rng, 8)
    with pytest.raises(TypeError, match=r"sgd_update: kernel optimizers.sgd_update .*argument 2"):
        emu._launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (32, 1, 1),
                    (p, g, 8, np.float32(0.1)))           # a Python int would be int64 on CuPy
    with pytest.raises(TypeError, match="argument 3"):
        emu._launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (32, 1, 1),
                    (p, g, np.int32(8), 0.1))


def test_launch_config_errors_name_the_kernel(emu, rng):
    p, g = f32(rng, 8), f32(rng, 8)
    with pytest.raises(ValueError, match=r"optimizers.sgd_update \(grid=\(1, 1, 1\), block=\(2048, 1, 1\)\)"):
        emu._launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (2048, 1, 1),
                    (p, g, np.int32(8), np.float32(0.1)))
    with pytest.raises(ValueError, match="no kernel 'nope'"):
        emu._launch("sgd_update", "optimizers", "nope", (1, 1, 1), (32, 1, 1), ())


def test_kernel_faults_are_reported_with_the_launch(emu, rng):
    # claim 1000 elements of an 8-element array: the emulator's guard page
    # turns the overrun into an error that names the op, kernel and config
    p, g = f32(rng, 8), f32(rng, 8)
    from minicnn.backend.emulator import KernelFault
    with pytest.raises(KernelFault, match=r"sgd_update: kernel optimizers.sgd_update \(grid="):
        emu._launch("sgd_update", "optimizers", "sgd_update", (4, 1, 1), (256, 1, 1),
                    (p, g, np.int32(100000), np.float32(0.1)))


def test_every_op_is_offered():
    from minicnn.backend import OPS
    ops = CudaOps(np, "emulator")
    for name in OPS:
        assert callable(getattr(ops, name)), name
    assert ops.xp is np
    assert sorted(KERNELS) == ["conv2d", "elementwise", "optimizers", "pooling", "softmax_xent"]


# ----------------------------------------------------------------------------
# determinism
# ----------------------------------------------------------------------------
def test_reductions_are_bitwise_repeatable(emu, rng):
    da = f32(rng, 5000, 13)
    db1 = emu.bias_act_backward(da, da, "linear", True)[1]
    db2 = emu.bias_act_backward(da, da, "linear", True)[1]
    np.testing.assert_array_equal(db1, db2)
    z = f32(rng, 9, 300)
    np.testing.assert_array_equal(emu.bias_act_forward(z.copy(), None, "softmax"),
                                  emu.bias_act_forward(z.copy(), None, "softmax"))


def test_thread_order_check_catches_a_missing_barrier(rng):
    # The same reduction with its trailing barrier removed, launched as
    # CudaOps launches xent_loss_rows: the every-order runs must refuse it, so
    # the parity tests above would catch such a bug in our kernels.
    from minicnn.backend import loader
    from minicnn.backend.cuda_ops import _row_block
    from minicnn.backend.emulator import RaceError, RawModule
    source = (loader.KERNEL_DIR / "softmax_xent.cu").read_text()
    barrier = "    const float total = red[0];\n    __syncthreads();"
    assert barrier in source
    broken = RawModule(code=source.replace(barrier, "    const float total = red[0];"))
    p, y = _probs(rng, 3, 300)
    loss = np.empty(3, np.float32)
    with pytest.raises(RaceError, match="thread"):
        broken.get_function("xent_loss_rows")(
            (3, 1, 1), (_row_block(300), 1, 1),
            (p, y, loss, np.int32(3), np.int32(300), np.float32(1e-7), np.float32(1 - 1e-7)))


# ----------------------------------------------------------------------------
# a whole training step: the model API on the emulator vs NumPy
# ----------------------------------------------------------------------------
def _train_small_model(name, x, y):
    import minicnn as keras
    from minicnn import backend, layers
    from minicnn.utils import set_random_seed
    backend.set_backend(name)
    set_random_seed(7)
    model = keras.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(9, 8, 2)),
        layers.MaxPooling2D((2, 2), padding="same"),
        layers.Conv2D(3, (2, 3), strides=(1, 2), padding="same", activation="tanh"),
        layers.Flatten(),
        layers.Dense(6, activation="sigmoid"),
        layers.Dense(5, activation="softmax"),
    ])
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    results = [model.train_on_batch(x, y) for _ in range(3)]
    return results, model.get_weights()


def test_training_steps_match_numpy(rng):
    from minicnn import backend
    before = backend.backend_name()
    x = f32(rng, 5, 9, 8, 2, lo=0, hi=1)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 5)]
    try:
        ref_results, ref_weights = _train_small_model("numpy", x, y)
        emu_results, emu_weights = _train_small_model("emulator", x, y)
    finally:
        backend.set_backend(before)
    np.testing.assert_allclose(emu_results, ref_results, rtol=1e-5, atol=1e-6)
    assert len(emu_weights) == len(ref_weights) == 8
    for got, want in zip(emu_weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bench_gpu_script_runs_on_the_emulator(capsys, monkeypatch):
    # the GPU benchmark cannot run here; its --emulator mode keeps it working
    monkeypatch.setenv("MINICNN_EMU_ORDER", "forward")  # a speed run: one order
    import importlib.util
    from pathlib import Path
    from minicnn import backend
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    before = backend.backend_name()
    try:
        rc = bench.main(["--emulator", "--samples", "64", "--numpy-samples", "64",
                         "--warmup-batches", "1", "--batch-size", "32"])
    finally:
        backend.set_backend(before)
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[2].split()[0] == "emulator"
    assert out.splitlines()[3].split()[0] == "numpy"


# ----------------------------------------------------------------------------
# on a real GPU
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpu():
    import cupy
    return CudaOps(cupy, "cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("n,h,w,c,kh,kw,f,strides,padding", CONV_CASES)
def test_gpu_conv2d_matches_reference(gpu, rng, n, h, w, c, kh, kw, f, strides, padding):
    x, wt = f32(rng, n, h, w, c), f32(rng, kh, kw, c, f)
    pads = pads_for(h, w, kh, kw, strides, padding)
    y = gpu.conv2d_forward(gpu.asarray(x), gpu.asarray(wt), strides, pads)
    np.testing.assert_allclose(gpu.to_numpy(y), ref.conv2d_forward(x, wt, strides, pads),
                               rtol=1e-4, atol=1e-5)
    dy = f32(rng, *y.shape)
    dx, dw = gpu.conv2d_backward(gpu.asarray(dy), gpu.asarray(x), gpu.asarray(wt), strides, pads)
    rdx, rdw = ref.conv2d_backward(dy, x, wt, strides, pads)
    np.testing.assert_allclose(gpu.to_numpy(dx), rdx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu.to_numpy(dw), rdw, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("n,h,w,c,pool,strides,padding", POOL_CASES)
def test_gpu_maxpool_matches_reference(gpu, rng, n, h, w, c, pool, strides, padding):
    x = _pool_input(rng, n, h, w, c)
    pads = pads_for(h, w, pool[0], pool[1], strides, padding)
    y, am = gpu.maxpool_forward(gpu.asarray(x), pool, strides, pads)
    ry, ram = ref.maxpool_forward(x, pool, strides, pads)
    np.testing.assert_array_equal(gpu.to_numpy(y), ry)
    np.testing.assert_array_equal(gpu.to_numpy(am), ram)
    dy = f32(rng, *ry.shape)
    dx = gpu.maxpool_backward(gpu.asarray(dy), am, x.shape, pool, strides, pads)
    np.testing.assert_allclose(gpu.to_numpy(dx), ref.maxpool_backward(dy, ram, x.shape, pool, strides, pads),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_gpu_bias_act_matches_reference(gpu, rng, activation):
    z, b = f32(rng, 3, 4, 5, 37, lo=-4, hi=4), f32(rng, 37)
    a = ref.bias_act_forward(z.copy(), b, activation)
    ga = gpu.bias_act_forward(gpu.asarray(z), gpu.asarray(b), activation)
    np.testing.assert_allclose(gpu.to_numpy(ga), a, rtol=1e-5, atol=1e-6)
    da = f32(rng, *z.shape)
    dz, db = gpu.bias_act_backward(gpu.asarray(da), gpu.asarray(a), activation, True)
    rdz, rdb = ref.bias_act_backward(da, a, activation, True)
    np.testing.assert_allclose(gpu.to_numpy(dz), rdz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.to_numpy(db), rdb, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_gpu_loss_metric_and_optimizers_match_reference(gpu, rng):
    p, y = _probs(rng, 6, 10)
    gp, gy = gpu.asarray(p), gpu.asarray(y)
    np.testing.assert_allclose(gpu.to_numpy(gpu.xent_loss(gp, gy)), ref.xent_loss(p, y), rtol=1e-5)
    np.testing.assert_allclose(gpu.to_numpy(gpu.xent_backward(gp, gy)), ref.xent_backward(p, y),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.to_numpy(gpu.softmax_xent_backward(gp, gy)),
                               ref.softmax_xent_backward(p, y), rtol=1e-6, atol=1e-7)
    assert int(gpu.to_numpy(gpu.accuracy_count(gp, gy))) == ref.accuracy_count(p, y)
    param, g, v = f32(rng, 513), f32(rng, 513), np.zeros(513, np.float32)
    gparam, gv = gpu.asarray(param), gpu.asarray(v)
    gpu.rmsprop_update(gparam, gpu.asarray(g), gv, 0.001, 0.9, 1e-7)
    ref.rmsprop_update(param, g, v, 0.001, 0.9, 1e-7)
    np.testing.assert_allclose(gpu.to_numpy(gparam), param, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gpu.to_numpy(gv), v, rtol=1e-6, atol=1e-12)
    gpu.sgd_update(gparam, gpu.asarray(g), 0.01)
    ref.sgd_update(param, g, 0.01)
    np.testing.assert_allclose(gpu.to_numpy(gparam), param, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_gpu_reductions_are_deterministic(gpu, rng):
    da = gpu.asarray(f32(rng, 70000, 32))
    runs = [gpu.to_numpy(gpu.bias_act_backward(da, da, "linear", True)[1]) for _ in range(3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    assert math.isfinite(float(runs[0].sum()))
