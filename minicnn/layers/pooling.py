"""MaxPooling2D."""
from ..ops import pooling
from .base import Layer, as_pair
from ..ops.geometry import window_geometry
from .padding import normalize_padding


class MaxPooling2D(Layer):
    """Max pooling over (pool_size) windows, as ``keras.layers.MaxPooling2D``.

    ``strides`` default to ``pool_size``; with padding 'same' the padded cells
    never win (TensorFlow's rule).

    Example::

        >>> from minicnn.layers import MaxPooling2D
        >>> from minicnn.models import Sequential
        >>> Sequential([MaxPooling2D(2, input_shape=(100, 100, 15))]).output_shape
        (None, 50, 50, 15)
    """

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
        y, ctx = pooling.forward(x, self.pool_size, self.strides, self.pads, training=training)
        if training:  # only backward needs the context; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        return pooling.backward(dout, ctx)
