"""Where fit / evaluate / predict get their batches: arrays, or a generator / Sequence.

A source hands out host batches ``(x, y, sample_weight or None)`` one epoch
at a time (``epoch()``); ``steps`` is the epoch's number of batches (the
progress bar's target). The loops move each batch to the device.

- ``ArrayBatches``: checked arrays. Each epoch is a pass over them in a new
  order (shuffled or not). With ``steps_per_epoch`` the passes become one
  stream, as Keras 3's EpochIterator: an epoch takes the next
  ``steps_per_epoch`` batches; when the pass runs out inside an epoch, that
  epoch ends early with Keras's warning, and the next one starts a new pass.
- ``GeneratorBatches``: a Python generator (or iterator) yielding ``(x, y)``
  or ``(x, y, sample_weight)``, read ``steps`` items per epoch (it keeps its
  place between epochs; running out ends the epoch with Keras's warning), or
  a Sequence-like object (``__len__`` and ``__getitem__``, as
  ``keras.utils.Sequence`` / ``PyDataset``): each epoch visits its batches
  0..len-1 (shuffled when asked), then calls its ``on_epoch_end``. Each batch
  is checked as it arrives (``check`` turns it into float32 x and target rows).
"""
import inspect
import warnings

import numpy as np

from ..distributed import fit_support
from ..utils import get_rng
from .device_data import DeviceArrays


def is_batch_source(x):
    """True for a generator/iterator or a Sequence-like object (not an array or list)."""
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "__array__"):
        return False
    return inspect.isgenerator(x) or hasattr(x, "__next__") or (
        hasattr(x, "__len__") and hasattr(x, "__getitem__"))


def _ran_out():
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or "
                  "generator can generate at least `steps_per_epoch * epochs` batches.", UserWarning,
                  stacklevel=4)


class ArrayBatches:
    """Batches of checked arrays x, y (and sample weights), in epochs. ``sharded`` (fit and
    evaluate): with several minicnn.distributed workers, each batch is this worker's part
    of the global batch of ``batch_size`` samples (see distributed/fit_support.py)."""

    def __init__(self, x, y, sample_weight, batch_size, shuffle=False, steps_per_epoch=None, sharded=False,
                 on_device=False):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        # fit's training set on a CUDA device, batches gathered there (device_data.py), or None
        self.device_data = DeviceArrays.of(x, y) if on_device else None
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sharded = sharded
        self.batches_per_pass = -(-len(x) // batch_size)
        self.stream = steps_per_epoch is not None
        self.steps = steps_per_epoch if self.stream else self.batches_per_pass
        self._order, self._next = None, 0   # the current pass and its next batch (stream mode)

    def _new_pass(self):
        self._order = get_rng().permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        if self.sharded and self.shuffle:   # every worker cuts its part from rank 0's order
            self._order = fit_support.same_order(self._order)
        self._next = 0

    def _batch(self, k):
        idx = self._order[k * self.batch_size:(k + 1) * self.batch_size]
        if self.sharded:
            idx = fit_support.local_part(idx)
        sw = None if self.sample_weight is None else self.sample_weight[idx]
        if self.device_data is not None:
            return self.device_data.batch(idx) + (sw,)
        y = None if self.y is None else self.y[idx]   # predict has no targets
        return self.x[idx], y, sw

    def epoch(self):
        if not self.stream or self._order is None:
            self._new_pass()
        for _ in range(self.steps):
            if self._next >= self.batches_per_pass:
                _ran_out()
                break
            self._next += 1
            yield self._batch(self._next - 1)
        if self._next >= self.batches_per_pass:
            self._order = None   # the next epoch starts a new pass (reshuffled)


class GeneratorBatches:
    """Batches from a generator or a Sequence; ``check(batch)`` validates each one."""

    def __init__(self, data, steps, check, shuffle=False, where="fit"):
        self.data = data
        self.check = check
        self.shuffle = shuffle
        self.sequence = not (inspect.isgenerator(data) or hasattr(data, "__next__"))
        if self.sequence:
            length = len(data)
            self.steps = length if steps is None else min(int(steps), length)
        elif steps is None:
            raise ValueError(f"{where}: a generator needs `steps` (steps_per_epoch for fit): how many "
                             "batches make an epoch (a generator has no length).")
        else:
            self.steps = int(steps)
        self._iterator = None if self.sequence else iter(data)

    def epoch(self):
        if self.sequence:
            order = get_rng().permutation(len(self.data)) if self.shuffle else range(len(self.data))
            for k in list(order)[:self.steps]:
                yield self.check(self.data[int(k)])
            if hasattr(self.data, "on_epoch_end"):
                self.data.on_epoch_end()
            return
        for _ in range(self.steps):
            try:
                batch = next(self._iterator)
            except StopIteration:
                _ran_out()
                return
            yield self.check(batch)


def unpack(batch, where, need_y=True):
    """(x, y, sample_weight or None) of a generator's item: (x, y) or (x, y, sw);
    for predict, x alone or (x,) too."""
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
        sw = batch[2] if len(batch) > 2 else None
    elif not need_y:
        x, y, sw = batch, None, None
    else:
        raise ValueError(f"{where}: each batch of a generator must be a tuple (x, y) or (x, y, "
                         f"sample_weight). Received: {type(batch).__name__}")
    if need_y and y is None:
        raise ValueError(f"{where}: the generator's batches need targets: (x, y) or (x, y, sample_weight).")
    return x, y, sw
