"""Optimizers with Keras's names and defaults: RMSprop and SGD.

``apply_gradients([(grad, var), ...])`` updates each variable in place through
one fused backend op per parameter (one kernel launch on the GPU).
"""
from . import backend


class Optimizer:
    """Base class: a learning rate and per-variable state."""

    def __init__(self, learning_rate):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a positive number. "
                             f"Received: learning_rate={learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0

    def apply_gradients(self, grads_and_vars):
        """Update each variable in place from its gradient; pairs are (grad, var)."""
        for grad, var in grads_and_vars:
            if tuple(grad.shape) != tuple(var.shape):
                raise ValueError(f"{type(self).__name__}: gradient shape {tuple(grad.shape)} does not "
                                 f"match variable shape {tuple(var.shape)}")
            self._update(var, grad)
        self.iterations += 1

    def _update(self, var, grad):
        raise NotImplementedError


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``var -= learning_rate * grad``.

    Example: ``model.compile(optimizer=SGD(learning_rate=0.01), loss=...)``."""

    def __init__(self, learning_rate=0.01):
        super().__init__(learning_rate)

    def _update(self, var, grad):
        backend.get_ops().sgd_update(var, grad, self.learning_rate)


class RMSprop(Optimizer):
    """RMSprop as in Keras 3 (tf.keras >= 2.11): epsilon inside the square root.

    ``v = rho * v + (1 - rho) * g**2;  var -= learning_rate * g / sqrt(v + epsilon)``

    Example::

        >>> from minicnn.optimizers import RMSprop
        >>> opt = RMSprop(learning_rate=0.001)
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7):
        super().__init__(learning_rate)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"RMSprop: rho must be in [0, 1). Received: rho={rho!r}")
        if epsilon < 0:
            raise ValueError(f"RMSprop: epsilon must be >= 0. Received: epsilon={epsilon!r}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self._velocity = {}  # id(var) -> mean of squared gradients, on the var's device

    def _update(self, var, grad):
        ops = backend.get_ops()
        v = self._velocity.get(id(var))
        if v is None:
            v = self._velocity[id(var)] = ops.zeros(var.shape, var.dtype)
        ops.rmsprop_update(var, grad, v, self.learning_rate, self.rho, self.epsilon)


_BY_NAME = {"rmsprop": RMSprop, "sgd": SGD}


def get(identifier):
    """An optimizer instance from a name ('rmsprop', 'sgd') or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Expected one of {sorted(_BY_NAME)} "
                     "or an Optimizer instance.")
