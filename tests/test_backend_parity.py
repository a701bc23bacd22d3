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
