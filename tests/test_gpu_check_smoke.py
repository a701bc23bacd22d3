"""benchmarks/gpu_check.sh keeps working without a GPU: its --emulator smoke mode runs every
part on the CUDA emulator at tiny sizes (what needs a GPU says SKIP), and its summary says
PASS/FAIL/SKIP per part."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("g++") is None or shutil.which("bash") is None,
                                reason="the emulator needs g++ (and the script bash)")


def run_check(tmp_path, *args):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, MINICNN_EMU_ORDER="forward")
    proc = subprocess.run(["bash", str(SCRIPT), "--emulator", *args], capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)
    summary = (tmp_path / "gpu_check_summary.txt").read_text()
    statuses = dict(re.findall(r"^\(([a-f])\) (PASS|FAIL|SKIP) ", summary, re.M))
    return proc, summary, statuses


def test_smoke_mode_runs_every_part_on_the_emulator(tmp_path):
    proc, summary, statuses = run_check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert statuses["a"] == "SKIP" and statuses["b"] == "SKIP"   # need a real GPU
    assert statuses["c"] == statuses["d"] == statuses["f"] == "PASS", summary
    assert statuses["e"] in ("PASS", "SKIP"), summary          # SKIP: no MNIST on this machine
    assert re.search(r"^gpu_check: PASS \(\d PASS, 0 FAIL, \d SKIP", summary, re.M), summary
    assert "emulator matches NumPy at batch 2, 4" in summary
    # no gradient copies: the GEMMs and bias sums write into the flat gradient buffer
    assert re.search(r"launches \d+, gemms \d+, copies 0, allocations \d+, read-backs 0", summary), summary
    assert (tmp_path / "gpu_check.log").read_text().count("==> (") == 6


def test_a_spent_budget_fails_every_part_and_the_run(tmp_path):
    proc, summary, statuses = run_check(tmp_path, "--budget", "0", "--data-dir", str(tmp_path))
    assert proc.returncode != 0
    assert [statuses[p] for p in "acdef"] == ["FAIL"] * 5, summary
    assert "not run: the 0s budget is spent" in summary
    assert re.search(r"^gpu_check: FAIL \(0 PASS, 5 FAIL, 1 SKIP", summary, re.M), summary
