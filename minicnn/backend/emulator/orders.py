"""Test helper: run one launch in every thread order and compare the results.

A kernel that forgets a ``__syncthreads()`` usually still gives the right
answer in one order; run forward, reverse and random (for each seed) from
the same inputs, and the results differ. Unlike ``order='all'`` (bitwise),
this helper takes tolerances, for kernels with float atomics.

Example::

    >>> out = run_in_all_orders(fn, (4,), (256,), (x, y, np.int32(n)))
    >>> np.testing.assert_allclose(y, expected)   # y holds the forward-order result
"""
import numpy as np

from .errors import RaceError
from .launch import ORDERS
from .params import POINTER


def _outputs(fn, args):
    """Indices of the arrays the kernel may write (non-const pointer parameters)."""
    return [i for i, a in enumerate(args)
            if isinstance(a, np.ndarray) and fn.params[i].kind == POINTER]


def _same(a, b, rtol, atol):
    if np.issubdtype(a.dtype, np.inexact) and (rtol or atol):
        return np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    return a.tobytes() == b.tobytes()


def run_in_all_orders(fn, grid, block, args, *, shared_mem=0, seeds=(0, 1), rtol=0.0, atol=0.0):
    """Launch ``fn`` once per order (random once per seed) from identical inputs.

    Raises RaceError when an output differs from the forward-order one
    (bitwise, or within rtol/atol for float arrays). Afterwards the arrays
    in ``args`` hold the forward-order results, as after a plain launch.
    Returns {order name: [output arrays]} for further checks. Example::

        run_in_all_orders(fn, (2, 2), (16, 16), (A, B, C, np.int32(M), np.int32(N), np.int32(K)))
    """
    arrays = {i: a.copy() for i, a in enumerate(args) if isinstance(a, np.ndarray)}
    outs = _outputs(fn, args)
    runs = [("forward", 0), ("reverse", 0)] + [("random", s) for s in seeds]
    results = {}
    for order, seed in runs:
        for i, a in arrays.items():
            args[i][...] = a
        fn(grid, block, args, shared_mem=shared_mem, order=order, seed=seed)
        name = order if order != "random" else f"random(seed={seed})"
        results[name] = [args[i].copy() for i in outs]
    ref = results["forward"]
    for name, got in results.items():
        for k, i in enumerate(outs):
            if not _same(ref[k], got[k], rtol, atol):
                bad = np.flatnonzero(ref[k].ravel() != got[k].ravel())
                j = int(bad[0]) if bad.size else 0
                raise RaceError(
                    f"kernel '{fn.name}': results depend on the thread order: "
                    f"{fn.params[i].short} element {j}: forward gives {ref[k].ravel()[j]!r}, "
                    f"{name} gives {got[k].ravel()[j]!r} ({bad.size} of {ref[k].size} differ); "
                    "a missing __syncthreads()? a race?")
    for k, i in enumerate(outs):
        args[i][...] = ref[k]
    return results
