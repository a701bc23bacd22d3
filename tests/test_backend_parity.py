"""A whole training step of the book model: emulator (CUDA kernels) vs NumPy backend."""
import shutil

import numpy as np
import pytest

from minicnn import backend
from minicnn.utils import set_random_seed, to_categorical
from train_mnist import build_model

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def book_model():
    m = build_model()
    m.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return m


def two_steps(name, weights, x, y):
    backend.set_backend(name)
    try:
        m = book_model()
        m.set_weights(weights)
        results = [m.train_on_batch(x, y), m.train_on_batch(x, y)]
        return results, m.get_weights(), m.predict(x)
    finally:
        backend.set_backend("numpy")


def test_book_model_training_step_matches_numpy():
    set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28, 1)).astype(np.float32)
    y = to_categorical([1, 7, 3], 10)
    backend.set_backend("numpy")
    weights = book_model().get_weights()
    ref_results, ref_weights, ref_pred = two_steps("numpy", weights, x, y)
    emu_results, emu_weights, emu_pred = two_steps("emulator", weights, x, y)
    np.testing.assert_allclose(emu_results, ref_results, rtol=1e-4, atol=1e-6)
    for a, b in zip(emu_weights, ref_weights):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(emu_pred, ref_pred, rtol=1e-3, atol=1e-5)
    # the step really moved the weights (so equality above is not trivial)
    assert max(np.abs(a - b).max() for a, b in zip(ref_weights, weights)) > 1e-4


def _train_small_model(name, x, y):
    import minicnn as keras
    from minicnn import backend, layers
    from minicnn.utils import set_random_seed
    backend.set_backend(name)
    set_random_seed(7)
    model = keras.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(9, 8, 2)),
        layers.MaxPooling2D((2, 2), padding="same"),
        layers.Conv2D(3, (2, 3), strides=(1, 2), padding="same", activation="tanh"),
        layers.Flatten(),
        layers.Dense(6, activation="sigmoid"),
        layers.Dense(5, activation="softmax"),
    ])
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    results = [model.train_on_batch(x, y) for _ in range(3)]
    return results, model.get_weights()


def test_training_steps_match_numpy():
    rng = np.random.default_rng(0)
    from minicnn import backend
    before = backend.backend_name()
    x = rng.uniform(0, 1, (5, 9, 8, 2)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, 5)]
    try:
        ref_results, ref_weights = _train_small_model("numpy", x, y)
        emu_results, emu_weights = _train_small_model("emulator", x, y)
    finally:
        backend.set_backend(before)
    np.testing.assert_allclose(emu_results, ref_results, rtol=1e-5, atol=1e-6)
    assert len(emu_weights) == len(ref_weights) == 8
    for got, want in zip(emu_weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bench_gpu_script_runs_on_the_emulator(capsys, monkeypatch):
    # the GPU benchmark cannot run here; its --emulator mode keeps it working
    monkeypatch.setenv("MINICNN_EMU_ORDER", "forward")  # a speed run: one order
    import importlib.util
    from pathlib import Path
    from minicnn import backend
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    before = backend.backend_name()
    try:
        rc = bench.main(["--emulator", "--samples", "64", "--numpy-samples", "64",
                         "--warmup-batches", "1", "--batch-size", "32"])
    finally:
        backend.set_backend(before)
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[2].split()[0] == "emulator"
    assert out.splitlines()[3].split()[0] == "numpy"
