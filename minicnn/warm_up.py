"""Compile the CPU kernels once, at install time, so a user's first step is fast.

The ops' CPU kernels are compiled by Numba the first time they run and cached
on disk beside their modules (``__pycache__``). On a fresh install that first
run takes several seconds per model; ``make`` runs this module right after
installing, so ``make train`` (and a user's own first ``fit``) load the cached
kernels instead (a few hundred ms). It trains one step of two small models
that between them use every layer with a CPU kernel, then predicts; the
weights are thrown away. Without Numba (no ``fast`` extra) there is nothing to
compile and it says so.

Run it yourself after installing minicnn in another way::

    python -m minicnn.warm_up
"""
import sys
import time

import numpy as np


def _models():
    """The book's MNIST CNN, and a model with the other layers that have CPU kernels."""
    from . import layers, optimizers
    from .models import Sequential
    book = Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    book.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    others = Sequential([
        layers.Conv2D(32, (3, 3), padding="same", activation="gelu", input_shape=(28, 28, 1)),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.AveragePooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.GlobalMaxPooling2D(),
        layers.Dense(10, activation="softmax"),
    ])
    others.compile(optimizer=optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return book, others


def warm_up(batch_size=64):
    """Run every CPU kernel the common layers use once; returns the seconds it took.

    Example: ``minicnn.warm_up.warm_up()`` (returns at once when nothing needs compiling)."""
    from .backend.cpu import runtime
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(batch_size) % 10]
    if runtime().kernels:
        for model in _models():
            model.train_on_batch(x, y)
            model.predict(x, batch_size=batch_size, verbose=0)
    return time.perf_counter() - start


def main():
    from . import backend
    from .backend.cpu import runtime
    backend.set_backend("numpy")
    if not runtime().kernels:
        print("minicnn.warm_up: Numba is not installed (pip install 'minicnn[fast]'): nothing to compile")
        return 0
    seconds = warm_up()
    print(f"minicnn.warm_up: CPU kernels compiled and cached in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
