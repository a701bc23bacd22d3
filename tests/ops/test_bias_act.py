"""minicnn.ops.bias_act: every implementation against the naive loops, on odd shapes."""
import re
from pathlib import Path

import numpy as np
import pytest

import naive
import naive_bias_act
from minicnn import backend
from minicnn.ops import activation, bias_act
from device_arrays import host

OWN = activation.BIAS_ACT_OWN   # the five computed here (the others: tests/ops/test_activation.py)

KERNEL_FILE = Path(__file__).resolve().parents[2] / "kernels" / "bias_act.cu"

# (2, 3, 5, 37): W*F rows on the CPU, 37 channels past a 32-column strip;
# (1, 300): one row longer than a 256-thread block (the row kernels loop)
SHAPES = [(2, 3, 5, 37), (7, 10), (1, 300), (3, 5, 4, 7), (1, 1, 1, 2), (37, 9)]


@pytest.fixture(autouse=True)
def small_arrays_take_every_path(monkeypatch):
    """The compiled CPU kernels down to the tiny test arrays; every emulator
    launch in forward, reverse and random thread order, which must agree bit
    for bit (a missing __syncthreads in a row reduction fails here)."""
    monkeypatch.setattr(bias_act, "NB_MIN_ELEMS", 0)
    monkeypatch.setenv("MINICNN_EMU_ORDER", "all")


def dev(a):
    """A copy on the active device (forward overwrites its z)."""
    return None if a is None else backend.asarray(a.copy(), a.dtype)


def inputs(shape, with_bias, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(-4, 4, shape).astype(np.float32)
    b = rng.uniform(-1, 1, shape[-1]).astype(np.float32) if with_bias else None
    z[..., 0] = 0 if b is None else -b[0]   # z + b == 0 exactly: relu'(0) must be 0
    return z, b, rng.uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize("act", OWN)
@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("with_bias", [True, False])
def test_forward_and_backward_match_the_naive_loops(impl, act, shape, with_bias):
    activation = act
    z, b, da = inputs(shape, with_bias)
    zd = dev(z)
    a = bias_act.forward(zd, dev(b), activation)
    assert a is zd   # in place
    a2, ctx = bias_act.forward_training(dev(z), dev(b), activation)
    assert ctx is a2   # the five keep their output
    np.testing.assert_array_equal(host(a2), host(a))
    np.testing.assert_allclose(host(a), naive.bias_act(z, b, activation), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(a), bias_act.forward_reference(z.copy(), b, activation),
                               rtol=1e-5, atol=1e-6)
    dz, db = bias_act.backward(dev(da), a, activation, True)
    ndz, ndb = naive_bias_act.bias_act_backward(da, z, b, activation)
    np.testing.assert_allclose(host(dz), ndz, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(host(db), ndb, rtol=1e-4, atol=1e-5)
    rdz, rdb = bias_act.backward_reference(da, host(a), activation, True)
    np.testing.assert_allclose(host(dz), rdz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(host(db), rdb, rtol=1e-5, atol=1e-5)
    dz2, none = bias_act.backward(dev(da), a, activation, False)
    assert none is None
    np.testing.assert_array_equal(host(dz2), host(dz))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation, has_bias", [("relu", True), ("relu", False), ("linear", True)])
def test_relu_and_linear_give_the_reference_bits(impl, dtype, shape, activation, has_bias):
    if dtype == np.float64 and impl in ("emulator", "gpu"):
        pytest.skip("the CUDA path computes in float32 only")
    z, b, da = (None if v is None else v.astype(dtype) for v in inputs(shape, has_bias, seed=4))
    got = host(bias_act.forward(dev(z), dev(b), activation))
    want = bias_act.forward_reference(z.copy(), b, activation)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == dtype
    dz, db = bias_act.backward(dev(da), dev(got), activation, has_bias)
    rdz, rdb = bias_act.backward_reference(da, got, activation, has_bias)
    np.testing.assert_array_equal(host(dz), rdz)
    assert dz.dtype == dtype
    if has_bias:
        assert db.dtype == dtype
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(host(db), rdb, rtol=rtol,
                                   atol=rtol * np.abs(rdz).sum(axis=tuple(range(rdz.ndim - 1))).max())
    else:
        assert db is None and rdb is None


def test_the_reference_in_float64_is_exact_to_rounding():
    for activation in OWN:
        z, b, da = (v.astype(np.float64) for v in inputs((3, 4, 6), True, seed=1))
        a = bias_act.forward_reference(z.copy(), b, activation)
        np.testing.assert_allclose(a, naive.bias_act(z, b, activation), rtol=1e-12, atol=1e-15)
        dz, db = bias_act.backward_reference(da, a, activation, True)
        ndz, ndb = naive_bias_act.bias_act_backward(da, z, b, activation)
        assert dz.dtype == db.dtype == np.float64
        np.testing.assert_allclose(dz, ndz, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(db, ndb, rtol=1e-10, atol=1e-13)


def test_forward_is_in_place(impl):
    z = dev(np.random.default_rng(5).standard_normal((6, 4, 3)).astype(np.float32))
    out = bias_act.forward(z, dev(np.ones(3, np.float32)), "relu")
    assert out is z and (host(z) >= 0).all()


def test_returned_arrays_are_not_reused(impl):
    """A layer holds what backward returned until its update: a second call
    with the same shapes must not overwrite it."""
    z = np.random.default_rng(2).standard_normal((4, 5, 5, 3)).astype(np.float32)
    d1, b1 = bias_act.backward(dev(z), dev(np.maximum(z, 0)), "relu", True)
    kept = host(d1).copy(), host(b1).copy()
    bias_act.backward(dev(-z), dev(np.maximum(-z, 0)), "relu", True)
    np.testing.assert_array_equal(host(d1), kept[0])
    np.testing.assert_array_equal(host(b1), kept[1])


def test_linear_backward_returns_da_itself(impl):
    da = dev(np.random.default_rng(6).uniform(-1, 1, (4, 3)).astype(np.float32))
    dz, _ = bias_act.backward(da, da.copy(), "linear", False)
    assert dz is da
    dz, db = bias_act.backward(da, da.copy(), "linear", True)
    assert dz is da and db.shape == (3,)


@pytest.mark.parametrize("rows, cols", [(1, 1), (5, 1), (1000, 37), (9000, 3), (130, 65)])
def test_bias_gradient_column_sums(impl, rows, cols):
    # many rows: several chunks; cols past 32: several column strips on CUDA
    da = np.random.default_rng(7).uniform(-1, 1, (rows, cols)).astype(np.float32)
    _, db = bias_act.backward(dev(da), dev(da), "linear", True)
    np.testing.assert_allclose(host(db), da.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-4)


def test_reductions_are_bitwise_repeatable(impl):
    rng = np.random.default_rng(8)
    shape = (70000, 32) if impl == "gpu" else (5000, 13)   # a GPU runs many blocks at once
    da = dev(rng.uniform(-1, 1, shape).astype(np.float32))
    runs = [host(bias_act.backward(da, da, "linear", True)[1]) for _ in range(3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
    assert np.isfinite(runs[0].sum())
    z = rng.uniform(-1, 1, (9, 300)).astype(np.float32)
    np.testing.assert_array_equal(host(bias_act.forward(dev(z), None, "softmax")),
                                  host(bias_act.forward(dev(z), None, "softmax")))


def test_compiled_bias_gradient_does_not_depend_on_the_thread_count(impl):
    if impl != "cpu_kernels":
        pytest.skip("the compiled CPU kernels' chunked sums")
    from minicnn.backend.cpu import runtime
    rng = np.random.default_rng(9)
    a = np.maximum(rng.standard_normal((300, 7, 5)), 0).astype(np.float32)
    da = rng.standard_normal(a.shape).astype(np.float32)
    before, results = runtime().threads, []
    try:
        for n in (1, 2, 3):
            runtime().set_threads(n)
            results.append(bias_act.backward(da, a, "relu", True))
    finally:
        runtime().set_threads(before)
    for dz, db in results[1:]:
        np.testing.assert_array_equal(dz, results[0][0])
        np.testing.assert_array_equal(db, results[0][1])


def test_relu_backward_kernel_gives_the_reference_bits():
    """The plain-Python kernel as written (and compiled, when Numba runs)."""
    rng = np.random.default_rng(11)
    a = np.maximum(rng.standard_normal((40, 12)), 0).astype(np.float32)
    da = rng.standard_normal((40, 12)).astype(np.float32)
    rdz, rdb = bias_act.backward_reference(da, a, "relu", True)
    kernels = [bias_act.relu_backward_kernel]
    from minicnn.backend.cpu import runtime
    if runtime().kernels:
        kernels.append(runtime().compile(bias_act.relu_backward_kernel))
    for kernel in kernels:
        dz = np.empty_like(da)
        partial = np.empty((bias_act.DB_CHUNKS, 12), np.float32)
        kernel(da, a, dz, partial, True)
        np.testing.assert_array_equal(dz, rdz)
        np.testing.assert_allclose(partial.sum(axis=0), rdb, rtol=1e-5, atol=1e-5)


def test_relu_keeps_nan_like_the_reference(impl):
    z = np.array([[np.nan, -1.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(host(bias_act.forward(dev(z), None, "relu")),
                                  bias_act.forward_reference(z.copy(), None, "relu"))


def test_softmax_extreme_logits_do_not_overflow(impl):
    z = np.array([[1000.0, 0.0, -1000.0], [-80.0, -80.0, -80.0]], dtype=np.float32)
    p = host(bias_act.forward(dev(z), None, "softmax"))
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-7)


def test_sigmoid_is_stable_for_large_inputs(impl):
    z = np.array([[-200.0], [200.0]], np.float32)
    np.testing.assert_allclose(host(bias_act.forward(dev(z), None, "sigmoid"))[:, 0], [0.0, 1.0],
                               atol=1e-30)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    z = dev(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"bias_act: unknown activation 'gelux'; expected one of "
                                         r"\('linear', .*Received: activation='gelux'"):
        bias_act.forward(z, None, "gelux")
    with pytest.raises(ValueError, match=r"bias_act: b must have one entry per column of z's last "
                                         r"axis \(4\). Received: b.shape=\(3,\)"):
        bias_act.forward(z, dev(np.zeros(3, np.float32)), "relu")
    with pytest.raises(ValueError, match=r"bias_act: b must have 1 axes. Received: b.shape=\(1, 4\)"):
        bias_act.forward(z, dev(np.zeros((1, 4), np.float32)), "relu")
    with pytest.raises(TypeError, match=r"bias_act: z must be float32 or float64. Received: z.dtype=int32"):
        bias_act.forward(np.zeros((2, 4), np.int32), None, "relu")
    with pytest.raises(TypeError, match=r"bias_act: z, b must have one dtype. Received: "
                                        r"z.dtype=float32, b.dtype=float64"):
        bias_act.forward(z, np.zeros(4), "relu")
    with pytest.raises(ValueError, match=r"bias_act backward: a must have shape \(2, 4\). "
                                         r"Received: a.shape=\(2, 5\)"):
        bias_act.backward(z, dev(np.zeros((2, 5), np.float32)), "relu", True)
    with pytest.raises(ValueError, match=r"bias_act backward: unknown activation 'gelux'"):
        bias_act.backward(z, z, "gelux", True)


def test_what_only_the_cuda_path_refuses(impl):
    z = dev(np.random.default_rng(12).uniform(-1, 1, (6, 8)).astype(np.float32))[:, ::2]
    if impl not in ("emulator", "gpu"):   # the CPU takes any layout and float64
        np.testing.assert_array_equal(bias_act.forward(z.copy(), None, "relu"), np.maximum(z, 0))
        return
    with pytest.raises(ValueError, match=r"bias_act: z must be C-contiguous"):
        bias_act.forward(z, None, "relu")
    with pytest.raises(TypeError, match=r"bias_act backward: da must be float32"):
        bias_act.backward(np.zeros((2, 3)), np.zeros((2, 3)), "tanh", True)


def test_the_kernel_file_defines_the_kernels_and_codes_this_module_uses():
    src = KERNEL_FILE.read_text()
    assert sorted(re.findall(r'extern "C" __global__ void (\w+)\(', src)) == sorted(bias_act.KERNELS)
    codes = {name.lower(): int(v) for name, v in re.findall(r"#define ACT_(\w+)\s+(\d+)", src)}
    assert codes == bias_act.ACT_CODES
    assert set(bias_act.ACT_CODES) | {"softmax"} == set(OWN)
    assert f"#define MAX_BLOCK {bias_act.MAX_ROW_BLOCK}" in src
    assert f"#define CS_COLS {bias_act.COLSUM_COLS}" in src
    assert f"#define CS_LANES {bias_act.COLSUM_LANES}" in src


def test_layers_take_their_activation_names_from_here():
    from minicnn import activations
    assert activations.NAMES is bias_act.ACTIVATIONS
    assert activations.name_of(None) == "linear" and activations.name_of("ReLU") == "relu"
    with pytest.raises(ValueError, match=r"dense: unknown activation 'gelux'"):
        activations.name_of("gelux", "dense")
