"""RMSprop (``keras.optimizers.RMSprop``), with momentum and the centered variant."""
from ..ops import optimizers as ops
from .base import Optimizer, check_epsilon, check_flag, check_hyperparameter


class RMSprop(Optimizer):
    """RMSprop as in Keras 3.15.1 (tf.keras >= 2.11): epsilon INSIDE the square root::

        v = rho * v + (1 - rho) * g**2
        centered:  a = rho * a + (1 - rho) * g;   d = v - a**2 + epsilon
        else:      d = v + epsilon
        increment = learning_rate * g / sqrt(d)
        momentum > 0:  m = momentum * m + increment;  w = w - m
        else:          w = w - increment

    (``keras/src/optimizers/rmsprop.py``; Keras 2.1-2.3 put epsilon outside the root, which
    moves a 1e-4 gradient 10x further in the first step.) Slots in Keras's order: all the
    velocities, then the momentums (momentum > 0), then the mean gradients (centered).

    Example::

        >>> from minicnn.optimizers import RMSprop
        >>> opt = RMSprop(learning_rate=0.001, momentum=0.9, centered=True)
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_hyperparameter("RMSprop", "rho", rho, 0.0, 1.0, high_open=True)
        self.momentum = check_hyperparameter("RMSprop", "momentum", momentum, 0.0, 1.0)
        self.epsilon = check_epsilon("RMSprop", epsilon)
        self.centered = check_flag("RMSprop", "centered", centered)

    def _slot_groups(self):
        return ([("velocity",)] + ([("momentum",)] if self.momentum > 0 else [])
                + ([("average_gradient",)] if self.centered else []))

    @property
    def _velocities(self):
        """The mean squares, one per variable (slot order)."""
        return self._slots.get("velocity", [])

    def _update(self, var, grad, slot, step):   # step: (lr,)
        m = self._slot("momentum", slot) if self.momentum > 0 else None
        avg = self._slot("average_gradient", slot) if self.centered else None
        ops.rmsprop_update(var, grad, self._slot("velocity", slot), step, self.rho, self.epsilon,
                           self.momentum, m, avg)

    def _own_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}
