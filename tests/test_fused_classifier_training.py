"""The training step of a softmax classifier runs its loss, accuracy and gradient as ONE op
(ops/classifier.py, wired through losses.CategoricalCrossentropy.fused_step): the same
weights, bit for bit, as the separate ops; the loss sums agree within rounding."""
import shutil

import numpy as np
import pytest

from minicnn import backend, layers, losses, models


def trained(fused, backend_name, loss="categorical_crossentropy", metrics=("accuracy",), **fit):
    backend.set_backend(backend_name)
    model = models.Sequential([layers.Conv2D(4, (3, 3), activation="relu", input_shape=(8, 7, 1)),
                               layers.Flatten(), layers.Dense(5, activation="softmax")])
    model.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.3
                       for i, w in enumerate(model.get_weights())])
    model.compile("rmsprop", loss, metrics=list(metrics))
    if not fused:
        model._fused_head = lambda p, yb: None   # this model only: the separate ops
    rng = np.random.default_rng(0)
    x = rng.random((45, 8, 7, 1), dtype=np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 45)]
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, **fit)
    return model.get_weights(), history.history


BACKENDS = ["numpy", pytest.param("emulator", marks=pytest.mark.skipif(
    shutil.which("g++") is None, reason="the emulator needs g++"))]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_the_fused_step_trains_as_the_separate_ops(backend_name):
    w_fused, h_fused = trained(True, backend_name)
    w_sep, h_sep = trained(False, backend_name)
    for a, b in zip(w_fused, w_sep):
        assert np.array_equal(a, b)   # dz has the bits of softmax_xent_backward
    assert h_fused["accuracy"] == h_sep["accuracy"]
    np.testing.assert_allclose(h_fused["loss"], h_sep["loss"], rtol=1e-6)   # another summing order


@pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
def test_the_emulator_runs_one_launch_for_loss_accuracy_and_gradient(monkeypatch):
    backend.set_backend("emulator")
    device = backend.device()
    kernels = []
    real = type(device).launch
    monkeypatch.setattr(type(device), "launch", lambda self, op, module, kernel, *a: (
        kernels.append(kernel), real(self, op, module, kernel, *a))[1])
    monkeypatch.setenv("MINICNN_STEP_PLAN", "0")   # eager steps: each launch is a call here
    trained(True, "emulator")
    assert kernels.count("softmax_xent_step") == 6   # 3 batches x 2 epochs
    assert not {"xent_loss_rows", "accuracy_count", "softmax_xent_backward"} & set(kernels)
    kernels.clear()
    trained(True, "emulator", loss=losses.CategoricalCrossentropy(label_smoothing=0.1))
    assert "softmax_xent_step" not in kernels and kernels.count("xent_loss_rows") == 6


@pytest.mark.parametrize("case", ["sample_weight", "top_k", "sparse"])
def test_other_setups_keep_the_separate_ops(case, monkeypatch):
    calls = []
    real = losses.CategoricalCrossentropy.fused_step
    monkeypatch.setattr(losses.CategoricalCrossentropy, "fused_step",
                        lambda self, *a: calls.append(1) or real(self, *a))
    if case == "sample_weight":
        trained(True, "numpy", sample_weight=np.linspace(0.5, 1.5, 45).astype(np.float32))
        assert calls == []
    elif case == "top_k":
        trained(True, "numpy", metrics=("accuracy", "top_k_categorical_accuracy"))
        assert calls == []
    else:   # integer labels become one-hot rows first: the fused op applies
        backend.set_backend("numpy")
        model = models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(np.ones((8, 4), np.float32), np.arange(8) % 3, verbose=0)
        assert calls == [1]
