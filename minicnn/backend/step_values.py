"""Step values: numbers a training step's kernels read that change from one step to the next.

A learning rate on a schedule, Adam's bias-corrected step size, a dropout mask's key: the
host computes them before each step, as Keras's casts compute them (NumPy scalars of the
weights' dtype). The CPU paths pass them to their kernels by value. A CUDA kernel reads
them from a small device buffer instead, at a fixed address: :meth:`StepValues.refresh`
computes this step's values and, on a CUDA device, copies them there (one small
host-to-device upload, skipped when they did not change).

Why: a step plan (minicnn/backend/step_plan.py) replays a recorded step's launches with
the recorded arguments. A value passed by value would be replayed stale, so such a step
never planned; a pointer to a fixed buffer is the same argument every step. The recording
notes each StepValues the step refreshed, and a replay refreshes them again (their owners
compute THIS step's values, and count their steps) before it launches the work, uploads
outside the recorded work (a CUDA graph never holds a copy of stale host bytes).

The owner's ``compute()`` returns this step's values and moves on whatever it counts per
step (a dropout layer's step, Nadam's momentum product): it is called once a step, by
``refresh``, eagerly or in a replay.

Example::

    >>> rate = StepValues(lambda: (np.float32(opt.learning_rate),))
    >>> rate.refresh()            # this step's values: rate.values, and on the device
    >>> kernel_arg = device_values(backend.device(), rate, 1)   # a CUDA launch's pointer
"""
import numpy as np

from . import device as current_device


class StepValues:
    """This step's values of some per-step numbers (``values``), and on a CUDA device a fixed
    buffer holding them (``on(device)``; float32 or int32: ``dtype``). ``sv[k:]`` is a view
    of the values from the k-th on (one op reads part of an owner's values)."""

    def __init__(self, compute, dtype=np.float32):
        self.compute = compute
        self.dtype = np.dtype(dtype)
        self.values = ()
        self._device = None   # the device of the buffer below
        self._array = None    # the values on that device
        self._sent = None     # the bytes last uploaded there

    def refresh(self):
        """This step's values, from the owner: on the host, and on a CUDA device in the buffer.
        While a step plan records, the recording notes this (its replays refresh again)."""
        self.values = tuple(self.compute())
        device = current_device()
        if device.kind == "cuda":
            self.on(device)
            if device.recording is not None:
                device.recording.refreshed(self)
        return self

    def on(self, device):
        """The device buffer, holding ``values`` (uploaded when they changed since the last
        upload; the buffer is made once per device, outside any step plan's arena)."""
        host = np.array(self.values, self.dtype)
        if self._device is not device or self._array is None or self._array.shape != host.shape:
            self._device, self._sent = device, None
            self._array = device.asarray(np.zeros(host.shape, self.dtype), self.dtype.name)
        data = host.tobytes()
        if data != self._sent:
            device.upload(self._array, host)
            self._sent = data
        return self._array

    def __getitem__(self, part):
        if not isinstance(part, slice) or part.step is not None or part.stop is not None:
            raise TypeError("StepValues: only a tail view sv[k:] is supported")
        return _Tail(self, part.start or 0)


class _Tail:
    """``sv[start:]``: the owner's values from the ``start``-th on (a view: the same buffer)."""

    def __init__(self, owner, start):
        self.owner, self.start = owner, start
        self._view = None   # (owner's buffer, its view from start)

    @property
    def values(self):
        return self.owner.values[self.start:]

    def on(self, device):
        array = self.owner.on(device)
        if self._view is None or self._view[0] is not array:
            self._view = (array, array[self.start:])
        return self._view[1]


def host_values(values, count):
    """``count`` numbers from a StepValues (or a view of one), a tuple, or one number."""
    if hasattr(values, "on"):
        values = values.values
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    if len(values) < count:
        raise ValueError(f"expected {count} per-step values, received {len(values)}: {values!r}")
    return values[:count]


def device_values(device, values, count, dtype=np.float32):
    """Where a CUDA kernel reads ``count`` per-step values: the StepValues' fixed buffer (the
    same address every step), or, for plain numbers (a direct call of an op), a copy made for
    this launch (``device.constant``: a step plan holds it as recorded, by value)."""
    if hasattr(values, "on"):
        host_values(values, count)   # the owner gave enough of them
        return values.on(device)
    return device.constant(np.array(host_values(values, count), dtype), np.dtype(dtype).name)
