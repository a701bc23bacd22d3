"""minicnn.ops.gradient_clipping: clipnorm, global_clipnorm and clipvalue on every device,
against the formulas; the sums of squares are deterministic and added in double."""
import re

import numpy as np
import pytest

import naive_optimizers as naive
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import gradient_clipping
from minicnn.ops.gradient_clipping import clip_by_global_norm, clip_by_norm, clip_by_value
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

SHAPES = [(3, 5, 7), (513,), (1,), (2, 0), (70001,)]   # the last: many elements per thread


def gradient(shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [10.0, 1e-3])   # clipped, and left alone (norm below the clip)
def test_clip_by_norm_matches_the_formula(impl, shape, scale):
    g = gradient(shape, scale)
    out = clip_by_norm(dev(g), 0.5)
    assert out.shape == g.shape and out.dtype == np.float32
    np.testing.assert_allclose(host(out), naive.clip_by_norm(g.astype(np.float64), 0.5), rtol=1e-6, atol=1e-12)
    if g.size:
        norm = np.linalg.norm(host(out).astype(np.float64))
        assert norm == pytest.approx(min(0.5, np.linalg.norm(g.astype(np.float64))), rel=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_clip_by_value_matches_the_formula(impl, shape):
    g = gradient(shape)
    np.testing.assert_array_equal(host(clip_by_value(dev(g), 0.3)), np.clip(g, np.float32(-0.3), np.float32(0.3)))


def test_clip_by_global_norm_scales_all_gradients_together(impl):
    grads = [gradient(s, k, seed=i) for i, (s, k) in enumerate([((3, 5), 1.0), ((7,), 1e-3), ((2, 0), 1.0),
                                                                  ((40000,), 0.1)])]
    for c in (1.0, 100.0):   # clipped; then a norm below the clip: unchanged (scale 1)
        out = clip_by_global_norm([dev(g) for g in grads], c)
        for got, want in zip(out, naive.clip_by_global_norm([g.astype(np.float64) for g in grads], c)):
            np.testing.assert_allclose(host(got), want, rtol=2e-6, atol=1e-12)
    assert clip_by_global_norm([], 1.0) == []


def test_zero_and_broken_gradients(impl):
    zero = dev(np.zeros((4, 3), np.float32))
    np.testing.assert_array_equal(host(clip_by_norm(zero, 1.0)), 0)            # no 0/0
    np.testing.assert_array_equal(host(clip_by_global_norm([zero, zero], 1.0)[1]), 0)
    bad = np.ones(5, np.float32)
    bad[2] = np.inf
    # an infinite norm gives a NaN scale (Keras's ``+ (n - n)``): the step shows it is broken
    assert np.isnan(host(clip_by_global_norm([dev(bad), zero], 1.0)[1])).all()
    bad[2] = np.nan
    assert np.isnan(host(clip_by_value(dev(bad), 0.5))[2])
    assert np.isnan(host(clip_by_norm(dev(bad), 0.5))).all()


def test_the_sums_are_the_same_every_run_and_leave_the_gradients_alone(impl):
    g = dev(gradient((100003,), 3.0))
    before = host(g).copy()
    first = [host(a) for a in clip_by_global_norm([g, g], 1.0)]
    again = [host(a) for a in clip_by_global_norm([g, g], 1.0)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(host(g), before)


def test_the_reference_adds_the_squares_in_double():
    g = np.full(1 << 20, 1e-3, np.float32) + np.float32(1.0)   # float32 running sums drift here
    exact = float((g.astype(np.float64) ** 2).sum())
    assert float(gradient_clipping.sum_squares_reference(g)) == np.float32(exact)
    f64 = np.random.default_rng(2).standard_normal(50)
    np.testing.assert_allclose(gradient_clipping.clip_by_norm_reference(f64, 0.1), naive.clip_by_norm(f64, 0.1),
                               rtol=1e-14)


def test_bad_calls_are_refused_before_any_work(impl):
    with pytest.raises(ValueError, match=re.escape("clip_by_norm: the clip value must be a finite number > 0. "
                                                   "Received: 0")):
        clip_by_norm(dev(np.ones(3, np.float32)), 0)
    with pytest.raises(TypeError, match=r"clip_by_global_norm: grads\[1\] must be an array"):
        clip_by_global_norm([dev(np.ones(3, np.float32)), [1.0]], 1.0)
    with pytest.raises(TypeError, match="clip_by_value: grad must be float32 or float64"):
        clip_by_value(backend.device().asarray(np.ones(3), dtype="int32"), 1.0)


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "gradient_clipping.cu").read_text()
    found = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert sorted(found) == sorted(gradient_clipping.KERNELS)
