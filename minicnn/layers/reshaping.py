"""Reshaping layers: ZeroPadding2D, Cropping2D and Reshape (no weights)."""
import math

import numpy as np

from ..ops import padding as padding_op
from .base import Layer


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def margins(value, arg, layer_name):
    """Keras's margin argument as ((top, bottom), (left, right)) of ints >= 0.

    An int n: n on every side; (a, b): a rows on top and bottom, b columns on
    left and right; ((top, bottom), (left, right)) as it is."""
    if _is_int(value):
        pairs = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pairs = tuple((v, v) if _is_int(v) else v for v in value)
    else:
        pairs = None
    ok = pairs is not None and all(isinstance(p, (tuple, list)) and len(p) == 2
                                   and all(_is_int(v) and v >= 0 for v in p) for p in pairs)
    if not ok:
        raise ValueError(f"{layer_name}: `{arg}` must be an int >= 0, a tuple of 2 ints (symmetric "
                         f"height, symmetric width) or a tuple of 2 tuples of 2 ints ((top, bottom), "
                         f"(left, right)). Received: {arg}={value!r}")
    return tuple((int(a), int(b)) for a, b in pairs)


def _require_rank4(layer, input_shape):
    if len(input_shape) != 4:
        raise ValueError(f"{layer.name}: expected input of rank 4 (batch, height, width, channels), "
                         f"got shape {tuple(input_shape)}")


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around each image, as ``keras.layers.ZeroPadding2D``.

    ``padding``: an int, (rows, cols) or ((top, bottom), (left, right)).

    Example::

        >>> from minicnn.layers import ZeroPadding2D
        >>> from minicnn.models import Sequential
        >>> Sequential([ZeroPadding2D(((1, 0), (2, 2)), input_shape=(28, 28, 1))]).output_shape
        (None, 29, 32, 1)
    """

    def __init__(self, padding=(1, 1), input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.padding = margins(padding, "padding", self.name)
        (top, bottom), (left, right) = self.padding
        self._pads = (top, bottom, left, right)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": "channels_last"}

    def compute_output_shape(self, input_shape):
        _require_rank4(self, input_shape)
        t, b, l, r = self._pads
        return (input_shape[0], input_shape[1] + t + b, input_shape[2] + l + r, input_shape[3])

    def forward(self, x, training=False):
        return padding_op.pad(x, self._pads)

    def backward(self, dout, need_dx=True):
        return padding_op.crop(dout, self._pads)   # the frame's cells depend on nothing


class Cropping2D(Layer):
    """Cuts rows and columns off each image's borders, as ``keras.layers.Cropping2D``.

    ``cropping``: an int, (rows, cols) or ((top, bottom), (left, right)).

    Example::

        >>> from minicnn.layers import Cropping2D
        >>> from minicnn.models import Sequential
        >>> Sequential([Cropping2D(((2, 2), (4, 4)), input_shape=(28, 28, 3))]).output_shape
        (None, 24, 20, 3)
    """

    def __init__(self, cropping=((0, 0), (0, 0)), input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.cropping = margins(cropping, "cropping", self.name)
        (top, bottom), (left, right) = self.cropping
        self._crops = (top, bottom, left, right)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": "channels_last"}

    def compute_output_shape(self, input_shape):
        _require_rank4(self, input_shape)
        t, b, l, r = self._crops
        if t + b >= input_shape[1] or l + r >= input_shape[2]:
            raise ValueError(f"{self.name}: values in `cropping` must be smaller than the input's spatial "
                             f"size. Received: input_shape={tuple(input_shape)}, cropping={self.cropping}")
        return (input_shape[0], input_shape[1] - t - b, input_shape[2] - l - r, input_shape[3])

    def forward(self, x, training=False):
        return padding_op.crop(x, self._crops)

    def backward(self, dout, need_dx=True):
        return padding_op.pad(dout, self._crops)   # the cut cells get no gradient


class Reshape(Layer):
    """Gives each sample a new shape with the same number of values, as ``keras.layers.Reshape``.

    ``target_shape`` excludes the batch axis; one entry may be -1 (inferred).
    Row-major (as NumPy and Keras): a view, no copy.

    Example::

        >>> from minicnn.layers import Reshape
        >>> from minicnn.models import Sequential
        >>> Sequential([Reshape((-1, 4), input_shape=(3, 8))]).output_shape
        (None, 6, 4)
    """

    def __init__(self, target_shape, input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        shape = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if shape is None or not all(_is_int(d) and (d > 0 or d == -1) for d in shape) \
                or list(shape).count(-1) > 1:
            raise ValueError(f"{self.name}: `target_shape` must be a tuple of positive ints, one of "
                             f"them may be -1 (inferred). Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = self.target_shape
        if -1 in shape and size % known == 0:
            shape = tuple(size // known if d == -1 else d for d in shape)
        if math.prod(shape) != size or -1 in shape:
            raise ValueError(f"{self.name}: the total size of the tensor must be unchanged. "
                             f"Received: input_shape={tuple(input_shape)}, target_shape={self.target_shape}")
        return (input_shape[0],) + shape

    def forward(self, x, training=False):
        return x.reshape((x.shape[0],) + tuple(self.output_shape[1:]))   # a view: no copy

    def backward(self, dout, need_dx=True):
        return dout.reshape((dout.shape[0],) + tuple(self.input_shape[1:]))
