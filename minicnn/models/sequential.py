"""Sequential: a plain stack of layers, as ``keras.Sequential``."""
from ..layers.base import KerasTensor, Layer
from ..layers.input import InputLayer
from .model import Model


class Sequential(Model):
    """A linear stack of layers.

    Each ``add`` builds the new layer at once when the input shape is known
    (from the first layer's ``input_shape`` or a leading ``keras.Input``), so
    a shape error is raised right there, naming the layer.

    Example::

        >>> from minicnn.models import Sequential
        >>> from minicnn.layers import Conv2D, MaxPooling2D, Flatten, Dense
        >>> model = Sequential()
        >>> model.add(Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)))
        >>> model.add(MaxPooling2D((2, 2)))
        >>> model.add(Flatten())
        >>> model.add(Dense(10, activation='softmax'))
        >>> model.output_shape
        (None, 10)
    """

    def __init__(self, layers=None, name=None):
        super().__init__(name=name)
        self._input_layer = None  # set by a leading keras.Input
        for layer in layers or []:
            self.add(layer)

    @staticmethod
    def _default_name():
        return "sequential"

    @property
    def layers(self):
        """The added layers (a leading Input is not listed, as in Keras)."""
        return [l for l in self._layers if l is not self._input_layer]

    def add(self, layer):
        """Append a layer (or a leading ``keras.Input``) and build it if possible."""
        if isinstance(layer, KerasTensor) and isinstance(layer.layer, InputLayer) and not self._layers:
            self._input_layer = layer.layer
            self._layers.append(layer.layer)
            return
        if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
            raise TypeError(f"Sequential.add expects a layer instance (e.g. Conv2D(...)). "
                            f"Received: {layer!r}")
        if any(layer is l for l in self._layers):
            raise ValueError(f"Layer {layer.name} is already in model {self.name}.")
        shape = self._layers[-1].output_shape if self._layers else layer._declared_input_shape
        if self._layers and not self._layers[-1].built:
            shape = None
        if shape is not None:
            layer._build_for(shape)  # raises here for shapes that cannot work
        self._layers.append(layer)

    def build(self, input_shape):
        """Build every layer for inputs of ``input_shape`` (batch axis included, may be None)."""
        shape = (None,) + tuple(input_shape[1:])
        newly_built = []
        try:
            for layer in self._layers:
                if not layer.built:
                    newly_built.append(layer)
                layer._build_for(shape)
                shape = layer.output_shape
        except BaseException:
            # all or nothing: a shape that fails at layer k must not leave
            # layers 0..k-1 built for it (later data of the right shape would
            # then be refused by them)
            for layer in newly_built:
                layer._unbuild()
            raise

    def _ensure_built_for(self, x_shape):
        """Deferred build: a model without input_shape builds from the first data."""
        if not self._layers:
            raise ValueError(f"Sequential model {self.name} has no layers: add() some first.")
        if not self.built:
            self.build((None,) + tuple(x_shape[1:]))
