"""Sequential: a plain stack of layers, as ``keras.Sequential``."""
import warnings

import numpy as np

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

    # -- Keras 2's Sequential methods (Keras 2.3; removed from Keras 3) -------------------
    def predict_classes(self, x, batch_size=32, verbose=0):
        """The predicted class of each sample (deprecated, as in tf.keras 2.4+).

        As Keras 2.3's Sequential: the argmax over the outputs, or, for a model
        with one output unit (binary, sigmoid), ``(p > 0.5).astype('int32')``
        with shape (n, 1). Use ``np.argmax(model.predict(x), axis=-1)`` or
        ``(model.predict(x) > 0.5).astype('int32')`` instead.

        Example: ``model.predict_classes(test_images)[:3]`` -> ``array([7, 2, 1])``."""
        warnings.warn("`model.predict_classes()` is deprecated (Keras 3 removed it). Use instead: "
                      "`np.argmax(model.predict(x), axis=-1)` if your model does multi-class classification "
                      "(e.g. a softmax last layer), or `(model.predict(x) > 0.5).astype('int32')` if it does "
                      "binary classification (e.g. a sigmoid last layer).", DeprecationWarning, stacklevel=2)
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=0):
        """The model's outputs, as ``predict`` (deprecated, as in tf.keras 2.4+): use
        ``model.predict(x)``. Warns, as Keras 2.3 did, when they are not probabilities.

        Example: ``model.predict_proba(test_images)[0]`` -> the 10 class probabilities."""
        warnings.warn("`model.predict_proba()` is deprecated (Keras 3 removed it). Use `model.predict()` "
                      "instead.", DeprecationWarning, stacklevel=2)
        preds = self.predict(x, batch_size=batch_size, verbose=verbose)
        if preds.size and (np.min(preds) < 0.0 or np.max(preds) > 1.0):
            warnings.warn("Network returning invalid probability values. The last layer might not normalize "
                          "predictions into probabilities (like softmax or sigmoid would).", UserWarning,
                          stacklevel=2)
        return preds
