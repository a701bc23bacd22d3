"""Step plans: one training step recorded at the device seam, then replayed (issue 11, item 2).

While a :class:`Recording` is the device's ``recording`` (``CudaDevice.recording``),
the step runs as usual, and the device notes, in order, every buffer it
allocates (``device.empty`` / ``zeros``: the plan's arena), every zero fill,
every device-to-device copy (``device.copy``), every kernel launch
(``device.launch``), every GEMM (``device.matmul``), every small table
uploaded for a kernel (``device.constant``: one of the step's buffers, filled
once, its bytes part of the work) and every :class:`~minicnn.backend.step_values.StepValues`
the step refreshed (a learning rate, Adam's step size, a dropout key).
Replaying the notes repeats the step's work on the same buffers, without
any of minicnn's Python but the step values: their owners compute this
step's values, uploaded into their fixed buffers BEFORE the work, then the
work: on the emulator launch by launch, on CuPy as one CUDA graph captured
once (:meth:`Recording.capture`; launch by launch if the capture fails).

A replay is right only if the step did all its device work through those
calls and its work does not change from step to step. The second is
checked, not assumed: :meth:`Recording.signature` writes the work with each
array named by where it lives (the i-th arena buffer, or a fixed pointer such
as a weight or an optimizer slot) and each scalar by its value; two
consecutive recordings of a static step have equal signatures. Numbers that
change per step reach the kernels through step values (a pointer, the same
every step); a kernel scalar that changes per step, or arrays made outside
the seam (a CuPy ``a + b`` feeding a kernel, a new array each step), make the
signatures differ: no plan then.

Example (what minicnn.models.step_plan does)::

    >>> rec = Recording(device)
    >>> with rec.active():
    ...     outputs = one_step()          # runs, and is noted
    >>> rec.replay()                      # the same work again, same buffers
"""
import bisect
import contextlib
import warnings

import numpy as np


def pointer(a):
    """The device address of array ``a`` (CuPy) or its host address (NumPy, the emulator)."""
    data = getattr(a, "data", None)
    ptr = getattr(data, "ptr", None)   # cupy.ndarray.data is a MemoryPointer
    return int(ptr) if ptr is not None else a.__array_interface__["data"][0]


class Recording:
    """The device work of one step, in order, and the buffers it allocated."""

    def __init__(self, device):
        self.device = device
        self.buffers = []   # arrays allocated during the step, in order: the arena
        self.actions = []   # ('fill', a, value) | ('copy', dst, src) | ('launch', fn, grid, block, args)
        #                     | ('gemm', a, b, out) | ('constant', a, bytes)
        self.step_values = []   # the StepValues the step refreshed, in order (a replay refreshes them)
        self.repeated = False   # one of them refreshed twice in the step: no replay can do that
        self.outputs = ()   # the step's results (arrays the replay writes again)
        self.graph = None   # CuPy only: the CUDA graph of the actions, once captured

    @contextlib.contextmanager
    def active(self):
        """Within the block the device notes its work here (one recording at a time)."""
        if self.device.recording is not None:
            raise RuntimeError("a step plan is already recording on this device")
        self.device.recording = self
        try:
            yield self
        finally:
            self.device.recording = None

    # -- what the device calls while recording ------------------------------------------
    def allocated(self, a):
        self.buffers.append(a)

    def fill(self, a, value):
        a.fill(value)
        self.actions.append(("fill", a, value))

    def copy(self, dst, src):
        self.device.xp.copyto(dst, src)
        self.actions.append(("copy", dst, src))

    def gemm(self, a, b, out):
        self.device.xp.matmul(a, b, out=out)
        self.actions.append(("gemm", a, b, out))

    def launched(self, fn, grid, block, args):
        self.actions.append(("launch", fn, grid, block, args))

    def constant(self, a, host):
        """``a`` (one of the step's buffers) was filled from ``host``: a replay finds it filled."""
        self.actions.append(("constant", a, host.tobytes()))

    def refreshed(self, values):
        """StepValues ``values`` were refreshed (and uploaded) in the step. Twice in one step
        cannot replay: eagerly the first kernels read the first values, but a replay uploads
        before all the work, so they would read the second ones."""
        self.repeated = self.repeated or any(v is values for v in self.step_values)
        self.step_values.append(values)

    # -- replay ---------------------------------------------------------------------
    def replay(self):
        """The recorded work again: first this step's values (each owner computes them, and
        they are uploaded on the stream, before the work that reads them), then one CUDA
        graph launch on CuPy once captured, else each action."""
        for values in self.step_values:
            values.refresh()
        if self.graph is not None:
            self.graph.launch()
        else:
            self._run_actions()

    def _run_actions(self):
        matmul = self.device.xp.matmul
        for action in self.actions:
            kind = action[0]
            if kind == "launch":
                action[1](action[2], action[3], action[4])
            elif kind == "gemm":
                matmul(action[1], action[2], out=action[3])
            elif kind == "copy":
                self.device.xp.copyto(action[1], action[2])
            elif kind == "fill":
                action[1].fill(action[2])
            # 'constant': filled when recorded, and no kernel writes it

    def capture(self):
        """CuPy: capture the actions once as a CUDA graph (stream capture), so that a replay
        is one graph launch. Every buffer exists already (the arena), so nothing is
        allocated inside the capture. Returns whether it worked; if not (an old driver,
        cuBLAS refusing capture), a warning, and replays run the actions one by one."""
        if self.device.target != "cupy" or self.graph is not None:
            return self.graph is not None
        cupy = self.device.xp
        stream = cupy.cuda.Stream(non_blocking=False)   # ordered with the default stream's copies
        watch = _allocations_hook(cupy)
        try:
            with stream:
                # cuBLAS sets up its workspace for a stream on first use: do that before capturing
                cupy.matmul(cupy.ones((2, 2), cupy.float32), cupy.ones((2, 2), cupy.float32))
                stream.synchronize()
                stream.begin_capture()
                try:
                    with watch:
                        self._run_actions()
                finally:
                    graph = stream.end_capture()
            if watch.count:
                # a buffer taken from CuPy's pool inside the capture goes back to the pool after
                # it, while the graph would keep writing it: such a graph must never run
                raise RuntimeError(f"{watch.count} allocation(s) inside the capture")
            self.graph = graph
        except Exception as e:  # the plan still works, one action at a time
            warnings.warn(f"step plan: CUDA graph capture failed ({type(e).__name__}: {e}); "
                          "replaying the step launch by launch", RuntimeWarning, stacklevel=2)
            self.graph = None
        return self.graph is not None

    # -- is the step static? ------------------------------------------------------------
    def signature(self):
        """The work as a comparable tuple: kernels, configurations, scalars by value, and
        arrays by place: ('arena', i, offset, shape, strides, dtype) for a view of the i-th
        buffer allocated in the step, ('fixed', pointer, shape, strides, dtype) otherwise."""
        starts = sorted((pointer(b), i) for i, b in enumerate(self.buffers))
        keys = [s for s, _ in starts]

        def place(a):
            if isinstance(a, np.generic) or not hasattr(a, "shape"):   # a kernel scalar: by value
                return ("scalar", type(a).__name__, a.item() if hasattr(a, "item") else a)
            p = pointer(a)
            j = bisect.bisect_right(keys, p) - 1   # the last buffer starting at or before p
            if j >= 0:
                start, i = starts[j]
                if p < start + max(self.buffers[i].nbytes, 1):
                    return ("arena", i, p - start, tuple(a.shape), tuple(a.strides), str(a.dtype))
            return ("fixed", p, tuple(a.shape), tuple(a.strides), str(a.dtype))

        work = []
        for action in self.actions:
            if action[0] == "launch":
                _, fn, grid, block, args = action
                work.append(("launch", fn, tuple(grid), tuple(block), tuple(place(a) for a in args)))
            elif action[0] in ("gemm", "copy"):
                work.append((action[0],) + tuple(place(a) for a in action[1:]))
            else:   # 'fill' or 'constant': where, and with what
                work.append((action[0], place(action[1]), action[2]))
        shapes = tuple((tuple(b.shape), str(b.dtype)) for b in self.buffers)
        outputs = tuple(place(a) for a in self.outputs)
        values = (object(),) if self.repeated else tuple(self.step_values)   # compared by identity
        return shapes, tuple(work), outputs, values


    def foreign(self, lasting):
        """The arrays the recorded work touches (its outputs included) that lie neither in the
        step's own buffers (the arena) nor inside one of ``lasting`` (arrays that outlive a
        step: the weights, their gradients, the optimizer's slots, the plan's inputs, the step
        values' buffers). Such an array was made around the seam (a CuPy ``a + b`` feeding a
        kernel, a NumPy scalar as a result): no replay would make it again, so the step must
        not be planned, however alike two recordings look (a memory pool can hand out the
        same address twice)."""
        spans = _merged(sorted((pointer(b), pointer(b) + max(b.nbytes, 1))
                               for b in list(self.buffers) + list(lasting)))
        starts = [s for s, _ in spans]
        found = []
        for a in self._arrays():
            if isinstance(a, np.generic):   # a host scalar where a device array belongs
                found.append(a)
                continue
            p = pointer(a)
            j = bisect.bisect_right(starts, p) - 1
            if j < 0 or p >= spans[j][1]:
                found.append(a)
        return found

    def _arrays(self):
        """Every array the actions and the outputs name (kernel scalars left out)."""
        for action in self.actions:
            args = action[4] if action[0] == "launch" else action[1:]
            for a in args:
                if hasattr(a, "shape") and not isinstance(a, (np.generic, bytes)):
                    yield a
        yield from self.outputs


def _merged(spans):
    """Sorted (start, end) spans with the overlapping ones joined (a flat buffer and its views)."""
    out = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _allocations_hook(cupy):
    """A CuPy memory hook (a context manager) counting the allocations made while it is on."""
    class CountAllocations(cupy.cuda.MemoryHook):
        name = "minicnn_step_plan_capture"

        def __init__(self):
            self.count = 0

        def alloc_preprocess(self, **kwargs):    # cupy.cuda.alloc (any allocator)
            self.count += 1

        def malloc_preprocess(self, **kwargs):   # the memory pool's malloc
            self.count += 1

    return CountAllocations()


def same_work(a, b):
    """Whether recordings ``a`` and ``b`` did the same work (so a replay of ``b`` is the next step)."""
    return a.signature() == b.signature()


def as_outputs(arrays):
    """The step's results as a tuple of arrays (refusing anything else)."""
    arrays = tuple(arrays)
    for a in arrays:
        if not hasattr(a, "shape"):
            raise TypeError(f"a step plan's outputs must be device arrays, got {type(a).__name__}")
    return arrays

