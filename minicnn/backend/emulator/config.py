"""Launch configurations: normalising grid/block and refusing what a GPU refuses.

Example::

    >>> dims3(256, 'block')
    (256, 1, 1)
    >>> check_config('k', (4, 1, 1), (64, 32, 1), 0)
    Traceback (most recent call last):
    ValueError: kernel 'k' <<<grid=(4,1,1), block=(64,32,1), shared_mem=0>>>: block has 2048 threads; the limit is 1024
"""
import operator

MAX_THREADS = 1024
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_DYNAMIC_SHARED = 48 * 1024  # without the opt-in attribute CuPy does not set


def dims3(value, what):
    """An int or a tuple of 1 to 3 ints -> a 3-tuple (missing dimensions are 1)."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(items) <= 3:
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, received {value!r}")
    out = [as_int(v, f"{what} {value!r}") for v in items]
    return tuple(out) + (1,) * (3 - len(out))


def as_int(value, what):
    """operator.index(value), refusing bools and floats with a clear message."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{what} must be an int, received {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, received {value!r}") from None


def label(name, grid, block, shared_mem):
    """How every message names a launch: kernel 'k' <<<grid=(..), block=(..), shared_mem=N>>>."""
    g, b = ",".join(map(str, grid)), ",".join(map(str, block))
    return f"kernel '{name}' <<<grid=({g}), block=({b}), shared_mem={shared_mem}>>>"


def check_config(name, grid, block, shared_mem, max_threads=MAX_THREADS):
    """Raise ValueError for a configuration the GPU would reject at launch."""
    where = label(name, grid, block, shared_mem)
    for what, dims, limits in (("grid", grid, MAX_GRID), ("block", block, MAX_BLOCK)):
        if any(d < 1 for d in dims):
            raise ValueError(f"{where}: every {what} dimension must be >= 1")
        for axis, d, lim in zip("xyz", dims, limits):
            if d > lim:
                raise ValueError(f"{where}: {what}.{axis} = {d} exceeds the limit {lim}")
    threads = block[0] * block[1] * block[2]
    if threads > MAX_THREADS:
        raise ValueError(f"{where}: block has {threads} threads; the limit is {MAX_THREADS}")
    if threads > max_threads:
        raise ValueError(f"{where}: block has {threads} threads, more than the kernel's "
                         f"__launch_bounds__ ({max_threads}); the GPU refuses the launch")
    if shared_mem < 0:
        raise ValueError(f"{where}: shared_mem must be >= 0")
    if shared_mem > MAX_DYNAMIC_SHARED:
        raise ValueError(f"{where}: {shared_mem} bytes of dynamic shared memory exceed the "
                         f"{MAX_DYNAMIC_SHARED}-byte limit")
