"""Dense and Flatten."""
import numpy as np

from .. import activations, initializers, regularizers
from ..ops import dense
from .base import ActivatedLayer, Layer


class Dense(ActivatedLayer):
    """Fully connected layer: ``activation(x @ kernel + bias)``, as ``keras.layers.Dense``.

    Weights are ``[kernel (in, units), bias (units,)]``. An input of higher
    rank is multiplied along its last axis, as in Keras: (None, 7, 5, 3) ->
    (None, 7, 5, units) with a (3, units) kernel (after convolutions, a
    Flatten before Dense gives the classic classifier instead).

    Example::

        >>> from minicnn.layers import Dense
        >>> from minicnn.models import Sequential
        >>> Sequential([Dense(10, activation='softmax', input_shape=(64,))]).count_params()
        650
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{self.name}: `units` must be a positive int. Received: units={units!r}")
        self.units = int(units)
        self.activation = activations.name_of(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)  # the penalty joins the loss
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"{self.name}: expected input of rank >= 2 (batch, ..., features), got shape "
                             f"{tuple(input_shape)}")
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                        regularizer=self.kernel_regularizer, name="kernel")
        if self.use_bias:
            self.add_weight((self.units,), self.bias_initializer,
                            regularizer=self.bias_regularizer, name="bias")
        super().build(input_shape)

    def _linear_forward(self, x, training):
        return dense.forward(x, self.kernel), x  # backward needs x

    def _linear_backward(self, dz, x, need_dx):
        return dense.backward(dz, x, self.kernel, need_dx=need_dx, dw_out=self.gradient_storage("kernel"))


class Flatten(Layer):
    """Flattens each sample to one axis: (None, 3, 3, 64) -> (None, 576).

    Row-major (channels last), like Keras. Example: ``Flatten()``."""

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1)  # a view: no copy

    def backward(self, dout, need_dx=True):
        return dout.reshape((dout.shape[0],) + tuple(self.input_shape[1:]))


# Keras 2's ``keras.layers.core`` path also held these (``from keras.layers.core import Dropout``)
from .dropout import Dropout  # noqa: E402,F401
from .reshaping import Reshape  # noqa: E402,F401
