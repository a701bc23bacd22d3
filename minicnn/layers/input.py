"""Input and InputLayer: the entry point of functional models."""
import numpy as np

from ..naming import unique_name
from .base import KerasTensor, Layer


class InputLayer(Layer):
    """The layer behind ``Input``; it has no weights and passes data through."""

    def __init__(self, shape, name=None, dtype="float32"):
        super().__init__(name=name or unique_name("input", zero_based=False))
        self.dtype = np.dtype(dtype).name  # an input may hold any numbers (uint8 images...)
        self.build((None,) + tuple(shape))

    def get_config(self):
        return {"batch_shape": self.output_shape, "dtype": self.dtype, "sparse": False, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        shape = config.pop("batch_shape", None) or config.pop("batch_input_shape", None)
        for key in ("sparse", "ragged", "optional"):
            config.pop(key, None)
        return cls(tuple(shape[1:]), name=config.get("name"), dtype=config.get("dtype", "float32"))

    def forward(self, x, training=False):
        return x

    def backward(self, dout, need_dx=True):
        return dout


def Input(shape, name=None, dtype="float32"):
    """A symbolic input tensor, as ``keras.Input``: ``shape`` excludes the batch axis.

    Example::

        >>> import minicnn as keras
        >>> inputs = keras.Input(shape=(8, 8, 1))
        >>> x = keras.layers.Conv2D(filters=3, kernel_size=2, activation='relu')(inputs)
        >>> keras.Model(inputs=inputs, outputs=x).output_shape
        (None, 7, 7, 3)
    """
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise ValueError(f"Input: `shape` must be a tuple of positive ints without the batch axis, "
                         f"e.g. (28, 28, 1). Received: shape={shape!r}")
    layer = InputLayer(tuple(int(d) for d in shape), name=name, dtype=dtype)
    return KerasTensor(layer.output_shape, layer=layer, inputs=())
