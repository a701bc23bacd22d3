"""Choosing a backend: names, the environment variable, clear errors."""
import subprocess
import sys

import numpy as np
import pytest

from minicnn import backend
from conftest import gpu_available


def run_python(code, **env):
    import os
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env)


def test_environment_variable_picks_the_backend():
    out = run_python("from minicnn import backend; print(backend.backend_name())", MINICNN_BACKEND="emulator")
    assert out.stdout.strip() == "emulator", out.stderr


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_default_is_numpy_without_a_gpu():
    out = run_python("from minicnn import backend; print(backend.backend_name())", MINICNN_BACKEND="")
    assert out.stdout.strip() == "numpy", out.stderr


def test_unknown_and_unusable_backends_are_refused():
    with pytest.raises(ValueError, match="Unknown backend: 'tpu'"):
        backend.set_backend("tpu")
    with pytest.raises(TypeError, match="string"):
        backend.set_backend(3)
    if not gpu_available():
        with pytest.raises(RuntimeError, match="cupy.is_available"):
            backend.set_backend("cupy")
    backend.set_backend("numpy")


def test_every_backend_has_a_device():
    from minicnn.backend.devices import CpuDevice, CudaDevice
    backend.set_backend("numpy")
    assert isinstance(backend.device(), CpuDevice) and backend.device().kind == "cpu"
    backend.set_backend("emulator")
    assert isinstance(backend.device(), CudaDevice) and backend.device().target == "emulator"
    backend.set_backend("numpy")


def test_asarray_and_to_numpy_round_trip():
    backend.set_backend("numpy")
    a = backend.asarray([[1, 2], [3, 4]])
    assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(backend.to_numpy(a), [[1, 2], [3, 4]])
