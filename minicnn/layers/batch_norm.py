"""BatchNormalization: normalize each channel by batch statistics while training."""
import numpy as np

from .. import initializers
from ..ops import batch_norm
from .base import Layer

# Arguments Keras saves that minicnn does not implement, accepted at these values only.
_KERAS_ONLY = {"beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
               "gamma_constraint": None, "synchronized": False, "renorm": False,
               "renorm_clipping": None, "renorm_momentum": 0.99}


class BatchNormalization(Layer):
    """Batch normalization over the channels axis, as ``keras.layers.BatchNormalization``.

    Training (``fit``, or ``training=True``): each channel is normalized with
    the batch's mean and (biased) variance, ``y = gamma * (x - mean) /
    sqrt(var + epsilon) + beta``, and the moving statistics move towards
    them: ``moving = moving * momentum + batch * (1 - momentum)``. Inference
    (``predict``/``evaluate``): the moving statistics take their place. As in
    Keras 3, ``trainable = False`` runs the layer in inference mode even while
    training (a frozen layer). The formulas are in :mod:`minicnn.ops.batch_norm`.

    Weights, in Keras's order: ``[gamma, beta, moving_mean, moving_variance]``
    (gamma only with ``scale``, beta only with ``center``), each of shape
    (channels,). gamma and beta are trained; the moving statistics are
    non-trainable weights (``summary()`` counts them under "Non-trainable
    params"), updated by every training forward. ``grads`` holds the
    gradients of the trainable ones, which come first.

    ``axis``: the channels axis: -1 (NHWC, or the features after Dense) or any
    other axis but the batch axis.

    Example::

        >>> from minicnn.layers import BatchNormalization, Conv2D
        >>> from minicnn.models import Sequential
        >>> model = Sequential([Conv2D(64, 3, input_shape=(28, 28, 1)), BatchNormalization()])
        >>> model.layers[1].count_params()   # gamma, beta, moving mean and variance
        256
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", input_shape=None, name=None, **kwargs):
        keras_only = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS_ONLY}
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        for key, value in keras_only.items():
            if value != _KERAS_ONLY[key]:
                raise ValueError(f"{self.name}: `{key}` is not supported by minicnn (only "
                                 f"{_KERAS_ONLY[key]!r}). Received: {key}={value!r}")
        if isinstance(axis, (list, tuple)) and len(axis) == 1:   # tf.keras 2 configs save [3]
            axis = axis[0]
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"{self.name}: `axis` must be one int (the channels axis). "
                             f"Received: axis={axis!r}")
        self.axis = int(axis)
        self.momentum, self.epsilon = batch_norm.check_hyperparameters(momentum, epsilon, self.name)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self._ctx = None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                **_KERAS_ONLY}

    @property
    def weight_names(self):
        """Keras's names of the weights, in order (as legacy .h5 files list them)."""
        return (["gamma"] if self.scale else []) + (["beta"] if self.center else []) + [
            "moving_mean", "moving_variance"]

    def _channel_axis(self, input_shape):
        """The channels axis as a positive index, checked against ``input_shape``."""
        axis = batch_norm.channel_axis(self.axis, input_shape, self.name)
        if axis == 0:
            raise ValueError(f"{self.name}: `axis` cannot be the batch axis (0): the layer "
                             f"normalizes over the batch. Received: axis={self.axis} for input "
                             f"shape {tuple(input_shape)}")
        return axis

    def compute_output_shape(self, input_shape):
        self._channel_axis(input_shape)
        return tuple(input_shape)

    def build(self, input_shape):
        shape = (input_shape[self._channel_axis(input_shape)],)
        if self.scale:
            self.add_weight(shape, self.gamma_initializer, name="gamma")
        if self.center:
            self.add_weight(shape, self.beta_initializer, name="beta")
        self.add_weight(shape, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.add_weight(shape, self.moving_variance_initializer, trainable=False, name="moving_variance")
        super().build(input_shape)

    # the weights, read from ``weights`` by name on every use (see Layer.weight)
    gamma = property(lambda self: self.weight("gamma"))
    beta = property(lambda self: self.weight("beta"))
    moving_mean = property(lambda self: self.weight("moving_mean"))
    moving_variance = property(lambda self: self.weight("moving_variance"))

    def forward(self, x, training=False):
        batch_stats = bool(training) and self.trainable   # Keras 3: a frozen layer runs in inference mode
        y, ctx, moving = batch_norm.forward(x, self.gamma, self.beta, self.moving_mean,
                                            self.moving_variance, self.axis, self.momentum,
                                            self.epsilon, training=batch_stats, op=self.name)
        if moving is not None:
            # commit the new statistics only now that the whole forward has run: an error
            # above leaves them as they were (in place: the arrays are the layer's weights)
            batch_norm.commit_moving(self.moving_mean, self.moving_variance, moving)
        if training:  # only backward needs the context; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        dx, dgamma, dbeta = batch_norm.backward(dout, ctx, op=f"{self.name} backward")
        self.grads = ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])
        return dx if need_dx else None
