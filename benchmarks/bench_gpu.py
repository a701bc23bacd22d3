"""Training speed of the book's MNIST CNN on a CUDA GPU: minicnn (CuPy backend), NumPy, PyTorch.

Times one epoch of ``model.fit(x, y, batch_size=B, epochs=1)`` of the "Deep
Learning with Python" chapter 5 model (conv32-pool-conv64-pool-conv64-dense64-
dense10, rmsprop) after a short warm-up (kernel compiles, cuBLAS start-up), for
each batch size asked, and prints images/s and the time of one 60,000-image
epoch, side by side:

- ``cupy   eager``:   minicnn on the GPU, as fit runs today (batches copied from the host);
- ``cupy   planned``: the same with the static-shape step plan, once one exists
  (issue 11, item 2: ``plan_switch`` in gpu_host_cost.py);
- ``numpy  eager``:   minicnn on the CPU (``--numpy-samples 0`` leaves it out);
- ``torch  eager`` and ``torch  graph``: PyTorch with cuDNN and the training set
  on the GPU, plain and as one CUDA graph per step (bench_gpu_torch.py), when
  torch imports and sees a CUDA device (``--no-torch`` leaves them out).

The data are random MNIST-shaped images unless ``--mnist`` is given: speed
does not depend on pixel values.

    python benchmarks/bench_gpu.py                        # needs a CUDA GPU
    python benchmarks/bench_gpu.py --batch-size 64,256,1024 --numpy-samples 0
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

from minicnn import backend  # noqa: E402

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


def time_backend(name, x, y, batch_size, warmup_batches, plan=None):
    """Seconds for one epoch of fit over (x, y) on backend ``name`` (inside ``plan``,
    a context manager turning the step plan on, when given)."""
    import contextlib
    backend.set_backend(name)
    with plan if plan is not None else contextlib.nullcontext():
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
    if name in ("cupy", "torch"):
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    if name == "emulator":
        return f"CUDA emulator on {platform.processor() or platform.machine()}"
    return f"NumPy {np.__version__} on {platform.processor() or platform.machine()}"


def batch_sizes(text):
    """'64,256,1024' -> [64, 256, 1024]."""
    try:
        sizes = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes must be integers separated by commas, got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def rows_for_batch(args, cuda, x, y, batch_size, switch, torch_ok):
    """[(backend, mode, device, images, seconds)] for one batch size."""
    rows = []
    cuda_x, cuda_y = x[:args.samples], y[:args.samples]
    seconds, _ = time_backend(cuda, cuda_x, cuda_y, batch_size, args.warmup_batches,
                              switch(False) if switch else None)
    rows.append((cuda, "eager", device_name(cuda), len(cuda_x), seconds))
    if switch is not None:
        seconds, _ = time_backend(cuda, cuda_x, cuda_y, batch_size, args.warmup_batches, switch(True))
        rows.append((cuda, "planned", device_name(cuda), len(cuda_x), seconds))
    if args.numpy_samples:
        seconds, _ = time_backend("numpy", x[:args.numpy_samples], y[:args.numpy_samples], batch_size,
                                  args.warmup_batches)
        rows.insert(1, ("numpy", "eager", device_name("numpy"), args.numpy_samples, seconds))
    if torch_ok:
        import bench_gpu_torch
        labels = y[:args.samples].argmax(1)
        for mode in ("eager", "graph"):
            seconds, images = bench_gpu_torch.epoch_seconds(cuda_x, labels, batch_size, graph=mode == "graph",
                                                            warmup_batches=args.warmup_batches)
            rows.append(("torch", mode, device_name("torch"), images, seconds))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=batch_sizes, default=[64],
                        help="one batch size or several separated by commas (default 64)")
    parser.add_argument("--samples", type=int, default=EPOCH_IMAGES,
                        help="images in the timed epoch on the CUDA backend (default 60000)")
    parser.add_argument("--numpy-samples", type=int, default=12800,
                        help="images in the timed epoch on NumPy (default 12800; 0: no NumPy row)")
    parser.add_argument("--warmup-batches", type=int, default=5)
    parser.add_argument("--mnist", action="store_true", help="use the real MNIST images")
    parser.add_argument("--emulator", action="store_true",
                        help="no GPU: run the CUDA kernels on the CPU emulator instead")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = parser.parse_args(argv)

    cuda = "emulator" if args.emulator else "cupy"
    if cuda == "cupy" and not backend._gpu_usable():
        print("bench_gpu: no usable CUDA GPU (cupy missing or cupy.is_available() is False); "
              "use --emulator to exercise the script on the CPU", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gpu_host_cost import plan_switch
    switch = plan_switch()
    torch_ok, torch_note = (False, "not asked for (--no-torch)") if args.no_torch else _torch_available()
    if cuda == "emulator" and torch_ok:
        torch_ok, torch_note = False, "left out on the emulator (its figures would not be side by side)"

    x, y = data(max(args.samples, args.numpy_samples), args.mnist)
    rows = []
    for batch_size in args.batch_size:
        rows += [(batch_size,) + r for r in rows_for_batch(args, cuda, x, y, batch_size, switch, torch_ok)]

    print(f"book MNIST CNN, batch {', '.join(map(str, args.batch_size))}, "
          f"{'MNIST' if args.mnist else 'random'} images")
    print(f"{'backend':<9} {'mode':<8} {'batch':>5} {'device':<36} {'images':>7} {'time s':>8} "
          f"{'images/s':>9} {'60k epoch s':>11}")
    for batch_size, name, mode, dev, images, seconds in rows:
        rate = images / seconds
        print(f"{name:<9} {mode:<8} {batch_size:>5} {dev[:36]:<36} {images:>7} {seconds:>8.2f} "
              f"{rate:>9.0f} {EPOCH_IMAGES / rate:>11.2f}")
    if switch is None:
        print("minicnn planned: no step plan yet (issue 11, item 2)")
    print(f"PyTorch: {torch_note}")
    for batch_size in args.batch_size:
        rate = {(n, m): i / s for b, n, m, _, i, s in rows if b == batch_size}
        best = rate.get((cuda, "planned"), rate[(cuda, "eager")])
        ratios = [f"{cuda} / {n} {m}: {best / r:.3g}x" for (n, m), r in rate.items() if n != cuda]
        if ratios:
            print(f"batch {batch_size}: " + ", ".join(ratios))
    return 0


def _torch_available():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_gpu_torch
    return bench_gpu_torch.available()


if __name__ == "__main__":
    sys.exit(main())
