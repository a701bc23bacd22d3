"""A CIFAR-10-shaped model with BatchNormalization and Dropout (random data of that
shape) trains on the NumPy backend and on the emulator (our CUDA kernels) alike.

The same seed gives the same weights and the same dropout masks on both (the
mask is counter-based: ops/dropout.py), so the first step's loss must agree to
float32 rounding, and the steps after it too."""
import shutil

import numpy as np
import pytest

from minicnn import backend, layers
from minicnn.models import Sequential
from minicnn.utils import clear_session, set_random_seed, to_categorical


def cifar_shaped_model():
    return Sequential([
        layers.Conv2D(8, (3, 3), padding="same", activation="relu", input_shape=(32, 32, 3)),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def train_steps(name, x, y, steps=3):
    """(losses of ``steps`` train_on_batch calls, the weights after) on backend ``name``."""
    previous = backend.backend_name()
    backend.set_backend(name)
    try:
        clear_session()
        set_random_seed(3)
        model = cifar_shaped_model()
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        losses = [model.train_on_batch(x, y)[0] for _ in range(steps)]
        return losses, model.get_weights(), model.predict(x, verbose=0)
    finally:
        backend.set_backend(previous)


@pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
def test_numpy_and_the_emulator_train_the_same_model_alike():
    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 3)).astype(np.float32)   # 8 samples: the emulator is slow
    y = to_categorical(rng.integers(0, 10, 8), 10)
    numpy_losses, numpy_weights, numpy_p = train_steps("numpy", x, y)
    emu_losses, emu_weights, emu_p = train_steps("emulator", x, y)
    assert np.isfinite(numpy_losses).all() and numpy_losses[-1] < numpy_losses[0]
    assert emu_losses[0] == pytest.approx(numpy_losses[0], rel=1e-5)
    np.testing.assert_allclose(emu_losses, numpy_losses, rtol=1e-4)
    names = ["kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance", "kernel", "bias"]
    assert len(numpy_weights) == len(names)
    for name, a, b in zip(names, numpy_weights, emu_weights):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(emu_p, numpy_p, rtol=1e-3, atol=1e-5)


def test_the_model_summary_counts():
    clear_session()
    model = cifar_shaped_model()
    rows = []
    model.summary(print_fn=rows.append)
    assert "batch_normalization (BatchNo (None, 32, 32, 8)         32        " in rows
    assert "dropout (Dropout)            (None, 16, 16, 8)         0         " in rows
    assert rows[-4:-1] == ["Total params: 20,746", "Trainable params: 20,730", "Non-trainable params: 16"]
