"""glibc's malloc set for a training loop: big arrays reused in the heap, not mapped afresh.

Why: a training step frees and allocates the same few-megabyte arrays
(activations, their gradients, patch matrices) every step. With glibc's
defaults an array over the mmap threshold (128 KiB at first, adapting up to
32 MiB) gets fresh pages from the kernel, zero-filled on first touch, and
free memory at the top of the heap over the trim threshold goes back to the
OS, to be faulted in again by the next step. On the book model that was
about 2,000 page faults and a quarter of the step's time (benchmarks/RESULTS.md).
Fixed thresholds keep such arrays in the heap, where the next step reuses
them; peak RSS barely moves (it was 6 MiB more), but memory freed after a
peak stays with the process instead of going back to the OS.

This is what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` in the
environment do (PyTorch's and TensorFlow's CPU paths pay the same faults
without them); here it is done once, through ``mallopt(3)``, when the CPU
runtime starts. Left alone: when ``MINICNN_TUNE_MALLOC=0``, when the process
was started with any glibc malloc setting of its own (``MALLOC_*_`` or a
``glibc.malloc`` tunable: the user's choice wins), and on a C library other
than glibc.

Example::

    >>> from minicnn.backend import cpu_malloc
    >>> cpu_malloc.tune()          # what the CPU runtime does; True if it changed malloc
"""
import ctypes
import os

from .. import config

MMAP_THRESHOLD = 256 << 20   # arrays below this come from the heap (a 1000-image batch's activations do)
TRIM_THRESHOLD = 512 << 20   # free heap kept for reuse before any goes back to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # mallopt's parameter numbers in glibc's malloc.h

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX")


def user_chose(environ=None):
    """Whether the environment already sets glibc's malloc (then it is left as it is)."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in _USER_SETTINGS) \
        or "glibc.malloc" in environ.get("GLIBC_TUNABLES", "")


def _glibc():
    """The C library as a ctypes handle when it is glibc, else None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        return ctypes.CDLL("libc.so.6")
    except (AttributeError, ValueError, OSError):   # no confstr name, not glibc, not Linux
        return None


def tune():
    """Fixed mmap and trim thresholds for this process (see the module docstring).
    Returns whether glibc took them; False when left alone or refused."""
    if not config.get("MINICNN_TUNE_MALLOC") or user_chose():
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success; an old glibc may refuse a threshold this high
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) \
        and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
