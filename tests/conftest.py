"""Shared test set-up: the offline MNIST copy and GPU gating."""
import os
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def mnist_dir():
    """The offline MNIST folder: MINICNN_DATA_DIR, else ../shared/datasets/mnist."""
    d = os.environ.get("MINICNN_DATA_DIR")
    return Path(d) if d else SHARED_MNIST


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
