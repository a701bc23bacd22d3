"""Optimizers with Keras's names and defaults: RMSprop and SGD.

``apply_gradients([(grad, var), ...])`` updates each variable in place through
one fused backend op per parameter (one kernel launch on the GPU).

As in Keras 3, an optimizer is built for the variables of its first
``apply_gradients`` call: its state (RMSprop's mean squares) sits in one slot
per variable, in that order, and the optimizer holds the variables
themselves, so a slot can never be handed to another array. A variable it
was not built for is refused with Keras's advice: make a new optimizer for a
new model.
"""
import math
import warnings

import numpy as np

from . import backend
from .ops import optimizers as ops


def check_hyperparameter(owner, name, value, low=0.0, high=None, high_open=False):
    """``value`` as a float, or a ValueError naming ``owner`` and ``name``.

    Accepts Python and NumPy real scalars; refuses bools, NaN, infinities and
    values below ``low`` (or above ``high``, or equal to it when ``high_open``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    v = float(value) if ok else None
    if ok and math.isfinite(v) and v >= low and (high is None or (v < high if high_open else v <= high)):
        return v
    expected = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}{')' if high_open else ']'}"
    raise ValueError(f"{owner}: `{name}` must be a finite number {expected}. Received: {name}={value!r}")


class Optimizer:
    """Base class: a learning rate, an iteration count and one state slot per variable."""

    def __init__(self, learning_rate, lr=None):
        if lr is not None:  # Keras 2 scripts: RMSprop(lr=1e-4)
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.",
                          DeprecationWarning, stacklevel=3)
            learning_rate = lr
        self.learning_rate = check_hyperparameter(type(self).__name__, "learning_rate", learning_rate)
        self.iterations = 0
        self._variables = None  # the variables this optimizer was built for, in slot order

    def apply_gradients(self, grads_and_vars):
        """Update each variable in place from its gradient; pairs are (grad, var).

        Every pair is checked before any variable changes, so a bad call
        leaves the model as it was."""
        pairs = list(grads_and_vars)
        for grad, var in pairs:
            if tuple(grad.shape) != tuple(var.shape):
                raise ValueError(f"{type(self).__name__}: gradient shape {tuple(grad.shape)} does not "
                                 f"match variable shape {tuple(var.shape)}")
        if self._variables is None:
            self._build([var for _, var in pairs])
        slots = [self._slot_of(var) for _, var in pairs]
        for (grad, var), slot in zip(pairs, slots):
            self._update(var, grad, slot)
        self.iterations += 1

    def _build(self, variables):
        self._variables = list(variables)
        self._create_state(self._variables)

    def _slot_of(self, var):
        """The slot of ``var``: its position among the variables built for."""
        for i, known in enumerate(self._variables):
            if known is var:
                return i
        raise ValueError(f"{type(self).__name__}: unknown variable of shape {tuple(var.shape)}. This "
                         "optimizer can only be called for the variables it was originally built with "
                         "(those of the model it first trained). When working with a new set of "
                         "variables, e.g. a second model, you should recreate a new optimizer instance.")

    def _create_state(self, variables):
        """Make the per-slot state (none for plain SGD)."""

    def _state(self):
        """The state arrays, one per variable (Keras's optimizer variables after
        iterations and learning rate), in slot order."""
        return []

    def state_arrays(self):
        """The optimizer's state as NumPy arrays (for saving), in slot order."""
        return [backend.to_numpy(a).copy() for a in self._state()]

    def restore_state(self, variables, iterations, arrays):
        """Build for ``variables`` with saved state (from ``state_arrays``), all checked first."""
        expected = len(variables) if isinstance(self, RMSprop) else 0
        arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
        if len(arrays) != expected or any(a.shape != tuple(v.shape) for a, v in zip(arrays, variables)):
            raise ValueError(f"{type(self).__name__}: the saved optimizer state ({len(arrays)} arrays) "
                             f"does not fit this model's {len(variables)} trainable weights")
        self._build(list(variables))
        for slot, a in zip(self._state(), arrays):
            slot[...] = backend.asarray(a)
        self.iterations = int(iterations)

    def _update(self, var, grad, slot):
        raise NotImplementedError


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``var -= learning_rate * grad``.

    Example: ``model.compile(optimizer=SGD(learning_rate=0.01), loss=...)``."""

    def __init__(self, learning_rate=0.01, lr=None):
        super().__init__(learning_rate, lr)

    def _update(self, var, grad, slot):
        ops.sgd_update(var, grad, self.learning_rate)


class RMSprop(Optimizer):
    """RMSprop as in Keras 3 (tf.keras >= 2.11): epsilon inside the square root.

    ``v = rho * v + (1 - rho) * g**2;  var -= learning_rate * g / sqrt(v + epsilon)``

    Example::

        >>> from minicnn.optimizers import RMSprop
        >>> opt = RMSprop(learning_rate=0.001)
    """

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, lr=None):
        super().__init__(learning_rate, lr)
        self.rho = check_hyperparameter("RMSprop", "rho", rho, 0.0, 1.0, high_open=True)
        self.epsilon = check_hyperparameter("RMSprop", "epsilon", epsilon)
        self._velocities = []  # slot -> mean of squared gradients, on the variable's device

    def _create_state(self, variables):
        device = backend.device()
        self._velocities = [device.zeros(v.shape, v.dtype) for v in variables]

    def _state(self):
        return self._velocities

    def _update(self, var, grad, slot):
        ops.rmsprop_update(var, grad, self._velocities[slot], self.learning_rate, self.rho, self.epsilon)


_BY_NAME = {"rmsprop": RMSprop, "sgd": SGD}


def get(identifier):
    """An optimizer instance from a name ('rmsprop', 'sgd') or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer: {identifier!r}. Expected one of {sorted(_BY_NAME)} "
                     "or an Optimizer instance.")
