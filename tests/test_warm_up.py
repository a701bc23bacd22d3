"""minicnn.warm_up: what `make` runs after installing, so the first training step is fast."""
import importlib
import inspect
import subprocess
import sys

import pytest

from minicnn import ops, warm_up
from minicnn.backend.cpu import runtime


def modules_with_cpu_kernels():
    """The ops modules that define a CPU kernel (a function named *_kernel)."""
    found = set()
    for name in ops.MODULES:
        module = importlib.import_module(f"minicnn.ops.{name}")
        if any(fn.endswith("_kernel") and obj.__module__ == module.__name__
               for fn, obj in inspect.getmembers(module, inspect.isfunction)):
            found.add(module.__name__)
    return found


def test_it_compiles_the_kernels_of_every_op_that_has_them():
    if not runtime().kernels:
        pytest.skip("needs Numba (pip install 'minicnn[fast]')")
    warm_up.warm_up(batch_size=64)
    compiled = {kernel.__module__ for kernel in runtime()._compiled}
    missing = modules_with_cpu_kernels() - compiled
    assert not missing, f"add a layer using these ops to minicnn/warm_up.py's models: {sorted(missing)}"


def test_the_command_says_what_it_did(monkeypatch):
    out = subprocess.run([sys.executable, "-m", "minicnn.warm_up"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = "CPU kernels compiled and cached in" if runtime().kernels else "Numba is not installed"
    assert expected in out.stdout


def test_without_numba_it_does_nothing(monkeypatch, capsys):
    monkeypatch.setattr(runtime(), "kernels", False)
    assert warm_up.main() == 0
    assert "nothing to compile" in capsys.readouterr().out
