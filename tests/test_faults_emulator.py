"""Emulator faults found in use, each pinned by a test:

1. Ctrl-C (SIGINT) during a launch was ignored until the launch ended or
   timed out (60 s by default): the C runtime holds the thread, and Python
   runs its signal handlers only between bytecodes.
2. A bad MINICNN_EMU_* value (e.g. MINICNN_EMU_TIMEOUT=abc) raised a bare
   ``could not convert string to float`` naming no variable, or was silently
   taken for something else (MINICNN_EMU_GUARD=no meant "on").
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend.emulator import RawModule

ROOT = Path(__file__).resolve().parents[1]
SLOW = ROOT / "tests" / "emulator_kernels" / "slow.cu"
EMU_VARS = ("MINICNN_EMU_ORDER", "MINICNN_EMU_SEED", "MINICNN_EMU_TIMEOUT", "MINICNN_EMU_GUARD",
            "MINICNN_EMU_CXX")


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A fresh library cache and default emulator settings for this module."""
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("emu-faults-cache")
        mp.setenv("MINICNN_CACHE_DIR", str(d))
        for var in EMU_VARS:
            mp.delenv(var, raising=False)
        yield d


@pytest.fixture(scope="module")
def slow(cache_dir):
    """slow.cu, built once here so that the child processes find it in the cache."""
    mod = RawModule(path=SLOW)
    mod.get_function("scale")
    return mod


# ----------------------------------------------------------------------------
# 1. Ctrl-C during a launch
# ----------------------------------------------------------------------------
# The child: launches LAUNCH under the SIGINT handler HANDLER, then a quick
# `scale` launch, and prints a JSON report. `stopped` is a CLOCK_MONOTONIC
# reading, comparable with the parent's (one clock per machine on Linux).
CHILD = r"""
import ctypes, json, signal, sys, time
import numpy as np
from minicnn.backend.emulator import RawModule

def c_handler():
    # The C-level SIGINT handler (struct sigaction starts with it): Python's own.
    buf = ctypes.create_string_buffer(512)
    assert ctypes.CDLL(None).sigaction(signal.SIGINT, None, buf) == 0
    return ctypes.c_void_p.from_buffer(buf).value

caught = []
HANDLER
mod = RawModule(path=sys.argv[1])
fn, scale = mod.get_function(sys.argv[2]), mod.get_function("scale")
before = c_handler()
out = np.zeros(64, np.int32)
print("ready", flush=True)
notes = []
try:
    LAUNCH
    result = "finished"
except KeyboardInterrupt as e:
    result, notes = "interrupted", getattr(e, "__notes__", [])
stopped = time.monotonic()
deadline = stopped + 5
while HANDLER_IS_CUSTOM and not caught and time.monotonic() < deadline:
    time.sleep(0.01)
x = np.arange(1000, dtype=np.float32)
y = np.zeros_like(x)
scale((4,), (256,), (x, y, np.float32(3), np.int32(x.size)))
print(json.dumps({"result": result, "stopped": stopped, "out": int(out[0]), "caught": caught,
                  "notes": notes,
                  "next_ok": bool((y == 3 * x).all()), "handler_restored": c_handler() == before}))
"""

DEFAULT_HANDLER = "signal.signal(signal.SIGINT, signal.default_int_handler)"
RECORDING_HANDLER = "signal.signal(signal.SIGINT, lambda sig, frame: caught.append(sig))"


def child_script(launch, handler=DEFAULT_HANDLER):
    return (CHILD.replace("HANDLER_IS_CUSTOM", str(handler != DEFAULT_HANDLER))
            .replace("HANDLER", handler).replace("LAUNCH", launch))


def child_env():
    """This environment with a 30 s emulator time limit: without a prompt
    interrupt the child outlives the test's patience."""
    env = {k: v for k, v in os.environ.items() if k not in EMU_VARS}
    env["MINICNN_EMU_TIMEOUT"] = "30"
    return env


def _read_lines(stream, lines):
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for(lines, text, seen, limit):
    """Collect output lines into `seen` until one equals `text`; False after `limit` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            return False
        seen.append(line)
        if line.strip() == text:
            return True
    return False


def interrupt_child(script, kernel, *, after=0.5, limit=10.0):
    """Run `script` in a fresh Python; send it SIGINT `after` s after it prints
    'ready'. Returns (its JSON report, when the signal went out, all output).
    Every wait is bounded: a child that ignores the signal is killed."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(SLOW), kernel], cwd=ROOT,
                            env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, seen, sent = queue.Queue(), [], None
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        if _wait_for(lines, "ready", seen, limit):
            time.sleep(after)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
    while not lines.empty():
        line = lines.get()
        if line is not None:
            seen.append(line)
    output = "".join(seen)
    reports = [json.loads(s) for s in seen if s.startswith("{")]
    what = ("never printed 'ready'" if sent is None else
            f"did not report within {limit:g} s of SIGINT (ignored it?)")
    assert sent is not None and reports, f"the child {what}; rc {proc.returncode}:\n{output}"
    return reports[-1], sent, output


@pytest.mark.parametrize("kernel, launch", [
    # between barriers the scheduler runs: it sees the interrupt at once
    ("barrier_loop", "fn(1, 64, (out, np.int32(2**31 - 1)))"),
    # thread 0 never yields: the runtime has to jump out of the kernel code
    ("spin", "fn(1, 64, (out,))"),
])
def test_sigint_interrupts_a_launch_promptly(slow, kernel, launch):
    t = time.monotonic()
    report, sent, output = interrupt_child(child_script(launch), kernel)
    assert report["result"] == "interrupted", output
    latency = report["stopped"] - sent
    print(f"\n{kernel}: KeyboardInterrupt {latency * 1e3:.0f} ms after SIGINT")
    assert latency < 3.0, output
    assert report["out"] == 0, output            # an abandoned launch copies nothing back
    assert report["next_ok"], output             # the runtime is reset: the next launch works
    assert report["handler_restored"], output    # Python's SIGINT handler is back
    if sys.version_info >= (3, 11):              # the traceback names the launch
        assert any(f"kernel '{kernel}' <<<grid=(1,1,1), block=(64,1,1)" in n and
                   "interrupted by SIGINT (Ctrl-C)" in n for n in report["notes"]), output
    assert time.monotonic() - t < 15


def test_sigint_with_a_custom_handler_lets_the_launch_finish(slow):
    """Only Python's default handler means "stop now": a program that catches
    SIGINT itself (to stop after the current step, say) gets its launch done
    and its handler run afterwards, as before."""
    launch = "fn(1, 64, (out, np.int32(1_000_000)))"  # about 1.5 s here
    report, _, output = interrupt_child(child_script(launch, RECORDING_HANDLER), "barrier_loop",
                                        after=0.3)
    assert report["result"] == "finished" and report["out"] == 1_000_000, output
    assert report["caught"] == [int(signal.SIGINT)], output
    assert report["next_ok"] and report["handler_restored"], output


# ----------------------------------------------------------------------------
# 2. Bad MINICNN_EMU_* values name the variable, the value and what is expected
# ----------------------------------------------------------------------------
def scale_launch(mod, **kw):
    x = np.arange(8, dtype=np.float32)
    y = np.zeros_like(x)
    mod.get_function("scale")(1, 8, (x, y, np.float32(2), np.int32(8)), **kw)
    return y


@pytest.mark.parametrize("var, value, expected", [
    ("MINICNN_EMU_TIMEOUT", "abc", r"a number of seconds >= 0 \(0 = no time limit\)"),
    ("MINICNN_EMU_TIMEOUT", "-1", r"a number of seconds >= 0"),
    ("MINICNN_EMU_TIMEOUT", "nan", r"a number of seconds >= 0"),
    ("MINICNN_EMU_TIMEOUT", "inf", r"a number of seconds >= 0"),
    ("MINICNN_EMU_ORDER", "sideways", r"order must be one of 'forward', 'reverse', 'random', 'all'"),
    ("MINICNN_EMU_ORDER", "Forward", r"order must be one of"),
    ("MINICNN_EMU_SEED", "abc", r"an integer from 0 to 2\*\*64-1"),
    ("MINICNN_EMU_SEED", "1.5", r"an integer from 0 to 2\*\*64-1"),
    ("MINICNN_EMU_SEED", "-3", r"an integer from 0 to 2\*\*64-1"),
    ("MINICNN_EMU_SEED", str(2**64), r"an integer from 0 to 2\*\*64-1"),
    ("MINICNN_EMU_GUARD", "no", r"1 \(guard pages, the default\) or 0 \(none\)"),
    ("MINICNN_EMU_GUARD", "2", r"1 \(guard pages, the default\) or 0 \(none\)"),
])
def test_bad_environment_values_name_the_variable(slow, monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=rf"^{var}={value!r} is invalid: .*{expected}"):
        scale_launch(slow)


def test_bad_compiler_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path))  # nothing cached: it must compile
    monkeypatch.setenv("MINICNN_EMU_CXX", "/nonexistent/g++")
    mod = RawModule(code='extern "C" __global__ void k(int* y) { y[0] = 1; }')
    with pytest.raises(ValueError, match=r"^MINICNN_EMU_CXX='/nonexistent/g\+\+' is invalid: .*"
                                         r"a C\+\+20 compiler command .*g\+\+"):
        mod.get_function("k")


@pytest.mark.parametrize("keyword, value, expected", [
    ("timeout", "abc", r"a number of seconds >= 0"),
    ("timeout", -2.0, r"a number of seconds >= 0"),
    ("seed", -1, r"an integer from 0 to 2\*\*64-1"),
    ("seed", "abc", r"an integer from 0 to 2\*\*64-1"),
    ("order", "sideways", r"order must be one of"),
])
def test_bad_keyword_options_name_the_keyword(slow, keyword, value, expected):
    with pytest.raises(ValueError, match=rf"^{keyword}={value!r} is invalid: .*{expected}"):
        scale_launch(slow, **{keyword: value})


def test_good_and_empty_environment_values(slow, monkeypatch):
    """Valid values work; an empty variable means the default, as if unset."""
    good = {"MINICNN_EMU_TIMEOUT": " 2.5 ", "MINICNN_EMU_ORDER": "random", "MINICNN_EMU_SEED": "7",
            "MINICNN_EMU_GUARD": "0"}
    for var, value in good.items():
        monkeypatch.setenv(var, value)
    np.testing.assert_array_equal(scale_launch(slow), 2 * np.arange(8))
    for var in EMU_VARS:
        monkeypatch.setenv(var, "")
    np.testing.assert_array_equal(scale_launch(slow, order="all"), 2 * np.arange(8))
