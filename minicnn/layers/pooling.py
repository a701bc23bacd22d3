"""Pooling layers: MaxPooling2D, AveragePooling2D and their global forms.

Also Keras 2's ``keras.layers.pooling`` path (``from keras.layers.pooling
import MaxPooling2D``) and Keras's short aliases MaxPool2D, AvgPool2D,
GlobalMaxPool2D, GlobalAvgPool2D (the same classes).
"""
from ..ops import avg_pool, pooling
from ..ops.geometry import window_geometry
from .base import Layer, as_pair
from .padding import normalize_padding


class _Pooling2D(Layer):
    """A window sliding over H and W, one op call each way (``_op``: an ops module)."""

    _op = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", input_shape=None,
                 name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.pool_size = as_pair(pool_size, "pool_size", self.name)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", self.name)
        self.padding = normalize_padding(padding, self.name)
        self._ctx = None

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": "channels_last"}

    def compute_output_shape(self, input_shape):
        (oh, ow), _ = window_geometry(input_shape, self.pool_size, self.strides, self.padding,
                                      self.name, what="pool")
        return (input_shape[0], oh, ow, input_shape[3])

    def build(self, input_shape):
        _, self.pads = window_geometry(input_shape, self.pool_size, self.strides, self.padding,
                                       self.name, what="pool")
        super().build(input_shape)

    def forward(self, x, training=False):
        y, ctx = self._op.forward(x, self.pool_size, self.strides, self.pads, training=training)
        if training:  # only backward needs the context; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        return self._op.backward(dout, ctx)


class MaxPooling2D(_Pooling2D):
    """Max pooling over (pool_size) windows, as ``keras.layers.MaxPooling2D``.

    ``strides`` default to ``pool_size``; with padding 'same' the padded cells
    never win (TensorFlow's rule). The gradient goes to the first maximum of
    each window (minicnn.ops.pooling).

    Example::

        >>> from minicnn.layers import MaxPooling2D
        >>> from minicnn.models import Sequential
        >>> Sequential([MaxPooling2D(2, input_shape=(100, 100, 15))]).output_shape
        (None, 50, 50, 15)
    """

    _op = pooling


class AveragePooling2D(_Pooling2D):
    """Average pooling over (pool_size) windows, as ``keras.layers.AveragePooling2D``.

    ``strides`` default to ``pool_size``. With padding 'same' a window that
    hangs over the border averages only its real cells (TensorFlow's and
    Keras 3's rule): padding never dilutes the mean (minicnn.ops.avg_pool).

    Example::

        >>> from minicnn.layers import AveragePooling2D
        >>> from minicnn.models import Sequential
        >>> Sequential([AveragePooling2D(2, padding='same', input_shape=(7, 5, 3))]).output_shape
        (None, 4, 3, 3)
    """

    _op = avg_pool


class _GlobalPooling2D(Layer):
    """Pooling with one window covering the whole image: (None, H, W, C) -> (None, C),
    or (None, 1, 1, C) with ``keepdims=True``. The op is ``_op`` with pool = strides
    = (H, W); its (N, 1, 1, C) output reshapes to (N, C) as a view."""

    _op = None

    def __init__(self, keepdims=False, input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        if not isinstance(keepdims, bool):
            raise ValueError(f"{self.name}: `keepdims` must be True or False. Received: keepdims={keepdims!r}")
        self.keepdims = keepdims
        self._ctx = None

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self.name}: expected input of rank 4 (batch, height, width, channels), "
                             f"got shape {tuple(input_shape)}")
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def forward(self, x, training=False):
        window = (int(x.shape[1]), int(x.shape[2]))
        y, ctx = self._op.forward(x, window, window, (0, 0, 0, 0), training=training)
        if training:
            self._ctx = ctx
        return y if self.keepdims else y.reshape(y.shape[0], y.shape[3])

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        return self._op.backward(dout.reshape(dout.shape[0], 1, 1, dout.shape[-1]), ctx)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean over H and W per channel, as ``keras.layers.GlobalAveragePooling2D``.

    Example::

        >>> from minicnn.layers import GlobalAveragePooling2D
        >>> from minicnn.models import Sequential
        >>> Sequential([GlobalAveragePooling2D(input_shape=(4, 5, 3))]).output_shape
        (None, 3)
    """

    _op = avg_pool


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The max over H and W per channel, as ``keras.layers.GlobalMaxPooling2D``.

    Ties: the gradient goes to the FIRST maximum in row-major order, as in
    MaxPooling2D (it is max pooling with the whole image as its window).
    TensorFlow's ``reduce_max`` instead splits it evenly among tied cells;
    the two differ only on exact ties, e.g. a channel that a ReLU made all
    zero (whose cells then pass no gradient back through that ReLU anyway).

    Example::

        >>> from minicnn.layers import GlobalMaxPooling2D
        >>> from minicnn.models import Sequential
        >>> Sequential([GlobalMaxPooling2D(keepdims=True, input_shape=(4, 5, 3))]).output_shape
        (None, 1, 1, 3)
    """

    _op = pooling


# Keras's aliases: the same classes under the short names
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
