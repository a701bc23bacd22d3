"""The workers of compare_cpu.py: one framework, one fresh process, one JSON line out.

    python benchmarks/cpu_workers.py '{"side": "tf", "inputs": "/tmp/x/inputs.npz", ...}'

compare_cpu.py starts this file in the interpreter of each side (``--tf-python``,
``--torch-python``), so it imports only NumPy and the standard library at the
top, and each framework inside its own worker function. The inputs file holds
the batch, the inference batch and the initial weights in Keras's layouts
(:func:`make_inputs`); every side starts from exactly these numbers, so the
first-step losses must agree (to float32 rounding).

Each worker: builds the book's model with the shared weights, compiles it
with Keras's RMSprop (lr 1e-3, rho 0.9, epsilon 1e-7) and categorical
cross-entropy on softmax, takes one step (its loss is the check), ``warmup``
untimed steps, ``steps`` timed ones (median), then ``infer_reps`` timed
predictions of the batch of 1000 (median), and with ``epoch`` one epoch of
real MNIST. It prints ``{"first_loss", "step_ms", "infer_ms", "images_per_s",
"rss_mib", "threads", ...}`` as its last line.
"""
import gzip
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WEIGHT_KEYS = ("c1", "b1", "c2", "b2", "c3", "b3", "d1", "b4", "d2", "b5")


# ----------------------------------------------------------------------------
# shared inputs and measurements
# ----------------------------------------------------------------------------
def glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def make_inputs(path, batch, infer_batch, seed=0):
    """Random batch, inference batch and initial weights (Keras layouts) into ``path`` (.npz)."""
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


def mnist_float(cfg):
    """Real MNIST as float32 NHWC / 255 and one-hot labels (x_train, y_train, x_test, y_test)."""
    xtr, ytr, xte, yte = load_mnist(cfg["mnist"])
    eye = np.eye(10, dtype=np.float32)
    return (xtr.reshape(-1, 28, 28, 1).astype(np.float32) / 255, eye[ytr],
            xte.reshape(-1, 28, 28, 1).astype(np.float32) / 255, eye[yte])


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def timed(fn, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def measure(cfg, first_loss, step, infer, n_infer):
    """The common part of every worker: warm-up, timed steps, timed inference, RSS."""
    for _ in range(cfg["warmup"]):
        step()
    steps = timed(step, cfg["steps"])
    infer()  # the first prediction builds what inference needs (excluded)
    inf = statistics.median(timed(infer, cfg["infer_reps"]))
    return {"first_loss": float(first_loss), "step_ms": statistics.median(steps) * 1e3,
            "infer_ms": inf * 1e3, "images_per_s": n_infer / inf, "rss_mib": peak_rss_mib()}


# ----------------------------------------------------------------------------
# minicnn: train_on_batch / predict, as a user writes it
# ----------------------------------------------------------------------------
def worker_minicnn(cfg, inp):
    sys.path.insert(0, os.environ.get("MINICNN_BENCH_ROOT", ROOT))  # --against: the other checkout
    from minicnn import backend
    from minicnn.utils import set_random_seed
    from train_mnist import build_model
    backend.set_backend("numpy")

    def build():
        model = build_model()  # the book's model, as train_mnist.py builds it
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
        model.set_weights([inp[k] for k in WEIGHT_KEYS])
        return model

    model = build()
    x, xi = inp["x"], inp["xi"]
    y = np.eye(10, dtype=np.float32)[inp["labels"]]
    first_loss = model.train_on_batch(x, y)[0]
    out = measure(cfg, first_loss, lambda: model.train_on_batch(x, y),
                  lambda: model.predict(xi, batch_size=len(xi)), len(xi))
    try:
        from minicnn.backend import cpu_threads
        out["threads"] = cpu_threads.num_threads()
    except (ImportError, AttributeError):
        out["threads"] = os.environ.get("MINICNN_NUM_THREADS", "default")
    if cfg["epoch"]:
        time_epoch(build, set_random_seed, cfg, out)
    return out


# ----------------------------------------------------------------------------
# PyTorch: the same model and optimizer written out by hand
# ----------------------------------------------------------------------------
def worker_torch(cfg, inp):
    import torch
    import torch.nn as nn
    if cfg["threads"]:   # intra-op, and inter-op as for TF (before any parallel work)
        torch.set_num_threads(cfg["threads"])
        torch.set_num_interop_threads(cfg["threads"])
    torch.manual_seed(0)
    cl = cfg["torch_format"] == "channels_last"

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
        # Keras's RMSprop: rho 0.9 (PyTorch's alpha), lr 1e-3, epsilon 1e-7
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

    xi = to_nchw(inp["xi"])

    def infer():
        with torch.inference_mode():
            return torch.softmax(m(xi), 1).numpy()

    first_loss = step()[0]
    out = measure(cfg, first_loss, step, infer, xi.shape[0])
    out["threads"] = torch.get_num_threads()
    if cfg["epoch"]:
        xtr, ytr, xte, yte = mnist_float(cfg)
        xtr, xte = to_nchw(xtr), to_nchw(xte)
        ytr = torch.from_numpy(ytr.argmax(1).astype(np.int64))
        yte = torch.from_numpy(yte.argmax(1).astype(np.int64))
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
# Keras 3 on TensorFlow: the same Keras code as minicnn's
# ----------------------------------------------------------------------------
def worker_tf(cfg, inp):
    """Keras's fastest public per-batch API on the CPU: ``train_on_batch`` on tensors.

    ``train_on_batch`` calls the model's compiled ``train_function`` (a
    tf.function, traced once) with one batch and returns the logs as floats
    (one sync, like minicnn's). The batch is converted to tf tensors once, as a
    tf.data pipeline would deliver it, so no step pays a NumPy conversion.
    Keras's "auto" jit_compile means no XLA on a CPU-only machine; ``tf_jit``
    turns XLA on. Inference: ``predict_on_batch`` (the compiled predict
    function, NumPy out), or with ``tf_infer="call"`` ``model(x, training=False)``."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    if cfg["threads"]:  # before any op runs, else TF refuses
        tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(cfg["threads"])
    import keras
    from keras import layers

    def build():
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3, rho=0.9, epsilon=1e-7),
                      loss="categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=bool(cfg.get("tf_jit")))
        model.set_weights([inp[k] for k in WEIGHT_KEYS])  # Keras layouts: no conversion
        return model

    model = build()
    x = tf.constant(inp["x"])
    y = tf.constant(np.eye(10, dtype=np.float32)[inp["labels"]])
    xi = tf.constant(inp["xi"])
    if cfg.get("tf_infer") == "call":
        def infer():
            return model(xi, training=False).numpy()
    else:
        def infer():
            return model.predict_on_batch(xi)
    first_loss = model.train_on_batch(x, y)[0]
    out = measure(cfg, first_loss, lambda: model.train_on_batch(x, y), infer, int(xi.shape[0]))
    out["threads"] = (f"intra {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
                      f"inter {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}")
    if cfg["epoch"]:
        time_epoch(build, keras.utils.set_random_seed, cfg, out)
    return out


def time_epoch(build, set_seed, cfg, out):
    """One epoch of real MNIST through a Keras-style fit (minicnn's or Keras's), its wall time,
    the test accuracy and the peak RSS after it, into ``out``."""
    xtr, ytr, xte, yte = mnist_float(cfg)
    set_seed(0)  # the shuffle order: a reproducible epoch
    model = build()
    t0 = time.perf_counter()
    model.fit(xtr, ytr, epochs=1, batch_size=64, verbose=0)
    out["epoch_s"] = time.perf_counter() - t0
    out["test_acc"] = float(model.evaluate(xte, yte, batch_size=1000, verbose=0)[1])
    out["rss_epoch_mib"] = peak_rss_mib()


WORKERS = {"minicnn": worker_minicnn, "torch": worker_torch, "tf": worker_tf}


def main():
    cfg = json.loads(sys.argv[1])
    inp = dict(np.load(cfg["inputs"]))
    print(json.dumps(WORKERS[cfg["side"]](cfg, inp)))


if __name__ == "__main__":
    main()
