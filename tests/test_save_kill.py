"""kill -9 during model.save of a large model, 20 times: the file is always the old model or
the new one, whole, never a mix or a torn file (issue 9's "Done when").

A helper process imports minicnn once and forks one saver per kill (a fresh interpreter per
kill would spend a second importing). Each saver saves an 8 MB model over and over, every
save with all weights set to a new value, and is SIGKILLed: ten times at a random moment, ten
times while it is writing its temporary file, just after one save has completed (its fsync is
made slow, as on a slow disk, so that the kill surely lands inside the write). After each kill
the file must load as one save's model; the next save cleans the dead savers' temporaries."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.models import load_model

pytest.importorskip("h5py")
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper forks its savers (POSIX)")
REPO = Path(__file__).resolve().parents[1]
STRIDE = 1000  # saver j saves the values j*STRIDE, j*STRIDE + 1, ...

HELPER = r"""
import os, sys, time
import numpy as np
import minicnn as keras
from minicnn import layers

model = keras.Sequential([layers.Dense(1024, input_shape=(1024,)), layers.Dense(1024)])  # 2.1M weights
model.compile("sgd", "categorical_crossentropy")


def save_all(path, value):
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])
    model.save(path)


for path in sys.argv[1:]:
    save_all(path, -1)  # the first, "old" model
print("ready", flush=True)
for line in sys.stdin:  # one saver per request: "<path> <j>"
    path, j = line.split()
    pid = os.fork()
    if pid == 0:  # the saver: saves until killed
        real_fsync = os.fsync
        os.fsync = lambda fd: (time.sleep(0.05), real_fsync(fd))  # a slow disk
        value = int(j) * %d
        while True:
            save_all(path, value)
            value += 1
    print(pid, flush=True)
    os.waitpid(pid, 0)  # returns once the parent has killed it
    print("dead", flush=True)
""" % STRIDE


def temporaries(folder, pid):
    return [p for p in folder.iterdir() if p.name.startswith(".") and f".tmp-{pid}-" in p.name]


def saved_value(path):
    """The one value all weights of the file's model hold (a whole save), or an AssertionError."""
    model = load_model(path)
    values = {float(v) for w in model.get_weights() for v in np.unique(w)}
    assert len(values) == 1, f"{path.name} mixes saves: {sorted(values)[:5]}"
    assert [w.shape for w in model.get_weights()] == [(1024, 1024), (1024,), (1024, 1024), (1024,)]
    return values.pop()


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the saver made no progress"
        time.sleep(0.001)


def test_sigkill_during_model_save_20_times_leaves_the_old_or_the_new_model(tmp_path):
    targets = [tmp_path / "big.keras", tmp_path / "big.h5"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    helper = subprocess.Popen([sys.executable, "-c", HELPER, *map(str, targets)], cwd=REPO, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rng = np.random.default_rng(0)
    last = {t: -1.0 for t in targets}
    torn_writes = completed = 0
    try:
        assert helper.stdout.readline().strip() == "ready"
        for j in range(1, 21):
            target = targets[j % 2]
            inode = target.stat().st_ino
            helper.stdin.write(f"{target} {j}\n")
            helper.stdin.flush()
            pid = int(helper.stdout.readline())
            if j <= 10:  # at a random moment: before, inside or between saves
                time.sleep(rng.uniform(0.0, 0.2))
            else:  # inside a write, once one save has completed (renamed over the target)
                wait_until(lambda: target.stat().st_ino != inode)
                wait_until(lambda: temporaries(tmp_path, pid))
            os.kill(pid, signal.SIGKILL)
            assert helper.stdout.readline().strip() == "dead"
            value = saved_value(target)
            assert value == last[target] or j * STRIDE <= value < (j + 1) * STRIDE, (j, value)
            completed += value != last[target]
            last[target] = value
            torn_writes += bool(temporaries(tmp_path, pid))  # the kill left a half-written temporary
            if j > 10:
                assert value == j * STRIDE and temporaries(tmp_path, pid)
    finally:
        helper.kill()
        helper.wait(timeout=30)
        helper.stdin.close()
        helper.stdout.close()
    assert torn_writes >= 10 and completed >= 10
    # the next save of each target removes the dead savers' temporaries
    model = load_model(targets[0])
    for target in targets:
        model.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.h5", "big.keras"]
