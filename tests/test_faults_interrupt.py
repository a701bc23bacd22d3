"""Ctrl-C during training, and thread counts set in one thread, used in another.

1. KeyboardInterrupt may reach the CPU ops' worker pool at any point: while
   it starts its workers, during the caller's own part, while it waits for
   the workers, between ops. Once the interrupt has reached the user, the
   next op must run and give the right answer (an interrupt that landed in
   the pool's wait used to leave a worker dead and the next op waiting for
   it forever). These tests run in child processes with a timeout, so that a
   deadlock fails the test instead of hanging it.
2. Numba's thread count belongs to the calling thread, so the count that
   ``cpu_threads.set_num_threads`` asks for must be applied in whichever
   thread runs the op.
"""
import importlib.util
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend import cpu as cpu_device, cpu_threads
from minicnn.ops import bias_act, conv2d, pooling

REPO = Path(__file__).resolve().parents[1]
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
TIMEOUT_S = 60  # per child process: a deadlock fails the test after this long

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix",
                                reason="sends SIGINT to child processes (POSIX)")


def _child_env(numba):
    # numba: "python-gemm" keeps the compiled kernels but runs the GEMMs on the
    # Python worker pool (MINICNN_NUMBA_GEMM=0), the path that once deadlocked
    env = dict(os.environ, MINICNN_BACKEND="numpy", MINICNN_NUM_THREADS="2",
               MINICNN_NUMBA="1" if numba else "0", PYTHONPATH=str(REPO),
               MINICNN_NUMBA_GEMM="0" if numba == "python-gemm" else "1")
    env.pop("MINICNN_CPU_FAST", None)
    return env


def _run_child(tmp_path, code, numba, during=None):
    """Run ``code`` in a fresh Python; ``during(proc)``, if given, runs meanwhile.
    Returns stdout; fails on a non-zero exit or after TIMEOUT_S (a hang)."""
    script = tmp_path / "child.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=str(REPO),
                            env=_child_env(numba), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        if during is not None:
            during(proc, deadline)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the child hung (deadlock?) for {TIMEOUT_S} s\nstdout:\n{out}\nstderr:\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err[-3000:]}"
    return out


# ----------------------------------------------------------------------------
# 1a, 1b: the pool alone, in a child with 3 threads
# ----------------------------------------------------------------------------
POOL_PRELUDE = r"""
import dis, os, signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if SIGINT was ignored for us
from minicnn.backend import cpu_threads as ct

ct.set_num_threads(3)
MAIN = threading.main_thread()


def pool_works():
    # each of the 3 threads must run one part (the barrier waits for all 3):
    # the pool is in use, not its serial fallback for a busy pool; and every
    # part is over when parallel() returns, though the workers' parts end last
    seen, barrier = [], threading.Barrier(3)

    def fn(lo, hi, k):
        barrier.wait(5)
        if threading.current_thread() is not MAIN:
            time.sleep(0.001)
        seen.append((k, lo, hi))
    assert ct.parallel(9, fn) == 3
    assert sorted(seen) == [(k,) + b for k, b in enumerate(ct.split(9, 3))], seen
"""


# 1a. SIGINT sent at chosen moments
POOL_CHILD = POOL_PRELUDE + r'''

def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler in the main thread


def interrupted(name, caller, worker):
    # caller(): the caller's part; worker(first): each worker's part, once both have begun
    ran, begun, lock = [], threading.Event(), threading.Lock()
    workers = []

    def fn(lo, hi, k):
        if threading.current_thread() is MAIN:
            begun.wait(10)  # so that each thread takes one part
            caller()
        else:
            with lock:
                workers.append(k)
                first = len(workers) == 1
                if len(workers) == 2:
                    begun.set()
            begun.wait(10)
            worker(first)
            ran.append(k)
    try:
        ct.parallel(9, fn)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(name + ": the interrupt was lost")
    assert len(ran) == 2, (name, ran)  # the workers' parts were over before parallel() returned
    pool_works()
    print("ok", name, flush=True)


def nothing():
    pass


def ctrl_c_in_own_part():
    ctrl_c()
    time.sleep(1)  # interrupted


def in_wait(first):
    # the caller is waiting for the workers by now
    time.sleep(0.05)
    if first:
        ctrl_c()
    time.sleep(0.1)


def many_in_wait(first):
    for _ in range(5):
        time.sleep(0.02)
        if first:
            ctrl_c()
    time.sleep(0.05)


pool_works()
for _ in range(3):
    interrupted("in the wait", nothing, in_wait)
    interrupted("in the caller's part", ctrl_c_in_own_part, lambda first: time.sleep(0.1))
    interrupted("in the caller's part, then in the wait", ctrl_c_in_own_part, in_wait)
    interrupted("several in the wait", nothing, many_in_wait)
print("OK")
'''


def test_pool_survives_ctrl_c_at_chosen_moments(tmp_path):
    out = _run_child(tmp_path, POOL_CHILD, numba=False)
    assert out.splitlines()[-1] == "OK", out


# 1b. KeyboardInterrupt raised at each point of one call where Python could raise it
EVERY_STEP_CHILD = POOL_PRELUDE + r'''
FILE = ct.__file__


def slow_part(seen):
    def fn(lo, hi, k):
        time.sleep(0.001)
        seen.append((k, lo, hi))
    return fn


# Where CPython raises a pending signal's exception: at a function's start
# (RESUME), at a backward jump, right after a call returns, or inside a
# blocking wait (in cpu_threads: the lock taken by a `with` statement).
BEFORE = {"RESUME", "JUMP_BACKWARD", "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE",
          "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE", "BEFORE_WITH"}
AFTER = {"CALL", "CALL_FUNCTION_EX"}


def interrupt_at(step):
    # one parallel() call, with KeyboardInterrupt raised in the caller at the
    # step-th of those points in cpu_threads.py; returns whether it got there
    count, prev = [0], {}

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != FILE:
            return None
        frame.f_trace_opcodes = True
        op = dis.opname[frame.f_code.co_code[frame.f_lasti]] if event == "opcode" else event
        if op in BEFORE or prev.get(frame) in AFTER or event == "call":  # ("call": its RESUME)
            count[0] += 1
            if count[0] == step:
                raise KeyboardInterrupt(f"step {step}")  # (this also ends the tracing)
        prev[frame] = op
        return tracer
    sys.settrace(tracer)
    try:
        ct.parallel(9, slow_part([]))
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


pool_works()
step = 1
while interrupt_at(step):
    pool_works()
    pool_works()
    step += 1
assert step > 20, step
print("OK", step - 1)
'''


@pytest.mark.skipif(sys.version_info < (3, 11), reason="models CPython 3.11+ bytecode")
def test_pool_survives_ctrl_c_at_each_point_python_raises_it(tmp_path):
    """KeyboardInterrupt raised (by a trace function) in one parallel() call,
    at each point in turn where CPython may raise it in the caller: each time
    the pool must still work, all its threads (no busy flag left set, no
    worker lost, no part still running after the call)."""
    out = _run_child(tmp_path, EVERY_STEP_CHILD, numba=False)
    assert out.splitlines()[-1].startswith("OK"), out


# ----------------------------------------------------------------------------
# 1c. training and inference under repeated Ctrl-C
# ----------------------------------------------------------------------------
TRAIN_CHILD = r'''
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from minicnn import backend, layers, models
from minicnn import config
from minicnn.backend import cpu_threads
from minicnn.utils import set_random_seed

work = sys.argv[1]
backend.set_backend("numpy")
set_random_seed(0)
model = models.Sequential()
model.add(layers.Conv2D(16, (3, 3), activation="relu", input_shape=(28, 28, 1)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(32, (3, 3), activation="relu"))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Flatten())
model.add(layers.Dense(32, activation="relu"))
model.add(layers.Dense(10, activation="softmax"))
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.random((192, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]
assert cpu_threads.plan(64, 4)[0] == 2  # the batch is split over both threads
model.fit(x, y, batch_size=64, verbose=0)  # warm up (Numba compiles or loads its cache)
open(os.path.join(work, "ready"), "w").close()

caught = 0
while True:
    try:
        if os.path.exists(os.path.join(work, "stop")):
            break
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        model.predict(x, batch_size=96)
    except KeyboardInterrupt:
        caught += 1
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late interrupt must not hit the checks below

history = model.fit(x[:128], y[:128], batch_size=64, epochs=2, verbose=0)
assert np.isfinite(history.history["loss"]).all(), history.history
p = model.predict(x, batch_size=96)
assert np.array_equal(p, model.predict(x, batch_size=96))  # same bits, same thread count
with config.override(MINICNN_CPU_FAST=False):  # a fresh computation: the reference code
    np.testing.assert_allclose(p, model.predict(x, batch_size=96), rtol=1e-4, atol=1e-6)
print("OK", caught)
'''

SIGNALS = 24


def _ctrl_c_repeatedly(proc, deadline, work):
    """Wait for the child to be ready, then SIGINT it SIGNALS times, 50-150 ms apart."""
    ready, stop = work / "ready", work / "stop"
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.02)
    rng = random.Random()
    for _ in range(SIGNALS):
        time.sleep(rng.uniform(0.05, 0.15))
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # let the last interrupt land before the child finishes
    stop.touch()


@pytest.mark.parametrize("numba", [False] + [pytest.param(v, marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba is not installed")) for v in (True, "python-gemm")],
    ids=["numpy", "numba", "numba-python-gemm"])
def test_training_survives_repeated_ctrl_c(tmp_path, numba):
    out = _run_child(tmp_path, TRAIN_CHILD, numba,
                     during=lambda proc, deadline: _ctrl_c_repeatedly(proc, deadline, tmp_path))
    last = out.splitlines()[-1].split()
    assert last[0] == "OK", out
    assert int(last[1]) >= SIGNALS // 2, out  # the interrupts did land (some may coalesce)


# ----------------------------------------------------------------------------
# 2. Numba's thread count, per calling thread
# ----------------------------------------------------------------------------
@pytest.mark.skipif(not cpu_device.runtime().kernels, reason="numba is not installed (or MINICNN_NUMBA=0)")
def test_numba_kernels_use_the_thread_count_in_any_thread(monkeypatch):
    """set_num_threads(1) reaches the kernels an op runs from a second Python
    thread (Numba's count is per thread), and the results agree with 2 threads."""
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba runs one thread here")
    used = []
    real = cpu_device._Kernel.__call__

    def recording(self, *args):
        result = real(self, *args)  # sets this thread's Numba count, then runs
        used.append(("kernel", numba.get_num_threads()))
        return result
    monkeypatch.setattr(cpu_device._Kernel, "__call__", recording)

    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 14, 14, 16)).astype(np.float32)
    w = (0.1 * rng.standard_normal((3, 3, 16, 32))).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    pads, strides = (1, 1, 1, 1), (1, 1)

    def step():
        z, conv_ctx = conv2d.forward(x, w, strides, pads, training=True)
        a = bias_act.forward(z, b, "relu")
        y, pool_ctx = pooling.forward(a, (2, 2), (2, 2), (0, 0, 0, 0), training=True)
        da = pooling.backward(np.ones_like(y), pool_ctx)
        dz, db = bias_act.backward(da, a, "relu", True)
        dx, dw = conv2d.backward(dz, conv_ctx, w)
        return [np.array(v, copy=True) for v in (a, y, dz, db, dx, dw)]

    def in_thread(n):
        box = {}

        def target():
            try:
                cpu_threads.set_num_threads(n)
                box["out"] = step()
            except BaseException as e:
                box["error"] = e
        t = threading.Thread(target=target)
        t.start()
        t.join(TIMEOUT_S)
        assert not t.is_alive(), "the op hung"
        if "error" in box:
            raise box["error"]
        return box["out"]

    def counts():
        got = {n for _, n in used}
        used.clear()
        return got

    old = cpu_threads.num_threads()
    try:
        cpu_threads.set_num_threads(1)
        step()  # the main thread sets Numba's count to 1: for itself alone
        assert counts() == {1}
        one = in_thread(1)  # another thread, whose Numba count is still the default
        assert counts() == {1}
        two = in_thread(2)
        assert counts() == {2}
    finally:
        cpu_threads.set_num_threads(old)
    for a1, a2 in zip(one, two):
        np.testing.assert_allclose(a1, a2, rtol=1e-5, atol=1e-5)
