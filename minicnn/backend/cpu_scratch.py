"""CPU memory the ops reuse across calls: per-thread scratch, and a free list.

A training step needs the same big temporaries every time (the padded
input, the patch matrix, col2im's accumulator...). Made afresh each step
they would cost page faults whenever glibc hands large blocks back to the
OS, so the CPU fast paths take them from here.

- :func:`scratch`: memory that lives only INSIDE one op call, per thread (a
  worker always runs the same part of a batch; two user threads never share).
- :func:`take` / :func:`give_back`: buffers that outlive a call, such as the
  patch matrix a convolution's forward keeps in its context for backward.
  Ownership is explicit: whoever took a buffer gives it back when done, and
  only then may it be handed out again.
"""
import threading
from collections import OrderedDict

import numpy as np

MAX_SCRATCH_BYTES = 32 << 20   # per thread; a book-model training step uses about 10 MiB
MAX_FREE_PER_SHAPE = 2         # free buffers kept per (shape, dtype)
MAX_FREE_BYTES = 48 << 20      # all free buffers together

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


_free = OrderedDict()   # (shape, dtype) -> [arrays nobody holds]
_free_bytes = 0
_free_lock = threading.Lock()


def take(shape, dtype):
    """An array of ``shape``/``dtype`` (contents undefined) for the caller to own."""
    global _free_bytes
    key = (tuple(shape), np.dtype(dtype).str)
    with _free_lock:
        arrays = _free.get(key)
        if arrays:
            a = arrays.pop()
            _free_bytes -= a.nbytes
            return a
    return np.empty(shape, dtype)


def give_back(*arrays):
    """Return arrays from :func:`take` that the caller no longer uses (None is skipped)."""
    global _free_bytes
    with _free_lock:
        for a in arrays:
            if a is None:
                continue
            key = (a.shape, a.dtype.str)
            kept = _free.setdefault(key, [])
            _free.move_to_end(key)
            if len(kept) < MAX_FREE_PER_SHAPE:
                kept.append(a)
                _free_bytes += a.nbytes
        while _free_bytes > MAX_FREE_BYTES and _free:
            _, old = _free.popitem(last=False)
            _free_bytes -= sum(x.nbytes for x in old)


def clear():
    """Drop this thread's scratch and every free buffer."""
    global _free_bytes
    _local.cache = OrderedDict()
    _local.nbytes = 0
    with _free_lock:
        _free.clear()
        _free_bytes = 0
