"""Adam and its family: Adam (AMSGrad), AdamW, Adamax, Nadam (``keras.optimizers.*``).

The factors that change with the step t = iterations + 1 are computed here, on the host,
in the variable's dtype (np.float32 for float32 weights) and in Keras's order, once per
step (``_step_factors``: the optimizer's step values, the learning rate first); the fused
ops of minicnn/ops/adam.py apply them element by element.
"""
import numpy as np

from ..ops import adam as ops
from .base import Optimizer, check_epsilon, check_flag, check_hyperparameter
from .schedules import power


def _betas(owner, beta_1, beta_2):
    return (check_hyperparameter(owner, "beta_1", beta_1, 0.0, 1.0, high_open=True),
            check_hyperparameter(owner, "beta_2", beta_2, 0.0, 1.0, high_open=True))


class Adam(Optimizer):
    """Adam as in Keras 3.15.1 (``keras/src/optimizers/adam.py``)::

        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        amsgrad:  v_hat = max(v_hat, v), used for v below
        alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)      t = iterations + 1
        w = w - m * alpha / (sqrt(v) + epsilon)

    The bias corrections are folded into ``alpha``, and epsilon is added OUTSIDE the square
    root of the UNcorrected v: Keras's "epsilon hat" (the formula before Section 2.1 of Kingma
    and Ba), not Algorithm 1's epsilon. Slots in Keras's order: per variable its momentum
    and velocity (m0, v0, m1, v1, ...), then (amsgrad) the velocity maxima.

    Example::

        >>> from minicnn.optimizers import Adam
        >>> model.compile(optimizer=Adam(learning_rate=1e-3), loss='categorical_crossentropy')
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        owner = type(self).__name__
        self.beta_1, self.beta_2 = _betas(owner, beta_1, beta_2)
        self.epsilon = check_epsilon(owner, epsilon)
        self.amsgrad = check_flag(owner, "amsgrad", amsgrad)

    def _slot_groups(self):
        return [("momentum", "velocity")] + ([("velocity_hat",)] if self.amsgrad else [])

    def _step_factors(self, dt):
        lr = self._step_learning_rate(dt)
        t = self._step(dt)
        beta_1_power, beta_2_power = power(dt(self.beta_1), t), power(dt(self.beta_2), t)
        alpha = lr * np.sqrt(dt(1) - beta_2_power) / (dt(1) - beta_1_power)
        return lr, alpha

    def _update(self, var, grad, slot, step):   # step: (lr, alpha)
        vhat = self._slot("velocity_hat", slot) if self.amsgrad else None
        ops.adam_update(var, grad, self._slot("momentum", slot), self._slot("velocity", slot),
                        step[1:], self.beta_1, self.beta_2, self.epsilon, vhat)

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as Keras 3.15.1 does it:
    before Adam's step, ``w = w - w * weight_decay * learning_rate`` (the base optimizer's
    decay, with this step's learning rate). ``weight_decay`` defaults to 0.004.

    Example::

        >>> from minicnn.optimizers import AdamW
        >>> opt = AdamW(learning_rate=1e-3, weight_decay=0.01)
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm, as in Keras 3.15.1 (``keras/src/optimizers/adamax.py``)::

        m = m + (g - m) * (1 - beta_1)
        u = max(beta_2 * u, |g|)
        w = w - learning_rate * m / ((1 - beta_1**t) * (u + epsilon))          t = iterations + 1

    Slots interleaved per variable: momentum, norm.

    Example::

        >>> from minicnn.optimizers import Adamax
        >>> opt = Adamax(learning_rate=0.002)
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2 = _betas("Adamax", beta_1, beta_2)
        self.epsilon = check_epsilon("Adamax", epsilon)

    def _slot_groups(self):
        return [("momentum", "norm")]

    def _step_factors(self, dt):
        return self._step_learning_rate(dt), dt(1) - power(dt(self.beta_1), self._step(dt))

    def _update(self, var, grad, slot, step):   # step: (lr, 1 - beta_1^t)
        ops.adamax_update(var, grad, self._slot("momentum", slot), self._slot("norm", slot), step,
                          self.beta_1, self.beta_2, self.epsilon)

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum, as in Keras 3.15.1 (``keras/src/optimizers/nadam.py``).

    The momentum follows a schedule (Dozat's), t = iterations + 1::

        mu_t = beta_1 * (1 - 0.5 * 0.96**t)
        prod_t = mu_1 * mu_2 * ... * mu_t          (state, updated once per step, saved)
        m = m + (g - m) * (1 - beta_1);   v = v + (g**2 - v) * (1 - beta_2)
        m_hat = mu_{t+1} * m / (1 - prod_t * mu_{t+1}) + (1 - mu_t) * g / (1 - prod_t)
        v_hat = v / (1 - beta_2**t)
        w = w - m_hat * learning_rate / (sqrt(v_hat) + epsilon)

    (Keras 2's Nadam raised 0.96 to ``t * schedule_decay``; Keras 3, followed here, to t.)
    Slots interleaved per variable: momentum, velocity; then the product, one scalar.

    Example::

        >>> from minicnn.optimizers import Nadam
        >>> opt = Nadam(learning_rate=0.002)
    """

    EXTRA_STATE = 1

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2 = _betas("Nadam", beta_1, beta_2)
        self.epsilon = check_epsilon("Nadam", epsilon)
        self._u_product = None

    def _slot_groups(self):
        return [("momentum", "velocity")]

    def _create_extra_state(self):
        dt = self._variables[0].dtype.type if self._variables else np.float32
        self._u_product = dt(1)   # in the first variable's dtype, as Keras's

    def _extra_state(self):
        return [self._u_product] if self.built else []

    def _set_extra_state(self, values):
        self._u_product = type(self._u_product)(values[0])

    def _momentum_at(self, dt, step):
        return dt(self.beta_1) * (dt(1) - dt(0.5) * power(dt(0.96), dt(step)))

    def _before_updates(self):
        # Keras: u_product * beta_1 * (1 - 0.5 * 0.96^t), left to right, once per step
        dt = type(self._u_product)
        schedule = dt(1) - dt(0.5) * power(dt(0.96), self._step(dt))
        self._u_product = self._u_product * dt(self.beta_1) * schedule

    def _step_factors(self, dt):   # after _before_updates: this step's product
        mu = self._momentum_at(dt, self.iterations + 1)
        mu_next = self._momentum_at(dt, self.iterations + 2)
        prod = dt(self._u_product)
        prod_next = prod * mu_next
        beta_2_power = power(dt(self.beta_2), self._step(dt))
        return (self._step_learning_rate(dt), mu_next, dt(1) - prod_next, dt(1) - mu, dt(1) - prod,
                dt(1) - beta_2_power)

    def _update(self, var, grad, slot, step):
        dt = var.dtype.type
        # Keras's nadam.py rounds the betas to the dtype BEFORE 1 - beta (Adam's does not)
        ops.nadam_update(var, grad, self._slot("momentum", slot), self._slot("velocity", slot), step,
                         dt(1) - dt(self.beta_1), dt(1) - dt(self.beta_2), self.epsilon)

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
