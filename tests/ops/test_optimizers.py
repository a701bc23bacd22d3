"""minicnn.ops.optimizers (SGD, RMSprop, Adagrad, Adadelta, weight decay): every implementation
against the naive float64 step, on odd shapes; the CPU kernels give the reference's bits."""
import re

import numpy as np
import pytest

import naive_optimizers as naive
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import optimizers
from minicnn.ops.optimizers import adadelta_update, adagrad_update, rmsprop_update, sgd_update, weight_decay
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

SHAPES = [(3, 5, 7), (513,), (1,), (2, 0)]


# name: (slots and their start values, the op on device arrays, the naive step in float64)
# each op call gets (param, grad, slots dict); each naive step (p, g, slots dict) -> (p, slots)
def _rms(momentum, centered):
    slots = {"v": 0.0, **({"m": 0.0} if momentum else {}), **({"avg": 0.0} if centered else {})}

    def op(p, g, s):
        rmsprop_update(p, g, s["v"], 0.01, 0.8, 1e-7, momentum, s.get("m"), s.get("avg"))

    def step(p, g, s):
        p, v, m, avg = naive.rmsprop(p, g, s["v"], 0.01, 0.8, 1e-7, momentum, s.get("m"), s.get("avg"))
        return p, {k: x for k, x in dict(v=v, m=m, avg=avg).items() if x is not None}
    return slots, op, step


VARIANTS = {
    "sgd": ({}, lambda p, g, s: sgd_update(p, g, 0.1),
            lambda p, g, s: (naive.sgd(p, g, 0.1)[0], {})),
    "sgd_momentum": ({"m": 0.0}, lambda p, g, s: sgd_update(p, g, 0.1, s["m"], 0.9),
                     lambda p, g, s: (lambda r: (r[0], {"m": r[1]}))(naive.sgd(p, g, 0.1, s["m"], 0.9))),
    "sgd_nesterov": ({"m": 0.0}, lambda p, g, s: sgd_update(p, g, 0.1, s["m"], 0.8, nesterov=True),
                     lambda p, g, s: (lambda r: (r[0], {"m": r[1]}))(naive.sgd(p, g, 0.1, s["m"], 0.8, True))),
    "rmsprop": _rms(0.0, False),
    "rmsprop_momentum": _rms(0.5, False),
    "rmsprop_centered": _rms(0.0, True),
    "rmsprop_centered_momentum": _rms(0.9, True),
    "adagrad": ({"acc": 0.1}, lambda p, g, s: adagrad_update(p, g, s["acc"], 0.05, 1e-7),
                lambda p, g, s: (lambda r: (r[0], {"acc": r[1]}))(naive.adagrad(p, g, s["acc"], 0.05, 1e-7))),
    "adadelta": ({"ag": 0.0, "ad": 0.0}, lambda p, g, s: adadelta_update(p, g, s["ag"], s["ad"], 1.0, 0.95, 1e-6),
                 lambda p, g, s: (lambda r: (r[0], {"ag": r[1], "ad": r[2]}))(
                     naive.adadelta(p, g, s["ag"], s["ad"], 1.0, 0.95, 1e-6))),
    "weight_decay": ({}, lambda p, g, s: weight_decay(p, 0.01, 0.3), lambda p, g, s: (p - p * 0.3 * 0.01, {})),
}


def run_steps(variant, shape, steps=3, seed=1234):
    """(device param, device slots, float64 param, float64 slots) after ``steps`` steps."""
    slots0, op, step = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(-1, 1, shape).astype(np.float32)
    param = dev(p0.copy())
    slots = {k: dev(np.full(shape, v, np.float32)) for k, v in slots0.items()}
    want_p, want = p0.astype(np.float64), {k: np.full(shape, v) for k, v in slots0.items()}
    for t in range(steps):
        g = (rng.uniform(-1, 1, shape) * 10.0 ** -t).astype(np.float32)   # down to small gradients
        assert op(param, dev(g), slots) is None
        want_p, want = step(want_p, g.astype(np.float64), want)
    return param, slots, want_p, want


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_update_matches_the_naive_step_in_place(impl, variant, shape):
    param, slots, want_p, want = run_steps(variant, shape)
    assert param.dtype == np.float32 and all(s.dtype == np.float32 for s in slots.values())
    for name, s in slots.items():
        np.testing.assert_allclose(host(s), want[name], rtol=2e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(host(param), want_p, rtol=1e-5, atol=1e-6)


def test_rmsprop_first_step_for_a_tiny_gradient(impl):
    # eps inside the sqrt: a 1e-4 gradient moves by lr*g/sqrt(0.1 g^2 + eps), not lr*g/(sqrt(..)+eps)
    var, v = dev(np.zeros(1, np.float32)), dev(np.zeros(1, np.float32))
    rmsprop_update(var, dev(np.full(1, 1e-4, np.float32)), v, 0.001, 0.9, 1e-7)
    np.testing.assert_allclose(host(var), [-0.001 * 1e-4 / np.sqrt(0.1 * 1e-8 + 1e-7)], rtol=1e-5)


def test_the_emulator_and_the_cpu_kernels_agree_with_the_reference(impl):
    # the same float32 operations in the same order: the reference's values, to rounding
    for variant in VARIANTS:
        with config.override(MINICNN_CPU_FAST=False):
            previous = backend.backend_name()
            backend.set_backend("numpy")
            ref_p, ref_slots, _, _ = run_steps(variant, (4, 33))
            backend.set_backend(previous)
        param, slots, _, _ = run_steps(variant, (4, 33))
        np.testing.assert_allclose(host(param), ref_p, rtol=1e-6, atol=1e-9, err_msg=variant)
        for name in slots:
            np.testing.assert_allclose(host(slots[name]), ref_slots[name], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("impl", ["reference", "cpu_kernels"], indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_on_the_cpu_every_update_gives_the_reference_bits(impl, dtype):
    # the compiled kernels run for float32 (not float64) when Numba is there
    assert optimizers.cpu_fast(np.zeros(1, dtype)) == (impl == "cpu_kernels" and dtype == np.float32)
    rng = np.random.default_rng(7)
    for variant, (slots0, op, _) in VARIANTS.items():
        p1 = rng.standard_normal((5, 3)).astype(dtype)
        s1 = {k: (np.abs(rng.standard_normal((5, 3))) * 0.1).astype(dtype) for k in slots0}
        p2, s2 = p1.copy(), {k: a.copy() for k, a in s1.items()}
        for _ in range(3):
            g = rng.standard_normal((5, 3)).astype(dtype)
            op(p1, g, s1)
            with config.override(MINICNN_CPU_FAST=False):
                op(p2, g, s2)
            np.testing.assert_array_equal(p1, p2, err_msg=variant)
            for k in s1:
                np.testing.assert_array_equal(s1[k], s2[k], err_msg=f"{variant} {k}")
        assert p1.dtype == dtype


def test_the_plain_python_kernels_give_the_reference_bits():
    # the kernels' text, run as Python (no Numba): the same bits as the NumPy reference
    rng = np.random.default_rng(8)
    f32 = np.float32
    p, g = rng.standard_normal(40).astype(f32), rng.standard_normal(40).astype(f32)
    v, m, avg = (np.abs(rng.standard_normal(40)) * f32(0.1)).astype(f32), rng.standard_normal(40).astype(f32), \
        (rng.standard_normal(40) * 0.01).astype(f32)
    p1, v1, m1, a1 = p.copy(), v.copy(), m.copy(), avg.copy()
    optimizers.rmsprop_kernel(p1, g, v1, a1, m1, *map(f32, (1e-3, 0.95, 1 - 0.95, 1e-7, 0.5)), True, True)
    optimizers.rmsprop_update_reference(p, g, v, 1e-3, 0.95, 1e-7, 0.5, m, avg)
    for a, b in ((p1, p), (v1, v), (m1, m), (a1, avg)):
        np.testing.assert_array_equal(a, b)
    q, q1, mm, mm1 = p.copy(), p.copy(), m.copy(), m.copy()
    optimizers.sgd_kernel(q1, g, mm1, f32(0.1), f32(0.9), True, True)
    optimizers.sgd_update_reference(q, g, 0.1, mm, 0.9, True)
    np.testing.assert_array_equal(q1, q)
    np.testing.assert_array_equal(mm1, mm)


def test_the_reference_in_float64_is_the_formula_to_rounding():
    rng = np.random.default_rng(3)
    p, g = rng.standard_normal(20), rng.standard_normal(20)
    v, ag, ad = (np.abs(rng.standard_normal(20)) for _ in range(3))
    want = naive.rmsprop(p, g, v, 0.01, 0.8, 1e-7)
    optimizers.rmsprop_update_reference(p, g, v, 0.01, 0.8, 1e-7)
    np.testing.assert_allclose(v, want[1], rtol=1e-14)
    np.testing.assert_allclose(p, want[0], rtol=1e-14)
    want = naive.adadelta(p, g, ag, ad, 1.0, 0.9, 1e-6)
    optimizers.adadelta_update_reference(p, g, ag, ad, 1.0, 0.9, 1e-6)
    for a, b in zip((p, ag, ad), want):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    q = p.copy()
    optimizers.sgd_update_reference(q, g, 0.5)
    np.testing.assert_allclose(q, p - 0.5 * g, rtol=1e-15)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    a4, a5 = dev(np.zeros(4, np.float32)), dev(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "rmsprop_update: param, grad, v must have the same shape. "
            "Received: param.shape=(4,), grad.shape=(4,), v.shape=(5,)")):
        rmsprop_update(a4, a4, a5, 0.1, 0.9, 1e-7)
    with pytest.raises(ValueError, match=re.escape("sgd_update: param, grad, m must have the same shape. "
                                                   "Received: param.shape=(4,), grad.shape=(4,), m.shape=(5,)")):
        sgd_update(a4, a4, 0.1, a5, 0.9)
    with pytest.raises(TypeError, match="sgd_update: param must be an array. Received: param=list"):
        sgd_update([1.0, 2.0], dev(np.zeros(2, np.float32)), 0.1)
    ints = backend.device().asarray(np.zeros(4), dtype="int32")
    with pytest.raises(TypeError, match="adagrad_update: acc must be float32 or float64. Received: acc.dtype=int32"):
        adagrad_update(a4, a4, ints, 0.1, 1e-7)
    doubles = backend.device().asarray(np.zeros(4), dtype="float64")
    with pytest.raises(TypeError, match="adadelta_update: param, grad, acc_grad, acc_delta must have one dtype"):
        adadelta_update(a4, a4, a4, doubles, 1.0, 0.9, 1e-7)
    np.testing.assert_array_equal(host(a4), 0)   # nothing changed


def test_the_cuda_device_refuses_what_its_kernels_cannot_read(impl):
    if backend.device().kind != "cuda":
        pytest.skip("the CPU device takes any float array")
    xp = backend.device().xp
    a = dev(np.zeros(4, np.float32))
    with pytest.raises(TypeError, match="rmsprop_update: param must be float32"):
        rmsprop_update(*(xp.zeros(4, dtype=xp.float64) for _ in range(3)), 0.1, 0.9, 1e-7)
    with pytest.raises(ValueError, match="sgd_update: grad must be C-contiguous"):
        sgd_update(a, dev(np.zeros(8, np.float32))[::2], 0.1)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "optimizers.cu").read_text()
    found = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert sorted(found) == sorted(optimizers.KERNELS)


# the launch path itself, on this module's weight_decay kernel (the emulator)
def emulator_device():
    import shutil
    from minicnn.backend.devices import CudaDevice
    if shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    return CudaDevice(np, "emulator")


def test_kernel_scalars_must_be_numpy_typed():
    device = emulator_device()
    p = np.zeros(8, np.float32)
    with pytest.raises(TypeError, match=r"weight_decay: kernel optimizers.weight_decay .*argument 1"):
        device.launch("weight_decay", "optimizers", "weight_decay", (1, 1, 1), (32, 1, 1),
                      (p, 8, np.float32(0.1), np.float32(0.1)))   # a Python int would be int64 on CuPy
    with pytest.raises(TypeError, match="argument 2"):
        device.launch("weight_decay", "optimizers", "weight_decay", (1, 1, 1), (32, 1, 1),
                      (p, np.int32(8), 0.1, np.float32(0.1)))


def test_launch_config_errors_name_the_kernel():
    device = emulator_device()
    p = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match=r"optimizers.weight_decay \(grid=\(1, 1, 1\), block=\(2048, 1, 1\)\)"):
        device.launch("weight_decay", "optimizers", "weight_decay", (1, 1, 1), (2048, 1, 1),
                      (p, np.int32(8), np.float32(0.1), np.float32(0.1)))
    with pytest.raises(LookupError, match="kernel named 'nope'"):
        device.launch("weight_decay", "optimizers", "nope", (1, 1, 1), (32, 1, 1), ())


def test_kernel_faults_are_reported_with_the_launch():
    # claim 100000 elements of an 8-element array: the emulator's guard page
    # turns the overrun into an error that names the op, kernel and config
    from minicnn.backend.emulator import KernelFault
    device = emulator_device()
    p = np.zeros(8, np.float32)
    with pytest.raises(KernelFault, match=r"weight_decay: kernel optimizers.weight_decay \(grid="):
        device.launch("weight_decay", "optimizers", "weight_decay", (4, 1, 1), (256, 1, 1),
                      (p, np.int32(100000), np.full(1, 0.1, np.float32), np.float32(0.1)))
