"""fit's training set kept on a CUDA device, its batches gathered there (issue 11, item 2).

Copying each batch from the host costs a host gather (``x[idx]`` of 64 images)
and a host-to-device copy per step, which a GPU step no longer hides. When
``fit`` runs on a CUDA device (CuPy, or the emulator, whose device memory is
host memory), x and y are copied to the device once, as float32, and each
step only sends the batch's sample indices (a few hundred bytes) and gathers
the rows on the device into buffers kept per batch shape (no allocation per
step). First the memory is checked: a training set that does not fit in half
of the device's free memory stays on the host, with one warning, and the
batches are copied per step as before.

Example (what ArrayBatches does)::

    >>> data = DeviceArrays.of(x, y)           # None: keep copying from the host
    >>> xb, yb = data.batch(idx)               # device arrays, overwritten by the next batch
"""
import os
import warnings

import numpy as np

from .. import backend, config

CHUNK_BYTES = 64 << 20   # x is converted to float32 and copied this much at a time
HEADROOM = 0.5           # the set may take at most this share of the free device memory


def free_device_bytes(device):
    """Free memory of the device: the GPU's (CUDA), or the host's for the emulator."""
    if device.target == "cupy":
        return int(device.xp.cuda.runtime.memGetInfo()[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class DeviceArrays:
    """x and y as float32 device arrays, and a gather of batch rows into reused buffers."""

    def __init__(self, device, x, y):
        self.device = device
        self.x = device.empty((len(x),) + tuple(x.shape[1:]))
        rows = max(1, CHUNK_BYTES // max(1, self.x[0].nbytes))
        for a in range(0, len(x), rows):   # a uint8 x is never converted whole on the host
            device.upload(self.x[a:a + rows], np.asarray(x[a:a + rows], dtype=np.float32))
        self.y = None if y is None else device.asarray(y)
        self._buffers = {}   # batch size -> (indices, x rows, y rows) on the device

    @classmethod
    def of(cls, x, y, where="fit"):
        """The device copy of (x, y), or None: not a CUDA device, ``MINICNN_DEVICE_DATA=0``,
        or too big for the device's free memory (then a warning says so)."""
        device = backend.device()
        if device.kind != "cuda" or not config.get("MINICNN_DEVICE_DATA") or not len(x):
            return None
        need = 4 * int(np.prod(x.shape)) + (0 if y is None else 4 * int(np.prod(y.shape)))
        free = free_device_bytes(device)
        if need > HEADROOM * free:
            warnings.warn(f"{where}: the training set ({need / 2**20:.0f} MiB as float32) does not fit in "
                          f"half of the device's free memory ({free / 2**20:.0f} MiB); its batches are "
                          "copied from the host each step instead.", RuntimeWarning, stacklevel=3)
            return None
        return cls(device, x, y)

    def batch(self, idx):
        """(x rows, y rows or None) of host indices ``idx``, gathered on the device into the
        buffers of this batch size (the next batch of the same size overwrites them)."""
        bufs = self._buffers.get(len(idx))
        if bufs is None:
            n = len(idx)
            bufs = self._buffers[n] = (
                self.device.empty((n,), np.int64), self.device.empty((n,) + tuple(self.x.shape[1:])),
                None if self.y is None else self.device.empty((n,) + tuple(self.y.shape[1:])))
        where, xb, yb = bufs
        self.device.upload(where, np.asarray(idx, dtype=np.int64))
        self.device.take_rows(self.x, where, xb)
        if yb is not None:
            self.device.take_rows(self.y, where, yb)
        return xb, yb
