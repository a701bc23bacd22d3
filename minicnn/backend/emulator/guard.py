"""Guarded copies of a launch's arrays, so out-of-bounds access shows.

Each array (or each group of overlapping arrays) is copied into a fresh
mapping laid out as::

    [guard pages][head slack][data][tail slack][guard pages]

The data ends at most 15 bytes before the tail guard page (it starts
16-byte aligned, like cudaMalloc memory, so float4 loads work), so reading
or writing just past the end faults; the launcher turns the fault into an
exception. The slack bytes hold a signalling NaN (as float32) and are
checked after the launch: a write there is reported too, even of a value
computed from a slack read (arithmetic turns the signalling NaN quiet). Arrays behind ``const``
pointers are mapped read-only. After a clean launch the bytes are copied back.

Example::

    >>> arena = Arena([(0, np.zeros(5, np.float32), True, 'argument 0')])
    >>> ptr = arena.pointer(0)        # what the kernel gets
    >>> arena.copy_back(); arena.free()
"""
import ctypes
import mmap

import numpy as np

PAGE = mmap.PAGESIZE
ALIGN = 16   # data start alignment: enough for float4 / double2 loads
GUARD = 16 * PAGE  # inaccessible bytes on each side: address space only, no memory
PROT_NONE = 0  # (the mmap module has PROT_READ and PROT_WRITE only)
# Slack filler, per aligned 4 bytes: 0xFFBFFFFF is a signalling NaN as float32.
SLACK = np.frombuffer(np.uint32(0xFFBFFFFF).tobytes(), np.uint8)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


def _round_up(n, m):
    return (n + m - 1) // m * m


_PATTERN = np.tile(SLACK, PAGE // 4 + 2)  # long enough for any slack (< PAGE bytes)


def _slack_pattern(addr, n):
    """The n slack bytes expected at addr (the pattern is aligned to addresses)."""
    phase = addr % 4
    return _PATTERN[phase:phase + n]


def _bytes_at(addr, n):
    """A writable uint8 view of n bytes at addr (n may be 0)."""
    return np.frombuffer((ctypes.c_ubyte * n).from_address(addr), dtype=np.uint8) if n else \
        np.zeros(0, np.uint8)


class GuardedBlock:
    """``nbytes`` bytes copied from host address ``src`` into a guarded mapping."""

    def __init__(self, src, nbytes, writable):
        self.src, self.nbytes = src, nbytes
        self.span = _round_up(_round_up(nbytes, ALIGN), PAGE)  # the accessible pages
        self.map_len = self.span + 2 * GUARD
        # Map everything inaccessible, then open the data pages.
        base = _libc.mmap(None, self.map_len, PROT_NONE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
        if base in (None, _MAP_FAILED):
            raise MemoryError(f"mmap of {self.map_len} bytes failed (errno {ctypes.get_errno()})")
        self.base = base
        self.lo = base + GUARD             # first accessible byte
        self.hi = self.lo + self.span      # the tail guard starts here
        self.start = self.hi - _round_up(nbytes, ALIGN)
        if self.span:
            self._protect(self.lo, self.span, mmap.PROT_READ | mmap.PROT_WRITE)
            end = self.start + nbytes
            for a, n in ((self.lo, self.start - self.lo), (end, self.hi - end)):  # the slack
                _bytes_at(a, n)[...] = _slack_pattern(a, n)
            ctypes.memmove(self.start, src, nbytes)
            if not writable:
                self._protect(self.lo, self.span, mmap.PROT_READ)

    @staticmethod
    def _protect(addr, n, prot):
        if _libc.mprotect(addr, n, prot) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed for an emulator guard page")

    def damage(self):
        """Offset (from ``start``) of the first slack byte the kernel changed, or None."""
        n_head = self.start - self.lo
        bad = np.flatnonzero(_bytes_at(self.lo, n_head) != _slack_pattern(self.lo, n_head))
        if bad.size:
            return int(bad[0]) - n_head
        end = self.start + self.nbytes
        bad = np.flatnonzero(_bytes_at(end, self.hi - end) != _slack_pattern(end, self.hi - end))
        return self.nbytes + int(bad[0]) if bad.size else None

    def contents(self):
        return _bytes_at(self.start, self.nbytes).copy()

    def copy_back(self):
        ctypes.memmove(self.src, self.start, self.nbytes)

    def holds(self, addr):
        return self.base <= addr < self.base + self.map_len

    def free(self):
        if self.base is not None:
            _libc.munmap(self.base, self.map_len)
            self.base = None


class Member:
    """One array argument inside a block: its index, offset and label."""

    def __init__(self, index, array, label):
        self.index, self.label = index, label
        self.addr, self.nbytes = array.ctypes.data, array.nbytes
        self.itemsize, self.size, self.dtype = array.itemsize, array.size, array.dtype
        self.block, self.offset = None, 0

    def describe(self, offset):
        """Words for byte ``offset`` relative to this array's first byte."""
        if offset >= self.nbytes:
            past = offset - self.nbytes
            return (f"{self.label} ({self.size} elements of {self.itemsize} bytes): element "
                    f"{offset // self.itemsize}, {past} bytes past its end")
        if offset < 0:
            return f"{self.label} ({self.size} elements): {-offset} bytes before its start"
        return f"{self.label}: element {offset // self.itemsize}"


class Arena:
    """Guarded copies of all array arguments of one launch.

    ``arrays``: (arg index, ndarray, writable, label) tuples. Arrays whose
    memory overlaps share one copy, so aliasing behaves as on the device.
    """

    def __init__(self, arrays):
        self.members = [Member(i, a, label) for i, a, _, label in arrays]
        writable = {i: w for i, _, w, _ in arrays}
        self.blocks = []
        try:
            for group in self._groups():
                lo = min(m.addr for m in group)
                hi = max(m.addr + m.nbytes for m in group)
                block = GuardedBlock(lo, hi - lo, any(writable[m.index] for m in group))
                block.members = group
                block.writable = any(writable[m.index] for m in group)
                for m in group:
                    m.block, m.offset = block, m.addr - lo
                self.blocks.append(block)
        except BaseException:
            self.free()
            raise

    def _groups(self):
        """Members grouped by overlapping memory (empty arrays stand alone)."""
        groups, hi = [], 0
        for m in sorted((m for m in self.members if m.nbytes), key=lambda m: m.addr):
            if groups and m.addr < hi:
                groups[-1].append(m)
            else:
                groups.append([m])
            hi = max(hi, m.addr + m.nbytes) if len(groups[-1]) > 1 else m.addr + m.nbytes
        return groups + [[m] for m in self.members if not m.nbytes]

    def pointer(self, index):
        m = next(m for m in self.members if m.index == index)
        return m.block.start + m.offset

    def damage(self):
        """Messages for every array whose slack the kernel overwrote."""
        out = []
        for b in self.blocks:
            off = b.damage()
            if off is not None:
                edge = max(b.members, key=lambda m: m.offset + m.nbytes) if off >= 0 else \
                    min(b.members, key=lambda m: m.offset)
                out.append("the kernel wrote out of bounds: " + edge.describe(off - edge.offset))
        return out

    def locate(self, addr, is_write=False):
        """Words naming the array a faulting address belongs next to, or None."""
        for b in self.blocks:
            if b.holds(addr):
                off = addr - b.start
                if 0 <= off < b.nbytes and is_write and not b.writable:
                    m = next(m for m in b.members if m.offset <= off < m.offset + m.nbytes)
                    return (f"a write into {m.describe(off - m.offset)}, an input the kernel "
                            "declares const (the arrays behind const pointers are read-only here)")
                edge = max(b.members, key=lambda m: m.offset + m.nbytes) if off >= 0 else \
                    min(b.members, key=lambda m: m.offset)
                return edge.describe(off - edge.offset)
        return None

    def outputs(self):
        """{arg index: bytes of that array now} for the arrays the kernel may write."""
        return {m.index: b.contents()[m.offset:m.offset + m.nbytes]
                for b in self.blocks if b.writable for m in b.members}

    def copy_back(self):
        for b in self.blocks:
            if b.writable:
                b.copy_back()

    def free(self):
        for b in self.blocks:
            b.free()
        self.blocks = []
