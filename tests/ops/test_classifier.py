"""minicnn.ops.classifier: the fused step against the unfused ops, the reference and the naive loops."""
import re
import shutil

import numpy as np
import pytest

import naive
import naive_losses
from minicnn import backend, config
from minicnn.backend import loader
from minicnn.ops import bias_act, classifier, softmax_xent
from minicnn.ops.classifier import softmax_xent_step
from minicnn.ops.softmax_xent import EPSILON
from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)

# N = 1000: the groups' loop over rows runs 125 rounds (K <= 32: 8 rows a round),
# or 1000 (K = 300: one group of 256 threads); K = 300, 1000: a row wider than a group
SHAPES = [(1, 1), (1, 10), (7, 3), (7, 300), (1000, 10), (1000, 3), (3, 1000), (100, 40)]


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def probs(rng, shape):
    """Softmax rows of random logits (one row with a 0 and a 1, one with a tiny
    value: the clip is active there) and one-hot targets."""
    p = naive.ACTIVATIONS["softmax"](rng.uniform(-5, 5, shape)).astype(np.float32)
    n, k = shape
    if k > 2:
        p[0, :] = 0.0
        p[0, 1] = 1.0           # q = 1 > 1 - eps: clipped from above, and q = 0 from below
        p[-1, 2] = 1e-12
    y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return p, y


def step(p, y, start=(0.0, 0.0)):
    """(dz, sums) of one step from sums = start, as host arrays."""
    sums = dev(np.array(start, np.float32))
    dz = softmax_xent_step(dev(p), dev(y), sums)
    return host(dz), host(sums)


def expected_loss_sum(rows, cols):
    """The batch loss sum each device gives from the per-row losses: the kernel's
    order on CUDA, NumPy's sum for the reference the CPU device runs."""
    if backend.device().kind == "cuda":
        return classifier.loss_sum_order(rows, cols)
    return rows.sum()


@pytest.mark.parametrize("shape", SHAPES)
def test_the_same_bits_as_the_unfused_ops(impl, shape):
    p, y = probs(np.random.default_rng(1234), shape)
    dz, sums = step(p, y)
    assert dz.shape == shape and dz.dtype == np.float32
    # the gradient: softmax_xent_backward's bits
    assert np.array_equal(bits(dz), bits(host(softmax_xent.softmax_xent_backward(dev(p), dev(y)))))
    # the count: accuracy_count's, exactly
    assert sums[1] == int(host(softmax_xent.accuracy_count(dev(p), dev(y)))) == naive_losses.accuracy_count(p, y)
    # the loss: xent_loss's rows, summed in this device's order bit for bit ...
    rows = host(softmax_xent.xent_loss(dev(p), dev(y)))
    assert bits(sums[0]) == bits(expected_loss_sum(rows, shape[1]))
    if shape[0] == 1:   # one row: 0 + loss is the row's loss itself
        assert bits(sums[0]) == bits(rows[0])
    # ... and sum_all's (the unfused path's) to float32 rounding; the float64 loops closer
    np.testing.assert_allclose(sums[0], float(host(bias_act.sum_all(dev(rows)))), rtol=1e-6)
    # (atol: K = 1 clips q = 1 to float32(1 - eps), whose -log is 1.19e-7, not 1e-7)
    np.testing.assert_allclose(sums[0], naive.xent_loss(p.astype(np.float64), y).sum(), rtol=1e-5, atol=1e-6)


def test_the_sums_accumulate_over_calls(impl):
    rng = np.random.default_rng(5)
    batches = [probs(rng, (n, 10)) for n in (32, 32, 7)]
    totals = [step(p, y)[1] for p, y in batches]   # each batch alone, from 0
    sums = dev(np.array([1.5, 2.0], np.float32))
    for p, y in batches:
        softmax_xent_step(dev(p), dev(y), sums)
    want = np.array([1.5, 2.0], np.float32)
    for total in totals:
        want = want + total        # float32, one batch at a time, as the kernel adds
    assert np.array_equal(bits(host(sums)), bits(want))


def test_soft_targets_and_unnormalised_probabilities(impl):
    rng = np.random.default_rng(6)
    for shape in [(7, 3), (9, 300)]:
        p = rng.uniform(0.01, 2.0, shape).astype(np.float32)    # rows do not sum to 1: renormalised
        y = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(np.float32)
        dz, sums = step(p, y)
        np.testing.assert_allclose(sums[0], naive.xent_loss(p.astype(np.float64), y).sum(), rtol=1e-5)
        assert sums[1] == naive_losses.accuracy_count(p, y)
        np.testing.assert_allclose(dz, naive_losses.softmax_xent_backward(p, y), rtol=1e-6, atol=1e-7)


def test_clipped_probabilities_give_keras_s_bounded_loss(impl):
    # p one-hot on the wrong class: q = 0 is clipped to eps, loss = -log(eps) per row
    p = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    y = np.eye(3, dtype=np.float32)[[1, 1, 0, 0]]
    _, sums = step(p, y)
    np.testing.assert_allclose(sums[0], 2 * -np.log(np.float32(EPSILON)) + 2 * -np.log1p(-EPSILON), rtol=1e-5)
    assert sums[1] == 2


def test_ties_go_to_the_first_index(impl):
    # K = 10 (8 groups of 32 threads); K = 300 (one group of 256: lane 5 sees classes 5 and 261,
    # and class 260 sits in lane 4, before class 40's lane 40)
    for k, tie in [(10, (3, 7)), (300, (5, 261)), (300, (40, 260))]:
        p = np.full((4, k), 0.5 / k, np.float32)
        p[:, tie[0]] = p[:, tie[1]] = 0.25            # argmax(p) = the first of the two
        y = np.zeros((4, k), np.float32)
        y[0, tie[0]] = 1                              # hit
        y[1, tie[1]] = 1                              # miss: the tie went to the first
        y[2, [tie[0], tie[1]]] = 0.5                  # tied targets: hit
        y[3, :] = 1.0 / k                             # all tied: argmax 0, a miss
        _, sums = step(p, y)
        assert sums[1] == naive_losses.accuracy_count(p, y) == 2, (k, tie)


def test_a_nan_probability_gives_a_nan_loss_and_counts_as_its_first_nan(impl):
    # a diverged model must show nan in the progress line (np.clip keeps NaN)
    # K = 300: class 260 (lane 4) and class 40 (lane 40) are NaN: the first is 40
    for k, nans in [(4, (2, 3)), (300, (40, 260))]:
        p = np.full((3, k), 1.0 / k, np.float32)
        p[1, list(nans)] = np.nan    # argmax(p[1]) = nans[0], the first NaN
        p[2, 0] = 0.9
        y = np.eye(k, dtype=np.float32)[[0, nans[0], 1]]
        dz, sums = step(p, y, start=(1.0, 0.0))
        assert np.isnan(sums[0])
        # row 0 hits (all tied: index 0), row 1 hits (its first NaN), row 2 misses
        assert sums[1] == naive_losses.accuracy_count(p, y) == 2
        np.testing.assert_array_equal(np.isnan(dz), np.isnan(p))


def test_the_same_bits_every_run(impl):
    p, y = probs(np.random.default_rng(8), (1000, 10))
    (dz1, s1), (dz2, s2) = step(p, y), step(p, y)
    assert np.array_equal(bits(dz1), bits(dz2)) and np.array_equal(bits(s1), bits(s2))


def test_the_reference_takes_float64_and_matches_the_naive_loops():
    rng = np.random.default_rng(9)
    p = rng.uniform(0.01, 1, (6, 5))
    y = rng.dirichlet(np.ones(5), 6)
    sums = np.zeros(2)
    dz = classifier.softmax_xent_step_reference(p, y, sums)
    np.testing.assert_allclose(sums[0], naive.xent_loss(p, y).sum(), rtol=1e-13)
    assert sums[1] == naive_losses.accuracy_count(p, y)
    np.testing.assert_allclose(dz, naive_losses.softmax_xent_backward(p, y), rtol=1e-13)


def test_bad_calls_fail_the_same_way_on_every_device(impl):
    ok, sums = dev(np.full((2, 3), 1 / 3, np.float32)), dev(np.zeros(2, np.float32))

    def fails(error, message, p=ok, y=ok, s=sums):
        with pytest.raises(error, match=re.escape(f"softmax_xent_step: {message}")):
            softmax_xent_step(p, y, s)
    fails(ValueError, "p and y must have the same shape. Received: p.shape=(2, 3), y.shape=(2, 4)",
          y=dev(np.zeros((2, 4), np.float32)))
    fails(ValueError, "p must have 2 axes. Received: p.shape=(1, 2, 3)", p=dev(np.zeros((1, 2, 3), np.float32)))
    fails(ValueError, "y must have 2 axes. Received: y.shape=(3,)", y=dev(np.zeros(3, np.float32)))
    fails(ValueError, "p and y need at least one sample and one class. Received: p.shape=(2, 0)",
          p=dev(np.zeros((2, 0), np.float32)), y=dev(np.zeros((2, 0), np.float32)))
    fails(ValueError, "p and y need at least one sample and one class. Received: p.shape=(0, 3)",
          p=dev(np.zeros((0, 3), np.float32)), y=dev(np.zeros((0, 3), np.float32)))
    fails(TypeError, "y must be float32 or float64. Received: y.dtype=int32",
          y=backend.device().asarray(np.zeros((2, 3)), dtype="int32"))
    fails(TypeError, "p must be an array. Received: p=list", p=[[0.5, 0.5]])
    fails(ValueError, "sums must have shape (2,). Received: sums.shape=(3,)", s=dev(np.zeros(3, np.float32)))
    fails(ValueError, "sums must have 1 axes. Received: sums.shape=(1, 2)", s=dev(np.zeros((1, 2), np.float32)))
    fails(TypeError, "sums must be float32. Received: sums.dtype=float64",
          s=backend.device().asarray(np.zeros(2), dtype="float64"))
    assert not host(sums).any()   # nothing was added by a refused call


def test_the_cuda_device_refuses_what_its_kernel_cannot_read(impl):
    if backend.device().kind != "cuda":
        pytest.skip("the CPU device takes any float array")
    xp = backend.device().xp
    p, sums = dev(np.full((2, 3), 1 / 3, np.float32)), dev(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="softmax_xent_step: y must be float32"):
        softmax_xent_step(p, xp.zeros((2, 3), dtype=xp.float64), sums)
    wide = dev(np.full((2, 6), 1 / 3, np.float32))
    with pytest.raises(ValueError, match="softmax_xent_step: p must be C-contiguous"):
        softmax_xent_step(wide[:, ::2], p, sums)


def test_one_launch_of_one_block(impl, monkeypatch):
    device = backend.device()
    if device.kind != "cuda":
        pytest.skip("launches are the CUDA device's")
    launches = []
    real = type(device).launch
    monkeypatch.setattr(type(device), "launch", lambda self, op, module, kernel, grid, block, args:
                        (launches.append((module, kernel, grid, block)),
                         real(self, op, module, kernel, grid, block, args))[1])
    p, y = probs(np.random.default_rng(10), (1000, 10))
    softmax_xent_step(dev(p), dev(y), dev(np.zeros(2, np.float32)))
    assert launches == [("classifier", "softmax_xent_step", (1, 1, 1), (classifier.BLOCK, 1, 1))]


def test_kernels_lists_the_entry_points_this_module_launches():
    source = (loader.KERNEL_DIR / "classifier.cu").read_text()
    for kernel in classifier.KERNELS:
        assert re.search(rf'extern "C" __global__ void {kernel}\(', source), kernel
    assert f"#define BLOCK {classifier.BLOCK} " in source


def test_thread_order_check_catches_a_missing_barrier():
    # group_sum without its trailing barrier: lane 0 overwrites the total while other
    # lanes may still be reading it; the every-order runs must refuse it
    if shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    from minicnn.backend.emulator import RaceError, RawModule
    source = (loader.KERNEL_DIR / "classifier.cu").read_text()
    barrier = "    const float total = red[first];\n    __syncthreads();"
    assert barrier in source
    broken = RawModule(code=source.replace(barrier, "    const float total = red[first];"))
    p, y = probs(np.random.default_rng(11), (20, 10))
    dz, sums = np.empty_like(p), np.zeros(2, np.float32)
    with pytest.raises(RaceError, match="thread"):
        broken.get_function("softmax_xent_step")(
            (1, 1, 1), (classifier.BLOCK, 1, 1),
            (p, y, dz, sums, np.int32(20), np.int32(10), np.int32(32),
             np.float32(EPSILON), np.float32(1 - EPSILON), np.float32(20)))
