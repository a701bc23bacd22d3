"""minicnn.ops.weight_penalty (the L1/L2 penalty and its gradient): every implementation against a naive loop."""
import math
import re

import numpy as np
import pytest

from naive import numeric_grad
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import weight_penalty
from minicnn.ops.weight_penalty import add_gradient, penalty
from device_arrays import every_thread_order  # noqa: F401 (an autouse fixture)


@pytest.mark.parametrize("size", [1, 7, 256, 3001, 70000])   # 70000: more values than the grid's threads
@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.02), (0.01, 0.02)])
def test_penalty_and_gradient_match_the_naive_sums(impl, size, l1, l2):
    rng = np.random.default_rng(size)
    w = rng.normal(0, 1, size).astype(np.float32)
    w[0] = 0.0
    want = l1 * math.fsum(abs(float(v)) for v in w) + l2 * math.fsum(float(v) ** 2 for v in w)
    got = penalty(backend.asarray(w), l1, l2)
    assert got.shape == () and got.dtype == np.float32
    np.testing.assert_allclose(float(backend.to_numpy(got)), want, rtol=2e-5)
    g = rng.normal(0, 1, size).astype(np.float32)
    dg = backend.asarray(g.copy())
    assert add_gradient(dg, backend.asarray(w), l1, l2) is dg   # in place
    np.testing.assert_allclose(backend.to_numpy(dg), g + l1 * np.sign(w) + 2 * l2 * w, rtol=1e-6, atol=1e-7)


def test_the_penalty_is_the_same_bits_every_run(impl):
    w = backend.asarray(np.random.default_rng(0).normal(0, 1, (64, 33)))
    first = backend.to_numpy(penalty(w, 0.01, 0.01)).tobytes()
    assert all(backend.to_numpy(penalty(w, 0.01, 0.01)).tobytes() == first for _ in range(3))


def test_the_gradient_is_the_derivative_of_the_penalty():
    w = np.random.default_rng(2).normal(0, 1, (3, 4))
    num = numeric_grad(lambda: float(weight_penalty.penalty_reference(w, 0.03, 0.05)), w)
    np.testing.assert_allclose(weight_penalty.add_gradient_reference(np.zeros_like(w), w, 0.03, 0.05), num, rtol=1e-6)


def test_a_zero_factor_leaves_its_term_out(impl):
    w = backend.asarray(np.array([np.inf, 1.0], np.float32))
    assert float(backend.to_numpy(penalty(w, 0.0, 0.5))) == np.inf   # 0 * inf would be NaN
    assert float(backend.to_numpy(penalty(backend.asarray(np.zeros(0)), 0.1, 0.1))) == 0.0


def test_bad_calls(impl):
    w = backend.asarray(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=re.escape("penalty: l1 must be a finite number >= 0. Received: l1=-1")):
        penalty(w, -1, 0)
    with pytest.raises(ValueError, match="penalty gradient: g must have shape"):
        add_gradient(backend.asarray(np.zeros(3)), w, 0.1, 0.1)
    source = (loader.KERNEL_DIR / "weight_penalty.cu").read_text()
    for kernel in weight_penalty.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel
