"""Training speed of the book's MNIST CNN: CUDA GPU (CuPy backend) vs NumPy.

Times ``model.fit(x, y, batch_size=64, epochs=1)`` of the "Deep Learning with
Python" chapter 5 model (conv32-pool-conv64-pool-conv64-dense64-dense10,
rmsprop) on each backend on the same machine, after a short warm-up (kernel
compiles, cuBLAS start-up), and prints images/s and the time of one 60,000-image
epoch. The data are random MNIST-shaped images unless ``--mnist`` is given:
speed does not depend on pixel values.

    python benchmarks/bench_gpu.py                        # needs a CUDA GPU
    python benchmarks/bench_gpu.py --numpy-samples 6000   # shorter NumPy run
    python benchmarks/bench_gpu.py --emulator --samples 64 --numpy-samples 64
        # no GPU: time the CUDA kernels on the CPU emulator instead (a smoke
        # test of this script and of the emulator's speed, not of a GPU)
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minicnn as keras  # noqa: E402
from minicnn import backend, layers  # noqa: E402

EPOCH_IMAGES = 60000  # one MNIST training epoch


def book_model():
    """The book's CNN (train_mnist.build_model), compiled as in the book."""
    from train_mnist import build_model
    model = build_model()
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return model


def data(samples, use_mnist):
    """(x, y): float32 images in [0, 1] of shape (samples, 28, 28, 1), one-hot y."""
    if use_mnist:
        from minicnn.datasets import mnist
        (x, labels), _ = mnist.load_data()
        reps = -(-samples // len(x))
        x = np.concatenate([x] * reps)[:samples].reshape(-1, 28, 28, 1).astype("float32") / 255
        labels = np.concatenate([labels] * reps)[:samples]
    else:
        rng = np.random.default_rng(0)
        x = rng.random((samples, 28, 28, 1), dtype=np.float32)
        labels = rng.integers(0, 10, samples)
    return x, np.eye(10, dtype=np.float32)[labels]


def _synchronize(name):
    if name == "cupy":
        import cupy
        cupy.cuda.Device().synchronize()


def time_backend(name, x, y, batch_size, warmup_batches):
    """Seconds for one epoch of fit over (x, y) on backend ``name``."""
    backend.set_backend(name)
    model = book_model()
    warm = min(len(x), warmup_batches * batch_size)
    model.fit(x[:warm], y[:warm], batch_size=batch_size, epochs=1, verbose=0)
    _synchronize(name)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    _synchronize(name)
    seconds = time.perf_counter() - start
    return seconds, history.history["loss"][-1]


def device_name(name):
    if name == "cupy":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    if name == "emulator":
        return f"CUDA emulator on {platform.processor() or platform.machine()}"
    return f"NumPy {np.__version__} on {platform.processor() or platform.machine()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=EPOCH_IMAGES,
                        help="images in the timed epoch on the CUDA backend (default 60000)")
    parser.add_argument("--numpy-samples", type=int, default=12800,
                        help="images in the timed epoch on NumPy (default 12800; scaled to 60000)")
    parser.add_argument("--warmup-batches", type=int, default=5)
    parser.add_argument("--mnist", action="store_true", help="use the real MNIST images")
    parser.add_argument("--emulator", action="store_true",
                        help="no GPU: run the CUDA kernels on the CPU emulator instead")
    args = parser.parse_args(argv)

    cuda = "emulator" if args.emulator else "cupy"
    if cuda == "cupy" and not backend._gpu_usable():
        print("bench_gpu: no usable CUDA GPU (cupy missing or cupy.is_available() is False); "
              "use --emulator to exercise the script on the CPU", file=sys.stderr)
        return 2

    x, y = data(max(args.samples, args.numpy_samples), args.mnist)
    rows = []
    for name, samples in ((cuda, args.samples), ("numpy", args.numpy_samples)):
        seconds, loss = time_backend(name, x[:samples], y[:samples], args.batch_size,
                                     args.warmup_batches)
        rows.append((name, device_name(name), samples, seconds, samples / seconds, loss))

    print(f"book MNIST CNN, batch {args.batch_size}, "
          f"{'MNIST' if args.mnist else 'random'} images")
    print(f"{'backend':<9} {'device':<44} {'images':>7} {'time s':>8} {'images/s':>9} "
          f"{'60k epoch s':>11}")
    for name, dev, samples, seconds, rate, loss in rows:
        print(f"{name:<9} {dev[:44]:<44} {samples:>7} {seconds:>8.2f} {rate:>9.0f} "
              f"{EPOCH_IMAGES / rate:>11.1f}")
    speedup = rows[0][4] / rows[1][4]
    print(f"{cuda} / numpy speed: {speedup:.3g}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
