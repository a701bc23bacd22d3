"""The layer contract shared by every layer, and symbolic tensors.

The contract (documented here once; models rely on nothing else):

- ``build(input_shape)``: create the weights with ``add_weight`` once the
  input shape is known (batch axis None), then call ``super().build``.
- ``compute_output_shape(input_shape)``: the output shape, batch axis kept.
- ``forward(x, training=False)``: the output for backend array ``x``. Only a
  training forward may keep what backward needs; an inference forward keeps
  nothing, so it may run while another thread trains the same layer.
- ``backward(dout, need_dx=True)``: given dL/d(output) for the last training
  forward, fill ``self.grads`` (one gradient per weight, in the order of
  ``weights``) and return dL/dx, or None when ``need_dx`` is False (the first
  layer of a model).
- ``trainable`` (default True): when False, the optimizer leaves the layer's
  weights alone; ``trainable_weights`` / ``non_trainable_weights`` list them
  (``add_weight(..., trainable=False)`` makes a weight that is never trained,
  such as a running statistic). ``summary()`` counts both.
- weights are read from ``weights`` (``self.weight('kernel')``) on every call,
  not kept in attributes: a model moves its trainable weights into one flat
  buffer (minicnn/models/flat_weights.py). A custom layer that does keep
  ``self.w = self.add_weight(...)`` still trains, one variable at a time.
- ``output_activation``: the activation the output went through last, if any
  ('softmax', ...): the loss uses it to fuse its gradient with the
  activation's (softmax + cross-entropy), so a layer never needs to know the
  loss.

Calling a layer on a symbolic tensor (from ``Input``) records the call, which
is how functional models are wired; calling it on an array runs it.
"""
import numpy as np

from .. import backend, initializers, regularizers
from ..naming import snake_case, unique_name
from ..ops import bias_act

def as_pair(value, arg, layer_name):
    """An int or a pair of ints as a pair of positive ints (kernel_size, strides...)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    ok = (isinstance(pair, (tuple, list)) and len(pair) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in pair))
    if not ok:
        raise ValueError(f"{layer_name}: `{arg}` must be a positive int or a tuple of 2 positive "
                         f"ints. Received: {arg}={value!r}")
    return int(pair[0]), int(pair[1])


def shape_str(shape):
    return str(tuple(shape))


def _float_dtype(dtype, layer_name):
    """The name of a floating-point dtype the backends compute in, else a TypeError."""
    try:
        dt = np.dtype("float32" if dtype is None else dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{layer_name}: `dtype` must be 'float32' or 'float64' (weights and "
                        f"activations are floating point). Received: dtype={dtype!r}")
    return dt.name


class KerasTensor:
    """A symbolic tensor: a shape (batch dimension None) and the layer call that made it."""

    def __init__(self, shape, layer=None, inputs=()):
        self.shape = tuple(shape)
        self.layer = layer        # the layer whose call produced this tensor
        self.inputs = tuple(inputs)  # the KerasTensors that call consumed

    def __repr__(self):
        name = self.layer.name if self.layer else "?"
        return f"<KerasTensor shape={self.shape}, name={name}>"


class Layer:
    """Base class: name, the build/forward/backward contract (module docstring), weights.

    Example (a custom layer that doubles its input)::

        class Double(Layer):
            def forward(self, x, training=False):
                return x * 2
            def backward(self, dout, need_dx=True):
                return dout * 2
    """

    def __init__(self, name=None, input_shape=None, dtype="float32", trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string. Received: name={name!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.dtype = _float_dtype(dtype, self.name)
        self._declared_input_shape = self._check_input_shape(input_shape)
        self.trainable = bool(trainable)
        self.weights = []   # backend arrays, in Keras order
        self._weight_names = []  # their names ('kernel', 'bias', ...): properties read weights by name
        self._gradient_storage = {}  # weight index -> where backward may write its gradient
        self.grads = []     # filled by backward, same order as weights
        self._weight_trainable = []  # per weight: may an optimizer change it?
        self._regularized = []  # (weight index, regularizer) from add_weight(..., regularizer=)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._input_tensors = None  # set when called symbolically

    def _check_input_shape(self, input_shape):
        if input_shape is None:
            return None
        if not isinstance(input_shape, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and d > 0 for d in input_shape):
            raise ValueError(f"{self.name}: input_shape must be a tuple of positive ints without "
                             f"the batch axis, e.g. (28, 28, 1). Received: input_shape={input_shape!r}")
        return (None,) + tuple(int(d) for d in input_shape)

    # -- the protocol ------------------------------------------------------
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (batch axis None)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, dout, need_dx=True):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward()")

    def fused_with(self, next_layer):
        """None, or an object running this layer and ``next_layer`` as one op, with the two
        layers' ``forward(x, training)`` and ``backward(dout, need_dx)`` in one (Conv2D +
        MaxPooling2D: minicnn.layers.conv.ConvPool); a model's forward and backward ask."""
        return None

    output_activation = None  # see the contract above; layers with an activation say which

    def _use_context(self):
        """The context its op returned to the last training forward, handed over
        once: backward uses it up (an inference forward keeps none)."""
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first.")
        return ctx

    # -- weights ---------------------------------------------------------------
    def add_weight(self, shape, initializer="glorot_uniform", trainable=True, regularizer=None, name=None):
        """A new weight of ``shape``, on the backend, as Keras's ``add_weight``.

        ``initializer``: a name ('zeros', 'ones', 'glorot_uniform', ...) or a
        function of the shape. ``regularizer``: a minicnn.regularizers object
        (or name) whose penalty joins the loss while the weight is trained.
        ``name``: how the layer finds it again (``self.weight("kernel")``).
        Example: ``self.add_weight((units,), 'zeros', name='bias')``."""
        regularizer = regularizers.get(regularizer)
        value = backend.asarray(initializers.get(initializer)(tuple(shape)), self.dtype)
        self.weights.append(value)
        self._weight_names.append(name)
        self._weight_trainable.append(bool(trainable))
        if regularizer is not None:
            self._regularized.append((len(self.weights) - 1, regularizer))
        return value

    def weight(self, name):
        """The weight called ``name`` in ``add_weight``, or None (e.g. no bias).

        Layers read their weights through this on every call rather than
        keeping the arrays in attributes: a model may move a weight into one
        flat buffer (``move_weight``), and an attribute would keep the old array."""
        names = self._weight_names
        return self.weights[names.index(name)] if name in names else None

    def move_weight(self, i, storage):
        """Move weight ``i`` into ``storage`` (an array of its shape and dtype, e.g. a view
        of a model's flat buffer): its values are copied there and ``weights[i]`` becomes
        ``storage``. Used by :class:`minicnn.models.flat_weights.FlatWeights`."""
        old = self.weights[i]
        if tuple(storage.shape) != tuple(old.shape) or storage.dtype != old.dtype:
            raise ValueError(f"{self.name}: weight {i} is {tuple(old.shape)} {old.dtype}; cannot move it "
                             f"into storage {tuple(storage.shape)} {storage.dtype}")
        storage[...] = old
        self.weights[i] = storage

    def store_gradient_in(self, i, storage):
        """Let backward write weight ``i``'s gradient straight into ``storage`` (an array of
        its shape, e.g. a view of a model's flat gradient buffer) where its op can."""
        self._gradient_storage[i] = storage

    def gradient_storage(self, name):
        """Where the gradient of weight ``name`` may be written (``store_gradient_in``), or None."""
        names = self._weight_names
        return self._gradient_storage.get(names.index(name)) if name in names else None

    # -- regularization (the penalties of add_weight(..., regularizer=)) ------------
    def regularization_penalties(self):
        """The penalty of each regularized trainable weight (0-d backend arrays, no
        host sync): what the layer adds to the loss, as Keras's ``layer.losses``."""
        return [reg(self.weights[i]) for i, reg in self._regularized_trainable()]

    def add_regularization_gradients(self):
        """Add each penalty's gradient to its weight's gradient in ``grads`` (after backward)."""
        for i, reg in self._regularized_trainable():
            self.grads[i] = reg.add_gradient(self.grads[i], self.weights[i])

    def _regularized_trainable(self):
        if not self.trainable:
            return []
        return [(i, reg) for i, reg in self._regularized if self._weight_trainable[i]]

    @property
    def trainable_weights(self):
        """The weights an optimizer updates: none while ``trainable`` is False."""
        if not self.trainable:
            return []
        return [w for w, t in zip(self.weights, self._weight_trainable) if t]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return list(self.weights)
        return [w for w, t in zip(self.weights, self._weight_trainable) if not t]

    def gradients_and_weights(self):
        """(gradient, weight) pairs for the optimizer, from the last backward."""
        if not self.trainable:
            return []
        return [(g, w) for g, w, t in zip(self.grads, self.weights, self._weight_trainable) if t]

    def get_weights(self):
        """The weights as NumPy arrays, in Keras order (e.g. [kernel, bias])."""
        return [backend.to_numpy(w).copy() for w in self.weights]

    def set_weights(self, weights):
        """Replace the weights (NumPy arrays of the same shapes, Keras order).

        Every array is checked before any weight changes."""
        self.assign_weights(self.check_weights(weights))

    def check_weights(self, weights):
        """``weights`` as arrays of this layer's dtype, or a ValueError naming what is wrong."""
        weights = list(weights)
        if len(weights) != len(self.weights):
            raise ValueError(f"{self.name}: set_weights expected a list of {len(self.weights)} "
                             f"arrays, got {len(weights)}")
        checked = []
        for i, (old, new) in enumerate(zip(self.weights, weights)):
            new = np.asarray(new)
            if tuple(new.shape) != tuple(old.shape):
                raise ValueError(f"{self.name}: weight {i} expected shape {tuple(old.shape)}, "
                                 f"got {tuple(new.shape)}")
            if new.dtype.kind not in "biuf":
                raise TypeError(f"{self.name}: weight {i} must hold numbers. Received dtype {new.dtype}")
            checked.append(new.astype(self.dtype, copy=False))
        return checked

    def assign_weights(self, checked):
        """Copy arrays from check_weights into the weights, in place (optimizers hold these arrays)."""
        for old, new in zip(self.weights, checked):
            old[...] = backend.asarray(new, self.dtype)

    def count_params(self):
        """Number of weight values (Keras's Param #)."""
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name}, "
                             "but the layer isn't built.")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # -- calling ---------------------------------------------------------------
    def _build_for(self, input_shape):
        """Build on first use; later uses must match the built shape.

        A build that fails leaves the layer unbuilt, as it was."""
        input_shape = tuple(input_shape)
        if not self.built:
            try:
                self.build(input_shape)
            except BaseException:
                self._unbuild()
                raise
        elif tuple(input_shape[1:]) != tuple(self.input_shape[1:]):
            raise ValueError(f"Input of layer {self.name} is incompatible: expected shape "
                             f"{shape_str(self.input_shape)}, got {shape_str(input_shape)}")

    def _unbuild(self):
        """Back to the state before build (used when building a model fails part-way)."""
        self.weights = []
        self._weight_names = []
        self._gradient_storage = {}
        self.grads = []
        self._weight_trainable = []
        self._regularized = []
        self.built = False
        self.input_shape = None
        self.output_shape = None

    def __call__(self, inputs, training=False):
        if isinstance(inputs, KerasTensor):
            if self._input_tensors is not None:
                raise ValueError(f"Layer {self.name} was already called on a tensor; minicnn "
                                 "does not share one layer between several calls. Make a new layer.")
            self._build_for(inputs.shape)
            self._input_tensors = (inputs,)
            return KerasTensor(self.output_shape, layer=self, inputs=(inputs,))
        x = backend.asarray(inputs, self.dtype)
        self._build_for((None,) + tuple(x.shape[1:]))
        return self.forward(x, training=training)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    # -- configs -----------------------------------------------------------------
    def get_config(self):
        """The layer's arguments as Keras saves them (JSON-able); ``from_config`` rebuilds it.

        Example: ``Dense.from_config(Dense(3).get_config())`` is an unbuilt copy."""
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        """A new layer from ``get_config()``'s dict, or from a Keras-saved layer config
        (Keras-only arguments are accepted at their default values, else refused by name)."""
        return cls(**keras_config_arguments(cls.__name__, config))


class ActivatedLayer(Layer):
    """A layer computing ``activation(linear(x) + bias)`` (Conv2D, Dense).

    Subclasses provide ``_linear_forward(x, training) -> (z, ctx)`` and
    ``_linear_backward(dz, ctx, need_dx) -> (dx, dkernel)``, each one call of
    their op (minicnn.ops); this class adds the bias and the activation
    (fused, minicnn.ops.bias_act) and, from a training forward, keeps what
    backward needs: the linear op's context and the activation's (``_a``: the
    output a, or the pre-activation for gelu & co.: see bias_act). Conv2D runs
    all three as one op (minicnn.ops.conv2d_bias_act) and keeps the same two."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ctx = self._a = None  # kept by a training forward for the next backward

    @property
    def output_activation(self):
        return self.activation

    @property
    def kernel(self):
        return self.weight("kernel")

    @property
    def bias(self):
        return self.weight("bias")

    def forward(self, x, training=False):
        z, ctx = self._linear_forward(x, training)
        # Only a training forward keeps what backward needs (backward drops it
        # again). An inference forward touches no state: it neither holds a
        # batch of activations between calls nor disturbs a training step
        # running in another thread.
        if not training:
            return bias_act.forward(z, self.bias, self.activation)
        a, act_ctx = bias_act.forward_training(z, self.bias, self.activation)
        self._ctx, self._a = ctx, act_ctx
        return a

    def backward(self, dout, need_dx=True):
        self._require_training_forward()
        dz, db = bias_act.backward(dout, self._a, self.activation, self.use_bias,
                                   db_out=self.gradient_storage("bias"))
        return self._backward_from(dz, db, need_dx)

    def backward_from_preactivation(self, dz, need_dx=True):
        """Backward given dL/dz for z = linear(x) + bias (the activation's input).

        Used when the loss fuses its gradient with the output's activation
        (softmax + cross-entropy: dL/dz = (p - y) / batch)."""
        self._require_training_forward()
        _, db = bias_act.backward(dz, self._a, "linear", self.use_bias, db_out=self.gradient_storage("bias"))
        return self._backward_from(dz, db, need_dx)

    def _require_training_forward(self):
        if self._a is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first.")

    def _backward_from(self, dz, db, need_dx):
        ctx, self._ctx, self._a = self._ctx, None, None  # used up: free the batch's activations
        dx, dkernel = self._linear_backward(dz, ctx, need_dx)
        self.grads = [dkernel, db] if self.use_bias else [dkernel]
        return dx


# Arguments Keras saves that minicnn does not take, accepted at these values only.
_KERAS_DEFAULTS = {
    "data_format": ("channels_last", None), "groups": (1,),
    "activity_regularizer": (None,),
    "kernel_constraint": (None,), "bias_constraint": (None,), "lora_rank": (None,), "sparse": (False,),
    "ragged": (False,), "autocast": (True,), "optional": (False,), "quantization_config": (None,),
}


def keras_config_arguments(class_name, config):
    """Constructor arguments from a layer config (ours, Keras 3's or tf.keras 2's)."""
    config = dict(config)
    dtype = config.get("dtype")
    if isinstance(dtype, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        config["dtype"] = (dtype.get("config") or {}).get("name", "float32")
    batch_shape = config.pop("batch_input_shape", None) or config.pop("batch_shape", None)
    if batch_shape is not None:  # tf.keras 2 puts the model's input shape on the first layer
        config["input_shape"] = tuple(batch_shape[1:])
    for key, allowed in _KERAS_DEFAULTS.items():
        if key in config:
            value = config.pop(key)
            value = tuple(value) if isinstance(value, list) else value
            if value not in allowed:
                raise ValueError(f"{class_name}.from_config: {key}={value!r} is not supported by minicnn "
                                 f"(only {allowed[0]!r})")
    return config
