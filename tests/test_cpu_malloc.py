"""minicnn.backend.cpu_malloc: glibc's thresholds fixed by the CPU runtime, unless the user chose."""
import os
import subprocess
import sys

import pytest

from minicnn.backend import cpu_malloc

# In a fresh process: start the CPU runtime, then allocate, touch and free a 64 MiB array
# ten times. glibc maps an array that big afresh each time by default (its adaptive threshold
# stops at 32 MiB), so every round faults its pages in again; tuned, rounds 2..10 reuse the heap.
CHILD = """
import resource, numpy as np
from minicnn.backend.cpu import runtime
tuned = runtime().malloc_tuned
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def round_():
    a = np.empty(64 << 20, np.uint8); a[::4096] = 1; del a
round_()
before = faults()
for _ in range(9):
    round_()
print(tuned, faults() - before)
"""


def _child(tune):
    env = {k: v for k, v in os.environ.items() if k not in cpu_malloc._USER_SETTINGS and k != "GLIBC_TUNABLES"}
    env["MINICNN_TUNE_MALLOC"] = tune
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tuned, faults = out.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(cpu_malloc._glibc() is None, reason="glibc's malloc only")
def test_the_tuned_heap_reuses_big_arrays_instead_of_faulting_them_in_again():
    tuned, tuned_faults = _child("1")
    untouched, default_faults = _child("0")
    assert tuned and not untouched
    assert default_faults > 0                       # 9 rounds of fresh pages
    assert tuned_faults * 4 <= default_faults, (tuned_faults, default_faults)


def test_a_users_own_malloc_setting_wins():
    assert not cpu_malloc.user_chose({})
    assert cpu_malloc.user_chose({"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert cpu_malloc.user_chose({"MALLOC_ARENA_MAX": "2"})
    assert cpu_malloc.user_chose({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert not cpu_malloc.user_chose({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})


def test_turned_off_or_chosen_by_the_user_nothing_changes(monkeypatch):
    from minicnn import config
    with config.override(MINICNN_TUNE_MALLOC=False):
        assert cpu_malloc.tune() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert cpu_malloc.tune() is False
