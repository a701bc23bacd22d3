"""bias_act's backward on CUDA with a bias: the activation's backward folded into the bias
gradient's first pass (kernel act_backward_column_partials), the same bits as act_backward
followed by column_sum_partials, and one launch less."""
import shutil

import numpy as np
import pytest

from minicnn import backend
from minicnn.ops import bias_act

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def unfolded(device, da, a, code):
    """dz by act_backward, then db by the two column-sum passes (what ran before the fold)."""
    dz = device.empty(da.shape)
    device.launch("test", "bias_act", "act_backward", (4, 1, 1), (64, 1, 1),
                  (da, a, dz, np.int32(da.size), np.int32(code)))
    return dz, bias_act._column_sum_cuda(device, "test", dz)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (300, 45), (3, 5, 70)])
def test_the_fold_gives_the_bits_of_the_two_kernels(activation, shape):
    backend.set_backend("emulator")
    device = backend.device()
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    da = rng.standard_normal(shape).astype(np.float32)
    a = rng.random(shape, dtype=np.float32) * 2 - 0.5   # both signs: relu's mask matters
    dz, db = bias_act._backward_cuda(device, da, a, activation, has_bias=True)
    dz2, db2 = unfolded(device, da, a, bias_act.ACT_CODES[activation])
    assert np.array_equal(dz, dz2) and np.array_equal(db, db2)
    ref_dz, ref_db = bias_act.backward_reference(da, a, activation, True)
    np.testing.assert_allclose(dz, ref_dz, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, ref_db, rtol=1e-5, atol=1e-5)


def test_the_fold_saves_one_launch(monkeypatch):
    backend.set_backend("emulator")
    device = backend.device()
    launched = []
    real = device.launch
    monkeypatch.setattr(device, "launch", lambda op, module, kernel, *rest: (launched.append(kernel),
                                                                              real(op, module, kernel, *rest)))
    da = np.ones((70, 3), np.float32)
    bias_act._backward_cuda(device, da, da, "relu", has_bias=True)
    assert launched == ["act_backward_column_partials", "column_sum_finish"]
    launched.clear()
    bias_act._backward_cuda(device, da, da, "relu", has_bias=False)   # no bias: no sums
    assert launched == ["act_backward"]
