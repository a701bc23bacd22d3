"""The seam between the math and the devices: one module per op family.

Each module holds, side by side, every version of its ops: the checks run
for every backend before any work; the readable NumPy reference (the
specification); the CPU fast path(s), each with the condition under which
it applies; and the CUDA launch (grid arithmetic and the kernel call, whose
kernel lives in ``kernels/<same name>.cu``). Layers, losses and optimizers
call these modules and never branch on the device.
"""

import importlib
import pkgutil

# The op modules: every module of this package but the shared helpers and the parts of an
# op's module kept in a file of their own (<op>_cpu.py: its CPU fast path).
MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                       if m.name not in ("common", "geometry") and not m.name.endswith("_cpu")))


def kernels():
    """{kernel file stem: kernel names} for every op with CUDA kernels (kernels/<stem>.cu)."""
    table = {}
    for name in MODULES:
        names = getattr(importlib.import_module(f"{__name__}.{name}"), "KERNELS", ())
        if names:
            table[name] = tuple(names)
    return table
