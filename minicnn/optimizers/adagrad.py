"""Adagrad and Adadelta (``keras.optimizers.Adagrad``, ``keras.optimizers.Adadelta``)."""
from ..ops import optimizers as ops
from .base import Optimizer, check_epsilon, check_hyperparameter


class Adagrad(Optimizer):
    """Adagrad as in Keras 3.15.1 (``keras/src/optimizers/adagrad.py``)::

        accumulator = accumulator + g**2          (starting at initial_accumulator_value)
        w = w - learning_rate * g / sqrt(accumulator + epsilon)

    Example::

        >>> from minicnn.optimizers import Adagrad
        >>> opt = Adagrad(learning_rate=0.01)
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = check_hyperparameter("Adagrad", "initial_accumulator_value",
                                                              initial_accumulator_value)
        self.epsilon = check_epsilon("Adagrad", epsilon)

    def _slot_groups(self):
        return [("accumulator",)]

    def _slot_initial(self, name):
        return self.initial_accumulator_value

    def _update(self, var, grad, slot, step):   # step: (lr,)
        ops.adagrad_update(var, grad, self._slot("accumulator", slot), step, self.epsilon)

    def _own_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta as in Keras 3.15.1 (``keras/src/optimizers/adadelta.py``)::

        accumulated_grad = rho * accumulated_grad + (1 - rho) * g**2
        delta = -sqrt(accumulated_delta_var + epsilon) * g / sqrt(accumulated_grad + epsilon)
        accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * delta**2
        w = w + learning_rate * delta

    Keras 3's default learning rate is 0.001 (Keras 2's was 1.0, as the original paper:
    scripts written for Keras 2 that relied on it should pass ``learning_rate=1.0``).
    Slots interleaved per variable: accumulated_grad, accumulated_delta_var.

    Example::

        >>> from minicnn.optimizers import Adadelta
        >>> opt = Adadelta(learning_rate=1.0, rho=0.95)
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_hyperparameter("Adadelta", "rho", rho, 0.0, 1.0, high_open=True)
        self.epsilon = check_epsilon("Adadelta", epsilon)

    def _slot_groups(self):
        return [("accumulated_grad", "accumulated_delta_var")]

    def _update(self, var, grad, slot, step):   # step: (lr,)
        ops.adadelta_update(var, grad, self._slot("accumulated_grad", slot),
                            self._slot("accumulated_delta_var", slot), step, self.rho, self.epsilon)

    def _own_config(self):
        return {"rho": self.rho, "epsilon": self.epsilon}
