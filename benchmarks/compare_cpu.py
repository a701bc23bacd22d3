"""minicnn (NumPy backend) vs PyTorch on the CPU, side by side: the book's MNIST CNN.

    pip install torch==2.13.0      # only for this benchmark; minicnn never imports it
    pip install numba threadpoolctl  # minicnn's fast CPU path (optional, see RESULTS.md)
    python benchmarks/compare_cpu.py                 # train step + inference, 5 rounds
    python benchmarks/compare_cpu.py --epoch         # + one epoch of real MNIST each (slow)
    python benchmarks/compare_cpu.py --against /tmp/old  # this checkout vs another (e.g. a
                                                         # `git worktree` of an older commit)

The model is conv32-pool-conv64-pool-conv64-flatten-dense64-dense10 (93,322
parameters), RMSprop (lr 1e-3, rho 0.9), batch 64, categorical cross-entropy
on softmax, accuracy computed every step (as ``train_on_batch`` does).

Method: the parent process makes one random batch and one set of initial
weights and hands both to the workers. Each framework runs in its own fresh
process, one after the other, alternating A B A B ... for ``--rounds`` rounds;
each worker warms up (excluded) and reports the median of its timed steps.
Both get the same environment (this one). Reported: the median over rounds
of each worker's median ms per training step (batch 64), inference images/s
(batch 1000), peak RSS (ru_maxrss of the worker, which includes the
inference batch), and with ``--epoch`` the wall time of one epoch of real
MNIST (60,000 images, /255, shuffled batches of 64) and the test accuracy.
The first-step loss of both frameworks on the shared weights is printed as a
check that they compute the same function.

PyTorch runs in channels_last (its faster layout here, default threads) unless
``--torch-format nchw``. The ratios are minicnn / PyTorch for time and RSS,
PyTorch / minicnn for images/s (above 1 means minicnn is slower / bigger).
"""
import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_MNIST = os.path.join(ROOT, "..", "shared", "datasets", "mnist")


# ----------------------------------------------------------------------------
# shared inputs
# ----------------------------------------------------------------------------
def glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def make_inputs(path, batch, infer_batch, seed=0):
    """Random batch, inference batch and initial weights (Keras layouts)."""
    rng = np.random.default_rng(seed)
    w = {
        "c1": glorot(rng, (3, 3, 1, 32), 9, 9 * 32), "b1": np.zeros(32, np.float32),
        "c2": glorot(rng, (3, 3, 32, 64), 9 * 32, 9 * 64), "b2": np.zeros(64, np.float32),
        "c3": glorot(rng, (3, 3, 64, 64), 9 * 64, 9 * 64), "b3": np.zeros(64, np.float32),
        "d1": glorot(rng, (576, 64), 576, 64), "b4": np.zeros(64, np.float32),
        "d2": glorot(rng, (64, 10), 64, 10), "b5": np.zeros(10, np.float32),
    }
    x = rng.random((batch, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, batch)
    xi = rng.random((infer_batch, 28, 28, 1), dtype=np.float32)
    np.savez(path, x=x, labels=labels, xi=xi, **w)


def load_mnist(folder):
    """(x_train, y_train, x_test, y_test) from the gz IDX files, images uint8 (N, 28, 28)."""
    def read(name):
        with gzip.open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        ndim = data[3]
        dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    return (read("train-images-idx3-ubyte.gz"), read("train-labels-idx1-ubyte.gz"),
            read("t10k-images-idx3-ubyte.gz"), read("t10k-labels-idx1-ubyte.gz"))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def timed(fn, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


# ----------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------
def worker_minicnn(args, inp):
    sys.path.insert(0, os.environ.get("MINICNN_BENCH_ROOT", ROOT))  # --against: the other checkout
    from minicnn import backend
    from minicnn.utils import set_random_seed, to_categorical
    from train_mnist import build_model
    backend.set_backend("numpy")

    def build():
        model = build_model()  # the book's model, as train_mnist.py builds it
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        model.set_weights([inp[k] for k in ("c1", "b1", "c2", "b2", "c3", "b3", "d1", "b4", "d2", "b5")])
        return model

    model = build()
    x = inp["x"]
    y = np.eye(10, dtype=np.float32)[inp["labels"]]
    first_loss = model.train_on_batch(x, y)[0]
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    steps = timed(lambda: model.train_on_batch(x, y), args.steps)

    xi = inp["xi"]
    model.predict(xi, batch_size=len(xi))
    infer = timed(lambda: model.predict(xi, batch_size=len(xi)), args.infer_reps)
    out = {"first_loss": float(first_loss), "step_ms": statistics.median(steps) * 1e3,
           "images_per_s": len(xi) / statistics.median(infer)}
    out["rss_mib"] = peak_rss_mib()

    if args.epoch:
        xtr, ytr, xte, yte = load_mnist(args.mnist)
        xtr = xtr.reshape(-1, 28, 28, 1).astype(np.float32) / 255
        xte = xte.reshape(-1, 28, 28, 1).astype(np.float32) / 255
        ytr = to_categorical(ytr, 10)
        yte = to_categorical(yte, 10)
        set_random_seed(0)  # the shuffle order: a reproducible epoch
        model = build()
        t0 = time.perf_counter()
        model.fit(xtr, ytr, epochs=1, batch_size=64, verbose=0)
        out["epoch_s"] = time.perf_counter() - t0
        out["test_acc"] = float(model.evaluate(xte, yte, batch_size=1000, verbose=0)[1])
        out["rss_epoch_mib"] = peak_rss_mib()
    return out


def worker_torch(args, inp):
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    cl = args.torch_format == "channels_last"

    def build():
        m = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))
        with torch.no_grad():  # the shared Keras-layout weights
            for conv, k, b in ((m[0], "c1", "b1"), (m[3], "c2", "b2"), (m[6], "c3", "b3")):
                conv.weight.copy_(torch.from_numpy(inp[k].transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(inp[b]))
            # Keras flattens (h, w, c), PyTorch (c, h, w)
            d1 = inp["d1"].reshape(3, 3, 64, 64).transpose(2, 0, 1, 3).reshape(576, 64)
            m[9].weight.copy_(torch.from_numpy(d1.T.copy()))
            m[9].bias.copy_(torch.from_numpy(inp["b4"]))
            m[11].weight.copy_(torch.from_numpy(inp["d2"].T.copy()))
            m[11].bias.copy_(torch.from_numpy(inp["b5"]))
        if cl:
            m = m.to(memory_format=torch.channels_last)
        # Keras's RMSprop: rho 0.9 (PyTorch's alpha), lr 1e-3
        opt = torch.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        return m, opt

    def to_nchw(a):
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
        return t.contiguous(memory_format=torch.channels_last) if cl else t

    m, opt = build()
    loss_fn = nn.CrossEntropyLoss()
    x = to_nchw(inp["x"])
    y = torch.from_numpy(inp["labels"].astype(np.int64))

    def step(xb=x, yb=y):
        opt.zero_grad(set_to_none=True)
        out = m(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        opt.step()
        return loss.item(), int((out.argmax(1) == yb).sum())  # what train_on_batch returns

    first_loss = step()[0]
    for _ in range(args.warmup):
        step()
    steps = timed(step, args.steps)

    xi = to_nchw(inp["xi"])

    def infer():
        with torch.inference_mode():
            return torch.softmax(m(xi), 1).numpy()
    infer()
    inf = timed(infer, args.infer_reps)
    out = {"first_loss": float(first_loss), "step_ms": statistics.median(steps) * 1e3,
           "images_per_s": xi.shape[0] / statistics.median(inf), "threads": torch.get_num_threads()}
    out["rss_mib"] = peak_rss_mib()

    if args.epoch:
        xtr, ytr, xte, yte = load_mnist(args.mnist)
        xtr = to_nchw(xtr.reshape(-1, 28, 28, 1).astype(np.float32) / 255)
        xte = to_nchw(xte.reshape(-1, 28, 28, 1).astype(np.float32) / 255)
        ytr, yte = torch.from_numpy(ytr.astype(np.int64)), torch.from_numpy(yte.astype(np.int64))
        m, opt = build()
        t0 = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(ytr)))
        for s in range(0, len(ytr), 64):
            idx = order[s:s + 64]
            xb = xtr[idx]
            step(xb.contiguous(memory_format=torch.channels_last) if cl else xb, ytr[idx])
        out["epoch_s"] = time.perf_counter() - t0
        with torch.inference_mode():
            correct = sum(int((m(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum())
                          for s in range(0, len(yte), 1000))
        out["test_acc"] = correct / len(yte)
        out["rss_epoch_mib"] = peak_rss_mib()
    return out


# ----------------------------------------------------------------------------
# parent: alternate, collect, compare
# ----------------------------------------------------------------------------
def run_worker(which, args, inputs):
    env = dict(os.environ)
    if which == "baseline":  # minicnn from the --against checkout, same worker code
        env["MINICNN_BENCH_ROOT"] = os.path.abspath(args.against)
        which = "minicnn"
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", which, "--inputs", inputs,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--infer-reps", str(args.infer_reps),
           "--torch-format", args.torch_format, "--mnist", args.mnist]
    if args.epoch:
        cmd.append("--epoch")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit(f"{which} worker failed (exit {res.returncode})")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="A B pairs (default 5)")
    ap.add_argument("--steps", type=int, default=100, help="timed training steps per worker")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--infer-reps", type=int, default=10, help="timed batch-1000 predictions")
    ap.add_argument("--epoch", action="store_true", help="also time one epoch of real MNIST (slow)")
    ap.add_argument("--mnist", default=os.path.normpath(DEFAULT_MNIST), help="folder of the gz IDX files")
    ap.add_argument("--torch-format", choices=("channels_last", "nchw"), default="channels_last")
    ap.add_argument("--worker", choices=("minicnn", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--against", metavar="DIR",
                    help="compare with minicnn from another checkout instead of PyTorch")
    args = ap.parse_args()

    if args.worker:
        inp = dict(np.load(args.inputs))
        fn = worker_minicnn if args.worker == "minicnn" else worker_torch
        print(json.dumps(fn(args, inp)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "inputs.npz")
        make_inputs(inputs, 64, 1000)
        other = "baseline" if args.against else "torch"
        results = {"minicnn": [], other: []}
        for r in range(args.rounds):
            order = ("minicnn", other) if r % 2 == 0 else (other, "minicnn")
            for which in order:
                res = run_worker(which, args, inputs)
                results[which].append(res)
                extra = f", epoch {res['epoch_s']:.1f} s, test acc {res['test_acc']:.4f}" if args.epoch else ""
                print(f"round {r + 1} {which:8s}: step {res['step_ms']:6.2f} ms, "
                      f"{res['images_per_s']:8.0f} img/s, peak RSS {res['rss_mib']:.0f} MiB{extra}",
                      flush=True)

    def med(which, key):
        return statistics.median(r[key] for r in results[which])

    if args.against:
        print_against(args, results, med)
        return
    print()
    print(f"machine: {machine()}; numpy {np.__version__}; python {platform.python_version()}; "
          f"torch format {args.torch_format}, threads {results['torch'][0]['threads']}")
    print(f"first-step loss on the shared weights: minicnn {results['minicnn'][0]['first_loss']:.6f}, "
          f"torch {results['torch'][0]['first_loss']:.6f}")
    rows = [("train step, batch 64 (ms)", "step_ms", False),
            ("inference, batch 1000 (images/s)", "images_per_s", True),
            ("peak RSS (MiB)", "rss_mib", False)]
    if args.epoch:
        rows += [("one epoch of MNIST (s)", "epoch_s", False),
                 ("test accuracy after it", "test_acc", None),
                 ("peak RSS with the epoch (MiB)", "rss_epoch_mib", False)]
    print(f"{'median of ' + str(args.rounds) + ' rounds':<34}{'minicnn':>10}{'PyTorch':>10}{'ratio':>8}")
    for label, key, inverse in rows:
        a, b = med("minicnn", key), med("torch", key)
        if inverse is None:
            print(f"{label:<34}{a:>10.4f}{b:>10.4f}")
            continue
        ratio = b / a if inverse else a / b
        print(f"{label:<34}{a:>10.2f}{b:>10.2f}{ratio:>7.2f}x")


def print_against(args, results, med):
    print(f"\nmachine: {machine()}; numpy {np.__version__}; python {platform.python_version()}")
    print(f"first-step loss: this checkout {results['minicnn'][0]['first_loss']:.6f}, "
          f"{args.against} {results['baseline'][0]['first_loss']:.6f}")
    print(f"{'median of ' + str(args.rounds) + ' rounds':<34}{'this':>10}{'other':>10}{'ratio':>8}")
    for label, key, inverse in (("train step, batch 64 (ms)", "step_ms", False),
                                ("inference, batch 1000 (images/s)", "images_per_s", True),
                                ("peak RSS (MiB)", "rss_mib", False)):
        a, b = med("minicnn", key), med("baseline", key)
        ratio = b / a if inverse else a / b
        print(f"{label:<34}{a:>10.2f}{b:>10.2f}{ratio:>7.2f}x")


if __name__ == "__main__":
    main()
