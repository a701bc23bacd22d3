"""The CPU device: the worker pool, BLAS scoping, reused memory, compiled kernels."""
import threading

import numpy as np
import pytest

from minicnn import config
from minicnn.backend import cpu_scratch, cpu_threads
from minicnn.backend.cpu import runtime
from minicnn.ops import conv2d


@pytest.fixture
def three_threads(monkeypatch):
    old = cpu_threads.num_threads()
    cpu_threads.set_num_threads(3)
    yield
    cpu_threads.set_num_threads(old)


def test_worker_errors_reach_the_caller(three_threads, monkeypatch):
    monkeypatch.setattr(cpu_threads, "PARTS_PER_THREAD", 2)

    def fn(lo, hi, part):
        if part == 2:
            raise RuntimeError("boom in part 2")
    with pytest.raises(RuntimeError, match="boom in part 2"):
        cpu_threads.parallel(9, fn)
    seen = []
    parts = cpu_threads.parallel(9, lambda lo, hi, p: seen.append((p, lo, hi)))  # the pool still works
    assert parts == cpu_threads.plan(9)[1] == 6  # 3 threads, 2 parts each
    assert sorted(seen) == [(k,) + b for k, b in enumerate(cpu_threads.split(9, 6))]


def test_parts_are_fixed_whoever_runs_them(three_threads, monkeypatch):
    monkeypatch.setattr(cpu_threads, "PARTS_PER_THREAD", 1)
    seen = []
    assert cpu_threads.parallel(9, lambda lo, hi, p: seen.append((p, lo, hi))) == 3
    assert sorted(seen) == [(0, 0, 3), (1, 3, 6), (2, 6, 9)]
    assert cpu_threads.plan(2) == (2, 2) and cpu_threads.plan(1) == (1, 1)


def test_split_is_even_and_ordered():
    assert cpu_threads.split(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert cpu_threads.split(2, 2) == [(0, 1), (1, 2)]


def test_blas_threads_are_restored():
    blas = cpu_threads._get_blas()
    if not blas.controllable:
        pytest.skip("no controllable OpenBLAS in this NumPy")
    before = [get() for get, _ in blas._fns]
    x = np.ones((64, 8, 8, 4), np.float32)
    w = np.ones((3, 3, 4, 8), np.float32)
    conv2d.forward(x, w, (1, 1), (0, 0, 0, 0))
    assert [get() for get, _ in blas._fns] == before


def test_scratch_reuse_and_bounds(monkeypatch):
    cpu_scratch.clear()
    # fill=...: one array per exact shape, made once and filled once
    a = cpu_scratch.scratch("pad", (4, 4), np.float32, fill=0)
    a[0, 0] = 5
    assert cpu_scratch.scratch("pad", (4, 4), np.float32, fill=0) is a and a[0, 0] == 5
    assert cpu_scratch.scratch("pad", (4, 5), np.float32, fill=0) is not a
    # no fill: views of one growing buffer per purpose and dtype
    b = cpu_scratch.scratch("t", (4, 4), np.float32)
    c = cpu_scratch.scratch("t", (3, 5), np.float32)
    assert c.shape == (3, 5) and c.flags.c_contiguous and np.shares_memory(b, c)
    assert not np.shares_memory(b, cpu_scratch.scratch("u", (4, 4), np.float32))
    assert not np.shares_memory(b, cpu_scratch.scratch("t", (4, 4), np.float64))
    big = cpu_scratch.scratch("t", (10, 10), np.float32)
    assert big.shape == (10, 10) and not np.shares_memory(big, b)
    # least recently used arrays go beyond MAX_SCRATCH_BYTES
    monkeypatch.setattr(cpu_scratch, "MAX_SCRATCH_BYTES", 100)
    cpu_scratch.scratch("big", (40,), np.float32)  # 160 bytes: evicts everything older
    assert cpu_scratch.scratch("pad", (4, 4), np.float32, fill=0) is not a
    cpu_scratch.clear()


def test_scratch_is_per_thread():
    mine = cpu_scratch.scratch("t", (8,), np.float32)
    other = []
    t = threading.Thread(target=lambda: other.append(cpu_scratch.scratch("t", (8,), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, other[0])


def test_kernels_follow_the_settings():
    cpu = runtime()
    x = np.zeros(3, np.float32)
    with config.override(MINICNN_CPU_FAST=False):
        assert not cpu.uses_kernels(x)
    assert not cpu.uses_kernels(x.astype(np.float64)) and not cpu.uses_kernels(np.zeros((3, 3), np.float32).T)
    assert cpu.uses_kernels(x) == cpu.kernels


def test_ops_work_in_a_forked_child():
    """After fork() the child cannot use the parent's thread pools: it must
    still compute (on the reference paths), not hang."""
    import multiprocessing as mp
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    x = np.random.default_rng(13).standard_normal((64, 13, 13, 32)).astype(np.float32)
    w = np.ones((3, 3, 32, 8), np.float32)
    want = conv2d.forward(x, w, (1, 1), (0, 0, 0, 0))[0]  # the parent's pools are warm now
    with mp.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_child_conv, (x, w)).get(timeout=60)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def _child_conv(x, w):
    return conv2d.forward(x, w, (1, 1), (0, 0, 0, 0))[0]


def test_openmp_workers_spin_briefly_unless_the_user_chose():
    """Numba's libgomp reads GOMP_SPINCOUNT when it loads: the CPU runtime sets a short spin
    (a core shared with another process is not burnt waiting), a value already set wins."""
    import os
    import subprocess
    import sys
    code = ("import os; from minicnn.backend.cpu import runtime; runtime(); "
            "print(os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    expected = "1000" if runtime().numba is not None else "None"
    assert out.stdout.split()[-1] == expected, out.stderr
    env["GOMP_SPINCOUNT"] = "77"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-1] == "77", out.stderr


def test_a_kernels_cache_name_changes_with_its_parts_code():
    """Numba's disk cache does not look at the functions a kernel calls: the runtime puts a
    digest of its parts' code into the kernel's name, so an edited part means a new entry."""
    from minicnn.backend.cpu import parts_stamp

    class Jitted:   # what a Numba dispatcher shows of itself: its plain function
        def __init__(self, fn):
            self.py_func = fn

    def part(a):
        return a + 1

    def edited_part(a):
        return a + 2

    kernel = eval("lambda a: part(a)", {})   # part read as a global, as a kernel reads its parts
    first = parts_stamp(kernel, {"part": Jitted(part)})
    assert first.startswith("_") and len(first) == 13
    assert parts_stamp(kernel, {"part": Jitted(part)}) == first            # stable
    assert parts_stamp(kernel, {"part": Jitted(edited_part)}) != first     # follows the code
    assert parts_stamp(kernel, {"other": Jitted(part)}) == ""              # not called: no part
