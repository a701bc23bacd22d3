"""CPU memory the ops reuse across calls: per-thread scratch.

A training step needs the same big temporaries every time (the padded
input, the patch matrix, col2im's accumulator...). Made afresh each step
they would cost page faults whenever glibc hands large blocks back to the
OS, so the CPU fast paths take them from here.

:func:`scratch` is memory that lives only INSIDE one op call, per calling
thread (two user threads never share it; an op's compiled kernel may split it
between the cores it runs on, as conv2d's chunks do).
"""
import threading
from collections import OrderedDict

import numpy as np

MAX_SCRATCH_BYTES = 32 << 20   # per thread; a book-model training step uses about 10 MiB

_local = threading.local()


def _cache():
    c = getattr(_local, "cache", None)
    if c is None:
        c = _local.cache = OrderedDict()
        _local.nbytes = 0
    return c


def scratch(purpose, shape, dtype, fill=None):
    """A C-contiguous array of ``shape``/``dtype`` whose memory later calls reuse.

    Without ``fill``: a view of one flat buffer per (purpose, dtype), grown
    when a bigger shape is asked for, so slices of different sizes share
    memory. Contents are whatever the last user left: two arrays alive at
    once need two purposes.

    With ``fill``: an array kept per exact (purpose, shape, dtype), filled with
    ``fill`` when first made (so a border that no caller writes stays at
    ``fill``: put everything that decides the border into ``purpose``)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    size = int(np.prod(shape, dtype=np.int64))
    cache = _cache()
    if fill is not None:
        key = ("exact", purpose, shape, dtype.str)
        a = cache.get(key)
        if a is None:
            a = _add(cache, key, np.full(shape, fill, dtype=dtype))
        cache.move_to_end(key)
        return a
    key = ("flat", purpose, dtype.str)
    buf = cache.get(key)
    if buf is None or buf.size < size:
        if buf is not None:
            del cache[key]
            _local.nbytes -= buf.nbytes
        buf = _add(cache, key, np.empty(max(size, 1), dtype=dtype))
    cache.move_to_end(key)
    return buf[:size].reshape(shape)


def _add(cache, key, a):
    cache[key] = a
    _local.nbytes += a.nbytes
    while _local.nbytes > MAX_SCRATCH_BYTES and len(cache) > 1:
        _, old = cache.popitem(last=False)
        _local.nbytes -= old.nbytes
    return a


def clear():
    """Drop this thread's scratch."""
    _local.cache = OrderedDict()
    _local.nbytes = 0
