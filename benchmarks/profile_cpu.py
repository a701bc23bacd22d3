"""Per-op profile of one minicnn training step (NumPy backend) on the book's MNIST CNN.

Every public function of the op modules (``minicnn.ops``: conv2d.forward,
pooling.backward, ...) is wrapped with a timer (keyed by op name and the
shape of its first argument, so each layer's call shows up on its own line); the step itself is timed around ``model.train_on_batch``. The time
not inside any op is the framework's Python (layers, model, optimizer loop).

    python benchmarks/profile_cpu.py [--steps 200] [--batch 64]
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def book_model(keras, layers):
    """The book's model as train_mnist.py builds it, compiled as in the book."""
    from train_mnist import build_model
    model = build_model()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()

    import minicnn as keras
    from minicnn import backend, layers
    import importlib
    from minicnn import ops

    backend.set_backend("numpy")
    times = collections.defaultdict(list)
    recording = [False]

    def wrap(name, fn):
        def timed(*a, **k):
            if not recording[0]:
                return fn(*a, **k)
            t0 = time.perf_counter()
            r = fn(*a, **k)
            dt = time.perf_counter() - t0
            shape = getattr(a[0], "shape", None) if a else None
            times[(name, tuple(shape) if shape is not None else None)].append(dt)
            return r
        return timed

    public = ("forward", "backward", "xent_loss", "xent_backward", "softmax_xent_backward",
              "accuracy_count", "rmsprop_update", "sgd_update")
    for module_name in ops.MODULES:
        module = importlib.import_module(f"minicnn.ops.{module_name}")
        for fn in public:
            if hasattr(module, fn):
                setattr(module, fn, wrap(f"{module_name}.{fn}", getattr(module, fn)))

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]
    model = book_model(keras, layers)
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    steps = []
    recording[0] = True
    for _ in range(args.steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        steps.append(time.perf_counter() - t0)
    recording[0] = False

    step = float(np.median(steps)) * 1e3
    # per-op cost per step: total time over all steps / steps (a median per call would hide
    # the ops that run many times per step, like the optimizer update)
    rows = []
    for (name, shape), ts in times.items():
        rows.append((sum(ts) / args.steps * 1e3, len(ts) // args.steps, name, shape))
    rows.sort(reverse=True)
    total_ops = sum(r[0] for r in rows)
    mean_step = float(np.mean(steps)) * 1e3
    print(f"minicnn step (batch {args.batch}): median {step:.2f} ms, mean {mean_step:.2f} ms "
          f"over {args.steps} steps")
    try:
        from threadpoolctl import threadpool_info
        info = [(i.get("internal_api"), i.get("num_threads"), i.get("architecture")) for i in threadpool_info()]
        print(f"BLAS: {info}")
    except ImportError:
        pass
    print(f"{'op':<24}{'first arg shape':<22}{'calls':>6}{'ms/step':>10}{'% step':>8}")
    for ms, calls, name, shape in rows:
        print(f"{name:<24}{str(shape):<22}{calls:>6}{ms:>10.3f}{100 * ms / mean_step:>7.1f}%")
    print(f"{'(all ops)':<52}{total_ops:>10.3f}{100 * total_ops / mean_step:>7.1f}%")
    print(f"{'(outside ops: Python)':<52}{mean_step - total_ops:>10.3f}"
          f"{100 * (mean_step - total_ops) / mean_step:>7.1f}%")


if __name__ == "__main__":
    main()
