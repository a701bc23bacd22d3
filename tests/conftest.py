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
