"""Registers, shared memory and spills of every CUDA kernel, per architecture.

Compiles each ``kernels/*.cu`` two ways and reads ptxas's resource report:

- ``nvrtc``: exactly as CuPy compiles it on a GPU machine -- through CuPy's
  own ``compile_with_cache`` (its NVRTC options, include folders, ``-ftz``)
  with the device-bound arch lookup and the module load replaced for the
  call, so no GPU or driver is needed. This is the code that really runs.
- ``nvcc``: ``nvcc -cubin -arch=sm_XX -Xptxas -v`` where nvcc is on PATH (a
  second compiler front end: catches non-portable code and warnings).

Usage::

    python benchmarks/kernel_resources.py           # print the tables
    python benchmarks/kernel_resources.py --write   # and rewrite benchmarks/KERNELS.md

The test ``tests/test_kernels_compile.py`` imports this module.
"""
import argparse
import contextlib
import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KERNEL_DIR = ROOT / "kernels"
ARCHS = ("75", "80", "90")          # Turing, Ampere, Hopper (CUDA 13 starts at sm_75)
TOOLS = ("nvrtc", "nvcc")
DEFAULT_OPTIONS = ("--std=c++17",)  # used when minicnn.backend.loader cannot be imported
NVCC_OPTIONS = ("-std=c++17", "-ftz=true")  # CuPy adds -ftz=true to NVRTC too


class ToolMissing(RuntimeError):
    """A compiler this check needs is not installed (the reason is the message)."""


def kernel_files():
    """Every kernel source, sorted by name."""
    return sorted(KERNEL_DIR.glob("*.cu"))


def cuda_options():
    """The NVRTC options the project's loader gives CuPy's RawModule."""
    sys.path.insert(0, str(ROOT))
    try:
        from minicnn.backend import loader
        return tuple(loader.CUDA_OPTIONS)
    except (ImportError, AttributeError):
        return DEFAULT_OPTIONS
    finally:
        sys.path.remove(str(ROOT))


# ----------------------------------------------------------------------------
# ptxas report
# ----------------------------------------------------------------------------
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for 'sm_(\d+)'")
_PROPS = re.compile(r"Function properties for (\w+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(log):
    """``{kernel: {registers, shared, stack, spill_stores, spill_loads}}`` from
    a ``-Xptxas -v`` log (entry functions only; shared is static smem bytes)."""
    out, props = {}, {}
    entry = current = None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            entry = m.group(1)
            out[entry] = {"registers": 0, "shared": 0}
            continue
        m = _PROPS.search(line)
        if m:
            current = m.group(1)
            continue
        m = _FRAME.search(line)
        if m and current:
            props[current] = dict(zip(("stack", "spill_stores", "spill_loads"), map(int, m.groups())))
            continue
        m = _USED.search(line)
        if m and entry:
            out[entry]["registers"] = int(m.group(1))
            s = _SMEM.search(line)
            out[entry]["shared"] = int(s.group(1)) if s else 0
    for name, res in out.items():
        res.update(props.get(name, {"stack": 0, "spill_stores": 0, "spill_loads": 0}))
    return out


# ----------------------------------------------------------------------------
# NVRTC through CuPy, without a GPU
# ----------------------------------------------------------------------------
_patch_lock = threading.Lock()
_patch_depth = 0
_patch_saved = None


def _cupy_compiler():
    try:
        import cupy.cuda.compiler as compiler
        from cupy._core import core
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()  # loads libnvrtc: fails here when the library is missing
    except Exception as e:  # ImportError, or CuPy's error for a missing libnvrtc
        raise ToolMissing(f"CuPy's NVRTC path unavailable ({type(e).__name__}: {e}); "
                          "pip install cupy-cuda13x 'nvidia-cuda-nvrtc==13.0.*' "
                          "'nvidia-cuda-runtime==13.0.*'") from None
    return compiler, core


@contextlib.contextmanager
def cupy_offline():
    """While inside: CuPy compiles for an explicit arch without asking a device
    and hands back the cubin instead of loading it (re-entrant, thread-safe)."""
    global _patch_depth, _patch_saved
    compiler, _ = _cupy_compiler()

    class CubinModule(compiler.function.Module):
        """Stands in for the loaded module: keeps the cubin CuPy would load."""

        def load(self, cubin):
            self.cubin = bytes(cubin)

        def _set_mapping(self, mapping):
            self.name_mapping = mapping

    with _patch_lock:
        if _patch_depth == 0:
            _patch_saved = (compiler._get_arch_for_options_for_nvrtc, compiler.function.Module,
                            os.environ.get("CUPY_CACHE_IN_MEMORY"))
            # sm_XX gives a cubin, as CuPy chooses for archs NVRTC knows
            compiler._get_arch_for_options_for_nvrtc = lambda arch=None: (f"-arch=sm_{arch}", "cubin")
            compiler.function.Module = CubinModule
            # compile every time (no disk cache hit) so ptxas prints its report
            os.environ["CUPY_CACHE_IN_MEMORY"] = "1"
        _patch_depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                arch_fn, module_cls, env = _patch_saved
                compiler._get_arch_for_options_for_nvrtc = arch_fn
                compiler.function.Module = module_cls
                if env is None:
                    os.environ.pop("CUPY_CACHE_IN_MEMORY", None)
                else:
                    os.environ["CUPY_CACHE_IN_MEMORY"] = env


def compile_nvrtc(path, arch, options=None):
    """(cubin bytes, ptxas log) of ``path`` for sm_``arch`` as CuPy's RawModule
    compiles it (CuPy drops the cubin's trailing NUL; it is padded back)."""
    _, core = _cupy_compiler()
    opts = tuple(options if options is not None else cuda_options()) + ("--ptxas-options=-v",)
    log = io.StringIO()
    with cupy_offline():
        mod = core.compile_with_cache(Path(path).read_text(), opts, arch=arch,
                                      prepend_cupy_headers=False, backend="nvrtc", log_stream=log)
    return _pad_elf(mod.cubin), log.getvalue().replace("\x00", "")


def _pad_elf(cubin):
    """Pad a cubin back to the size its 64-bit ELF header implies (the file
    ends with the section or the program header table), so cuobjdump accepts it."""
    if len(cubin) < 64 or cubin[:4] != b"\x7fELF":
        return cubin
    field = lambda a, b: int.from_bytes(cubin[a:b], "little")  # noqa: E731
    end = max(field(40, 48) + field(58, 60) * field(60, 62),   # shoff + shentsize*shnum
              field(32, 40) + field(54, 56) * field(56, 58))   # phoff + phentsize*phnum
    return cubin + b"\x00" * max(0, end - len(cubin))


# ----------------------------------------------------------------------------
# nvcc
# ----------------------------------------------------------------------------
def compile_nvcc(path, arch):
    """(cubin bytes, ptxas log + warnings) from ``nvcc -cubin -arch=sm_XX``."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise ToolMissing("nvcc is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "k.cubin"
        cmd = [nvcc, *NVCC_OPTIONS, "-cubin", f"-arch=sm_{arch}", "-Xptxas", "-v",
               "-o", str(out), str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log}")
        return out.read_bytes(), log


@functools.lru_cache(maxsize=None)
def _compiler_identity(tool):
    """What, besides source, options and arch, decides a compile's result."""
    if tool == "nvcc":
        return subprocess.run([shutil.which("nvcc"), "--version"], capture_output=True,
                              text=True).stdout
    import cupy
    from cupy_backends.cuda.libs import nvrtc
    return f"cupy {cupy.__version__} nvrtc {nvrtc.getVersion()}"


def _cache_dir():
    """<cache root>/kernel_resources, the root chosen as the emulator's build
    cache chooses it: $MINICNN_CACHE_DIR, $XDG_CACHE_HOME/minicnn, ~/.cache/minicnn."""
    override = os.environ.get("MINICNN_CACHE_DIR")
    if override:
        root = Path(override).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "minicnn"
    return root / "kernel_resources"


def cached_log(tool, path, arch, options):
    """The ptxas log of one compile, from a small disk cache keyed by the
    compiler's identity, options, arch and source (compiles take ~1 s each)."""
    source = Path(path).read_text()
    key = hashlib.sha256(repr((tool, _compiler_identity(tool), tuple(options), arch,
                               source)).encode()).hexdigest()
    cache = _cache_dir() / f"{key}.log"
    try:
        return cache.read_text()
    except OSError:
        pass
    if tool == "nvrtc":
        log = compile_nvrtc(path, arch, options)[1]
    else:
        log = compile_nvcc(path, arch)[1]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(log)
        tmp.replace(cache)   # atomic: a parallel run never reads half a file
    except OSError:
        pass                 # a read-only home only costs time
    return log


# ----------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------
def compile_all(tool, archs=ARCHS, files=None, use_cache=True):
    """``{(file stem, arch): (resources by kernel, log)}`` for one tool, the
    compiles run in parallel threads (NVRTC and nvcc release the GIL)."""
    files = list(files or kernel_files())
    jobs = [(f, a) for f in files for a in archs]
    if tool == "nvrtc":
        _cupy_compiler()               # ToolMissing before any thread starts
        options = cuda_options()
    else:
        if shutil.which("nvcc") is None:
            raise ToolMissing("nvcc is not on PATH")
        options = NVCC_OPTIONS

    def compile_one(job):
        path, arch = job
        if use_cache:
            return cached_log(tool, path, arch, options)
        if tool == "nvrtc":
            return compile_nvrtc(path, arch, options)[1]
        return compile_nvcc(path, arch)[1]

    with contextlib.ExitStack() as stack:
        if tool == "nvrtc":
            stack.enter_context(cupy_offline())
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            logs = list(pool.map(compile_one, jobs))
    return {(f.stem, a): (parse_ptxas(log), log) for (f, a), log in zip(jobs, logs)}


def markdown(results, archs=ARCHS):
    """One table: a row per kernel, 'registers / static smem bytes' per arch,
    spills flagged."""
    lines = ["| file | kernel | " + " | ".join(f"sm_{a}" for a in archs) + " |",
             "| --- | --- | " + " | ".join("---" for _ in archs) + " |"]
    stems = sorted({stem for stem, _ in results})
    for stem in stems:
        kernels = sorted(results[(stem, archs[0])][0])
        for k in kernels:
            cells = []
            for a in archs:
                r = results[(stem, a)][0][k]
                cell = f"{r['registers']} / {r['shared']}"
                if r["spill_stores"] or r["spill_loads"] or r["stack"]:
                    cell += f" (SPILL {r['spill_stores']}+{r['spill_loads']} B, stack {r['stack']})"
                cells.append(cell)
            lines.append(f"| {stem}.cu | `{k}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


KERNELS_MD_HEAD = """# Kernel resources

Registers per thread / static shared memory per block (bytes) for every kernel,
as ptxas reports them. No kernel spills registers or uses a stack frame
(`tests/test_kernels_compile.py` fails if one does). Regenerate with
`python benchmarks/kernel_resources.py --write`.

Launch configurations (from the CUDA path of each `minicnn/ops/*.py`): element-wise and
gather kernels 256 threads per block, grid-stride, grid capped at 65535;
row kernels (softmax, xent) one block per row of 32..256 threads (a power of
two); `column_sum_partials` blocks of 32x8.

Occupancy: an SM has 64K registers. sm_75 runs at most 1024 threads per SM,
so up to 64 registers keep it full; sm_80 and sm_90 run 2048, so full
occupancy needs <= 32 (the few kernels at 33..40 registers there still run
six 256-thread blocks, 75%). These kernels are memory-bound: occupancy above
50% is plenty. The test's budget is 64 registers per thread.
On sm_90 cuobjdump counts 1 KiB more shared memory per block (reserved).
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/KERNELS.md")
    parser.add_argument("--no-cache", action="store_true", help="compile everything afresh")
    args = parser.parse_args(argv)
    sections = [KERNELS_MD_HEAD]
    for tool in TOOLS:
        try:
            results = compile_all(tool, use_cache=not args.no_cache)
        except ToolMissing as e:
            print(f"{tool}: skipped: {e}", file=sys.stderr)
            continue
        title = ("CuPy's NVRTC path (what runs on the GPU)" if tool == "nvrtc"
                 else "nvcc -cubin (cross-check)")
        sections.append(f"## {title}\n\n{markdown(results)}\n")
    text = "\n".join(sections)
    print(text)
    if args.write:
        (ROOT / "benchmarks" / "KERNELS.md").write_text(text)


if __name__ == "__main__":
    main()
