"""benchmarks/profile_cpu.py, floors.py and compare_cpu.py: the floors' model counts what
its docstring says, and both scripts run to their tables (minicnn only: no TF, no torch;
a few steps, no timing checked)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend
from minicnn.ops import conv2d, pooling

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
F32 = 4


@pytest.fixture
def bench(monkeypatch):
    """The benchmarks folder importable, as it is for the scripts themselves."""
    monkeypatch.syspath_prepend(str(BENCH))
    import compare_cpu
    import floors
    return floors, compare_cpu


def run(script, *args):
    env = {**os.environ, "MINICNN_NUMBA": "0"}  # no Numba compile: seconds whatever its cache holds
    res = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.splitlines()


def test_the_conv_model_counts_the_gemms_and_the_patch_matrix(bench):
    floors, _ = bench
    backend.set_backend("numpy")
    rng = np.random.default_rng(0)
    x = rng.random((2, 6, 6, 3), dtype=np.float32)
    w = rng.random((3, 3, 3, 4), dtype=np.float32)
    args = (x, w, (1, 1), (0, 0, 0, 0))
    y, ctx = conv2d.forward(*args, training=True)
    p, k, f = 2 * 4 * 4, 3 * 3 * 3, 4          # patch rows, patch length, filters
    flops, nbytes, how = floors.op_cost("conv2d.forward", args, {"training": True}, (y, ctx))
    assert (flops, how) == (2 * p * k * f, "conv")
    assert nbytes == x.nbytes + w.nbytes + y.nbytes + 2 * p * k * F32

    dy = rng.random(y.shape, dtype=np.float32)
    dx, dw = result = conv2d.backward(dy, ctx, w)
    flops, nbytes, _ = floors.op_cost("conv2d.backward", (dy, ctx, w), {}, result)
    rebuilt = p * k * F32 + x.nbytes if ctx.patches is None else 0
    assert flops == 2 * (2 * p * k * f)          # dW = P^T dY and dP = dY W^T
    assert nbytes == dy.nbytes + w.nbytes + dw.nbytes + p * k * F32 + rebuilt + 2 * p * k * F32 + dx.nbytes


def test_the_generic_model_reads_inputs_once_and_skips_a_carried_input(bench):
    floors, _ = bench
    backend.set_backend("numpy")
    x = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    args = (x, (2, 2), (2, 2), (0, 0, 0, 0))
    y, ctx = result = pooling.forward(*args, training=True)
    flops, nbytes, how = floors.op_cost("pooling.forward", args, {}, result)
    assert (flops, how) == (0, "generic")
    assert nbytes == x.nbytes + y.nbytes + ctx.argmax.nbytes
    # an in-place op's top-level result is a write; a context carrying x along is not
    assert floors.generic_bytes((x, x), {}, x) == 2 * x.nbytes
    assert floors.generic_bytes((x,), {}, (y, (x, y))) == x.nbytes + y.nbytes


def test_the_optimizer_model_writes_back_all_but_the_gradient(bench):
    floors, _ = bench
    p, g, v = (np.zeros(10, np.float32) for _ in range(3))
    flops, nbytes, how = floors.op_cost("optimizers.rmsprop_update", (p, g, v, 1e-3, 0.9, 1e-7), {}, None)
    assert (flops, nbytes, how) == (0, 5 * 10 * F32, "update")


def test_floor_is_the_larger_of_compute_and_memory(bench):
    floors, _ = bench
    rates = {"gemm": 100.0, "bw": 10.0}           # GFLOP/s, GB/s
    assert floors.floor_ms(2e8, 1e6, rates) == pytest.approx((2.0, "flop"))
    assert floors.floor_ms(1e6, 1e8, rates) == pytest.approx((10.0, "mem"))


def test_every_worker_gets_the_same_malloc_setting_unless_told_not_to(bench):
    _, compare = bench
    args = compare.parse_args(["--sides", "minicnn"])
    env = compare.worker_env(args, "tf", "quiet")
    assert {k: env[k] for k in compare.MALLOC} == {"MALLOC_MMAP_THRESHOLD_": "1000000000",
                                                   "MALLOC_TRIM_THRESHOLD_": "1000000000"}
    assert compare.worker_env(args, "minicnn", "1-thread")["MINICNN_NUM_THREADS"] == "1"
    args = compare.parse_args(["--default-malloc"])
    assert not set(compare.MALLOC) & set(compare.worker_env(args, "torch", "quiet"))
    with pytest.raises(SystemExit):
        compare.parse_args(["--sides", "tf,jax"])


def test_profile_of_inference_shows_conv_and_pool_as_one_op():
    out = run("profile_cpu.py", "--inference", "--batch", "16", "--steps", "2", "--warmup", "1", "--no-floors")
    assert out[0].startswith("minicnn predict_on_batch (batch 16): median ")
    ops = [line.split()[0] for line in out if line.startswith(("conv2d", "pooling", "dense"))]
    # predict pairs each Conv2D with the MaxPooling2D after it: no pooling op of its own
    assert sorted(ops) == ["conv2d_bias_act.forward"] * 3 + ["dense.forward"] * 2


def test_profile_prints_the_profile_then_the_floors_sorted_by_gap():
    out = run("profile_cpu.py", "--steps", "2", "--warmup", "1", "--bandwidth-mb", "8", "--gemm-n", "128")
    assert out[0].startswith("minicnn step (batch 64): median ")
    def table_after(first):
        head = next(i for i in range(first, len(out)) if out[i].startswith("op "))
        return out[head + 1:next(i for i in range(head, len(out)) if out[i].startswith("(all ops)"))]

    start = next(i for i, line in enumerate(out) if line.startswith("floors: bandwidth "))
    profile, table = table_after(0), table_after(start)
    assert sorted(line.split()[0] for line in profile) == sorted(line.split()[0] for line in table)
    # each Conv2D trains with the MaxPooling2D after it as one op: no pooling op of its own
    assert sum(line.startswith(("conv2d_bias_act.", "dense.")) for line in table) == 3 * 2 + 2 * 2
    assert not any(line.startswith("pooling.") for line in table)
    gaps = [float(line.split()[-2]) for line in table]
    assert gaps == sorted(gaps, reverse=True)


def test_compare_runs_the_minicnn_side_and_prints_the_table():
    out = run("compare_cpu.py", "--sides", "minicnn", "--rounds", "1", "--steps", "2", "--warmup", "1",
              "--infer-reps", "1")
    text = "\n".join(out)
    assert out[0].startswith("round 1 minicnn  quiet")
    assert "malloc: MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000 in every worker" in text
    assert "first-step loss on the shared weights: minicnn 2.3" in text
    assert any(line.startswith("train step, batch 64 (ms)") for line in out)
