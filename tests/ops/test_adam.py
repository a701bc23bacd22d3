"""minicnn.ops.adam (Adam/AMSGrad, Adamax, Nadam): every implementation against the naive float64
step, on odd shapes; the CPU kernels give the reference's bits."""
import re

import numpy as np
import pytest

import naive_optimizers as naive
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import adam
from minicnn.ops.adam import adam_update, adamax_update, nadam_update
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

SHAPES = [(3, 5, 7), (513,), (1,), (2, 0)]
LR, B1, B2, EPS = 0.01, 0.8, 0.99, 1e-7


def step_scalars(name, t, dt=np.float64):
    """The host's per-step scalars of each op, from the formulas (float64 unless ``dt``)."""
    if name.startswith("adam") and name != "adamax":
        return (dt(LR * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)),)
    if name == "adamax":
        return (dt(1 - B1 ** t),)
    mu, mu_next = naive.nadam_momentum(B1, t), naive.nadam_momentum(B1, t + 1)
    prod = np.prod([naive.nadam_momentum(B1, k) for k in range(1, t + 1)])
    return tuple(map(dt, (mu_next, 1 - prod * mu_next, 1 - mu, 1 - prod, 1 - B2 ** t)))


def call(name, p, g, s, t, dt=np.float64):
    k = step_scalars(name, t, dt)
    if name == "adam":
        adam_update(p, g, s["m"], s["v"], k[0], B1, B2, EPS)
    elif name == "adam_amsgrad":
        adam_update(p, g, s["m"], s["v"], k[0], B1, B2, EPS, vhat=s["vhat"])
    elif name == "adamax":
        adamax_update(p, g, s["m"], s["u"], (LR, k[0]), B1, B2, EPS)
    else:
        nadam_update(p, g, s["m"], s["v"], (LR, *k), 1 - B1, 1 - B2, EPS)


def naive_step(name, p, g, s, t):
    if name == "adamax":
        p, m, u = naive.adamax(p, g, s["m"], s["u"], t, LR, B1, B2, EPS)
        return p, dict(m=m, u=u)
    if name == "nadam":
        p, m, v = naive.nadam(p, g, s["m"], s["v"], t, LR, B1, B2, EPS)
        return p, dict(m=m, v=v)
    p, m, v, vhat = naive.adam(p, g, s["m"], s["v"], t, LR, B1, B2, EPS, s.get("vhat"))
    return p, {k: x for k, x in dict(m=m, v=v, vhat=vhat).items() if x is not None}


SLOTS = {"adam": ("m", "v"), "adam_amsgrad": ("m", "v", "vhat"), "adamax": ("m", "u"), "nadam": ("m", "v")}


def run_steps(name, shape, steps=4, seed=99):
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(-1, 1, shape).astype(np.float32)
    param, slots = dev(p0.copy()), {k: dev(np.zeros(shape, np.float32)) for k in SLOTS[name]}
    want_p, want = p0.astype(np.float64), {k: np.zeros(shape) for k in SLOTS[name]}
    for t in range(1, steps + 1):
        g = (rng.uniform(-1, 1, shape) * 10.0 ** -(t % 3)).astype(np.float32)
        if t == 3:
            g *= 0.01   # a shrinking v: AMSGrad's maximum differs from v from here on
        assert call(name, param, dev(g), slots, t, np.float32) is None
        want_p, want = naive_step(name, want_p, g.astype(np.float64), want, t)
    return param, slots, want_p, want


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(SLOTS))
def test_each_update_matches_the_naive_step_in_place(impl, name, shape):
    param, slots, want_p, want = run_steps(name, shape)
    for k, s in slots.items():
        assert s.dtype == np.float32
        np.testing.assert_allclose(host(s), want[k], rtol=2e-5, atol=1e-10, err_msg=k)
    np.testing.assert_allclose(host(param), want_p, rtol=1e-5, atol=1e-6)


def test_amsgrad_keeps_the_largest_second_moment(impl):
    p, m, v, vhat = (dev(np.zeros(2, np.float32)) for _ in range(4))
    adam_update(p, dev(np.array([1.0, 0.0], np.float32)), m, v, 0.1, 0.9, 0.5, 1e-7, vhat=vhat)
    adam_update(p, dev(np.array([0.0, 0.0], np.float32)), m, v, 0.1, 0.9, 0.5, 1e-7, vhat=vhat)
    np.testing.assert_allclose(host(v), [0.25, 0], rtol=1e-6)      # v decays ...
    np.testing.assert_allclose(host(vhat), [0.5, 0], rtol=1e-6)    # ... its maximum does not


def test_adam_puts_epsilon_outside_the_root(impl):
    # first step, g = 1e-4, lr folded in alpha = 1: m = 0.1 g, v = 0.001 g^2, step m / (sqrt(v) + eps)
    p, m, v = (dev(np.zeros(1, np.float32)) for _ in range(3))
    adam_update(p, dev(np.full(1, 1e-4, np.float32)), m, v, 1.0, 0.9, 0.999, 1e-7)
    g = 1e-4
    np.testing.assert_allclose(host(p), [-(0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7)], rtol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "cpu_kernels"], indirect=True)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_on_the_cpu_every_update_gives_the_reference_bits(impl, dtype):
    rng = np.random.default_rng(5)
    for name in SLOTS:
        p1 = rng.standard_normal((6, 5)).astype(dtype)
        s1 = {k: (np.abs(rng.standard_normal((6, 5))) * 0.1).astype(dtype) for k in SLOTS[name]}
        p2, s2 = p1.copy(), {k: a.copy() for k, a in s1.items()}
        for t in range(1, 4):
            g = rng.standard_normal((6, 5)).astype(dtype)
            g[0, 0] = np.nan if t == 3 else g[0, 0]   # NaN propagates the same way in both
            call(name, p1, g, s1, t, dtype)
            with config.override(MINICNN_CPU_FAST=False):
                call(name, p2, g, s2, t, dtype)
            np.testing.assert_array_equal(p1, p2, err_msg=name)
            for k in s1:
                np.testing.assert_array_equal(s1[k], s2[k], err_msg=f"{name} {k}")


def test_the_plain_python_kernels_give_the_reference_bits():
    rng = np.random.default_rng(6)
    f32 = np.float32
    p, g = rng.standard_normal(30).astype(f32), rng.standard_normal(30).astype(f32)
    m, v, h = (np.abs(rng.standard_normal(30)).astype(f32) for _ in range(3))
    arrays = [a.copy() for a in (p, m, v, h)]
    adam.adam_kernel(arrays[0], g, arrays[1], arrays[2], arrays[3], *map(f32, (1e-3, 1 - 0.9, 1 - 0.999, 1e-7)),
                     True)
    adam.adam_update_reference(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7, vhat=h)
    for a, b in zip(arrays, (p, m, v, h)):
        np.testing.assert_array_equal(a, b)
    k = tuple(map(f32, step_scalars("nadam", 2)))
    arrays = [a.copy() for a in (p, m, v)]
    adam.nadam_kernel(arrays[0], g, arrays[1], arrays[2], *map(f32, (1e-3, 0.2, 0.01, 1e-7)), *k)
    adam.nadam_update_reference(p, g, m, v, 1e-3, 0.2, 0.01, 1e-7, *k)
    for a, b in zip(arrays, (p, m, v)):
        np.testing.assert_array_equal(a, b)


def test_the_reference_in_float64_is_the_formula_to_rounding():
    rng = np.random.default_rng(4)
    for name in SLOTS:
        p, s = rng.standard_normal(20), {k: np.zeros(20) for k in SLOTS[name]}
        want_p, want = p.copy(), {k: a.copy() for k, a in s.items()}
        for t in range(1, 4):
            g = rng.standard_normal(20)
            with config.override(MINICNN_CPU_FAST=False):
                call(name, p, g, s, t)
            want_p, want = naive_step(name, want_p, g, want, t)
        np.testing.assert_allclose(p, want_p, rtol=1e-12, err_msg=name)
        for k in s:
            np.testing.assert_allclose(s[k], want[k], rtol=1e-12)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    a4, a5 = dev(np.zeros(4, np.float32)), dev(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=re.escape(
            "adam_update: param, grad, m, v, vhat must have the same shape. Received: param.shape=(4,), "
            "grad.shape=(4,), m.shape=(4,), v.shape=(4,), vhat.shape=(5,)")):
        adam_update(a4, a4, a4, a4, 0.1, 0.9, 0.999, 1e-7, vhat=a5)
    with pytest.raises(TypeError, match="adamax_update: u must be an array. Received: u=NoneType"):
        adamax_update(a4, a4, a4, None, (0.1, 0.1), 0.9, 0.999, 1e-7)   # only AMSGrad's vhat may be absent
    with pytest.raises(TypeError, match="nadam_update: param, grad, m, v must have one dtype"):
        nadam_update(a4, a4, a4, backend.device().asarray(np.zeros(4), dtype="float64"), tuple(range(1, 7)), 1, 2, 3)
    np.testing.assert_array_equal(host(a4), 0)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "adam.cu").read_text()
    found = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert sorted(found) == sorted(adam.KERNELS)
