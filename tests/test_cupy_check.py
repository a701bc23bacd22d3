"""set_backend('cupy') says in one error what a machine lacks (minicnn/backend/cupy_check.py).

Each failure is simulated with a stand-in for the ``cupy`` module, so every
message is checked on any machine, GPU or not; one test also asks the real
CuPy of this machine (when it has no GPU)."""
import types

import pytest

from minicnn import backend
from minicnn.backend import cupy_check
from minicnn.backend.cupy_check import CudaSetupError
from conftest import gpu_available


class FakeCudaRuntimeError(RuntimeError):
    pass


def fake_cupy(tmp_path, devices=1, driver_error=None, cublas_error=None, nvrtc_error=None,
              headers=True):
    """A stand-in for ``cupy`` with the attributes cupy_check reads, each failing as asked."""
    root = tmp_path / "cu13"
    (root / "include").mkdir(parents=True)
    if headers:
        (root / "include" / cupy_check.HEADER).write_text("/* stand-in */\n")

    def device_count():
        if driver_error:
            raise FakeCudaRuntimeError(driver_error)
        return devices

    def nvrtc_version():
        if nvrtc_error:
            raise RuntimeError(nvrtc_error)
        return (13, 0)

    class Cuda:
        runtime = types.SimpleNamespace(getDeviceCount=device_count)
        nvrtc = types.SimpleNamespace(getVersion=nvrtc_version)

        @property
        def cublas(self):  # CuPy loads libcublas when this is first read
            if cublas_error:
                raise ImportError(cublas_error)
            return types.SimpleNamespace()

        @staticmethod
        def get_cuda_path():
            return str(root)

    return types.SimpleNamespace(__name__="cupy", ndarray=type("ndarray", (), {}), cuda=Cuda())


@pytest.fixture
def use(monkeypatch):
    """``use(cupy)``: set_backend('cupy') finds this module; the backend is restored afterwards."""
    previous = backend.backend_name()
    yield lambda module: monkeypatch.setattr(cupy_check, "_import_cupy", lambda: module)
    backend.set_backend(previous)


def refusal():
    with pytest.raises(CudaSetupError) as info:
        backend.set_backend("cupy")
    message = str(info.value)
    assert message.startswith("backend 'cupy' cannot run on this machine:\n")
    assert "set_backend('numpy')" in message
    return message


def missing_lines(message):
    return [line for line in message.splitlines() if line.startswith("  - ")]


def test_a_complete_install_gives_the_cupy_device(tmp_path, use):
    module = fake_cupy(tmp_path)
    use(module)
    backend.set_backend("cupy")
    assert backend.device().xp is module and backend.device().target == "cupy"


def test_no_cupy(use, monkeypatch):
    def no_cupy():
        raise ImportError("No module named 'cupy'")
    monkeypatch.setattr(cupy_check, "_import_cupy", no_cupy)
    (line,) = missing_lines(refusal())
    assert "CuPy is not installed" in line and "No module named 'cupy'" in line
    assert "pip install 'minicnn[gpu]'" in line


def test_no_driver(tmp_path, use):
    use(fake_cupy(tmp_path, driver_error="cudaErrorInsufficientDriver: CUDA driver version "
                                          "is insufficient for CUDA runtime version"))
    (line,) = missing_lines(refusal())
    assert "no usable GPU or NVIDIA driver: cupy.is_available() is False" in line
    assert "cudaErrorInsufficientDriver" in line and "driver >= 580" in line


def test_no_device(tmp_path, use):
    use(fake_cupy(tmp_path, devices=0))
    (line,) = missing_lines(refusal())
    assert "no CUDA device" in line and "0 devices" in line


def test_cublas_not_loadable(tmp_path, use):
    use(fake_cupy(tmp_path, cublas_error='Failure finding "libcublasLt.so.13": No such file\n'
                                         '  listdir("/site-packages/nvidia/cu13/lib"):\n    libcudart.so.13'))
    (line,) = missing_lines(refusal())
    assert line.startswith("  - cuBLAS not loadable (ImportError: Failure finding \"libcublasLt.so.13\"")
    assert "listdir" not in line  # only the first line of CuPy's long message
    assert "nvidia-cublas" in line


def test_nvrtc_not_loadable(tmp_path, use):
    use(fake_cupy(tmp_path, nvrtc_error="CuPy failed to load libnvrtc.so.13"))
    (line,) = missing_lines(refusal())
    assert "NVRTC not loadable (RuntimeError: CuPy failed to load libnvrtc.so.13)" in line
    assert "nvidia-cuda-nvrtc" in line


def test_no_cuda_headers(tmp_path, use):
    use(fake_cupy(tmp_path, headers=False))
    (line,) = missing_lines(refusal())
    assert "CUDA headers not found (cuda_fp16.h under" in line and "nvidia-cuda-runtime" in line


def test_every_missing_piece_in_one_error(tmp_path, use):
    use(fake_cupy(tmp_path, driver_error="cudaErrorNoDevice", cublas_error="libcublas.so.13",
                  nvrtc_error="libnvrtc.so.13"))
    lines = missing_lines(refusal())
    assert [line.split(" (")[0].split(":")[0] for line in lines] == [
        "  - no usable GPU or NVIDIA driver", "  - cuBLAS not loadable", "  - NVRTC not loadable"]


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_this_machine_without_a_gpu_is_refused_clearly():
    """The real CuPy (or its absence) here: the first missing piece is the GPU or CuPy itself."""
    previous = backend.backend_name()
    try:
        first = missing_lines(refusal())[0]
    finally:
        backend.set_backend(previous)
    assert first.startswith(("  - no usable GPU", "  - no CUDA device", "  - CuPy is not installed"))
