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
purpose and dtype, least recently used evicted beyond ``MAX_BYTES`` per
thread.
"""
import sys
import threading
from collections import OrderedDict

import numpy as np

MAX_BYTES = 32 << 20  # per thread; a book-model training step uses about 10 MiB

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
    when a bigger shape is asked for, so slices of different sizes (the last
    part of a batch, an inference batch in slices) share memory. Contents are
    whatever the last user left: two arrays alive at once need two purposes.

    With ``fill``: an array kept per exact (purpose, shape, dtype), filled with
    ``fill`` when first made (so a border that no caller writes stays at
    ``fill``: put everything that decides the border into ``purpose``)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    size = 1
    for d in shape:
        size *= d
    cache = _cache()
    if fill is not None:
        key = ("exact", purpose, shape, dtype.str)
        a = cache.get(key)
        if a is None:
            a = _add(cache, key, np.full(shape, fill, dtype=dtype))
        else:
            cache.move_to_end(key)
        return a
    key = ("flat", purpose, dtype.str)
    buf = cache.get(key)
    if buf is None or buf.size < size:
        if buf is not None:
            del cache[key]
            _local.nbytes -= buf.nbytes
        buf = _add(cache, key, np.empty(max(size, 1), dtype=dtype))
    else:
        cache.move_to_end(key)
    return buf[:size].reshape(shape)


def _add(cache, key, a):
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


# ----------------------------------------------------------------------------
# returned arrays: new to the caller, but memory recycled once nobody holds it
# ----------------------------------------------------------------------------
# A step returns ~30 MiB of fresh arrays (activations, gradients). Allocated
# with np.empty each time, they cost hundreds of page faults per step (glibc
# gives big blocks back to the OS when they are freed; measured: 5 ms of
# system time per 26 ms step). So big returned arrays come from a small pool
# of arrays this module handed out before, and one is reused only when the
# pool's own reference is the only one left: no layer, no view (a view holds
# its base), no user variable can still see it. Otherwise a new one is made.
MIN_POOLED_BYTES = 256 << 10   # below this, glibc serves np.empty from its heap anyway
MAX_POOLED_BYTES = 8 << 20     # above this, the page faults are small next to the work
MAX_POOLED_PER_SHAPE = 2
MAX_POOLED_TOTAL = 48 << 20    # all shapes together; least recently used shapes dropped first
_pooled = OrderedDict()
_pooled_lock = threading.Lock()


def fresh(shape, dtype):
    """An array that no one else references (contents undefined), like np.empty."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d
    if nbytes > MAX_POOLED_BYTES:
        # A big batch (inference, most likely): give back the idle arrays kept
        # for the training-sized ones first, so that peak memory is not both.
        trim()
        return np.empty(shape, dtype)
    if nbytes < MIN_POOLED_BYTES:
        return np.empty(shape, dtype)
    key = (shape, dtype.str)
    with _pooled_lock:
        arrays = _pooled.get(key)
        if arrays is None:
            arrays = _pooled[key] = []
        _pooled.move_to_end(key)
        for i in range(len(arrays)):
            # 2 = the list's reference + getrefcount's argument: nobody else has it
            if sys.getrefcount(arrays[i]) == 2:
                a = arrays.pop(i)
                arrays.append(a)
                return a
        a = np.empty(shape, dtype)
        arrays.append(a)
        if len(arrays) > MAX_POOLED_PER_SHAPE:
            del arrays[0]  # forget the oldest; whoever holds it keeps it
        total = sum(x.nbytes for v in _pooled.values() for x in v)
        while total > MAX_POOLED_TOTAL and len(_pooled) > 1:
            _, old = _pooled.popitem(last=False)
            total -= sum(x.nbytes for x in old)
        return a


def clear_pooled():
    with _pooled_lock:
        _pooled.clear()


_trim_hooks = []


def on_trim(fn):
    """Register ``fn()`` to run when :func:`trim` runs (other modules' caches)."""
    _trim_hooks.append(fn)
    return fn


def trim():
    """Free the pooled arrays that nobody references, and other modules'
    idle caches. Cheap; the next training step re-fills what it needs."""
    with _pooled_lock:
        for key in list(_pooled):
            arrays = _pooled[key]
            # 3 = the list's reference, the loop variable, getrefcount's argument
            arrays[:] = [a for a in arrays if sys.getrefcount(a) > 3]
            if not arrays:
                del _pooled[key]
    clear()  # this thread's scratch (arrays in use stay alive with their users)
    for fn in _trim_hooks:
        fn()
