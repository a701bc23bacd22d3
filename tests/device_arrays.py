"""Helpers shared by the op tests (tests/ops): arrays to and from the current backend, and
the fixture that runs every emulator launch in every thread order.

    from device_arrays import dev, host, every_thread_order  # noqa: F401 (an autouse fixture)
"""
import pytest

from minicnn import backend, config


@pytest.fixture(autouse=True)
def every_thread_order():
    """Every emulator launch runs its threads in forward, reverse and random
    order and must give the same bits: a missing barrier fails here."""
    with config.override(MINICNN_EMU_ORDER="all"):
        yield


def dev(a):
    """``a`` on the current backend (float32 unless it is another dtype already)."""
    return backend.asarray(a)


def host(a):
    return backend.to_numpy(a)
