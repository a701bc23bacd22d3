"""Low-level ops with TensorFlow's names, for learning and testing: nn.conv2d."""
import numpy as np

from . import backend
from .layers.padding import normalize_padding
from .ops import conv2d as conv2d_op
from .ops.geometry import window_geometry


def _strides_pair(strides):
    """tf.nn.conv2d strides: an int, a pair, or the NHWC form [1, sh, sw, 1]."""
    s = strides
    if isinstance(s, (int, np.integer)):
        s = (s, s)
    s = tuple(int(v) for v in s)
    if len(s) == 4:
        if s[0] != 1 or s[3] != 1:
            raise ValueError(f"conv2d: strides [1, sh, sw, 1] must be 1 on the batch and channel axes. "
                             f"Received: strides={strides!r}")
        s = s[1:3]
    if len(s) != 2 or min(s) <= 0:
        raise ValueError(f"conv2d: strides must be an int, a pair or [1, sh, sw, 1]. Received: strides={strides!r}")
    return s


def conv2d(input, filters, strides, padding):
    """2-D convolution like ``tf.nn.conv2d`` (NHWC input, HWIO filters), NumPy in and out.

    Example (the tutorial's)::

        >>> x = np.array([[[[2], [1], [2], [0], [1]], [[1], [3], [2], [2], [3]],
        ...                [[1], [1], [3], [3], [0]], [[2], [2], [0], [1], [1]],
        ...                [[0], [0], [3], [1], [2]]]])
        >>> k = np.array([[[[2, 0.1]], [[3, 0.2]]], [[[0, 0.3]], [[1, 0.4]]]])
        >>> conv2d(x, k, strides=[1, 1, 1, 1], padding='VALID')[0, 0]
        array([[10. ,  1.9],
               [10. ,  2.2],
               [ 6. ,  1.6],
               [ 6. ,  2. ]], dtype=float32)
    """
    x = np.asarray(input)
    w = np.asarray(filters)
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must be rank 4 (batch, height, width, channels). Received shape {x.shape}")
    if w.ndim != 4 or w.shape[2] != x.shape[3]:
        raise ValueError(f"conv2d: filters must be (height, width, {x.shape[3]}, out_channels) for this "
                         f"input. Received shape {w.shape}")
    strides = _strides_pair(strides)
    padding = normalize_padding(padding, "conv2d")
    _, pads = window_geometry((None,) + x.shape[1:], w.shape[:2], strides, padding, "conv2d")
    y, _ = conv2d_op.forward(backend.asarray(x), backend.asarray(w), strides, pads)
    return backend.to_numpy(y)
