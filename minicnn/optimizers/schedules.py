"""Learning-rate schedules (``keras.optimizers.schedules``): the rate as a function of the step.

Pass one as an optimizer's ``learning_rate``; before each update the optimizer asks it for
the rate at its ``iterations`` (0 for the first update). As in Keras 3.15.1
(``keras/src/optimizers/schedules/learning_rate_schedule.py``) the arithmetic is float32,
in this order:

    ExponentialDecay        lr0 * rate ** p,                 p = step / decay_steps (floored: staircase)
    PiecewiseConstantDecay  values[0] while step <= boundaries[0], values[i] while
                            boundaries[i-1] < step <= boundaries[i], values[-1] after the last
    InverseTimeDecay        lr0 / (1 + rate * p),            p as ExponentialDecay's
    CosineDecay             lr0 * ((1 - alpha) * c + alpha),
                            c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)),
                            after ``warmup_steps`` steps rising linearly from lr0 to ``warmup_target``
                            (the cosine then starts from warmup_target)

Example::

    >>> from minicnn.optimizers import SGD, schedules
    >>> lr = schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)
    >>> opt = SGD(learning_rate=lr)
    >>> round(float(lr(2000)), 6)   # 0.1 * 0.96 ** 2
    0.09216
"""
import math

import numpy as np

_F = np.float32


def power(base, exponent):
    """``base ** exponent`` for NumPy float scalars, correctly rounded to their dtype.

    TensorFlow's float32 pow is libm's powf, correctly rounded; NumPy's float32 power is
    not always (0.9f ** 4 comes out one unit in the last place high). Computed in double
    and rounded once, it is (double keeps 29 more bits than the answer needs)."""
    dt = np.result_type(base, exponent).type
    return dt(np.power(np.float64(base), np.float64(exponent))) if dt is _F else np.power(base, exponent)


def _positive(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: Argument `{name}` must be > 0. Received: {name}={value!r}")
    return value


def _number(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be a finite number. Received: {name}={value!r}")
    return value


class LearningRateSchedule:
    """Base class: ``schedule(step)`` is the learning rate (np.float32) at ``step``.

    Subclass it with ``__call__(self, step)`` and ``get_config(self)`` for a schedule of
    your own; ``from_config`` builds one from its config."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (integer division: staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number("ExponentialDecay", "initial_learning_rate",
                                             initial_learning_rate)
        self.decay_steps = _positive("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate = _number("ExponentialDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _F(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _F(self.initial_learning_rate) * power(_F(self.decay_rate), p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[i]`` on the i-th interval of ``boundaries`` (each interval closed on its right)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError("PiecewiseConstantDecay: The length of boundaries should be 1 less than the "
                             f"length of values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        for b in boundaries:
            _number("PiecewiseConstantDecay", "boundaries", b)
        for v in values:
            _number("PiecewiseConstantDecay", "values", v)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: `boundaries` must be strictly increasing. "
                             f"Received: boundaries={boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        step = int(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= int(boundary):   # Keras casts the boundaries to the step's integer type
                return _F(value)
        return _F(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored: staircase)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = _number("InverseTimeDecay", "initial_learning_rate",
                                             initial_learning_rate)
        self.decay_steps = _positive("InverseTimeDecay", "decay_steps", decay_steps)
        self.decay_rate = _number("InverseTimeDecay", "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        p = _F(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _F(self.initial_learning_rate) / (_F(1) + _F(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Half a cosine from the rate down to ``alpha`` times it over ``decay_steps``, after an
    optional linear warmup to ``warmup_target`` over ``warmup_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number("CosineDecay", "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("CosineDecay", "decay_steps", decay_steps)
        self.alpha = _number("CosineDecay", "alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _number("CosineDecay", "warmup_target",
                                                                          warmup_target)
        self.warmup_steps = _number("CosineDecay", "warmup_steps", warmup_steps)

    def _decay(self, step, decay_from):
        fraction = step / _F(self.decay_steps)
        cosine = _F(0.5) * (_F(1) + np.cos(_F(math.pi) * fraction))
        return decay_from * (_F(1 - self.alpha) * cosine + _F(self.alpha))

    def __call__(self, step):
        lr0, decay_steps, step = _F(self.initial_learning_rate), _F(self.decay_steps), _F(step)
        if self.warmup_target is None:
            return self._decay(np.minimum(step, decay_steps), lr0)
        target, warmup = _F(self.warmup_target), _F(self.warmup_steps)
        step = np.minimum(step, decay_steps + warmup)
        if step < warmup:   # the warmup: a straight line from lr0 to the target
            return (target - lr0) * (step / warmup) + lr0
        return self._decay(step - warmup, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_BY_NAME = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay,
                                          CosineDecay)}


def serialize(schedule):
    """Keras's dict for ``schedule``: module, class_name, config, registered_name."""
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config):
    """The schedule of a dict from :func:`serialize` (or Keras's own)."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in _BY_NAME:
        raise ValueError(f"Unknown learning rate schedule: {name!r}. Expected one of {sorted(_BY_NAME)}.")
    return _BY_NAME[name].from_config(dict(config.get("config") or {}))
