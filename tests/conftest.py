"""Shared test set-up: finding real MNIST as users do, and GPU gating.

Tests that need the real MNIST files take the ``real_mnist`` fixture (a
folder to pass as ``mnist.load_data(path=...)``). It looks where a user's
data would be: ``$MINICNN_DATA_DIR``, then minicnn's cache
(``~/.cache/minicnn/datasets/mnist`` or ``$MINICNN_CACHE_DIR``), then the
offline copy beside the checkout (``../shared/datasets/mnist``). It never
downloads. When none has the files the test is skipped and says where it
looked; the run ends with one line saying how many tests ran on real MNIST.
"""
import os
import shutil
from pathlib import Path

import pytest

from minicnn.datasets import mnist
from minicnn.datasets.cache import dataset_cache_dir

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def _has_mnist(folder):
    return all((folder / f"{spec.name}.gz").is_file() or (folder / spec.name).is_file()
               for spec in mnist.SPECS)


def mnist_places():
    """[(label, folder)] in the order a user's MNIST is looked for (no download)."""
    places = []
    env = os.environ.get("MINICNN_DATA_DIR")
    if env:
        places.append(("$MINICNN_DATA_DIR", Path(env).expanduser()))
    places.append(("the cache", dataset_cache_dir("mnist")))
    places.append(("the offline copy", SHARED_MNIST))
    return places


def find_real_mnist():
    """(folder, where) of the first place holding the four MNIST files, or (None, looked)."""
    for label, folder in mnist_places():
        if _has_mnist(folder):
            return folder, f"{label} {folder}"
    return None, ", ".join(f"{label} {folder}" for label, folder in mnist_places())


# Looked up once, when the tests are collected: some tests then point the
# cache and $MINICNN_DATA_DIR elsewhere, which must not change the answer.
REAL_MNIST, REAL_MNIST_WHERE = find_real_mnist()
_REAL_MNIST_TESTS = []  # node ids of the tests that used real MNIST


@pytest.fixture
def real_mnist(request):
    """The folder with the real MNIST files, or the test is skipped (saying where it looked)."""
    folder, where = REAL_MNIST, REAL_MNIST_WHERE
    if folder is None:
        pytest.skip(f"real MNIST not found (looked in: {where}; set MINICNN_DATA_DIR)")
    _REAL_MNIST_TESTS.append(request.node.nodeid)
    return folder


def pytest_terminal_summary(terminalreporter):
    passed = {r.nodeid for r in terminalreporter.stats.get("passed", [])}
    ran = [n for n in _REAL_MNIST_TESTS if n in passed]
    folder, where = REAL_MNIST, REAL_MNIST_WHERE
    if folder is None:
        terminalreporter.write_line(f"real MNIST: not found (looked in: {where}); its tests were skipped")
    else:
        tests = "test" if len(ran) == 1 else "tests"
        terminalreporter.write_line(f"real MNIST: {len(ran)} {tests} passed on it (from {where})")


@pytest.fixture
def settings():
    """``settings(NAME=value, ...)`` overrides minicnn.config settings until the test ends."""
    import contextlib
    from minicnn import config
    with contextlib.ExitStack() as stack:
        yield lambda **values: stack.enter_context(config.override(**values))


# The backend every test starts on: $MINICNN_BACKEND's when the run sets it (e.g.
# =emulator to run the layer tests through the CUDA kernels), else NumPy; never
# CuPy just because a GPU is there or an earlier test switched to it.
PINNED_BACKEND = os.environ.get("MINICNN_BACKEND") or "numpy"


@pytest.fixture(autouse=True)
def pinned_backend():
    """Set PINNED_BACKEND before each test (autouse fixtures run first, so ``impl``
    switches from it and back; a test that switches itself needs no clean-up)."""
    from minicnn import backend
    backend.set_backend(PINNED_BACKEND)
    yield PINNED_BACKEND


IMPLEMENTATIONS = ("reference", "cpu_kernels", "emulator", "gpu")


# the gpu variant carries the gpu mark, so that `pytest -m gpu` runs it too
@pytest.fixture(params=[pytest.param(n, marks=pytest.mark.gpu) if n == "gpu" else n for n in IMPLEMENTATIONS])
def impl(request):
    """Run a test once per implementation of the ops (see minicnn/ops):
    'reference' (NumPy, MINICNN_CPU_FAST=0), 'cpu_kernels' (the compiled CPU
    fast paths; skipped without Numba), 'emulator' (the CUDA kernels on the CPU)
    and 'gpu' (CuPy; skipped without a GPU). The value is the name."""
    from minicnn import backend, config
    name = request.param
    if name == "gpu" and not gpu_available():
        pytest.skip("needs a CUDA GPU (cupy.is_available() is False)")
    if name == "emulator" and shutil.which("g++") is None:
        pytest.skip("the emulator needs g++")
    if name == "cpu_kernels":
        from minicnn.backend import cpu_gemm, cpu_threads
        from minicnn.backend.cpu import runtime
        if not runtime().kernels:
            pytest.skip("compiled CPU kernels need Numba (pip install 'minicnn[fast]')")
        # split the work into 3 uneven parts down to the tiny test arrays
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setattr(cpu_gemm, "MIN_PART_MACS", 1)
        threads = cpu_threads.num_threads()
        cpu_threads.set_num_threads(3)
        request.addfinalizer(lambda: cpu_threads.set_num_threads(threads))
    previous = backend.backend_name()
    backend.set_backend({"reference": "numpy", "cpu_kernels": "numpy"}.get(name, "cupy" if name == "gpu" else name))
    with config.override(MINICNN_CPU_FAST=(name != "reference")):
        yield name
    backend.set_backend(previous)


def pytest_report_header(config):
    from test_structure import MAX_LINES, package_size
    total, files, largest, lines = package_size()
    return f"minicnn: {total} lines in {files} files; largest {largest} ({lines} lines, budget {MAX_LINES})"


def gpu_available():
    try:
        import cupy
        return bool(cupy.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (cupy.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
