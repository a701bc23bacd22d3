"""Per-op profile of one minicnn training step (NumPy backend) on the book's MNIST CNN,
and each op's time against its floor on this machine.

Every public function of the op modules (``minicnn.ops``: conv2d.forward,
pooling.backward, bias_act.forward_training, the optimizer updates, ...) is
wrapped with a timer, keyed by op name and the shape of its first argument, so
each layer's call shows up on its own line; an op called from inside another
op counts in the outer one only. The step itself is timed around
``model.train_on_batch``; the time not inside any op is the framework's Python
(layers, model, optimizer loop).

Then the floors (``--floors``, on by default; benchmarks/floors.py has the
model): this machine's memory bandwidth (a 256 MB np.copyto) and SGEMM rate
(1024^3 float32, BLAS at 1 thread and at minicnn's thread count; the better
of each), each op's FLOPs and bytes moved from the shapes of one step's calls,
its floor max(FLOPs / SGEMM rate, bytes / bandwidth), and
time / floor, the ops sorted by the gap (ms - floor ms), largest first.

    python benchmarks/profile_cpu.py [--steps 200] [--batch 64] [--no-floors]
    python benchmarks/profile_cpu.py --inference --batch 1000 --steps 30   # predict_on_batch
"""
import argparse
import collections
import importlib
import inspect
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

# the ops' entry points the layers, losses, metrics and optimizers call
PUBLIC = ("forward", "forward_training", "activate", "backward", "xent_loss", "logits_xent_loss",
          "xent_backward", "softmax_xent_backward", "accuracy_count", "binary_match_count", "top_k_count")


def book_model(keras, layers):
    """The book's model as train_mnist.py builds it, compiled as in the book."""
    from train_mnist import build_model
    model = build_model()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def op_functions(module):
    """(name, function) of the module's entry points: PUBLIC, every ``*_update``, and any
    other public ``*forward*`` / ``*backward*`` (a fused op) that is not a check,
    a reference or a compiled kernel."""
    for name, fn in list(vars(module).items()):
        if name.startswith(("_", "check")) or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
            continue
        fused = ("forward" in name or "backward" in name) and not name.endswith(("_reference", "_kernel"))
        if name in PUBLIC or name.endswith("_update") or fused:
            yield name, fn


class Recorder:
    """Wraps the ops: times outermost calls while ``recording``; while ``modeling``,
    keeps each call's (flops, bytes, how) for the floors instead."""

    def __init__(self):
        self.times = collections.defaultdict(list)
        self.costs = collections.defaultdict(list)
        self.recording = False
        self.modeling = False
        self.depth = 0

    def wrap(self, name, fn):
        def timed(*a, **k):
            if not (self.recording or self.modeling) or self.depth:
                return fn(*a, **k)   # off, or inside another op: counts there
            self.depth += 1
            try:
                t0 = time.perf_counter()
                r = fn(*a, **k)
                dt = time.perf_counter() - t0
            finally:
                self.depth -= 1
            shape = getattr(a[0], "shape", None) if a else None
            key = (name, tuple(shape) if shape is not None else None)
            if self.recording:
                self.times[key].append(dt)
            else:
                from floors import op_cost
                self.costs[key].append(op_cost(name, a, k, r))
            return r
        timed.__wrapped__ = fn
        return timed

    def install(self, ops):
        for module_name in ops.MODULES:
            module = importlib.import_module(f"{ops.__name__}.{module_name}")
            for fn_name, fn in op_functions(module):
                setattr(module, fn_name, self.wrap(f"{module_name}.{fn_name}", fn))


def print_profile(args, rec, steps):
    step = float(np.median(steps)) * 1e3
    # per-op cost per step: total time over all steps / steps (a median per call would hide
    # the ops that run many times per step, like the optimizer update)
    rows = []
    for (name, shape), ts in rec.times.items():
        rows.append((sum(ts) / args.steps * 1e3, len(ts) // args.steps, name, shape))
    rows.sort(reverse=True)
    total_ops = sum(r[0] for r in rows)
    mean_step = float(np.mean(steps)) * 1e3
    what = "predict_on_batch" if args.inference else "step"
    print(f"minicnn {what} (batch {args.batch}): median {step:.2f} ms, mean {mean_step:.2f} ms "
          f"over {args.steps} steps")
    try:
        from threadpoolctl import threadpool_info
        info = [(i.get("internal_api"), i.get("num_threads"), i.get("architecture")) for i in threadpool_info()]
        print(f"BLAS: {info}")
    except ImportError:
        pass
    print(f"{'op':<34}{'first arg shape':<22}{'calls':>6}{'ms/step':>10}{'% step':>8}")
    for ms, calls, name, shape in rows:
        print(f"{name:<34}{str(shape):<22}{calls:>6}{ms:>10.3f}{100 * ms / mean_step:>7.1f}%")
    print(f"{'(all ops)':<62}{total_ops:>10.3f}{100 * total_ops / mean_step:>7.1f}%")
    print(f"{'(outside ops: Python)':<62}{mean_step - total_ops:>10.3f}"
          f"{100 * (mean_step - total_ops) / mean_step:>7.1f}%")
    return mean_step


def print_floors(args, rec, mean_step, threads):
    import floors
    try:
        rates = floors.machine_rates(threads, mb=args.bandwidth_mb, gemm_n=args.gemm_n)
    except ImportError:
        print("\nfloors: need threadpoolctl (pip install threadpoolctl) to hold BLAS's threads")
        return
    print(f"\nfloors: bandwidth {rates['bw']:.1f} GB/s (np.copyto {args.bandwidth_mb} MB, read + write: "
          f"{rates['bw_1']:.1f} GB/s on 1 thread, {rates['bw_n']:.1f} on {threads}); "
          f"SGEMM {args.gemm_n}^3 float32: {rates['gemm_1']:.1f} GFLOP/s on 1 thread, "
          f"{rates['gemm_n']:.1f} on {threads}; the floors use the better of each")
    if args.load_at_start > 0.7:
        print(f"(load average {args.load_at_start:.2f} when this run started: other processes are running, "
              f"the times and the rates are noisy)")
    rows = []
    for key, ts in rec.times.items():
        ms = sum(ts) / args.steps * 1e3
        costs = rec.costs.get(key, [])
        flops = sum(c[0] for c in costs)
        nbytes = sum(c[1] for c in costs)
        how = "/".join(sorted({c[2] for c in costs})) or "?"
        floor, bound = floors.floor_ms(flops, nbytes, rates)
        rows.append((ms - floor, ms, floor, bound, flops, nbytes, how) + key)
    rows.sort(key=lambda r: r[0], reverse=True)
    print(f"{'op':<34}{'first arg shape':<22}{'ms/step':>9}{'MFLOP':>9}{'MB':>8}{'floor ms':>10}"
          f"{'bound':>6}{'time/floor':>11} {'gap ms':>9}  model")
    for gap, ms, floor, bound, flops, nbytes, how, name, shape in rows:
        ratio = f"{ms / floor:>10.1f}x" if floor > 0 else f"{'-':>11}"
        print(f"{name:<34}{str(shape):<22}{ms:>9.3f}{flops / 1e6:>9.1f}{nbytes / 1e6:>8.2f}{floor:>10.3f}"
              f"{bound:>6}{ratio} {gap:>9.3f}  {how}")
    total_ms = sum(r[1] for r in rows)
    total_floor = sum(r[2] for r in rows)
    print(f"{'(all ops)':<56}{total_ms:>9.3f}{sum(r[4] for r in rows) / 1e6:>9.1f}"
          f"{sum(r[5] for r in rows) / 1e6:>8.2f}{total_floor:>10.3f}{'':>6}"
          f"{total_ms / max(total_floor, 1e-9):>10.1f}x {total_ms - total_floor:>9.3f}")
    print(f"(the step, {mean_step:.2f} ms mean, is {mean_step / max(total_floor, 1e-9):.1f}x the sum of "
          f"the ops' floors)")


def minicnn_threads():
    try:
        from minicnn.backend import cpu_threads
        return int(cpu_threads.num_threads())
    except (ImportError, AttributeError, TypeError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--inference", action="store_true",
                    help="profile model.predict_on_batch (inference: try --batch 1000) instead of a step")
    ap.add_argument("--floors", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure this machine's floors and compare each op with its own")
    ap.add_argument("--bandwidth-mb", type=int, default=256, help="array size of the bandwidth copy")
    ap.add_argument("--gemm-n", type=int, default=1024, help="n of the n^3 SGEMM rate measurement")
    ap.add_argument("--floor-threads", type=int, default=None,
                    help="threads of the floors' SGEMM and copy (default: minicnn's thread count)")
    args = ap.parse_args()
    args.load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0

    import minicnn as keras
    from minicnn import backend, layers
    from minicnn import ops

    backend.set_backend("numpy")
    rec = Recorder()
    rec.install(ops)

    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.batch)]
    model = book_model(keras, layers)
    step = (lambda: model.predict_on_batch(x)) if args.inference else (lambda: model.train_on_batch(x, y))
    for _ in range(args.warmup):
        step()
    if args.floors:
        rec.modeling = True   # one more untimed step: the shapes and work of every call
        step()
        rec.modeling = False
    steps = []
    rec.recording = True
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t0)
    rec.recording = False

    mean_step = print_profile(args, rec, steps)
    if args.floors:
        print_floors(args, rec, mean_step, args.floor_threads or minicnn_threads())


if __name__ == "__main__":
    main()
