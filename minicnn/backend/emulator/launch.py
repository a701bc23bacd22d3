"""One kernel of an emulator module: check a launch, run it, report errors.

A launch runs the grid on the calling thread: blocks one after another, the
threads of a block as fibers. Options (keyword arguments, or environment
variables for every launch):

- ``order``: 'forward', 'reverse', 'random' (seeded) or 'all'
  ($MINICNN_EMU_ORDER, default 'forward'): the order threads run between
  two barriers, and blocks run in. 'all' runs the launch in the three
  orders from the same inputs and raises :class:`RaceError` when the
  results differ (a missing ``__syncthreads()`` shows up that way).
- ``seed``: for 'random' ($MINICNN_EMU_SEED, default 0).
- ``timeout``: seconds before a launch counts as hung ($MINICNN_EMU_TIMEOUT,
  default 60; 0 = none).
- $MINICNN_EMU_GUARD=0 passes arrays in place, without guard pages (faster,
  but out-of-bounds access may then go unnoticed).

Bad values raise ValueError naming the keyword or variable (see
:mod:`.settings`). Ctrl-C (SIGINT) during a launch on the main thread stops
it within a fraction of a second and raises KeyboardInterrupt; the launch is
abandoned (nothing is copied back) and the next one runs normally. With a
SIGINT handler of the program's own, the launch finishes first, as before.

Example::

    >>> fn = RawModule(path='tests/emulator_kernels/good.cu').get_function('axpb')
    >>> fn((4,), (256,), (x, y, np.float32(2), np.float32(1), np.int32(x.size)), order='all')
"""
import ctypes
import shutil
import signal
import subprocess
import threading

import numpy as np

from . import config, params, settings
from .errors import EmulatorError, KernelError, KernelFault, KernelTimeout, RaceError
from .guard import Arena
from .settings import ORDERS

_ORDER_CODES = {"forward": 0, "reverse": 1, "random": 2}
_RESULT_ERRORS = {1: KernelError, 2: KernelFault, 3: KernelTimeout}
_INTERRUPTED = 5  # EMU_INTERRUPTED of emu_launch.h

# The runtime's state and its signal handlers are per process: one launch at a time.
_LAUNCH_LOCK = threading.Lock()


# ----------------------------------------------------------------------------
# Ctrl-C
# ----------------------------------------------------------------------------
def interruptible():
    """Whether a SIGINT may stop a launch made now: on the main thread (the only
    one Python raises KeyboardInterrupt in) with Python's default handler. A
    handler of the program's own may mean "stop after this step": it runs
    once the launch is done, as it always did."""
    return (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)


def _raise_interrupt():
    """Raise the KeyboardInterrupt of a launch the runtime stopped for a SIGINT.

    The runtime passed the signal on to Python's handler, so the interpreter
    has it pending and usually raises it the moment the C call returns; if
    not yet, run the handler now (ctypes raises what it raised), and should
    no handler raise, raise KeyboardInterrupt here.
    """
    ctypes.pythonapi.PyErr_CheckSignals()
    raise KeyboardInterrupt


def _interrupt_note(lib, lbl):
    """Which launch a KeyboardInterrupt stopped, for the traceback."""
    msg = lib.emu_error().decode(errors="replace")
    if not msg.startswith("interrupted"):  # the signal came as the grid ended
        msg = "interrupted by SIGINT (Ctrl-C) as the launch ended; its results were dropped"
    return f"{lbl}: {msg}"


# ----------------------------------------------------------------------------
# Messages
# ----------------------------------------------------------------------------
def source_line(lib_path, pc_offset):
    """'at file:line (in function)' of an instruction in a built library, or ''."""
    tool = shutil.which("addr2line")
    if not pc_offset or not tool:
        return ""
    try:
        out = subprocess.run([tool, "-e", str(lib_path), "-f", "-C", hex(pc_offset)],
                             capture_output=True, text=True, timeout=20).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return ""
    if len(out) < 2 or out[1].startswith("??"):
        return ""
    # The kernel body is usually inlined into its generated entry point.
    func = out[0].split("(")[0].removeprefix("__emu_kernel_")
    where = out[1].split(" (discriminator")[0]
    return f"at {where} (in {func})"


def _first_difference(ref, got, dtype):
    """(element index, count of differing elements, ref value, got value)."""
    size = np.dtype(dtype).itemsize
    diff = (ref.reshape(-1, size) != got.reshape(-1, size)).any(axis=1)
    idx = np.flatnonzero(diff)
    k = int(idx[0])
    return k, idx.size, ref.view(dtype)[k], got.view(dtype)[k]


# ----------------------------------------------------------------------------
# The kernel object
# ----------------------------------------------------------------------------
class Kernel:
    """A kernel of an emulator :class:`RawModule`, called like CuPy's RawKernel:
    ``fn(grid, block, args, shared_mem=0)``.
    """

    def __init__(self, module, name, entry, specs, max_threads):
        self.module, self.name, self._entry = module, name, entry
        self.params = specs                 # [ParamSpec]
        self.max_threads_per_block = max_threads

    def __repr__(self):
        return f"<emulator Kernel {self.name}({', '.join(p.text for p in self.params)})>"

    def __call__(self, grid, block, args, *, shared_mem=0, order=None, seed=None, timeout=None):
        """Launch on the CPU; returns when the grid is done (CuPy's launches are async).

        grid, block: int or tuple of up to 3 ints. args: numpy arrays (for
        pointer parameters; copied into guarded memory and back) and numpy
        scalars of the exact C type. shared_mem: dynamic shared memory in
        bytes (keyword-only, as in CuPy). order/seed/timeout: see the module
        docstring. Example::

            fn((n_blocks,), (256,), (x, y, np.float32(2), np.float32(1), np.int32(n)))
        """
        grid3, block3 = config.dims3(grid, "grid"), config.dims3(block, "block")
        shared = config.as_int(shared_mem, "shared_mem")
        lbl = config.label(self.name, grid3, block3, shared)
        config.check_config(self.name, grid3, block3, shared, self.max_threads_per_block)
        params.check_args(self.params, args, lbl)
        launch = (grid3, block3, shared, tuple(args), settings.launch_seed(seed),
                  settings.launch_timeout(timeout), lbl)
        order = settings.launch_order(order)
        guard = settings.guard_enabled()
        with _LAUNCH_LOCK:
            if order == "all":
                self._run_all_orders(*launch)
            else:
                arena = self._run(*launch, order=order, guard=guard)
                if arena is not None:
                    arena.copy_back()
                    arena.free()

    # ------------------------------------------------------------------------
    def _arena(self, args):
        arrays = [(i, a, self.params[i].kind == params.POINTER, self.params[i].short)
                  for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        return Arena(arrays)

    @staticmethod
    def _pack(args, arena):
        """The void* array the trampoline unpacks: args[i] points at value i."""
        n = len(args)
        slots = (ctypes.c_void_p * max(n, 1))()  # device pointers live here
        argv = (ctypes.c_void_p * max(n, 1))()
        keep = [slots, argv]
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                slots[i] = arena.pointer(i) if arena else a.ctypes.data
                argv[i] = ctypes.addressof(slots) + i * ctypes.sizeof(ctypes.c_void_p)
            else:
                raw = a.tobytes()
                buf = (ctypes.c_uint64 * max(1, (len(raw) + 7) // 8))()  # 8-byte aligned
                ctypes.memmove(buf, raw, len(raw))
                keep.append(buf)
                argv[i] = ctypes.addressof(buf)
        return argv, keep

    def _run(self, grid, block, shared, args, seed, timeout, lbl, *, order, guard):
        """One launch in one order. Returns the Arena (caller copies back and frees)."""
        arena = self._arena(args) if guard else None
        try:
            argv, keep = self._pack(args, arena)
            lib = self.module.library
            rc = self._call_runtime(lib, argv, grid, block, shared, order, seed, timeout, lbl)
            if rc:
                raise self._error(rc, arena, lbl, order)
            damage = arena.damage() if arena else []
            if damage:
                raise KernelFault(f"{lbl}: " + "; ".join(damage))
            return arena
        except BaseException:
            if arena:
                arena.free()
            raise

    def _call_runtime(self, lib, argv, grid, block, shared, order, seed, timeout, lbl):
        """emu_launch's result code. A SIGINT that stopped the launch comes out
        as KeyboardInterrupt, with a note naming the launch (Python >= 3.11)."""
        try:
            rc = lib.emu_launch(self._entry, argv, (ctypes.c_uint * 3)(*grid),
                                (ctypes.c_uint * 3)(*block), shared, _ORDER_CODES[order],
                                seed, timeout, interruptible())
            if rc == _INTERRUPTED:
                _raise_interrupt()
        except KeyboardInterrupt as e:
            if hasattr(e, "add_note"):
                e.add_note(_interrupt_note(lib, lbl))
            raise
        return rc

    def _error(self, rc, arena, lbl, order):
        lib = self.module.library
        msg = lib.emu_error().decode(errors="replace")
        if rc == 2:
            info = (ctypes.c_ulonglong * 4)()
            lib.emu_fault(info)
            where = arena.locate(info[1], bool(info[2])) if arena else None
            if where:
                msg += f" -- {where}"
            line = source_line(self.module.library_path, info[3])
            if line:
                msg += f" -- {line}"
        if order != "forward":
            msg += f" [thread order: {order}]"
        return _RESULT_ERRORS.get(rc, EmulatorError)(f"{lbl}: {msg}")

    def _run_all_orders(self, grid, block, shared, args, seed, timeout, lbl):
        """Run in every order from the same inputs; the results must match bit for bit."""
        first = None
        try:
            for order in ORDERS:
                arena = self._run(grid, block, shared, args, seed, timeout, lbl, order=order, guard=True)
                if first is None:
                    first, ref = arena, arena.outputs()
                    continue
                got = arena.outputs()
                arena.free()
                self._compare(ref, got, args, order, lbl)
            first.copy_back()
        finally:
            if first is not None:
                first.free()

    def _compare(self, ref, got, args, order, lbl):
        for i in sorted(ref):
            if np.array_equal(ref[i], got[i]):
                continue
            k, count, a, b = _first_difference(ref[i], got[i], args[i].dtype)
            raise RaceError(
                f"{lbl}: the results depend on the order threads run in (a missing "
                f"__syncthreads()? a race on shared or global memory? a block reading another "
                f"block's output?): {self.params[i].short} element {k}: forward "
                f"order gives {a!r}, {order} order gives {b!r} ({count} of "
                f"{args[i].size} elements differ)")
