"""Every test starts on the pinned backend (tests/conftest.py, ``pinned_backend``), whatever
an earlier test chose: on a GPU machine no CPU test runs on CuPy by accident.

The two tests run in file order: the first leaves another backend behind on purpose."""
from minicnn import backend
from conftest import PINNED_BACKEND


def test_a_test_may_switch_the_backend_and_not_switch_back():
    other = "emulator" if PINNED_BACKEND != "emulator" else "numpy"
    assert backend.backend_name() == PINNED_BACKEND
    backend.set_backend(other)
    assert backend.backend_name() == other


def test_the_next_test_starts_on_the_pinned_backend_again():
    assert backend.backend_name() == PINNED_BACKEND


def test_impl_switches_from_the_pinned_backend(impl):
    expected = {"reference": "numpy", "cpu_kernels": "numpy", "gpu": "cupy"}.get(impl, impl)
    assert backend.backend_name() == expected
