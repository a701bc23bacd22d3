"""The Python parts of benchmarks/gpu_check.sh: what a GPU machine is asked, one part at a time.

    python benchmarks/gpu_parts.py info                  # (a) device, driver, cuBLAS, NVRTC
    python benchmarks/gpu_parts.py parity --batch 64 1024   # (c) a training step, cupy vs NumPy
    python benchmarks/gpu_parts.py nosync --steps 50     # (d) no sync inside fit's steps; launches

Each prints what it found and ends with ``PASS``, ``FAIL`` or ``SKIP`` and a
reason on its last line; the exit status is 0, 1 or 3 accordingly. With
``--emulator`` the same code runs on the CUDA emulator (the kernels on the
CPU): what only a GPU can show is skipped, the rest runs at the sizes given.
"""
import argparse
import contextlib
import os
import platform
import shutil
import sys
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minicnn import backend, config  # noqa: E402
from minicnn.backend import cupy_check, loader  # noqa: E402
from minicnn.callbacks import Callback  # noqa: E402
from minicnn.utils import set_random_seed, to_categorical  # noqa: E402

PASS, FAIL, SKIP = 0, 1, 3
VERDICT = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}


def verdict(code, reason):
    print(f"{VERDICT[code]}: {reason}")
    return code


def book_model():
    from train_mnist import build_model
    model = build_model()
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return model


def batch_of(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), to_categorical(rng.integers(0, 10, n), 10)


# ----------------------------------------------------------------------------
# (a) device, driver, cuBLAS, NVRTC
# ----------------------------------------------------------------------------
def info(args):
    try:
        import cupy
    except ImportError as e:
        cupy = None
        problems = [f"CuPy does not import: {e}"]
    else:
        problems = cupy_check.problems(cupy)
        print(f"cupy {cupy.__version__}")
    if args.emulator:
        for p in problems:
            print(f"  (no GPU here, as expected) {p}")
        if not dense_layer_runs("emulator"):
            return verdict(FAIL, "a Dense layer on the emulator differs from NumPy")
        print(f"emulator: {shutil.which(os.environ.get('MINICNN_EMU_CXX', 'g++'))} compiled our kernels "
              "and a Dense layer matched NumPy")
        return verdict(SKIP, "emulator mode: no GPU, driver or cuBLAS to look at")
    for p in problems:
        print(f"  missing: {p}")
    if problems:
        return verdict(FAIL, f"{len(problems)} missing piece(s); see above")
    from cuda import pathfinder
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"device: {name}, compute capability {props['major']}.{props['minor']}, "
          f"{props['multiProcessorCount']} SMs, {props['totalGlobalMem'] / 2**30:.0f} GiB")
    print(f"driver CUDA version {runtime.driverGetVersion()}, CuPy's runtime {runtime.runtimeGetVersion()}")
    versions = {"cuBLAS": lambda: cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle()),
                "NVRTC": cupy.cuda.nvrtc.getVersion}
    for lib, version in versions.items():
        path = _quietly(lambda: pathfinder.load_nvidia_dynamic_lib(lib.lower()).abs_path)
        print(f"{lib}: version {_quietly(version)}, from {path}")
    if not dense_layer_runs("cupy"):
        return verdict(FAIL, "a Dense layer (a cuBLAS GEMM and our bias+relu kernel) differs from NumPy")
    return verdict(PASS, f"{name}: driver, cuBLAS and NVRTC found; a GEMM and our kernel ran right")


def _quietly(fn):
    """fn(), or what went wrong (for lines that only inform)."""
    try:
        return fn()
    except Exception as e:
        return f"unknown ({type(e).__name__}: {e})"


def dense_layer_runs(name):
    """A Dense(relu) layer on backend ``name``: one GEMM and one of our kernels (compiled
    on first use), against NumPy on the host."""
    from minicnn import layers
    backend.set_backend(name)
    try:
        layer = layers.Dense(5, activation="relu")
        x = np.random.default_rng(0).standard_normal((300, 7)).astype(np.float32)
        y = backend.to_numpy(layer(x))
        w, b = layer.get_weights()
    finally:
        backend.set_backend("numpy")
    return np.allclose(y, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# (c) a training step: CUDA backend vs NumPy
# ----------------------------------------------------------------------------
def reference_when(name):
    """On 'numpy': the reference code (the specification; no compiled kernels to build on a
    fresh machine), else nothing."""
    from minicnn import config
    return config.override(MINICNN_CPU_FAST=False) if name == "numpy" else contextlib.nullcontext()


def two_steps(name, weights, x, y):
    """Two train_on_batch calls from ``weights`` on backend ``name``: results, weights, predictions."""
    backend.set_backend(name)
    try:
        with reference_when(name):
            model = book_model()
            model.set_weights(weights)
            results = [model.train_on_batch(x, y), model.train_on_batch(x, y)]
            return np.array(results), model.get_weights(), model.predict(x, batch_size=len(x), verbose=0)
    finally:
        backend.set_backend("numpy")


def step_parity(name, batch, rtol=1e-3, atol=1e-5):
    """(ok, text): the book model's first two training steps on ``name`` vs the NumPy backend."""
    set_random_seed(0)
    x, y = batch_of(batch)
    backend.set_backend("numpy")
    start = book_model().get_weights()
    ref = two_steps("numpy", start, x, y)
    got = two_steps(name, start, x, y)
    loss_err = float(np.max(np.abs(got[0] - ref[0])))
    w_err = max(float(np.max(np.abs(a - b))) for a, b in zip(got[1], ref[1]))
    p_err = float(np.max(np.abs(got[2] - ref[2])))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(ref[1], start))
    ok = (np.allclose(got[0], ref[0], rtol=1e-4, atol=1e-6)
          and all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(got[1], ref[1]))
          and np.allclose(got[2], ref[2], rtol=rtol, atol=atol) and moved > 1e-4)
    text = (f"batch {batch}: loss/accuracy max diff {loss_err:.2e}, weights {w_err:.2e}, "
            f"predictions {p_err:.2e} (the steps moved the weights by up to {moved:.2e})")
    return ok, text


def parity(args):
    name = "emulator" if args.emulator else "cupy"
    failed = []
    for batch in args.batch:
        ok, text = step_parity(name, batch)
        print(f"{name} vs numpy, {text}: {'ok' if ok else 'DIFFERENT'}")
        if not ok:
            failed.append(batch)
    if failed:
        return verdict(FAIL, f"{name} differs from NumPy at batch {failed}")
    return verdict(PASS, f"{name} matches NumPy at batch {', '.join(map(str, args.batch))}")


# ----------------------------------------------------------------------------
# (d) no sync inside fit's steps; launches per step
# ----------------------------------------------------------------------------
class CountingXp:
    """The device's array module, counting the GEMMs and allocations the ops ask of it."""

    def __init__(self, xp, counts):
        self._xp, self._counts = xp, counts
        self.__name__ = xp.__name__

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def matmul(self, a, b, out=None):
        self._counts["gemms"] += 1
        if out is None:
            self._counts["allocations"] += 1   # its result
        return self._xp.matmul(a, b, out=out)

    def copyto(self, dst, src):
        self._counts["copies"] += 1
        return self._xp.copyto(dst, src)

    def empty(self, shape, dtype="float32"):
        self._counts["allocations"] += 1
        return self._xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype="float32"):
        self._counts["allocations"] += 1
        return self._xp.zeros(shape, dtype=dtype)


@contextlib.contextmanager
def counted_backend(name, counts):
    """Backend ``name`` whose launches, GEMMs, allocations and to_numpy read-backs go to ``counts``."""
    real_load = loader.load_module

    class Counted:
        def __init__(self, module):
            self.module = module

        def get_function(self, kernel):
            fn = self.module.get_function(kernel)

            def launch(*args, **kwargs):
                counts["launches"] += 1
                return fn(*args, **kwargs)
            return launch

    previous = loader.load_module
    loader.load_module = lambda module, target: Counted(real_load(module, target))
    try:
        backend.set_backend(name)
        device = backend.device()
        device.xp = CountingXp(device.xp, counts)
        to_numpy = device.to_numpy

        def counted_to_numpy(a):
            counts["read-backs"] += 1
            return to_numpy(a)
        device.to_numpy = counted_to_numpy
        yield device
    finally:
        loader.load_module = previous
        backend.set_backend("numpy")


class StepWindow(Callback):
    """Counts from batch 1's start to batch ``steps + 1``'s start (after one warm-up step:
    kernel compiles, optimizer state), under ``guard`` (a context) in between."""

    def __init__(self, steps, counts, guard):
        super().__init__()
        self.steps, self.counts, self.guard = steps, counts, guard
        self.stack = contextlib.ExitStack()
        self.before = self.after = None

    first = 1   # the first batch counted (after warm-up steps)

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.first:
            self.before = dict(self.counts)
            self.stack.enter_context(self.guard())
        elif batch == self.first + self.steps:
            self.stack.close()
            self.after = dict(self.counts)


def nosync(args):
    name = "emulator" if args.emulator else "cupy"
    # allocations: the ops' empty/zeros and GEMM outputs; pool mallocs: every CuPy allocation
    counts = dict.fromkeys(("launches", "gemms", "copies", "allocations", "read-backs", "pool mallocs"), 0)
    hooks = contextlib.nullcontext()
    if args.emulator:
        guard = contextlib.nullcontext
    else:
        import cupyx
        from cupy.cuda import memory_hook

        class PoolMallocs(memory_hook.MemoryHook):
            name = "minicnn gpu_check"

            def malloc_postprocess(self, **kwargs):
                counts["pool mallocs"] += 1
        hooks = PoolMallocs()
        guard = lambda: cupyx.allow_synchronize(False)  # noqa: E731
    found = {}
    for how, plan in (("eager", False), ("planned", True)):   # MINICNN_STEP_PLAN off, then on
        for k in counts:
            counts[k] = 0
        set_random_seed(0)
        x, y = batch_of(args.batch * (args.steps + 4))
        window = StepWindow(args.steps, counts, guard)
        window.first = 3 if plan else 1   # a plan is ready after two recordings
        try:
            with counted_backend(name, counts), hooks, config.override(MINICNN_STEP_PLAN=plan):
                model = book_model()
                model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, callbacks=[window])
        except Exception as e:
            window.stack.close()
            traceback.print_exc(limit=-6)
            return verdict(FAIL, f"{type(e).__name__} inside the {how} steps: {e}")
        per_step = found[how] = {k: (window.after[k] - window.before[k]) / args.steps for k in counts}
        print(f"{name} {how}, batch {args.batch}, per step over {args.steps} steps of fit: "
              + ", ".join(f"{k} {v:g}" for k, v in per_step.items() if not (args.emulator and k == "pool mallocs")))
        if per_step["read-backs"]:
            return verdict(FAIL, f"{per_step['read-backs']:g} read-backs per {how} step (each one a sync)")
    if args.emulator:
        return verdict(PASS, "no read-back inside the steps, eager or planned "
                             "(allow_synchronize needs a GPU: not checked)")
    return verdict(PASS, f"{args.steps} steps under cupyx.allow_synchronize(False), eager and planned: "
                         f"no sync; eager {found['eager']['launches']:g} kernel launches and "
                         f"{found['eager']['gemms']:g} GEMMs per step")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("info", "parity", "nosync"))
    parser.add_argument("--emulator", action="store_true", help="the CUDA emulator instead of a GPU")
    parser.add_argument("--batch", type=int, nargs="+", default=[64],
                        help="batch size(s) (parity: each; nosync: the first)")
    parser.add_argument("--steps", type=int, default=50, help="nosync: steps checked (default 50)")
    args = parser.parse_args(argv)
    args.batch = args.batch if args.part == "parity" else args.batch[0]
    print(f"gpu_parts {args.part}: {platform.node()}, Python {platform.python_version()}, NumPy {np.__version__}")
    if not args.emulator and args.part != "info" and not backend._gpu_usable():
        try:
            cupy_check.load_cupy()
        except cupy_check.CudaSetupError as e:
            print(e)
        return verdict(FAIL, "no usable GPU (see above); --emulator runs this on the CPU")
    return {"info": info, "parity": parity, "nosync": nosync}[args.part](args)


if __name__ == "__main__":
    sys.exit(main())
