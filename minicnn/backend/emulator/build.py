"""Compile a .cu source into a shared library for the emulator, with a disk cache.

The translation unit is the kernel source (``extern __shared__`` rewritten,
see :func:`signatures.rewrite_extern_shared`) followed by generated glue: an
``EMU_KERNEL(name)`` entry point per kernel and an alias per dynamic shared
array. g++ compiles it with ``cuda_emu.h`` force-included. Libraries are
cached under ``<cache>/emulator`` by a hash of everything that goes into them.

Example::

    >>> lib_path = build_library(open('kernels/conv.cu').read(), 'kernels/conv.cu')
"""
import functools
import hashlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from ... import config
from . import settings, signatures
from .errors import BuildError

HEADER_DIR = Path(__file__).resolve().parent
HEADER = HEADER_DIR / "cuda_emu.h"

CXX_FLAGS = (
    "-std=c++20", "-O2",
    "-g1",                    # line tables: a fault names its source line
    "-fPIC", "-shared",
    "-fvisibility=hidden",    # each library keeps its runtime to itself
    "-fno-strict-aliasing",   # kernels cast float* to float4* freely
    "-fno-math-errno",        # sqrtf & co. inline, as on the GPU (no errno there)
    "-fstack-clash-protection",  # big frames touch every page: overflow hits the guard page
    "-Wl,-z,defs",            # an undefined function fails the build, not the load
)


def cache_dir():
    """Where built libraries live: <minicnn's cache>/emulator (see minicnn.config)."""
    return config.cache_root() / "emulator"


def compiler():
    """The C++ compiler command: $MINICNN_EMU_CXX or g++."""
    return settings.compiler()


@functools.lru_cache(maxsize=None)
def compiler_version(cxx):
    """The first line of ``cxx --version`` (part of the cache key).

    Raises ValueError naming $MINICNN_EMU_CXX when that variable chose a
    command that does not run, BuildError when the default g++ is missing.
    """
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        if settings.compiler_from_env(cxx):
            raise settings.bad_compiler(cxx, e) from e
        raise BuildError(f"the emulator needs a C++20 compiler, but {cxx!r} does not run ({e}); "
                         "install g++ (>= 10) or set MINICNN_EMU_CXX") from e
    return out.stdout.splitlines()[0] if out.stdout else cxx


_PASSED_OPTIONS = (("-D", "--define-macro"), ("-U", "--undefine-macro"), ("-I", "--include-path"))


def translate_options(options):
    """The NVRTC/nvcc options that mean the same to g++ (-D, -U, -I); others are dropped.

    >>> translate_options(('--std=c++17', '-DTILE=16', '--define-macro=X', '-I', 'inc'))
    ['-DTILE=16', '-DX', '-I', 'inc']
    """
    out, it = [], iter(options)
    for opt in it:
        for short, long_ in _PASSED_OPTIONS:
            if opt in (short, long_):
                out += [short, next(it, "")]
            elif opt.startswith(long_ + "="):
                out.append(short + opt[len(long_) + 1:])
            elif opt.startswith(short):
                out.append(opt)
            else:
                continue
            break
    return out


def glue(kernels, shared_names):
    """Generated code appended to the source: entry points and shared aliases."""
    lines = ["", '#line 1 "<emulator glue>"']
    for k in kernels.values():
        lines.append(f"EMU_KERNEL({k.name})")
        if k.launch_bounds:
            lines.append(f'extern "C" __attribute__((visibility("default"))) long '
                         f"__emu_bounds_{k.name}() {{ return (long)({k.launch_bounds}); }}")
    for name in shared_names:
        # `extern __shared__ float name[]` must resolve: to the dynamic buffer.
        lines.append(f'asm(".globl {name}\\n.hidden {name}\\n.set {name}, __emu_dyn_shared\\n");')
    return "\n".join(lines) + "\n"


def translation_unit(source, source_name):
    """(C++ text to compile, {name: Kernel})."""
    kernels = signatures.parse_kernels(source)
    unit = (f'#line 1 "{source_name}"\n' + signatures.rewrite_extern_shared(source)
            + glue(kernels, signatures.extern_shared_names(source)))
    return unit, kernels


def _headers_text():
    return "".join(f"// {p.name}\n{p.read_text()}" for p in sorted(HEADER_DIR.glob("*.h")))


def library_key(unit, flags, cxx):
    h = hashlib.sha256()
    for part in (unit, _headers_text(), "\0".join(flags), compiler_version(cxx)):
        h.update(part.encode())
        h.update(b"\0\1")
    return h.hexdigest()[:24]


def _write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def compile_unit(unit, out_path, flags, cxx, include_dirs=()):
    """Compile ``unit`` to ``out_path`` (built under a temporary name, then renamed)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    src_path = out_path.with_suffix(".cpp")  # kept next to the library, for debugging
    _write_atomic(src_path, unit)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=out_path.stem + ".", suffix=".so.tmp")
    os.close(fd)
    cmd = [cxx, *flags, "-include", str(HEADER), f"-I{HEADER_DIR}",
           *[f"-I{d}" for d in include_dirs], "-x", "c++", str(src_path), "-o", tmp]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise BuildError(f"g++ could not compile the kernels for the emulator:\n"
                             f"{res.stderr.strip()}\ncommand: {shlex.join(cmd)}")
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_library(source, source_name="<string>", options=(), include_dirs=()):
    """Path of the compiled library for ``source`` and its {name: Kernel}.

    ``source_name`` appears in compiler messages and error reports;
    ``options`` are the CUDA compile options (their -D/-U/-I are honoured).
    """
    cxx = compiler()
    unit, kernels = translation_unit(source, source_name)
    flags = (*CXX_FLAGS, *translate_options(options))
    key = library_key(unit, flags + tuple(str(d) for d in include_dirs), cxx)
    stem = Path(source_name).stem.replace("<", "").replace(">", "") or "module"
    path = cache_dir() / f"{stem}-{key}.so"
    if not path.exists():
        compile_unit(unit, path, flags, cxx, include_dirs)
    return path, kernels
