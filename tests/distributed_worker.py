"""The worker script of tests/test_distributed_mpi.py: ``mpirun -n 2 python tests/distributed_worker.py MODE OUT``.

Modes (each worker writes its results under folder OUT, the test reads them):

- ``train``: the book's MNIST model on small random data, one epoch of ``--steps``
  global batches per batch size in ``--batches`` (e.g. 64,65), RMSprop, shuffled, with
  DistributedOptimizer and BroadcastGlobalVariablesCallback; each rank starts from its
  own random weights (seed + rank), so equal results prove the broadcast. Writes
  ``rank{r}_b{B}.npz`` (weights), ``rank{r}_b{B}.json`` (History, evaluate) and, rank 0,
  ``steps_b{B}.npz`` (the weights and optimizer state after each step).
  :func:`train` with one process is the reference the test compares with.
- ``die`` / ``kill`` / ``hang``: rank 1 ends itself with os._exit(3) / SIGKILL, or sleeps,
  at its third training batch; the job must end with an error naming rank 1.
- ``mismatch``: rank 1 builds a Dense(32) where rank 0 has Dense(64):
  broadcast_weights must fail on every rank, naming that weight.
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere: the checkout's minicnn

import minicnn.distributed as hvd  # noqa: E402
from minicnn import callbacks, layers, models, optimizers  # noqa: E402
from minicnn.utils import get_rng, set_random_seed  # noqa: E402

SEED = 7


def book_model(dense_units=64):
    """The book's MNIST CNN (train_mnist.py's)."""
    return models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(dense_units, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def data(n):
    """n random images and one-hot labels, the same in every process."""
    rng = np.random.default_rng(1234)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y


def compiled_model(distributed):
    model = book_model()
    opt = optimizers.RMSprop()
    model.compile(optimizer=hvd.DistributedOptimizer(opt) if distributed else opt,
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class Snapshots(callbacks.Callback):
    """The weights and the optimizer's state after each training step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append((self.model.get_weights(), self.model.optimizer.state_arrays()))


def train(batch, steps, rank=0, distributed=True, extra_callbacks=(), verbose=0):
    """(model, History, evaluate's [loss, accuracy], Snapshots) after one shuffled epoch of
    ``steps`` global batches of ``batch`` samples; ``distributed=False``: one process."""
    set_random_seed(SEED + rank)   # each worker its own initial weights; rank 0's are the reference's
    x, y = data(batch * steps)
    model = compiled_model(distributed)
    snapshots = Snapshots()
    fit_callbacks = [callbacks.BroadcastGlobalVariablesCallback(0)] if distributed else []
    history = model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=verbose,
                        callbacks=fit_callbacks + [snapshots, *extra_callbacks])
    results = model.evaluate(x[:2 * batch + 3], y[:2 * batch + 3], batch_size=batch, verbose=verbose)
    return model, history, results, snapshots


def shuffled_order(batch, steps):
    """The sample order of train's epoch (rank 0's): fit draws it from the seeded generator
    right after the model's initial weights."""
    set_random_seed(SEED)
    book_model()
    return get_rng().permutation(batch * steps)


def save_snapshots(path, snapshots):
    arrays = {}
    for k, (weights, state) in enumerate(snapshots.steps):
        arrays.update({f"w{k}_{i}": a for i, a in enumerate(weights)})
        arrays.update({f"s{k}_{i}": a for i, a in enumerate(state)})
    np.savez(path, **arrays)


def load_snapshots(path):
    """[(weights, optimizer state)] per step, as save_snapshots wrote them."""
    f = np.load(path)
    steps = []
    for k in range(1 + max(int(name[1:].split("_")[0]) for name in f.files)):
        def part(p):
            return [f[f"{p}{k}_{i}"] for i in range(sum(n.startswith(f"{p}{k}_") for n in f.files))]
        steps.append((part("w"), part("s")))
    return steps


class Fault(callbacks.Callback):
    """Rank 1 dies, is killed or hangs at its third training batch."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def on_train_batch_begin(self, batch, logs=None):
        if hvd.rank() != 1 or batch != 2:
            return
        if self.how == "die":
            os._exit(3)
        if self.how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(600)   # hang


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["train", "die", "kill", "hang", "mismatch"])
    parser.add_argument("out")
    parser.add_argument("--batches", default="64")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    hvd.init()
    out, r = Path(args.out), hvd.rank()
    if args.mode == "train":
        for batch in map(int, args.batches.split(",")):
            model, history, results, snapshots = train(batch, args.steps, r, verbose=1)
            np.savez(out / f"rank{r}_b{batch}.npz", *model.get_weights())
            if r == 0:
                save_snapshots(out / f"steps_b{batch}.npz", snapshots)
            (out / f"rank{r}_b{batch}.json").write_text(json.dumps({"history": history.history,
                                                                    "evaluate": results}))
    elif args.mode == "mismatch":
        set_random_seed(SEED)
        model = book_model(dense_units=32 if r == 1 else 64)
        hvd.broadcast_weights(model, root=0)
    else:
        train(32, 6, r, extra_callbacks=[Fault(args.mode)])
    (out / f"rank{r}.done").write_text("done")


if __name__ == "__main__":
    main()
