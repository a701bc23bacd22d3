"""The optimizer base class: what Keras 3.15.1's ``BaseOptimizer`` does around every update.

One ``apply_gradients([(grad, var), ...])`` call, as in ``keras/src/optimizers/base_optimizer.py``:

1. build, on the first call: the optimizer's state is made for those variables, one slot
   array per variable and slot name, and the optimizer keeps the variables themselves, so
   a slot can never be handed to another array (a variable it was not built for is
   refused with Keras's advice: make a new optimizer for a new model);
2. clip the gradients, when asked: ``clipnorm`` (each gradient to that L2 norm),
   ``global_clipnorm`` (all of them together) or ``clipvalue`` (each element), at most one;
3. decoupled weight decay, when ``weight_decay`` is set: ``var -= var * weight_decay * lr``;
4. the optimizer's own update of each variable (one fused op per variable: minicnn/ops);
5. ``iterations += 1``.

A model's training step calls ``apply_flat`` instead: its trainable weights and gradients
are views of two flat buffers (minicnn/models/flat_weights.py) and the slots are built with
the same layout, so steps 2-4 are one op each over every parameter at once (one kernel
launch for the whole update on a GPU), with the same bits as one op per variable.

The learning rate is a float or a :mod:`~minicnn.optimizers.schedules` schedule, which is
asked for the rate at ``iterations`` before each update. Keras 2's ``decay=`` (which Keras
3 ignores) is applied as tf.keras 2 applied it: ``lr / (1 + decay * iterations)``. The
rate and every step-dependent factor are computed here, on the host, in the variable's
dtype (float32: np.float32 scalars), as Keras's casts compute them, once per step: the
optimizer's step values (:class:`~minicnn.backend.step_values.StepValues`: the rate first,
then the subclass's factors, e.g. Adam's alpha). The ops read them by value on the CPU and
from the StepValues' fixed device buffer on a CUDA device, so a step plan replays a step
with a schedule, Keras 2's decay or Adam's bias correction (it refreshes them first).

The state saves in Keras's order (``state_arrays``): iterations, the learning rate (unless
it is a schedule), then the slots in the order of Keras's ``add_optimizer_variables``
calls (e.g. Adam: m0, v0, m1, v1, ..., then the AMSGrad maxima), then any scalar state
(Nadam's momentum product): the order of Keras's ``optimizer.variables``, which its .keras
and .h5 files store.
"""
import math
import warnings

import numpy as np

from .. import backend
from ..backend.step_values import StepValues
from ..naming import snake_case
from ..ops import gradient_clipping, optimizers as ops
from .schedules import LearningRateSchedule
from .schedules import deserialize as deserialize_schedule, serialize as serialize_schedule

# Keras 3 base options minicnn keeps at Keras's defaults (they appear in every config)
UNSUPPORTED_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                        "loss_scale_factor": None, "gradient_accumulation_steps": None}


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


def check_flag(owner, name, value):
    """``value`` as a bool (True/False, or 0/1), or a ValueError naming ``owner`` and ``name``."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{owner}: `{name}` must be True or False. Received: {name}={value!r}")


def check_epsilon(owner, value):
    """Keras 2 scripts pass ``epsilon=None``: Keras 2's backend epsilon, 1e-7."""
    return 1e-7 if value is None else check_hyperparameter(owner, "epsilon", value)


def _optional(owner, name, value):
    return None if value is None else check_hyperparameter(owner, name, value)


def _split(flat, variables):
    """Views of 1-D ``flat``: one per variable, shaped as it, one after the other."""
    views, start = [], 0
    for v in variables:
        views.append(flat[start:start + v.size].reshape(v.shape))
        start += v.size
    return views


class Optimizer:
    """Base class of the optimizers: state, clipping, weight decay, schedules, configs.

    A subclass names its slots (``_slot_groups``), computes its per-step factors
    (``_step_factors``), calls its fused op in ``_update``, and lists its own arguments in
    ``_own_config``.

    Example (any optimizer)::

        >>> opt = Adam(learning_rate=1e-3, clipnorm=1.0)
        >>> opt.apply_gradients([(dw, w), (db, b)])    # w and b updated in place
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, lr=None, decay=None, **kwargs):
        owner = type(self).__name__
        for key, default in UNSUPPORTED_DEFAULTS.items():
            value = kwargs.pop(key, default)
            if value != default:
                raise ValueError(f"{owner}: `{key}` is not supported by minicnn (only {key}={default!r}). "
                                 f"Received: {key}={value!r}")
        if kwargs:
            raise ValueError(f"{owner}: Argument(s) not recognized: {kwargs}")
        if lr is not None:  # Keras 2 scripts: RMSprop(lr=1e-4)
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.",
                          DeprecationWarning, stacklevel=3)
            learning_rate = lr
        self._learning_rate = self._checked_learning_rate(learning_rate)
        self.decay = 0.0 if decay is None else check_hyperparameter(owner, "decay", decay)
        if self.decay:
            warnings.warn("`decay` is a Keras 2 argument (Keras 3 ignores it); minicnn applies it as "
                          "tf.keras 2 did: lr / (1 + decay * iterations). In Keras 3 write "
                          "learning_rate=keras.optimizers.schedules.InverseTimeDecay(lr, 1, decay).",
                          DeprecationWarning, stacklevel=3)
        self.weight_decay = _optional(owner, "weight_decay", weight_decay)
        self.clipnorm = _optional(owner, "clipnorm", clipnorm)
        self.clipvalue = _optional(owner, "clipvalue", clipvalue)
        self.global_clipnorm = _optional(owner, "global_clipnorm", global_clipnorm)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{owner}: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be "
                             f"set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.name = snake_case(owner) if name is None else str(name)
        self.iterations = 0
        self.built = False
        self._variables = None  # the variables this optimizer was built for, in slot order
        self._slots = {}        # slot name -> one array per variable, on the variables' device
        self._flat_slots = {}   # slot name -> the one buffer those arrays are views of (one dtype)
        self._step_values = None   # this step's rate and factors (a StepValues, made on first use)

    # -- the learning rate --------------------------------------------------------
    def _checked_learning_rate(self, value):
        if isinstance(value, LearningRateSchedule):
            return value
        return check_hyperparameter(type(self).__name__, "learning_rate", value)

    @property
    def learning_rate(self):
        """The rate of the next update (a schedule's value at ``iterations``)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        schedule = LearningRateSchedule
        if isinstance(self._learning_rate, schedule) and not isinstance(value, schedule):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not "
                            "settable. If you need the learning rate to be settable, you should "
                            "instantiate the optimizer with a float `learning_rate` argument.")
        self._learning_rate = self._checked_learning_rate(value)

    def _step_learning_rate(self, dt):
        """This update's rate in dtype ``dt``: the schedule at iterations, then Keras 2's decay."""
        lr = self._learning_rate
        lr = dt(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else dt(lr)
        if self.decay:
            lr = lr / (dt(1) + dt(self.decay) * dt(self.iterations))
        return lr

    # -- one step ---------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Update each variable in place from its gradient; pairs are (grad, var).

        Every pair is checked before any variable changes, so a bad call
        leaves the model as it was. Returns ``iterations``."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self.iterations

    def apply(self, grads, trainable_variables=None, batch_size=None):
        """Keras's ``apply``: gradients for ``trainable_variables`` (or for the variables
        the optimizer was built with, in that order). ``batch_size``: as in ``apply_flat``."""
        grads = list(grads)
        owner = type(self).__name__
        if trainable_variables is None:
            if not self.built:
                raise ValueError(f"{owner}: When passing `grads` without `variables`, the optimizer must "
                                 "already be built on a list of variables.")
            trainable_variables = self._variables
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"{owner}: {len(grads)} gradients for {len(variables)} variables")
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if variables and not pairs:
            raise ValueError(f"{owner}: No gradients provided for any variable.")
        for grad, var in pairs:
            if tuple(grad.shape) != tuple(var.shape):
                raise ValueError(f"{owner}: gradient shape {tuple(grad.shape)} does not "
                                 f"match variable shape {tuple(var.shape)}")
        if not pairs:
            return
        if not self.built:
            self.build(variables)
        slots = [self._slot_of(var) for _, var in pairs]   # unknown variables refused before any change
        grads = [g if g.dtype == v.dtype else g.astype(v.dtype) for g, v in pairs]
        variables = [v for _, v in pairs]
        if self._aggregates():   # one flat buffer for the hook, then views of it again
            xp = backend.device().xp
            flat = self._aggregate_gradients(xp.concatenate([g.reshape(-1) for g in grads]), batch_size)
            grads = _split(flat, variables)
        self._step_all(grads, variables, slots)

    def apply_flat(self, flat, batch_size=None):
        """One step for a model's :class:`~minicnn.models.flat_weights.FlatWeights`: the
        gradients (already in ``flat.grads``) go through ``_aggregate_gradients`` once,
        then, unless ``clipnorm`` needs each variable's own norm, clipping, weight decay
        and the update each run as ONE op over the whole flat buffer (the slots share
        the parameters' layout: see ``build``). ``batch_size``: the samples the
        gradients are a mean over (for data-parallel weighting)."""
        if not self.built:
            self.build(flat.variables)
        variables = self._variables
        if not self._flat_slots or len(variables) != len(flat.variables) or any(
                a is not b for a, b in zip(variables, flat.variables)):
            # built for other variables (say, before a layer was frozen): one variable at a time
            return self.apply(flat.grad_views, flat.variables, batch_size)
        grad = self._aggregate_gradients(flat.grads, batch_size)
        if self.clipnorm:
            self._step_all(_split(grad, variables), variables, range(len(variables)))
        else:
            self._step_all([grad], [flat.params], [None])

    def _step_all(self, grads, variables, slots):
        """Clip, decay and update ``variables`` (slot indices ``slots``; None: the flat
        slots), then count the step. Everything is checked already."""
        grads = self._clip(grads)
        step = self._refreshed_step_values()   # this step's rate and factors, once
        main = self._variables[0].dtype
        # a variable of another dtype (mixed dtypes: the CPU only) gets them in its own dtype
        steps = [step if var.dtype == main else self._step_factors(var.dtype.type) for var in variables]
        if self.weight_decay:
            for var, values in zip(variables, steps):
                ops.weight_decay(var, values, self.weight_decay)   # reads the rate, the first value
        for grad, var, slot, values in zip(grads, variables, slots, steps):
            self._update(var, grad, slot, values)
        self.iterations += 1

    def _refreshed_step_values(self):
        """The optimizer's StepValues, refreshed for this step. Made on first use, and again
        when it computes for another object (DistributedOptimizer copies an optimizer's
        attributes: the copy must count its own iterations)."""
        values = self._step_values
        if values is None or values.compute.__self__ is not self:
            values = self._step_values = StepValues(self._next_step_values)
        return values.refresh()

    def _next_step_values(self):
        """This step's values, in the dtype of the variables (of the first one): called once a
        step by ``_step_values.refresh()``, eagerly or by a step plan's replay."""
        self._before_updates()
        return self._step_factors(self._variables[0].dtype.type)

    def _step_factors(self, dt):
        """The values of this step the ops need, in dtype ``dt``: the learning rate first (weight
        decay reads it), then the subclass's own (Adam: alpha)."""
        return (self._step_learning_rate(dt),)

    def _aggregate_gradients(self, flat_grad, batch_size):
        """A hook, called once per step before clipping: ``flat_grad`` is ONE 1-D array with
        all of this step's gradients (variable order), ``batch_size`` the samples they are
        a mean over (None: unknown). Returns the gradients to use, in place where it can.
        :func:`minicnn.distributed.DistributedOptimizer` averages them over the workers
        here; a single process uses them as they are."""
        return flat_grad

    def _aggregates(self):
        return type(self)._aggregate_gradients is not Optimizer._aggregate_gradients

    def _clip(self, grads):
        """Keras's _clip_gradients: at most one of clipnorm, global_clipnorm, clipvalue (0: off)."""
        if self.clipnorm:
            return [gradient_clipping.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm:
            return gradient_clipping.clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue:
            return [gradient_clipping.clip_by_value(g, self.clipvalue) for g in grads]
        return grads

    def _step(self, dt):
        """t = iterations + 1 in dtype ``dt``, the exponent of the bias corrections."""
        return dt(self.iterations + 1)

    def _before_updates(self):
        """Work done once per step before the step's factors (Nadam's momentum product)."""

    def _update(self, var, grad, slot, step):
        """Update ``var`` (slot index ``slot``) from ``grad``; ``step``: this step's values
        (``_step_factors``: the rate first), a StepValues or, for another dtype, a tuple,
        passed to the ops as they are."""
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------
    def build(self, variables):
        """Make the state for ``variables`` (done by the first apply_gradients)."""
        if self.built:
            return
        self._variables = list(variables)
        device = backend.device()
        # one flat buffer per slot name, laid out as the variables one after the other (as a
        # model's FlatWeights lays out its parameters), and a view of it per variable
        dtypes = {v.dtype for v in self._variables}
        self._slots, self._flat_slots = {}, {}
        for group in self._slot_groups():
            for name in group:
                value = self._slot_initial(name)
                if len(dtypes) == 1:
                    flat = device.zeros((sum(int(v.size) for v in self._variables),), self._variables[0].dtype)
                    if value != 0:
                        flat[...] = value
                    self._flat_slots[name] = flat
                    self._slots[name] = _split(flat, self._variables)
                else:   # mixed dtypes: one array per variable
                    self._slots[name] = [device.zeros(v.shape, v.dtype) if value == 0 else
                                         device.asarray(np.full(v.shape, value), dtype=v.dtype)
                                         for v in self._variables]
        self._create_extra_state()
        self.built = True

    def _slot(self, name, slot):
        """Slot ``name`` of variable index ``slot``, or the whole flat slot when ``slot`` is None."""
        return self._flat_slots[name] if slot is None else self._slots[name][slot]

    def _slot_groups(self):
        """Slot names as Keras's add_optimizer_variables calls make them: a tuple per call,
        its names interleaved per variable (Adam: ("momentum", "velocity"))."""
        return ()

    def _slot_initial(self, name):
        return 0.0

    EXTRA_STATE = 0   # scalars saved after the slots (Nadam: its momentum product)

    def _create_extra_state(self):
        """Scalar state after the slots (none but Nadam's)."""

    def _extra_state(self):
        return []

    def _set_extra_state(self, values):
        pass

    def _slot_of(self, var):
        """The slot of ``var``: its position among the variables built for."""
        for i, known in enumerate(self._variables):
            if known is var:
                return i
        raise ValueError(f"{type(self).__name__}: unknown variable of shape {tuple(var.shape)}. This "
                         "optimizer can only be called for the variables it was originally built with "
                         "(those of the model it first trained). When working with a new set of "
                         "variables, e.g. a second model, you should recreate a new optimizer instance.")

    def _slot_order(self, count):
        """[(slot name, variable index)] in Keras's ``optimizer.variables`` order."""
        return [(name, i) for group in self._slot_groups() for i in range(count) for name in group]

    def _saves_learning_rate(self):
        return not isinstance(self._learning_rate, LearningRateSchedule)   # Keras: no variable for a schedule

    def state_arrays(self):
        """The whole state as NumPy arrays in Keras's order (its files' ``optimizer/vars``):
        iterations, the learning rate (unless a schedule), the slots, the scalar state."""
        head = [np.array(self.iterations, np.int64)]
        if self._saves_learning_rate():
            head.append(np.array(self._learning_rate, np.float32))
        count = len(self._variables) if self.built else 0
        slots = [backend.to_numpy(self._slots[n][i]).copy() for n, i in self._slot_order(count)]
        return head + slots + [np.array(x) for x in self._extra_state()]

    def restore_state(self, variables, arrays):
        """Build for ``variables`` with saved state (from ``state_arrays``), all checked first."""
        variables = list(variables)
        arrays = [np.asarray(a) for a in arrays]
        start = 2 if self._saves_learning_rate() else 1
        order = self._slot_order(len(variables))
        shapes = [()] * start + [tuple(variables[i].shape) for _, i in order] + [()] * self.EXTRA_STATE
        if len(arrays) == start and all(a.shape == () for a in arrays):
            shapes = shapes[:start]   # saved before its first step (Keras writes these two anyway)
            order = []
        if len(arrays) != len(shapes) or any(a.shape != s for a, s in zip(arrays, shapes)):
            raise ValueError(f"{type(self).__name__}: the saved optimizer state ({len(arrays)} arrays) does "
                             f"not fit this optimizer ({len(shapes)} variables for {len(variables)} "
                             "trainable weights)")
        self.built = False
        self.build(variables)
        self.iterations = int(arrays[0])
        if start == 2 and np.float32(self._learning_rate) != arrays[1]:
            self._learning_rate = float(arrays[1])   # e.g. lowered by ReduceLROnPlateau
        device = backend.device()
        for (name, i), a in zip(order, arrays[start:]):
            self._slots[name][i][...] = device.asarray(a, dtype=variables[i].dtype)
        if len(arrays) > start + len(order):
            self._set_extra_state(arrays[start + len(order):])

    # -- configs --------------------------------------------------------------------
    def get_config(self):
        """Keras 3's config: the base options, then the optimizer's own arguments."""
        lr = self._learning_rate
        config = {"name": self.name,
                  "learning_rate": serialize_schedule(lr) if isinstance(lr, LearningRateSchedule) else lr,
                  "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                  "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}
        config.update(UNSUPPORTED_DEFAULTS)
        if self.decay:
            config["decay"] = self.decay   # Keras 3 warns and ignores it; minicnn applies it
        config.update(self._own_config())
        return config

    def _own_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        """The optimizer of a ``get_config`` dict (minicnn's or Keras's)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = deserialize_schedule(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r}>"
