"""Scratch arrays reused across calls, one set per thread.

A training step allocates the same big temporaries every time (the padded
input, the im2col patch matrix, col2im's accumulator...). Allocating them
afresh costs page faults whenever glibc hands large blocks back to the OS
between steps, so the CPU fast paths take them from here instead.

Only memory that lives INSIDE one op call may come from here: an op's
returned array may be held by a layer until its backward pass, and the next
call of the same op (another layer with the same shapes) would overwrite it.

Each thread has its own cache (a worker of :mod:`cpu_threads` always runs the
same part of the batch, and two user threads never share scratch), keyed by
(purpose, shape, dtype), least recently used evicted beyond ``MAX_BYTES`` per
thread.
"""
import threading
from collections import OrderedDict

import numpy as np

MAX_BYTES = 64 << 20  # per thread; a book-model training step uses about 15 MiB

_local = threading.local()


def _cache():
    c = getattr(_local, "cache", None)
    if c is None:
        c = _local.cache = OrderedDict()
        _local.nbytes = 0
    return c


def scratch(purpose, shape, dtype, fill=None):
    """A C-contiguous array of ``shape``/``dtype``, reused by later calls with the same key.

    Its contents are whatever the last user left, except that a NEW array is
    filled with ``fill`` when given (so a border that no caller writes stays
    at ``fill``: put everything that decides the border into ``purpose``)."""
    dtype = np.dtype(dtype)
    key = (purpose, tuple(shape), dtype.str)
    cache = _cache()
    a = cache.get(key)
    if a is not None:
        cache.move_to_end(key)
        return a
    a = np.empty(shape, dtype=dtype) if fill is None else np.full(shape, fill, dtype=dtype)
    cache[key] = a
    _local.nbytes += a.nbytes
    while _local.nbytes > MAX_BYTES and len(cache) > 1:
        _, old = cache.popitem(last=False)
        _local.nbytes -= old.nbytes
    return a


def clear():
    """Drop this thread's scratch arrays (the workers' stay until they are reused)."""
    _local.cache = OrderedDict()
    _local.nbytes = 0
