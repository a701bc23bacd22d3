"""Activation layers: Activation, ReLU, ELU and Softmax (LeakyReLU has its own file).

Each applies one activation to its input and has no weights (0 params in the
summary); the math is minicnn.ops.bias_act's (``activate``, no bias). As the
last layer, ``Softmax()`` or ``Activation('softmax')`` lets the loss fuse its
gradient with the softmax's (``output_activation``), as ``Dense(...,
activation='softmax')`` does.
"""
import math

import numpy as np

from .. import activations
from ..ops import bias_act
from .base import Layer


class _ActivationLayer(Layer):
    """The shared part: forward/backward through ``bias_act.activate`` for the
    activation ``_activation()`` returns as (name, arguments)."""

    def __init__(self, input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self._ctx = None

    def _activation(self):
        raise NotImplementedError

    def forward(self, x, training=False):
        name, params = self._activation()
        y, ctx = bias_act.activate(x, name, training=training, **params)
        if training:  # only backward needs the context; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        if not need_dx:
            return None
        name, params = self._activation()
        return bias_act.backward(dout, ctx, name, False, **params)[0]

    def backward_from_preactivation(self, dz, need_dx=True):
        """Backward given dL/d(this layer's input): the loss fused its gradient with
        this layer's softmax (dL/dlogits = (p - y) / batch), so dz passes through."""
        self._use_context()
        return dz if need_dx else None


def _number(layer, arg, value, minimum=None, allow_none=False):
    """``value`` as a float (or None), else a ValueError naming the layer and argument."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (minimum is not None and value < minimum):
        what = "a finite number" + (f" >= {minimum}" if minimum is not None else "")
        raise ValueError(f"{layer}: `{arg}` must be {what}{' or None' if allow_none else ''}. "
                         f"Received: {arg}={value!r}")
    return float(value)


class Activation(_ActivationLayer):
    """Applies an activation to its input, as ``keras.layers.Activation``.

    ``activation``: a name ('relu', 'gelu', 'swish', ...), one of
    minicnn.activations' functions, or None (linear).

    Example::

        >>> from minicnn.layers import Activation, Conv2D
        >>> from minicnn.models import Sequential
        >>> Sequential([Conv2D(8, 3, input_shape=(8, 8, 1)), Activation('relu')]).output_shape
        (None, 6, 6, 8)
    """

    def __init__(self, activation, input_shape=None, name=None, **kwargs):
        super().__init__(input_shape=input_shape, name=name, **kwargs)
        self.activation = activations.name_of(activation, self.name)

    @property
    def output_activation(self):
        return self.activation

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}

    def _activation(self):
        return self.activation, {}


class ReLU(_ActivationLayer):
    """Rectified linear unit, as ``keras.layers.ReLU``::

        f(x) = min(x, max_value)                  for x > threshold (max_value None: x)
        f(x) = negative_slope * (x - threshold)   otherwise

    Example: ``ReLU(max_value=6.0)`` (ReLU6), ``ReLU(negative_slope=0.1)`` (leaky).
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, input_shape=None, name=None,
                 **kwargs):
        super().__init__(input_shape=input_shape, name=name, **kwargs)
        self.max_value = _number(self.name, "max_value", max_value, 0, allow_none=True)
        self.negative_slope = _number(self.name, "negative_slope", negative_slope, 0)
        self.threshold = _number(self.name, "threshold", threshold, 0)

    @property
    def output_activation(self):
        return "relu" if not self._activation()[1] else None

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}

    def _activation(self):
        params = {"negative_slope": self.negative_slope, "max_value": self.max_value,
                  "threshold": self.threshold}
        if params == {"negative_slope": 0.0, "max_value": None, "threshold": 0.0}:
            params = {}   # the plain ReLU: bias_act's own, its derivative read from the output
        return "relu", params


class ELU(_ActivationLayer):
    """Exponential linear unit, as ``keras.layers.ELU``: ``x`` for ``x > 0``,
    ``alpha * (exp(x) - 1)`` otherwise. Example: ``ELU(alpha=0.5)``."""

    def __init__(self, alpha=1.0, input_shape=None, name=None, **kwargs):
        super().__init__(input_shape=input_shape, name=name, **kwargs)
        self.alpha = _number(self.name, "alpha", alpha)

    @property
    def output_activation(self):
        return "elu" if self.alpha == 1.0 else None

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}

    def _activation(self):
        return "elu", {"alpha": self.alpha}


class Softmax(_ActivationLayer):
    """Softmax along ``axis`` (default the last), as ``keras.layers.Softmax``:
    ``exp(x - max(x)) / sum(exp(x - max(x)))``.

    Example::

        >>> import numpy as np
        >>> from minicnn.layers import Softmax
        >>> Softmax()(np.array([[1.0, 2.0, 1.0]])).round(4)
        array([[0.2119, 0.5761, 0.2119]], dtype=float32)
    """

    def __init__(self, axis=-1, input_shape=None, name=None, **kwargs):
        super().__init__(input_shape=input_shape, name=name, **kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]   # Keras takes a list of axes; minicnn one
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self.name}: `axis` must be an int (one axis). Received: axis={axis!r}")
        self.axis = int(axis)

    @property
    def output_activation(self):
        last = self.axis == -1 or (self.input_shape is not None and self.axis == len(self.input_shape) - 1)
        return "softmax" if last else None   # the loss fuses softmax on the class axis only

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"{self.name}: `axis` must be in [-{rank}, {rank}) for inputs of shape "
                             f"{tuple(input_shape)}. Received: axis={self.axis}")
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

    def _activation(self):
        return "softmax", {"axis": self.axis}
