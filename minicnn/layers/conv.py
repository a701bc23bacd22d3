"""Conv2D: a 2-D convolution over NHWC inputs, Keras's arguments and weights."""
import numpy as np

from .. import activations, initializers, regularizers
from ..ops import conv2d, conv2d_bias_act
from ..ops.geometry import window_geometry
from .base import ActivatedLayer, as_pair
from .padding import normalize_padding
from .pooling import MaxPooling2D


class Conv2D(ActivatedLayer):
    """2-D convolution layer (channels last), as ``keras.layers.Conv2D``.

    Weights are ``[kernel (kh, kw, in_channels, filters), bias (filters,)]``;
    padding 'same' follows TensorFlow (the extra cell goes bottom/right).
    ``dilation_rate`` d spaces the kernel's taps d cells apart (a 3x3 kernel
    at d=2 sees a 5x5 area); as in Keras 3 it cannot be combined with strides > 1.

    Example::

        >>> from minicnn.layers import Conv2D
        >>> from minicnn.models import Sequential
        >>> model = Sequential([Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1))])
        >>> model.output_shape
        (None, 26, 26, 32)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 dilation_rate=(1, 1), kernel_regularizer=None, bias_regularizer=None,
                 input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"{self.name}: `filters` must be a positive int. Received: filters={filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.name)
        self.strides = as_pair(strides, "strides", self.name)
        self.dilation_rate = as_pair(dilation_rate, "dilation_rate", self.name)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:   # as Keras 3 refuses it
            raise ValueError(f"{self.name}: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.padding = normalize_padding(padding, self.name)
        self.activation = activations.name_of(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)  # the penalty joins the loss
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": self.dilation_rate, "groups": 1, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def compute_output_shape(self, input_shape):
        (oh, ow), _ = window_geometry(input_shape, self.kernel_size, self.strides, self.padding, self.name,
                                      dilation=self.dilation_rate)
        return (input_shape[0], oh, ow, self.filters)

    def build(self, input_shape):
        _, self.pads = window_geometry(input_shape, self.kernel_size, self.strides, self.padding, self.name,
                                       dilation=self.dilation_rate)
        kh, kw = self.kernel_size
        self.add_weight((kh, kw, input_shape[-1], self.filters), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, name="kernel")
        if self.use_bias:
            self.add_weight((self.filters,), self.bias_initializer,
                            regularizer=self.bias_regularizer, name="bias")
        super().build(input_shape)

    def forward(self, x, training=False):
        return self._forward(x, training, pool=None)

    def _forward(self, x, training, pool):
        # the convolution, the bias and the activation (and a max pooling after): one op
        a, ctx = conv2d_bias_act.forward(x, self.kernel, self.bias, self.activation, self.strides,
                                         self.pads, training=training, dilation=self.dilation_rate,
                                         pool=pool)
        if training:   # kept for backward (_a, as ActivatedLayer keeps it; _ctx: the op's whole)
            self._ctx, self._a = ctx, ctx.act
        return a

    def fused_with(self, next_layer):
        # a max pooling right after: one op, which on the CPU writes only the pooled values
        # (not for subclasses that change either layer's forward or backward: theirs must run)
        if not (isinstance(next_layer, MaxPooling2D) and type(self).forward is Conv2D.forward
                and type(self).backward is Conv2D.backward
                and type(next_layer).forward is MaxPooling2D.forward
                and type(next_layer).backward is MaxPooling2D.backward):
            return None
        return ConvPool(self, next_layer)

    def backward(self, dout, need_dx=True):
        self._require_training_forward()
        ctx, self._ctx, self._a = self._ctx, None, None   # used up: free the batch's activations
        dx, dkernel, db = conv2d_bias_act.backward(
            dout, ctx, self.kernel, self.activation, self.use_bias, need_dx=need_dx,
            dw_out=self.gradient_storage("kernel"), db_out=self.gradient_storage("bias"))
        self.grads = [dkernel, db] if self.use_bias else [dkernel]
        return dx

    def _linear_backward(self, dz, ctx, need_dx):   # backward_from_preactivation's
        if ctx.pool is not None:
            raise RuntimeError(f"{self.name}: the last training forward pooled its output; "
                               "backward_from_preactivation needs the convolution's own")
        return conv2d.backward(dz, ctx.conv, self.kernel, need_dx=need_dx,
                               dw_out=self.gradient_storage("kernel"))


class ConvPool:
    """A Conv2D and the MaxPooling2D right after it, run as one op (conv2d_bias_act with
    ``pool=``): on the CPU the pooling reads the convolution's rows while they are in cache,
    only the pooled activation (and, training, its argmax) is written, and backward unpools
    the pooled gradient straight into the convolution's. The same numbers as the two layers
    one after the other. Made by ``Conv2D.fused_with`` for a model's forward and backward;
    the layers keep their weights, names and gradients (the pooling has none).

    Example::

        >>> pair = model.layers[0].fused_with(model.layers[1])   # Conv2D, MaxPooling2D
        >>> p = pair.forward(x, training=True)
        >>> dx = pair.backward(dp)                               # sets the Conv2D's grads
    """

    def __init__(self, conv, pool):
        self.conv = conv
        self.pool = (pool.pool_size, pool.strides, pool.pads)

    def forward(self, x, training=False):
        return self.conv._forward(x, training, pool=self.pool)

    def backward(self, dout, need_dx=True):
        return self.conv.backward(dout, need_dx)
