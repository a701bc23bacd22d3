"""minicnn.ops.regression (mean squared / absolute error): every implementation against a naive loop."""
import re

import numpy as np
import pytest

from naive import numeric_grad
from minicnn import backend
from minicnn.backend import loader
from minicnn.ops import regression
from minicnn.ops.regression import backward, loss


def naive_loss(p, y, kind):
    p2, y2 = p.reshape(-1, p.shape[-1]).astype(np.float64), y.reshape(-1, y.shape[-1]).astype(np.float64)
    rows = [sum((a - b) ** 2 if kind == "squared" else abs(a - b) for a, b in zip(pr, yr)) / len(pr)
            for pr, yr in zip(p2, y2)]
    return np.array(rows).reshape(p.shape[:-1])


@pytest.mark.parametrize("shape", [(1, 1), (9, 4), (2, 3, 5)])
@pytest.mark.parametrize("kind", ["squared", "absolute"])
def test_loss_and_gradient_match_the_naive_formulas(impl, shape, kind):
    rng = np.random.default_rng(0)
    p = rng.normal(0, 2, shape).astype(np.float32)
    y = rng.normal(0, 2, shape).astype(np.float32)
    y.flat[0] = p.flat[0]                          # a zero error: |e|'s gradient is 0 there
    out = loss(backend.asarray(p), backend.asarray(y), kind)
    assert out.shape == shape[:-1] and out.dtype == np.float32
    np.testing.assert_allclose(backend.to_numpy(out), naive_loss(p, y, kind), rtol=1e-5, atol=1e-6)
    e = (p - y).astype(np.float64)
    want = (2 * e if kind == "squared" else np.sign(e)) / p.size
    got = backend.to_numpy(backward(backend.asarray(p), backend.asarray(y), kind))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert got.flat[0] == 0


@pytest.mark.parametrize("kind", ["squared", "absolute"])
def test_the_gradient_is_the_derivative_of_the_batch_mean(kind):
    rng = np.random.default_rng(1)
    p, y = rng.normal(0, 1, (3, 4)), rng.normal(0, 1, (3, 4))
    np.testing.assert_allclose(regression.backward_reference(p, y, kind),
                               numeric_grad(lambda: regression.loss_reference(p, y, kind).mean(), p), rtol=1e-6)


def test_bad_calls_and_the_kernel_list(impl):
    ok = backend.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape("regression: kind must be one of ['squared', 'absolute']. "
                                                   "Received: kind='huber'")):
        loss(ok, ok, "huber")
    with pytest.raises(ValueError, match="regression backward: p and y must have the same shape"):
        backward(ok, backend.asarray(np.zeros((2, 2))))
    assert loss(ok[:0], ok[:0]).shape == (0,)
    source = (loader.KERNEL_DIR / "regression.cu").read_text()
    for kernel in regression.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel
