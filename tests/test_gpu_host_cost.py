"""benchmarks/gpu_host_cost.py: the CUDA path's training step counted on the CPU (no GPU work)."""
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_host_cost.py"
LINE = re.compile(r"^(eager|planned) step: (\d+) device operations, (\d+) allocations, "
                  r"(\d+) syncs, (\d+) us host$")


@pytest.fixture(scope="module")
def host_cost():
    spec = importlib.util.spec_from_file_location("gpu_host_cost", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_last_line_has_the_agreed_format(host_cost, capsys):
    assert host_cost.main(["--steps", "4", "--warmup", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    match = LINE.match(lines[-1])
    assert match, lines[-1]
    label = "planned" if host_cost.plan_switch() is not None else "eager"
    assert match.group(1) == label
    assert LINE.match(lines[-2] if label == "planned" else lines[-1]).group(1) == "eager"


def test_a_step_is_counted_at_the_device_seam(host_cost):
    per_step, steady, by_name, us, wall = host_cost.measure(batch_size=8, steps=3, warmup=1)
    assert steady and len(us) == len(wall) == 3 and min(us) > 0
    # one training step of the book model: every layer's kernels, 2 GEMMs per conv/dense
    # layer and direction, one optimizer launch for every weight, the training set on the
    # device (one host->device copy: the batch's indices; two gathers), nothing read back
    assert per_step["launches"] == sum(v for k, v in by_name.items()
                                       if not k.startswith(("cupy ", "copy ", "cublas", "cudaMem")))
    assert by_name["cublasSgemm"] == per_step["gemms"] >= 5 * 2
    assert by_name["rmsprop_update"] == 1 and by_name["cupy take"] == 2
    assert per_step["h2d"] == 1 and per_step["syncs"] == 0 and per_step["d2h"] == 0
    assert per_step["copies"] == 0   # the gradients are written into the flat buffer, not copied
    assert per_step["launches"] >= 5   # at least one kernel per layer with weights


def test_the_stand_in_counts_reads_and_refuses_what_it_does_not_model(host_cost):
    fake = host_cost.FakeCupy()
    before = host_cost.COUNTS.snapshot()
    a = fake.asarray(np.ones((2, 3), np.float32))           # a host->device copy
    total = (a + a).sum()                                     # two CuPy kernels
    assert float(total) == 12.0                               # a sync
    after = dict(zip(host_cost.KINDS, np.subtract(host_cost.COUNTS.snapshot(), before)))
    assert after["h2d"] == 1 and after["cupy_ops"] == 2 and after["syncs"] == 1
    with pytest.raises(AttributeError, match="counting stand-in for CuPy has no 'fft'"):
        fake.fft
    with pytest.raises(ValueError, match="do not chain"):
        fake.matmul(fake.empty((2, 3)), fake.empty((2, 3)))
