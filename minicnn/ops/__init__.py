"""The seam between the math and the devices: one module per op family.

Each module holds, side by side, every version of its ops: the checks run
for every backend before any work; the readable NumPy reference (the
specification); the CPU fast path(s), each with the condition under which
it applies; and the CUDA launch (grid arithmetic and the kernel call, whose
kernel lives in ``kernels/<same name>.cu``). Layers, losses and optimizers
call these modules and never branch on the device.
"""
