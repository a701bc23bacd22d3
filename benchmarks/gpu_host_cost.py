"""Host cost of one training step on the CUDA path, measured on any CPU (issue 11, item 3).

The book's MNIST CNN (conv32-pool-conv64-pool-conv64-flatten-dense64-dense10,
RMSprop, batch 64) trains through ``model.fit`` on the ``'cupy'`` backend's
``CudaDevice``, with two stand-ins that do no device work and count instead:

- the kernel loader (``minicnn.backend.loader.load_module``) hands out no-op
  kernels: each call of ``device.launch`` runs all of minicnn's checks and
  bookkeeping and then counts one launch of that kernel;
- ``FakeCupy`` stands for the ``cupy`` module, over ``DeviceArray`` (a NumPy
  array standing for a CuPy one): ``matmul`` counts a cuBLAS GEMM and returns
  a result left as it is (zeros); ``empty``/``zeros`` count allocations (and a memset);
  ``asarray`` of a host array counts a host-to-device copy, ``asnumpy`` a
  device-to-host copy and a sync; any other CuPy operation on a device array
  (``a + b``, ``a.sum()``) counts one CuPy kernel; ``float(a)``, ``int(a)``,
  ``a.item()`` count a sync.

So the figures are those of minicnn's own Python per step, without CuPy's
dispatch (each real CuPy call adds its own host time) and without GPU work.
Per step means from one batch's start to the next inside ``fit`` (the batch
gather on the host included), medians over many steps after a warm-up. Host
time is the CPU time of the thread that runs fit (``time.thread_time_ns``):
with no GPU to wait for it equals the wall clock on an idle machine, and
unlike the wall clock (also printed) it does not count the time other
processes hold the core.

    python benchmarks/gpu_host_cost.py                 # batch 64, 300 steps
    python benchmarks/gpu_host_cost.py --batch-size 256 --steps 100
    python benchmarks/gpu_host_cost.py --optimizer adam   # another optimizer (default rmsprop)

Output: the breakdown, then ``eager step: OPS device operations, ALLOCS
allocations, SYNCS syncs, US us host`` (``MINICNN_STEP_PLAN=0``) and, last,
``planned step: ...`` in the same format: the static-shape step plan (issue
11, item 2; minicnn/models/step_plan.py) on, switched by ``plan_switch``.
Planned, the step is a CUDA graph captured once (``FakeCupy.cuda``: what is
issued while capturing is not counted; each graph launch counts one device
operation), the batch copied into the plan's buffers and the sums added up
in place. Device operations = kernel launches + GEMMs + CuPy kernels +
memsets + copies + graph launches.
"""
import argparse
import collections
import contextlib
import os
import platform
import statistics
import sys
import time
from unittest import mock

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minicnn import backend, ops  # noqa: E402
from minicnn.backend import cupy_check, loader  # noqa: E402
from minicnn.callbacks import Callback  # noqa: E402

KINDS = ("launches", "gemms", "cupy_ops", "memsets", "copies", "h2d", "d2h", "graphs", "allocations", "syncs")
DEVICE_OPS = ("launches", "gemms", "cupy_ops", "memsets", "copies", "h2d", "d2h", "graphs")


class Counts:
    """Running totals of what the device was asked to do (see KINDS), and launches by kernel."""

    def __init__(self):
        self.total = dict.fromkeys(KINDS, 0)
        self.by_name = collections.Counter()
        self.capturing = False   # inside a stream capture the work goes into the graph: not counted

    def add(self, kind, name=None):
        if self.capturing:
            return
        self.total[kind] += 1
        if name is not None:
            self.by_name[name] += 1

    def snapshot(self):
        return tuple(self.total[k] for k in KINDS)


COUNTS = Counts()  # the stand-ins below count here (one fake device per process)


# ----------------------------------------------------------------------------
# the stand-in for CuPy arrays and the cupy module
# ----------------------------------------------------------------------------
def _device(a):
    """A NumPy array (or scalar) as a DeviceArray: CuPy returns 0-d arrays, not scalars."""
    return np.asarray(a).view(DeviceArray)


class DeviceArray(np.ndarray):
    """A NumPy array standing for a CuPy array: views (reshape, .T, slices) are
    free as in CuPy; any computation on it counts one CuPy kernel and an
    allocation; reading a value on the host counts a sync."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        COUNTS.add("cupy_ops", f"cupy {ufunc.__name__}" + ("" if method == "__call__" else "." + method))
        args = [a.view(np.ndarray) if isinstance(a, DeviceArray) else a for a in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) for o in kwargs["out"])
        else:
            COUNTS.add("allocations")
        with np.errstate(all="ignore"):  # the values mean nothing: no kernel computed them
            result = getattr(ufunc, method)(*args, **kwargs)
        return tuple(map(_device, result)) if isinstance(result, tuple) else _device(result)

    def __array_function__(self, func, types, args, kwargs):
        COUNTS.add("cupy_ops", f"cupy {func.__name__}")
        COUNTS.add("allocations")
        with np.errstate(all="ignore"):
            return _device(super().__array_function__(func, (np.ndarray,), args, kwargs))

    def _read(self):
        COUNTS.add("syncs")
        COUNTS.add("d2h")
        return self.view(np.ndarray)

    def __float__(self):
        return float(self._read())

    def __int__(self):
        return int(self._read())

    def __bool__(self):
        return bool(self._read())

    def __index__(self):
        return self._read().__index__()

    def item(self, *args):
        return self._read().item(*args)

    def fill(self, value):
        """cupy.ndarray.fill: a memset (0) or a fill kernel; the buffer stays as it is."""
        COUNTS.add("memsets", "cudaMemsetAsync")

    def set(self, host, stream=None):
        """cupy.ndarray.set: a host-to-device copy into this array (left as it is: zeros)."""
        COUNTS.add("h2d", "copy host->device")

    def copy(self, order="C"):
        COUNTS.add("cupy_ops", "cupy copy")
        COUNTS.add("allocations")
        return np.array(self.view(np.ndarray), order=order).view(DeviceArray)

    def __setitem__(self, key, value):
        COUNTS.add("cupy_ops", "cupy setitem")
        self.view(np.ndarray)[key] = value.view(np.ndarray) if isinstance(value, DeviceArray) else value

    def tolist(self):
        return self._read().tolist()


class FakeCupy:
    """The part of the ``cupy`` module that CudaDevice and the ops use, counting
    instead of working; anything else is refused so a new use is noticed."""

    ndarray = DeviceArray
    float32, int32 = np.float32, np.int32

    def __init__(self):
        self.__name__ = "cupy"
        self._zeros = {}   # (shape, dtype) -> a zeroed buffer that every "allocation" views


    def __getattr__(self, name):
        raise AttributeError(f"the counting stand-in for CuPy has no {name!r}: "
                             "benchmarks/gpu_host_cost.py models what minicnn uses; add it there")

    def empty(self, shape, dtype="float32"):
        """A view of one zeroed buffer per shape: no host work per call (as CuPy's pool),
        and values that stay finite (the no-op kernels never write)."""
        COUNTS.add("allocations")
        key = ((int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape), np.dtype(dtype))
        buf = self._zeros.get(key)
        if buf is None:
            buf = self._zeros[key] = np.zeros(*key)
        return buf.view(DeviceArray)

    def zeros(self, shape, dtype="float32"):
        COUNTS.add("memsets", "cudaMemsetAsync")
        return self.empty(shape, dtype)

    def asarray(self, a, dtype=None):
        if isinstance(a, DeviceArray):
            if dtype is None or np.dtype(dtype) == a.dtype:
                return a
            COUNTS.add("cupy_ops", "cupy astype")
        else:
            COUNTS.add("h2d", "copy host->device")
        COUNTS.add("allocations")
        return np.array(a, dtype=dtype, order="C").view(DeviceArray)

    def ascontiguousarray(self, a, dtype=None):
        if isinstance(a, DeviceArray) and a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
            return a
        if isinstance(a, DeviceArray):
            COUNTS.add("cupy_ops", "cupy copy")
            COUNTS.add("allocations")
            return np.ascontiguousarray(a.view(np.ndarray), dtype).view(DeviceArray)
        return self.asarray(a, dtype)

    def asnumpy(self, a):
        COUNTS.add("syncs")
        COUNTS.add("d2h", "copy device->host")
        return np.array(a.view(np.ndarray) if isinstance(a, DeviceArray) else a)

    def add(self, a, b, out=None):
        return np.add(a, b) if out is None else np.add(a, b, out=out)   # counted by DeviceArray

    def take(self, src, idx, axis=None, out=None):
        """cupy.take into ``out``: the device-side gather of a batch's rows (one CuPy kernel)."""
        if out is None or axis != 0:
            raise TypeError("take: minicnn gathers batch rows into a buffer (axis=0, out=...)")
        COUNTS.add("cupy_ops", "cupy take")
        return out

    def copyto(self, dst, src):
        """cupy.copyto of two contiguous device arrays: one device-to-device copy."""
        if not (isinstance(dst, DeviceArray) and isinstance(src, DeviceArray)):
            raise TypeError("copyto: both arrays must be device arrays")
        COUNTS.add("copies", "cudaMemcpyAsync device->device")

    def ones(self, shape, dtype="float32"):
        COUNTS.add("cupy_ops", "cupy fill")
        return self.empty(shape, dtype)

    def matmul(self, a, b, out=None):
        """A cuBLAS GEMM (as cupy.matmul of two 2-D float32 arrays), the result not computed."""
        if not (isinstance(a, DeviceArray) and isinstance(b, DeviceArray)):
            raise TypeError("matmul: both operands must be device arrays")
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not chain")
        COUNTS.add("gemms", "cublasSgemm")
        if out is not None:
            return out
        return self.empty((a.shape[0], b.shape[1]), np.result_type(a.dtype, b.dtype))

    @property
    def cuda(self):
        return FakeCuda


class FakeGraph:
    """cupy.cuda.Graph: launching it is one device operation."""

    def launch(self, stream=None):
        COUNTS.add("graphs", "cudaGraphLaunch")


class FakeStream:
    """cupy.cuda.Stream with stream capture: what is issued while capturing is not counted."""

    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        COUNTS.add("syncs")

    def begin_capture(self, mode=None):
        COUNTS.capturing = True

    def end_capture(self):
        COUNTS.capturing = False
        return FakeGraph()


class FakeMemoryHook:
    """cupy.cuda.MemoryHook: a context manager whose hooks the pool calls (FakeCupy has no pool)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeRuntime:
    """cupy.cuda.runtime: the free memory fit checks before keeping the training set on the device."""

    @staticmethod
    def memGetInfo():
        return 100 << 30, 141 << 30   # (free, total): an H200's, nearly empty


class FakeCuda:
    """The part of cupy.cuda a step plan and fit use."""

    Stream = FakeStream
    Graph = FakeGraph
    MemoryHook = FakeMemoryHook
    runtime = FakeRuntime


class NoOpKernel:
    """A compiled kernel's stand-in: CuPy's call shape, counts the launch, does nothing."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, grid, block, args, shared_mem=0):
        COUNTS.add("launches", self.name)


class NoOpModule:
    """A kernels/<name>.cu module whose kernels are NoOpKernels (only the names it declares)."""

    def __init__(self, name):
        self.name = name
        self.names = ops.kernels().get(name, ())

    def get_function(self, kernel):
        if kernel not in self.names:
            raise KeyError(f"kernels/{self.name}.cu declares no kernel {kernel!r} (ops.{self.name}.KERNELS)")
        return NoOpKernel(self.name, kernel)


@contextlib.contextmanager
def counting_cupy_backend():
    """The 'cupy' backend on FakeCupy with no-op kernels, for the block (then NumPy again)."""
    fake = FakeCupy()
    with mock.patch.object(cupy_check, "load_cupy", lambda: fake), \
            mock.patch.object(loader, "load_module", lambda name, target: NoOpModule(name)):
        backend.set_backend("cupy")
        try:
            yield backend.device()
        finally:
            backend.set_backend("numpy")


def plan_switch():
    """How the measurement turns the static-shape step plan on and off: a function
    ``switch(on) -> context manager`` (bench_gpu.py uses it too). The eager figures
    are measured with the plan off, the planned ones with it on; the last line
    printed is ``planned step: ...``."""
    from minicnn import config
    return lambda on: config.override(MINICNN_STEP_PLAN=on)


# ----------------------------------------------------------------------------
# the measurement
# ----------------------------------------------------------------------------
class StepClock(Callback):
    """At each batch's start: the time and the counts (nothing that reads the device)."""

    def __init__(self, name_steps=()):
        super().__init__()
        self.times, self.walls, self.snaps, self.names = [], [], [], {}
        self.name_steps = set(name_steps)

    def on_train_batch_begin(self, batch, logs=None):
        if batch in self.name_steps:
            self.names[batch] = collections.Counter(COUNTS.by_name)
        self.snaps.append(COUNTS.snapshot())
        self.walls.append(time.perf_counter_ns())
        self.times.append(time.thread_time_ns())


def measure(batch_size, steps, warmup, switch=None, on=False, optimizer="rmsprop"):
    """Per-step medians of every count and of host µs over ``steps`` steps after ``warmup``
    (``optimizer``: compile's argument, a name such as 'adam')."""
    from train_mnist import build_model
    rng = np.random.default_rng(0)
    n = batch_size * (warmup + steps + 1)   # one more batch: the last step ends where it begins
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    context = (switch or plan_switch())(on)   # on=False: eager steps (the plan is on by default)
    with counting_cupy_backend(), context:
        model = build_model()
        model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
        clock = StepClock(name_steps=(warmup, warmup + 1))
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[clock])
    snaps = np.diff(np.array(clock.snaps), axis=0)[warmup:]
    us = np.diff(np.array(clock.times))[warmup:] / 1000.0
    wall = np.diff(np.array(clock.walls))[warmup:] / 1000.0
    per_step = {k: int(statistics.median(snaps[:, i])) for i, k in enumerate(KINDS)}
    steady = all((snaps[:, i] == snaps[0, i]).all() for i in range(len(KINDS)))
    by_name = clock.names[warmup + 1] - clock.names[warmup]
    return per_step, steady, by_name, us, wall


def summary_line(label, per_step, us):
    ops_ = sum(per_step[k] for k in DEVICE_OPS)
    return (f"{label} step: {ops_} device operations, {per_step['allocations']} allocations, "
            f"{per_step['syncs']} syncs, {statistics.median(us):.0f} us host")


def report(label, per_step, steady, by_name, us, wall):
    print(f"{label} step, per step (medians over {len(us)} steps"
          f"{'' if steady else '; the counts vary from step to step'}):")
    launches = ", ".join(f"{k} {v}" for k, v in sorted(by_name.items())
                         if k not in ("cublasSgemm", "cudaMemsetAsync", "cudaGraphLaunch", "cudaMemcpyAsync device->device")
                         and not k.startswith(("cupy ", "copy ")))
    cupy = ", ".join(f"{k[5:]} {v}" for k, v in sorted(by_name.items()) if k.startswith("cupy "))
    rows = [("kernel launches", per_step["launches"], launches),
            ("cuBLAS GEMMs", per_step["gemms"], ""),
            ("CuPy kernels", per_step["cupy_ops"], cupy),
            ("memsets", per_step["memsets"], ""),
            ("device copies", per_step["copies"], ""),
            ("host->device copies", per_step["h2d"], ""),
            ("device->host copies", per_step["d2h"], ""),
            ("CUDA graph launches", per_step["graphs"], ""),
            ("allocations", per_step["allocations"], ""),
            ("syncs", per_step["syncs"], "")]
    for name, value, detail in rows:
        print(f"  {name:<20} {value:>5}" + (f"   ({detail})" if detail else ""))
    p10, p90 = np.percentile(us, [10, 90])
    print(f"  {'host time':<20} {statistics.median(us):>5.0f} us   (this thread's CPU time; p10 {p10:.0f}, "
          f"p90 {p90:.0f}; wall clock {statistics.median(wall):.0f})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="measured steps (default 300)")
    parser.add_argument("--warmup", type=int, default=10, help="steps before measuring (default 10)")
    parser.add_argument("--optimizer", default="rmsprop", help="the optimizer's name (default rmsprop, "
                        "the book's; adam's bias correction is a step value uploaded every step)")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.warmup < 1:
        parser.error("--steps must be >= 2 and --warmup >= 1")

    print(f"book MNIST CNN, {args.optimizer}, batch {args.batch_size}, CudaDevice('cupy') with no-op "
          f"kernels and a counting stand-in for CuPy (no GPU work, no CuPy dispatch); "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}")
    switch = plan_switch()
    eager = measure(args.batch_size, args.steps, args.warmup, switch, on=False, optimizer=args.optimizer)
    report("eager", *eager)
    lines = [summary_line("eager", eager[0], eager[3])]
    if switch is not None:
        planned = measure(args.batch_size, args.steps, args.warmup, switch, on=True, optimizer=args.optimizer)
        report("planned", *planned)
        lines.append(summary_line("planned", planned[0], planned[3]))
    else:
        print("(no step plan yet: issue 11, item 2; the planned line appears once plan_switch() returns one)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
