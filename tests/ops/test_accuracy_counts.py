"""minicnn.ops.accuracy_counts (binary and top-k accuracy counts): every implementation against naive loops."""
import re

import numpy as np
import pytest

from naive_losses import first_argmax
from minicnn import backend
from minicnn.backend import loader
from minicnn.ops import accuracy_counts
from minicnn.ops.accuracy_counts import binary_match_count, top_k_count


def naive_binary(p, y, threshold):
    return sum(float(t) == (1.0 if v > threshold else 0.0) for v, t in zip(p.ravel(), y.ravel()))


def naive_top_k(p, y, k):
    """Rows whose target (first argmax of y) has fewer than k strictly larger predictions."""
    count = 0
    for pr, yr in zip(p.reshape(-1, p.shape[-1]), y.reshape(-1, y.shape[-1])):
        target = pr[first_argmax(yr)]
        count += not np.isnan(target) and sum(v > target for v in pr) < k
    return count


def check_count(count, want):
    if backend.device().kind == "cuda":   # a device scalar: no host sync
        assert isinstance(count, backend.device().xp.ndarray) and count.shape == () and count.dtype == np.int32
    assert int(backend.to_numpy(count)) == want


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_binary_match_count(impl, threshold):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (301, 3)).astype(np.float32)
    p[0, 0], p[1, 1], p[2, 2] = 0.5, 0.7, np.nan     # at the thresholds: predicted 0; NaN: 0
    y = rng.integers(0, 2, (301, 3)).astype(np.float32)
    y[3, 0] = 0.5                                      # not 0 or 1: never a match
    want = naive_binary(p, y, threshold)
    assert 0 < want < p.size
    check_count(binary_match_count(backend.asarray(p), backend.asarray(y), threshold), want)


@pytest.mark.parametrize("k", [1, 2, 5, 9])
def test_top_k_count(impl, k):
    rng = np.random.default_rng(1)
    p = rng.integers(0, 4, (257, 7)).astype(np.float32)   # many ties at the boundary
    p[0, :] = np.nan
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 257)]
    want = naive_top_k(p, y, k)
    check_count(top_k_count(backend.asarray(p), backend.asarray(y), k), want)
    p3, y3 = p[:256].reshape(2, 128, 7), y[:256].reshape(2, 128, 7)   # rows are all axes but the last
    check_count(top_k_count(backend.asarray(p3), backend.asarray(y3), k), naive_top_k(p[:256], y[:256], k))


def test_empty_batches_and_bad_calls(impl):
    e = backend.asarray(np.zeros((0, 3)))
    check_count(binary_match_count(e, e), 0)
    check_count(top_k_count(e, e, 2), 0)
    ok = backend.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape("top_k_count: k must be a positive int. Received: k=0")):
        top_k_count(ok, ok, 0)
    with pytest.raises(ValueError, match="binary_match_count: p and y must have the same shape"):
        binary_match_count(ok, backend.asarray(np.zeros((2, 1))))


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "accuracy_counts.cu").read_text()
    for kernel in accuracy_counts.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel
