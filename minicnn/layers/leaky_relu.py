"""LeakyReLU: a ReLU that lets a little of the negative side through."""
import warnings

from ..ops import leaky_relu
from .base import Layer


class LeakyReLU(Layer):
    """``x`` where ``x > 0``, else ``negative_slope * x``, as ``keras.layers.LeakyReLU``.

    ``negative_slope`` defaults to 0.3 (Keras's default); tf.keras 2 scripts'
    ``alpha=`` is accepted too, with Keras 3's deprecation warning. No weights.

    Example::

        >>> from minicnn.layers import Dense, LeakyReLU
        >>> from minicnn.models import Sequential
        >>> Sequential([Dense(8, input_shape=(4,)), LeakyReLU(negative_slope=0.1)]).output_shape
        (None, 8)
    """

    def __init__(self, negative_slope=0.3, input_shape=None, name=None, alpha=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        if alpha is not None:
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.",
                          DeprecationWarning, stacklevel=2)
            negative_slope = alpha
        try:
            self.negative_slope = leaky_relu.check_slope(negative_slope)
        except ValueError:
            raise ValueError(f"{self.name}: `negative_slope` must be a finite number >= 0. "
                             f"Received: negative_slope={negative_slope!r}") from None
        self._ctx = None

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}

    def forward(self, x, training=False):
        y, ctx = leaky_relu.forward(x, self.negative_slope, training=training)
        if training:  # only backward needs the context; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        return leaky_relu.backward(dout, ctx, self.negative_slope)
