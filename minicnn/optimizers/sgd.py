"""SGD: gradient descent, with momentum and Nesterov momentum (``keras.optimizers.SGD``)."""
from ..ops import optimizers as ops
from .base import Optimizer, check_flag, check_hyperparameter


class SGD(Optimizer):
    """Gradient descent, as Keras 3.15.1 computes it (``keras/src/optimizers/sgd.py``)::

        momentum == 0:  w = w - g * learning_rate
        else:           velocity = velocity * momentum - g * learning_rate
                        w = w + velocity                                   (nesterov=False)
                        w = w + (velocity * momentum - g * learning_rate)  (nesterov=True)

    The velocity is a slot (``momentum``) only when momentum != 0, as in Keras, so a plain
    SGD's files hold no state but the iterations and the learning rate. The base options
    (``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``weight_decay``, Keras 2's ``lr``
    and ``decay``) are the base class's: see :mod:`minicnn.optimizers.base`.

    Example::

        >>> from minicnn.optimizers import SGD
        >>> model.compile(optimizer=SGD(learning_rate=0.01, momentum=0.9, nesterov=True), loss=...)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_hyperparameter("SGD", "momentum", momentum, 0.0, 1.0)
        self.nesterov = check_flag("SGD", "nesterov", nesterov)

    def _slot_groups(self):
        return [("momentum",)] if self.momentum != 0 else []

    def _update(self, var, grad, slot, step):   # step: (lr,)
        if self.momentum == 0:
            ops.sgd_update(var, grad, step)
        else:
            ops.sgd_update(var, grad, step, self._slot("momentum", slot), self.momentum, self.nesterov)

    def _own_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}
