"""padding: zero padding and cropping of NHWC images along H and W, on every device.

    pad(x, (top, bottom, left, right)):   y (N, top + H + bottom, left + W + right, C)
        y[n, h + top, w + left, ch] = x[n, h, w, ch], and 0 in the frame around
    crop(x, (top, bottom, left, right)):  y (N, H - top - bottom, W - left - right, C)
        y[n, h, w, ch] = x[n, h + top, w + left, ch]

Each is the other's gradient: padding adds cells that depend on nothing
(their gradient is dropped) and moves the rest, so dL/dx = crop(dL/dy); and
cropping drops cells (gradient 0) and moves the rest, so dL/dx = pad(dL/dy),
both with the same margins. ZeroPadding2D and Cropping2D are these two.
Pure data movement: every version gives the same bits.

Versions: ``check_pad`` / ``check_crop`` (every device, before any work); the
reference, which is also the CPU version (NumPy's copies run at memory
speed: no compiled kernel would be faster); the CUDA path
(``kernels/padding.cu``, one thread per output element).

Example::

    >>> y = padding.pad(x, (1, 1, 2, 0))        # ZeroPadding2D(((1, 1), (2, 0)))
    >>> dx = padding.crop(dy, (1, 1, 2, 0))     # its backward
"""
import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, INT32_LIMIT, grid_1d
from .common import pads4, require_array

KERNELS = ("pad2d_nhwc", "crop2d_nhwc")   # in kernels/padding.cu


def check_pad(x, pads, op="pad2d"):
    """(top, bottom, left, right) as ints, or a TypeError/ValueError naming what is wrong."""
    require_array(op, "x", x, 4)
    return pads4(op, pads)


def check_crop(x, crops, op="crop2d"):
    """(top, bottom, left, right) as ints; the crop must leave at least one row and column."""
    require_array(op, "x", x, 4)
    top, bottom, left, right = pads4(op, crops)
    h, w = int(x.shape[1]), int(x.shape[2])
    if top + bottom >= h or left + right >= w:
        raise ValueError(f"{op}: cropping {(top, bottom, left, right)} must leave at least one row and "
                         f"column of the input. Received: x.shape={tuple(x.shape)}")
    return top, bottom, left, right


def pad(x, pads):
    """x framed by zeros: ``pads`` rows on top/bottom, columns on left/right."""
    top, bottom, left, right = check_pad(x, pads)
    device = backend.device()
    if device.kind == "cuda":
        return _launch(device, "pad2d", "pad2d_nhwc", x, (x.shape[0], x.shape[1] + top + bottom,
                                                          x.shape[2] + left + right, x.shape[3]), top, left)
    return pad_reference(x, (top, bottom, left, right))


def crop(x, crops):
    """x without ``crops`` rows on top/bottom and columns on left/right (a new C-contiguous array)."""
    top, bottom, left, right = check_crop(x, crops)
    device = backend.device()
    if device.kind == "cuda":
        return _launch(device, "crop2d", "crop2d_nhwc", x, (x.shape[0], x.shape[1] - top - bottom,
                                                            x.shape[2] - left - right, x.shape[3]), top, left)
    return crop_reference(x, (top, bottom, left, right))


# ----------------------------------------------------------------------------
# the reference (and CPU version): NumPy, any dtype
# ----------------------------------------------------------------------------
def pad_reference(x, pads):
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    y = np.zeros((n, top + h + bottom, left + w + right, c), dtype=x.dtype)
    y[:, top:top + h, left:left + w, :] = x
    return y


def crop_reference(x, crops):
    top, bottom, left, right = crops
    h, w = x.shape[1], x.shape[2]
    # a copy, not a view: the next op gets a C-contiguous array (the CUDA path needs one)
    return np.ascontiguousarray(x[:, top:h - bottom, left:w - right, :])


# ----------------------------------------------------------------------------
# CUDA: kernels/padding.cu
# ----------------------------------------------------------------------------
def _launch(device, op, kernel, x, y_shape, top, left):
    device.require(op, "x", x)
    size = int(np.prod(y_shape))
    if size > INT32_LIMIT:   # a padded y can outgrow x
        raise ValueError(f"{op}: {size} output elements exceed the kernels' 32-bit indexing "
                         f"(at most {INT32_LIMIT}); use smaller batches")
    y = device.empty(y_shape)
    n, h, w, c = x.shape
    if size:   # one thread per output element
        device.launch(op, "padding", kernel, grid_1d(size), (BLOCK_1D, 1, 1),
                      (x, y) + tuple(np.int32(v) for v in (n, h, w, c, y_shape[1], y_shape[2], top, left)))
    return y
