"""Model: a graph of layer calls from an Input to an output, plus training.

A functional model is wired by calling layers on symbolic tensors::

    >>> import minicnn as keras
    >>> from minicnn import layers
    >>> inputs = keras.Input(shape=(8, 8, 3))
    >>> x = layers.Conv2D(filters=2, kernel_size=3, activation='relu')(inputs)
    >>> model = keras.Model(inputs=inputs, outputs=x)
    >>> model.count_params()
    56

Every layer here takes one input, so the layers between the input and the
output form a chain; the model runs them in that order forward and in
reverse order backward.
"""

from .. import backend
from ..layers.base import KerasTensor
from ..naming import unique_name
from ..layers.input import InputLayer
from . import keras_files
from .saving import _as_path, load_arrays, save_arrays
from .serialize import model_config, to_json
from .summary import print_summary
from .training import TrainingMixin


class Model(TrainingMixin):
    """A model from ``inputs`` (from ``keras.Input``) to ``outputs``, as ``keras.Model``."""

    def __init__(self, inputs=None, outputs=None, name=None):
        self.name = name or unique_name(self._default_name())
        self._init_training()
        if inputs is None and outputs is None:
            self._layers = []
            return
        self._layers = self._trace(_single(inputs, "inputs"), _single(outputs, "outputs"))

    @staticmethod
    def _default_name():
        return "model"

    @staticmethod
    def _trace(inputs, outputs):
        """The layers from ``inputs`` to ``outputs``, input layer first."""
        chain = []
        t = outputs
        while t.inputs:
            chain.append(t.layer)
            if len(t.inputs) != 1:
                raise ValueError(f"Layer {t.layer.name} has {len(t.inputs)} inputs; minicnn models "
                                 "support single-input layers only.")
            t = t.inputs[0]
        if t is not inputs:
            raise ValueError("Model: `outputs` is not computed from `inputs`: the graph reaches "
                             f"{t.layer.name}, not {inputs.layer.name}.")
        chain.append(t.layer)
        return chain[::-1]

    # -- structure -----------------------------------------------------------
    @property
    def layers(self):
        """The model's layers in order (functional models start with their InputLayer)."""
        return list(self._layers)

    @property
    def _compute_layers(self):
        """Layers that do work: the InputLayer only passes data through."""
        return [l for l in self._layers if not isinstance(l, InputLayer)]

    @property
    def built(self):
        return bool(self._layers) and all(l.built for l in self._layers)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"This model has not yet been built. Build the model first by calling "
                             f"`build()` or by calling the model on a batch of data before `{what}`, "
                             "or give the first layer an `input_shape`.")

    def _ensure_built_for(self, x_shape):
        """A functional model is built when it is made (Sequential may defer)."""

    @property
    def input_shape(self):
        self._require_built("input_shape")
        return self._layers[0].input_shape

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return self._layers[-1].output_shape

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print the Keras 2 summary table; ``print_fn`` receives each line, e.g.
        ``model.summary(print_fn=lambda line: f.write(line + '\\n'))``. The other
        arguments are Keras's (see minicnn/models/summary.py)."""
        self._require_built("summary")
        print_summary(self, line_length, positions, print_fn, expand_nested, show_trainable, layer_range)

    def get_config(self):
        """The architecture as Keras's config dict (``to_json`` writes it as text)."""
        return model_config(self)["config"]

    def to_json(self, **kwargs):
        """The architecture as Keras's JSON; ``models.model_from_json`` rebuilds it."""
        return to_json(self, **kwargs)

    def count_params(self):
        self._require_built("count_params")
        return sum(l.count_params() for l in self._layers)

    def get_layer(self, name):
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self._layers]}.")

    # -- weights -----------------------------------------------------------------
    @property
    def weights(self):
        """All weight arrays (backend arrays), in Keras order."""
        return [w for l in self._layers for w in l.weights]

    @property
    def trainable_weights(self):
        """The weights the optimizer updates (those of trainable layers)."""
        return [w for l in self._layers for w in l.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for l in self._layers for w in l.non_trainable_weights]

    def get_weights(self):
        """All weights as NumPy arrays, layer by layer in Keras order."""
        return [w for l in self._layers for w in l.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list like the one get_weights returns.

        Every array is checked before any weight changes: a list that does not
        fit leaves the model as it was."""
        weights = list(weights)
        expected = sum(len(l.weights) for l in self._layers)
        if len(weights) != expected:
            raise ValueError(f"Model {self.name}: set_weights expected a list of {expected} arrays, "
                             f"got {len(weights)}")
        checked, i = [], 0
        for layer in self._layers:
            n = len(layer.weights)
            checked.append(layer.check_weights(weights[i:i + n]))
            i += n
        for layer, arrays in zip(self._layers, checked):
            layer.assign_weights(arrays)

    def save_weights(self, filepath):
        """Write all weights, atomically (never half-written): ``.weights.h5`` (Keras 3's
        layout, with the optimizer's state) or ``.h5`` (Keras's layer groups) need
        h5py; any other name gets minicnn's ``.npz``.

        Example: ``model.save_weights('mnist.weights.h5')``; then
        ``model.load_weights('mnist.weights.h5')`` on a model of the same layers."""
        path = _as_path(filepath, "save_weights")
        if path.endswith(".h5"):
            keras_files.save_weights_h5(self, path)
        else:
            save_arrays(path, self.get_weights())

    def load_weights(self, filepath):
        """Set all weights from save_weights' file or Keras's .weights.h5 / .h5 (all or nothing)."""
        path = _as_path(filepath, "load_weights")
        if path.endswith(".h5"):
            keras_files.load_weights_h5(self, path)
        else:
            self.set_weights(load_arrays(path))

    def save(self, filepath):
        """The whole model (architecture, weights, compile arguments, optimizer state) in
        Keras's ``.keras`` zip or the legacy ``.h5``; ``models.load_model`` reads it back.

        Example: ``model.save('mnist.keras')``."""
        keras_files.save_model(self, filepath)

    # -- running -----------------------------------------------------------------
    def _runs(self):
        """The layers as they run: one by one, or two as one op (Layer.fused_with: Conv2D +
        MaxPooling2D), the same pairs for forward and backward (they depend on the layers
        alone)."""
        layers, runs, i = self._compute_layers, [], 0
        while i < len(layers):
            both = layers[i].fused_with(layers[i + 1]) if i + 1 < len(layers) else None
            runs.append(both or layers[i])
            i += 2 if both else 1
        return runs

    def _forward(self, x, training=False):
        for run in self._runs():
            x = run.forward(x, training=training)
        return x

    def _backward(self, dout, from_preactivation=False):
        """Backward through every layer; the first layer skips its input gradient.

        With ``from_preactivation`` the gradient is taken w.r.t. the last
        layer's pre-activation (the fused softmax + cross-entropy case)."""
        runs = self._runs()
        for i in range(len(runs) - 1, -1, -1):
            need_dx = i > 0
            if i == len(runs) - 1 and from_preactivation:
                dout = runs[i].backward_from_preactivation(dout, need_dx=need_dx)
            else:
                dout = runs[i].backward(dout, need_dx=need_dx)

    def __call__(self, x, training=False):
        """Run the model on an array (returns a backend array)."""
        x = self._check_x(x, "__call__")
        return self._forward(backend.asarray(x), training=training)


def _single(t, what):
    if isinstance(t, (list, tuple)) and len(t) == 1:
        t = t[0]
    if not isinstance(t, KerasTensor):
        raise TypeError(f"Model: `{what}` must be a tensor from keras.Input / a layer call (or a "
                        f"list of one). Received: {what}={t!r}")
    return t


