"""minicnn.ops.activation (through bias_act): every activation against naive formulas,
TensorFlow's numbers, float64 finite differences, and across implementations."""
import re
from pathlib import Path

import numpy as np
import pytest

import naive
import naive_activation as na
from minicnn import activations, backend
from minicnn.ops import activation, bias_act
from device_arrays import host

KERNEL_FILE = Path(__file__).resolve().parents[2] / "kernels" / "activation.cu"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "activations"

# (name, arguments): every activation computed in minicnn/ops/activation.py
CASES = [("elu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("gelu", {}), ("gelu", {"approximate": True}),
         ("softplus", {}), ("softsign", {}), ("silu", {}), ("hard_sigmoid", {}), ("relu6", {}),
         ("exponential", {}), ("hard_silu", {}), ("mish", {}), ("leaky_relu", {}),
         ("leaky_relu", {"negative_slope": 0.5}), ("relu", {"negative_slope": 0.3}),
         ("relu", {"negative_slope": 0.1, "max_value": 2.5, "threshold": 0.5}), ("relu", {"max_value": 1.5}),
         ("relu", {"threshold": -1.0})]
IDS = [name + "".join(f"-{k}={v}" for k, v in args.items()) for name, args in CASES]

# the fixture's cases (tests/make_activation_fixtures.py) as (name, arguments)
TF_CASES = {"softmax_axis0": ("softmax", {"axis": 0}), "elu_alpha": ("elu", {"alpha": 0.5}),
            "gelu_approximate": ("gelu", {"approximate": True}),
            "leaky_relu_slope": ("leaky_relu", {"negative_slope": 0.5}),
            "relu_slope": ("relu", {"negative_slope": 0.3}),
            "relu_all": ("relu", {"negative_slope": 0.1, "max_value": 4.5, "threshold": 1.5}),
            "relu_max6": ("relu", {"max_value": 6.0}), "relu_max": ("relu", {"max_value": 2.0}),
            "relu_threshold": ("relu", {"threshold": 0.5}),
            "relu_negative_threshold": ("relu", {"threshold": -1.5})}


@pytest.fixture(autouse=True)
def small_arrays_take_every_path(monkeypatch):
    """The compiled CPU kernels down to the tiny test arrays; emulator launches in
    every thread order."""
    monkeypatch.setattr(activation, "MIN_KERNEL_SIZE", 0)
    monkeypatch.setattr(bias_act, "NB_MIN_ELEMS", 0)
    monkeypatch.setenv("MINICNN_EMU_ORDER", "all")


def dev(a):
    return None if a is None else backend.asarray(a.copy(), a.dtype)


def tf_numbers():
    data = np.load(FIXTURES / "activations.npz")
    for case in sorted({k.split("/")[0] for k in data.files}):
        name, args = TF_CASES.get(case, (case, {}))
        yield pytest.param(name, args, *(data[f"{case}/{k}"] for k in ("x", "y", "dy", "dx")), id=case)


@pytest.mark.parametrize("name, args, x, y, dy, dx", list(tf_numbers()))
def test_forward_and_gradient_match_tensorflow(impl, name, args, x, y, dy, dx):
    """Keras 3.15 / TF 2.21 float32 numbers, 0 and +-90 among the inputs (kinks, overflow)."""
    out, ctx = bias_act.activate(dev(x), name, training=True, **args)
    grad, _ = bias_act.backward(dev(dy), ctx, name, False, **args)
    scale = max(1.0, np.abs(y).max())
    np.testing.assert_allclose(host(out), y, rtol=2e-6, atol=2e-7 * scale)
    # float32 cancellation (1 + tanh, 1 - tanh^2 near saturation) leaves ~1e-6 of noise, in TF too
    np.testing.assert_allclose(host(grad), dx, rtol=2e-5, atol=3e-6 * max(1.0, np.abs(dx).max()))
    np.testing.assert_allclose(getattr(activations, name)(x, **args), y, rtol=2e-6, atol=2e-7 * scale)


@pytest.mark.parametrize("name, args", CASES, ids=IDS)
def test_the_reference_in_float64_is_the_naive_formula(name, args):
    u = np.concatenate([np.linspace(-8, 8, 161) + 0.0123, [-30.0, 25.0, 1e-5, -1e-5]])
    params = activation.check_params("test", name, args)
    # atol: 1 + tanh(...) near -1 cancels to ~1e-16 absolute (times |u| <= 8), in any order of operations
    np.testing.assert_allclose(activation.value_reference(u, name, params), na.apply(na.F, u, name, args),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(activation.slope_reference(u, name, params), na.apply(na.DF, u, name, args),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, args", CASES, ids=IDS)
def test_every_implementation_matches_the_naive_formula(impl, name, args):
    for shape, with_bias in [((2, 3, 5, 37), True), ((7, 10), False), ((3, 1, 4, 7), True), ((1, 9), False)]:
        rng = np.random.default_rng(len(shape) + 10 * with_bias)
        z = rng.uniform(-4, 4, shape).astype(np.float32)
        b = rng.uniform(-1, 1, shape[-1]).astype(np.float32) if with_bias else None
        da = rng.uniform(-1, 1, shape).astype(np.float32)
        u = z if b is None else z + b                       # the float32 pre-activation
        zd = dev(z)
        a, ctx = bias_act.forward_training(zd, dev(b), name, **args)
        assert ctx is zd and a is not zd                    # z now holds u; a is new
        np.testing.assert_array_equal(host(ctx), u)
        np.testing.assert_allclose(host(a), na.apply(na.F, u, name, args), rtol=2e-6, atol=1e-6)
        dz, db = bias_act.backward(dev(da), ctx, name, with_bias, **args)
        want = da * na.apply(na.DF, u, name, args)
        np.testing.assert_allclose(host(dz), want, rtol=1e-5, atol=1e-6)
        if with_bias:
            np.testing.assert_allclose(host(db), want.reshape(-1, shape[-1]).sum(0), rtol=1e-4, atol=1e-4)
        else:
            assert db is None
        inference = bias_act.forward(dev(z), dev(b), name, **args)
        np.testing.assert_allclose(host(inference), host(a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, args", CASES + [("relu", {}), ("sigmoid", {}), ("tanh", {}), ("softmax", {}),
                                                ("linear", {}), ("softmax", {"axis": 1})])
@pytest.mark.parametrize("with_bias", [True, False])
def test_float64_gradients_match_finite_differences(name, args, with_bias):
    """dL/dz and dL/db of L = sum(w * act(z + b)) through forward_training + backward."""
    if with_bias and args.get("axis") == 1:
        pytest.skip("softmax off the last axis takes no bias")
    rng = np.random.default_rng(3)
    z = rng.uniform(-3.5, 3.5, (3, 4, 5))
    b = rng.uniform(-0.5, 0.5, 5) if with_bias else None
    w = rng.uniform(-1, 1, z.shape)

    def loss():
        return float((w * bias_act.forward(z.copy(), None if b is None else b.copy(), name, **args)).sum())

    a, ctx = bias_act.forward_training(z.copy(), None if b is None else b.copy(), name, **args)
    dz, db = bias_act.backward(w, ctx, name, with_bias, **args)
    np.testing.assert_allclose(dz, naive.numeric_grad(loss, z), rtol=1e-6, atol=1e-8)
    if with_bias:
        np.testing.assert_allclose(db, naive.numeric_grad(loss, b), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, args", CASES + [("relu", {}), ("softmax", {}), ("tanh", {})], ids=str)
def test_activate_leaves_its_input_alone(impl, name, args):
    x = np.random.default_rng(4).uniform(-4, 4, (5, 6)).astype(np.float32)
    xd = dev(x)
    y, ctx = bias_act.activate(xd, name, training=True, **args)
    np.testing.assert_array_equal(host(xd), x)
    np.testing.assert_allclose(host(y), activations.get(name)(x, **args), rtol=2e-6, atol=1e-6)
    assert bias_act.activate(xd, name, training=False, **args)[1] is None


@pytest.mark.parametrize("axis", [0, 1, -2, 2])
def test_softmax_over_any_axis(impl, axis):
    x = np.random.default_rng(5).uniform(-3, 3, (3, 4, 5)).astype(np.float32)
    dy = np.random.default_rng(6).uniform(-1, 1, x.shape).astype(np.float32)
    y, ctx = bias_act.activate(dev(x), "softmax", training=True, axis=axis)
    e = np.exp(x.astype(np.float64) - x.max(axis, keepdims=True))
    p = e / e.sum(axis, keepdims=True)
    np.testing.assert_allclose(host(y), p, rtol=1e-5, atol=1e-7)
    dx, _ = bias_act.backward(dev(dy), ctx, "softmax", False, axis=axis)
    np.testing.assert_allclose(host(dx), p * (dy - (dy * p).sum(axis, keepdims=True)), rtol=1e-4, atol=1e-6)


def test_extreme_inputs_stay_finite(impl):
    x = np.array([[-1e4, -90, -30, 30, 90, 1e4]], np.float32)
    for name, args in CASES:
        if name == "exponential":
            continue
        y, ctx = bias_act.activate(dev(x), name, training=True, **args)
        d, _ = bias_act.backward(dev(np.ones_like(x)), ctx, name, False, **args)
        assert np.isfinite(host(y)).all() and np.isfinite(host(d)).all(), name


def test_empty_arrays(impl):
    for shape in [(0, 3), (2, 0), (0,)]:
        z = np.zeros(shape, np.float32)
        b = np.zeros(shape[-1], np.float32)
        a, ctx = bias_act.forward_training(dev(z), dev(b), "gelu")
        dz, db = bias_act.backward(dev(z), ctx, "gelu", True)
        assert host(a).shape == host(dz).shape == shape and host(db).shape == (shape[-1],)
        np.testing.assert_array_equal(host(db), 0)


def test_gelu_cpu_kernels_as_written_give_the_reference():
    """The plain-Python kernels (and compiled, when Numba runs) against the float64
    reference (they compute in float64 from float32 numbers)."""
    from minicnn.backend.cpu import runtime
    rng = np.random.default_rng(7)
    z = rng.uniform(-5, 5, (6, 9)).astype(np.float32)
    b = rng.uniform(-1, 1, 9).astype(np.float32)
    da = rng.uniform(-1, 1, z.shape).astype(np.float32)
    kernels = [(activation.gelu_forward_kernel, activation.gelu_backward_kernel)]
    if runtime().kernels:
        kernels.append((runtime().compile(activation.gelu_forward_kernel),
                        runtime().compile(activation.gelu_backward_kernel)))
    params = activation.check_params("test", "gelu", {})
    u = z + b
    u64 = u.astype(np.float64)
    for fwd, bwd in kernels:
        zz, a, dz = z.copy(), np.empty_like(z), np.empty_like(z)
        fwd(zz, b, a, True)
        np.testing.assert_array_equal(zz, u)
        np.testing.assert_allclose(a, activation.value_reference(u64, "gelu", params), rtol=1e-6, atol=1e-7)
        bwd(da.ravel(), u.ravel(), dz.ravel())
        np.testing.assert_allclose(dz, da * activation.slope_reference(u64, "gelu", params), rtol=1e-6, atol=1e-7)


def test_the_kernel_file_defines_the_kernels_and_codes_this_module_uses():
    src = KERNEL_FILE.read_text()
    assert sorted(re.findall(r'extern "C" __global__ void (\w+)\(', src)) == sorted(activation.KERNELS)
    codes = {name.lower(): int(v) for name, v in re.findall(r"#define ACT_(\w+)\s+(\d+)", src)}
    assert codes == activation.CODES
    for const in ("SELU_SCALE", "SELU_SCALE_ALPHA", "GELU_C", "GELU_K", "SQRT_2", "INV_SQRT_2PI"):
        value = float(re.search(rf"#define {const}\s+([0-9.e+-]+)f", src).group(1))
        assert value == pytest.approx(getattr(activation, const), rel=1e-15), const
    assert activation.SELU_SCALE * na.SELU_ALPHA == pytest.approx(activation.SELU_SCALE_ALPHA, rel=1e-15)


def test_every_name_is_computed_somewhere():
    assert set(activation.NAMES) == set(activation.BIAS_ACT_OWN) | {n for n, _ in CASES}
    assert bias_act.ACTIVATIONS is activation.NAMES


def test_bad_activations_and_arguments_fail_before_any_work(impl):
    z = dev(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"bias_act: unknown activation 'gleu'; expected one of \('linear', "
                                         r"'relu', .*'mish', 'leaky_relu'\). Received: activation='gleu'"):
        bias_act.forward(z, None, "gleu")
    with pytest.raises(TypeError, match=r"bias_act: activation 'elu' takes the arguments \('alpha',\). "
                                        r"Received: beta=2"):
        bias_act.forward(z, None, "elu", beta=2)
    with pytest.raises(ValueError, match=r"bias_act: `alpha` must be a finite number. Received: alpha=nan"):
        bias_act.forward_training(z, None, "elu", alpha=float("nan"))
    with pytest.raises(ValueError, match=r"bias_act: `max_value` must be a finite number or None. "
                                         r"Received: max_value='6'"):
        bias_act.activate(z, "relu", max_value="6")
    with pytest.raises(TypeError, match=r"bias_act: `approximate` must be True or False. Received: approximate=1"):
        bias_act.forward(z, None, "gelu", approximate=1)
    with pytest.raises(ValueError, match=r"bias_act: softmax's axis must be in \[-2, 2\) .*Received: axis=2"):
        bias_act.activate(z, "softmax", axis=2)
    with pytest.raises(ValueError, match=r"bias_act: a bias runs along the last axis; softmax over axis 0"):
        bias_act.forward(z, dev(np.zeros(4, np.float32)), "softmax", axis=0)
    with pytest.raises(ValueError, match=r"bias_act backward: u must have shape \(2, 4\). "
                                         r"Received: u.shape=\(2, 5\)"):
        bias_act.backward(z, dev(np.zeros((2, 5), np.float32)), "gelu", True)
    np.testing.assert_array_equal(host(z), 0)   # nothing ran


@pytest.mark.parametrize("name, args", CASES, ids=IDS)
def test_nan_and_infinities_come_out_as_the_reference_gives_them(impl, name, args):
    """A NaN input stays NaN where NumPy keeps it (np.maximum, np.clip): a CUDA kernel using
    fmaxf/fminf alone would turn it into a number and hide a diverged model."""
    u = np.array([np.nan, np.inf, -np.inf, 0.0, 2.0, -2.0], np.float32)
    params = activation.check_params("test", name, args)
    with np.errstate(all="ignore"):   # inf - inf and 0 * inf on the way, as in NumPy
        want = activation.value_reference(u, name, params)
        want_slope = activation.slope_reference(u, name, params)
        out, ctx = bias_act.activate(dev(u), name, training=True, **args)
        grad, _ = bias_act.backward(dev(np.ones_like(u)), ctx, name, False, **args)
    np.testing.assert_allclose(host(out), want, rtol=2e-6, equal_nan=True)
    np.testing.assert_allclose(host(grad), want_slope, rtol=2e-6, equal_nan=True)
