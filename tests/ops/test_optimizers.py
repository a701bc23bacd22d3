"""minicnn.ops.optimizers: every implementation against the naive step, on odd shapes."""
import re

import numpy as np
import pytest

import naive
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import optimizers
from minicnn.ops.optimizers import rmsprop_update, sgd_update

SHAPES = [(3, 5, 7), (513,), (1,), (2, 0)]


@pytest.fixture(autouse=True)
def every_thread_order():
    with config.override(MINICNN_EMU_ORDER="all"):
        yield


def dev(a):
    return backend.asarray(a)


def host(a):
    return backend.to_numpy(a)


@pytest.mark.parametrize("shape", SHAPES)
def test_rmsprop_matches_the_naive_step_in_place(impl, shape):
    rng = np.random.default_rng(1234)
    p0 = rng.uniform(-1, 1, shape).astype(np.float32)
    param, v = dev(p0), dev(np.zeros(shape, np.float32))
    want_p, want_v = p0.astype(np.float64), np.zeros(shape)
    for step in range(3):
        g = (rng.uniform(-1, 1, shape) * 10.0 ** -step).astype(np.float32)
        assert rmsprop_update(param, dev(g), v, 0.001, 0.9, 1e-7) is None
        want_p, want_v = naive.rmsprop(want_p, g.astype(np.float64), want_v, 0.001, 0.9, 1e-7)
    assert param.dtype == v.dtype == np.float32
    np.testing.assert_allclose(host(v), want_v, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(host(param), want_p, rtol=1e-6, atol=1e-7)


def test_rmsprop_matches_keras3_formula(impl):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) * 1e-2 for _ in range(3)]
    var, slot = dev(p0.copy()), dev(np.zeros((3, 4), np.float32))
    p, v = p0.astype(np.float64), np.zeros((3, 4))
    for g in grads:
        rmsprop_update(var, dev(g), slot, 0.001, 0.9, 1e-7)
        v = 0.9 * v + 0.1 * g * g
        p = p - 0.001 * g / np.sqrt(v + 1e-7)   # epsilon INSIDE the root (Keras 3)
    np.testing.assert_allclose(host(var), p, rtol=1e-5, atol=1e-7)


def test_rmsprop_first_step_for_a_tiny_gradient(impl):
    # eps inside the sqrt: a 1e-4 gradient moves by lr*g/sqrt(0.1 g^2 + eps), not lr*g/(sqrt(..)+eps)
    var, v = dev(np.zeros(1, np.float32)), dev(np.zeros(1, np.float32))
    rmsprop_update(var, dev(np.full(1, 1e-4, np.float32)), v, 0.001, 0.9, 1e-7)
    expected = -0.001 * 1e-4 / np.sqrt(0.1 * 1e-8 + 1e-7)
    np.testing.assert_allclose(host(var), [expected], rtol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "cpu_kernels"], indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rmsprop_on_the_cpu_gives_the_reference_bits(impl, dtype):
    # the compiled kernel runs for float32 (not float64) when Numba is there
    assert optimizers._cpu_fast(np.zeros(1, dtype)) == (impl == "cpu_kernels" and dtype == np.float32)
    rng = np.random.default_rng(7)
    p1 = rng.standard_normal((5, 3)).astype(dtype)
    v1 = np.abs(rng.standard_normal((5, 3))).astype(dtype)
    p2, v2 = p1.copy(), v1.copy()
    for step in range(3):
        g = rng.standard_normal((5, 3)).astype(dtype)
        rmsprop_update(p1, g, v1, 1e-3, 0.9, 1e-7)
        optimizers.rmsprop_update_reference(p2, g, v2, 1e-3, 0.9, 1e-7)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(v1, v2)
    assert p1.dtype == dtype and v1.dtype == dtype


def test_the_plain_python_kernel_gives_the_reference_bits():
    # the kernel's text, run as Python (prange = range, no Numba): the same bits
    rng = np.random.default_rng(8)
    p1 = rng.standard_normal((10, 30)).astype(np.float32)
    v1 = (np.abs(rng.standard_normal((10, 30))) * 1e-2).astype(np.float32)
    p2, v2 = p1.copy(), v1.copy()
    g = rng.standard_normal((10, 30)).astype(np.float32)
    f32 = np.float32
    optimizers.rmsprop_kernel(p1, g, v1, f32(1e-3), f32(0.95), f32(1 - 0.95), f32(1e-7))
    optimizers.rmsprop_update_reference(p2, g, v2, 1e-3, 0.95, 1e-7)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(v1, v2)


@pytest.mark.parametrize("shape", [(1000,), (3, 7), (0,)])
def test_sgd_matches_the_formula_in_place(impl, shape):
    rng = np.random.default_rng(1234)
    p0, g = rng.uniform(-1, 1, shape).astype(np.float32), rng.uniform(-1, 1, shape).astype(np.float32)
    param = dev(p0.copy())   # on the CPU asarray would hand back p0 itself
    assert sgd_update(param, dev(g), 0.01) is None
    np.testing.assert_allclose(host(param), p0 - 0.01 * g.astype(np.float64), rtol=1e-6, atol=1e-7)
    ones = dev(np.ones(5, np.float32))
    sgd_update(ones, dev(np.arange(5, dtype=np.float32)), 0.01)
    np.testing.assert_allclose(host(ones), 1 - 0.01 * np.arange(5), rtol=1e-6)


def test_the_reference_in_float64_is_exact_to_rounding():
    rng = np.random.default_rng(3)
    p, g, v = rng.standard_normal(20), rng.standard_normal(20), np.abs(rng.standard_normal(20))
    want_p, want_v = naive.rmsprop(p, g, v, 0.01, 0.8, 1e-7)
    optimizers.rmsprop_update_reference(p, g, v, 0.01, 0.8, 1e-7)
    np.testing.assert_allclose(v, want_v, rtol=1e-14)
    np.testing.assert_allclose(p, want_p, rtol=1e-14)
    q = p.copy()
    optimizers.sgd_update_reference(q, g, 0.5)
    np.testing.assert_allclose(q, p - 0.5 * g, rtol=1e-15)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    a4, a5 = dev(np.zeros(4, np.float32)), dev(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "rmsprop_update: param, grad, v must have the same shape. "
            "Received: param.shape=(4,), grad.shape=(4,), v.shape=(5,)")):
        rmsprop_update(a4, a4, a5, 0.1, 0.9, 1e-7)
    with pytest.raises(ValueError, match=re.escape("sgd_update: param, grad must have the same shape. "
                                                   "Received: param.shape=(4,), grad.shape=(5,)")):
        sgd_update(a4, a5, 0.1)
    with pytest.raises(TypeError, match="sgd_update: param must be an array. Received: param=list"):
        sgd_update([1.0, 2.0], dev(np.zeros(2, np.float32)), 0.1)
    ints = backend.device().asarray(np.zeros(4), dtype="int32")
    with pytest.raises(TypeError, match="rmsprop_update: v must be float32 or float64. Received: v.dtype=int32"):
        rmsprop_update(a4, a4, ints, 0.1, 0.9, 1e-7)
    np.testing.assert_array_equal(host(a4), 0)   # nothing changed


def test_the_cuda_device_refuses_what_its_kernels_cannot_read(impl):
    if backend.device().kind != "cuda":
        pytest.skip("the CPU device takes any float array")
    xp = backend.device().xp
    a = dev(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="rmsprop_update: v must be float32"):
        rmsprop_update(a, a, xp.zeros(4, dtype=xp.float64), 0.1, 0.9, 1e-7)
    with pytest.raises(ValueError, match="sgd_update: grad must be C-contiguous"):
        sgd_update(a, dev(np.zeros(8, np.float32))[::2], 0.1)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "optimizers.cu").read_text()
    found = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert sorted(found) == sorted(optimizers.KERNELS)


# the launch path itself, on this module's sgd_update kernel (the emulator)
def emulator_device():
    import shutil
    from minicnn.backend.devices import CudaDevice
    if shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    return CudaDevice(np, "emulator")


def test_kernel_scalars_must_be_numpy_typed():
    device = emulator_device()
    p, g = np.zeros(8, np.float32), np.zeros(8, np.float32)
    with pytest.raises(TypeError, match=r"sgd_update: kernel optimizers.sgd_update .*argument 2"):
        device.launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (32, 1, 1),
                      (p, g, 8, np.float32(0.1)))           # a Python int would be int64 on CuPy
    with pytest.raises(TypeError, match="argument 3"):
        device.launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (32, 1, 1),
                      (p, g, np.int32(8), 0.1))


def test_launch_config_errors_name_the_kernel():
    device = emulator_device()
    p, g = np.zeros(8, np.float32), np.zeros(8, np.float32)
    with pytest.raises(ValueError, match=r"optimizers.sgd_update \(grid=\(1, 1, 1\), block=\(2048, 1, 1\)\)"):
        device.launch("sgd_update", "optimizers", "sgd_update", (1, 1, 1), (2048, 1, 1),
                      (p, g, np.int32(8), np.float32(0.1)))
    with pytest.raises(LookupError, match="kernel named 'nope'"):
        device.launch("sgd_update", "optimizers", "nope", (1, 1, 1), (32, 1, 1), ())


def test_kernel_faults_are_reported_with_the_launch():
    # claim 100000 elements of an 8-element array: the emulator's guard page
    # turns the overrun into an error that names the op, kernel and config
    from minicnn.backend.emulator import KernelFault
    device = emulator_device()
    p, g = np.zeros(8, np.float32), np.zeros(8, np.float32)
    with pytest.raises(KernelFault, match=r"sgd_update: kernel optimizers.sgd_update \(grid="):
        device.launch("sgd_update", "optimizers", "sgd_update", (4, 1, 1), (256, 1, 1),
                      (p, g, np.int32(100000), np.float32(0.1)))
