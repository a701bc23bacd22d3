"""Every kernels/*.cu compiles for sm_75, sm_80 and sm_90, without spills.

Two compilers, each skipped (with the reason) when absent:
- CuPy's own NVRTC path (what a GPU machine runs), driven without a GPU by
  benchmarks/kernel_resources.py;
- nvcc -cubin, where nvcc is on PATH.
All compiles of one tool run once per test session, in parallel threads.
"""
import importlib.util
from pathlib import Path

import pytest

from minicnn.ops import kernels

ROOT = Path(__file__).resolve().parent.parent


def _load_kernel_resources():
    spec = importlib.util.spec_from_file_location(
        "kernel_resources", ROOT / "benchmarks" / "kernel_resources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kr = _load_kernel_resources()
FILES = [f.stem for f in kr.kernel_files()]
KERNELS = kernels()  # what the ops launch, by kernel file
CASES = [(stem, arch) for stem in FILES for arch in kr.ARCHS]
REGISTER_BUDGET = 64          # 256-thread blocks stay unlimited by registers
STATIC_SHARED_LIMIT = 48 * 1024


@pytest.fixture(scope="module", params=kr.TOOLS)
def compiled(request):
    """{(stem, arch): (resources by kernel, log)} for one tool."""
    try:
        return request.param, kr.compile_all(request.param)
    except kr.ToolMissing as e:
        pytest.skip(f"{request.param}: {e}")


def test_kernel_files_match_the_kernels_the_ops_launch():
    assert sorted(FILES) == sorted(KERNELS)


@pytest.mark.parametrize("stem,arch", CASES)
def test_compiles_with_the_expected_entry_points(compiled, stem, arch):
    tool, results = compiled
    resources, log = results[(stem, arch)]
    assert sorted(resources) == sorted(KERNELS[stem]), f"{tool} {stem}.cu sm_{arch}:\n{log}"


@pytest.mark.parametrize("stem,arch", CASES)
def test_no_spills_and_within_budget(compiled, stem, arch):
    tool, results = compiled
    for kernel, r in results[(stem, arch)][0].items():
        where = f"{tool} {stem}.cu {kernel} sm_{arch}: {r}"
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, "register spill: " + where
        assert r["stack"] == 0, "stack frame: " + where
        assert 0 < r["registers"] <= REGISTER_BUDGET, "register budget: " + where
        assert r["shared"] <= STATIC_SHARED_LIMIT, "shared memory: " + where


@pytest.mark.parametrize("stem,arch", CASES)
def test_no_compiler_warnings(compiled, stem, arch):
    tool, results = compiled
    log = results[(stem, arch)][1]
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert not warnings, f"{tool} {stem}.cu sm_{arch}:\n" + "\n".join(warnings)


def test_parse_ptxas_reads_spills_registers_and_shared():
    log = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'big' for 'sm_90'
ptxas info    : Function properties for big
ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 2048 bytes smem
ptxas info    : Compiling entry function 'small' for 'sm_90'
ptxas info    : Function properties for small
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers, 384 bytes cmem[0]
"""
    r = kr.parse_ptxas(log)
    assert r["big"] == {"registers": 255, "shared": 2048, "stack": 16,
                        "spill_stores": 8, "spill_loads": 4}
    assert r["small"] == {"registers": 12, "shared": 0, "stack": 0,
                          "spill_stores": 0, "spill_loads": 0}


def test_nvrtc_path_reports_compile_errors(tmp_path):
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }\n')
    try:
        kr.compile_nvrtc(bad, "80")
    except kr.ToolMissing as e:
        pytest.skip(str(e))
    except Exception as e:  # CuPy's CompileException
        assert "undefined_name" in str(e)
    else:
        pytest.fail("a kernel using an undefined name compiled")


def test_nvrtc_cubin_is_a_whole_elf_file():
    try:
        cubin, _ = kr.compile_nvrtc(ROOT / "kernels" / "optimizers.cu", "80")
    except kr.ToolMissing as e:
        pytest.skip(str(e))
    assert cubin[:4] == b"\x7fELF"
    shoff = int.from_bytes(cubin[40:48], "little")
    shsize = int.from_bytes(cubin[58:60], "little") * int.from_bytes(cubin[60:62], "little")
    assert len(cubin) >= shoff + shsize
