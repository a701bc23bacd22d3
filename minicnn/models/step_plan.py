"""fit's training step as a static-shape plan on a CUDA device (issue 11, item 2).

With ``MINICNN_STEP_PLAN`` on (the default), on the 'cupy' and 'emulator' backends, each
training step of ``fit`` without sample weights goes through the model's
:class:`StepPlans`, one plan per batch shape:

1. the batch is copied into the plan's own input buffers (no allocation), from the host or
   from the training set kept on the device (device_data.py);
2. until the plan is ready, the step runs as usual (``model._train_batch``)
   while the device records it (:mod:`minicnn.backend.step_plan`); when two
   consecutive recordings did the same work on the same places, the plan is
   ready (on CuPy the last recording is captured as one CUDA graph);
3. a ready plan replays the last recording: first the step values it noted
   are refreshed (the optimizer's learning rate and factors, e.g. Adam's
   bias-corrected step size, at this iteration; each dropout layer's next
   mask key: computed on the host as the eager step computes them, uploaded
   into their fixed device buffers), then the same kernels on the same
   buffers (weights and optimizer slots are updated in place, so the plan
   holds them as fixed addresses), then the optimizer's iteration is counted.

What the recorded work depends on, on the host, is checked before each step
(:func:`host_state`): the optimizer and its hyperparameters (a changed
``rho`` or ``momentum`` means a new plan; the learning rate, a schedule and
Keras 2's ``decay`` reach the kernels as step values, so a rate changed by a
callback is simply read by the next replay), the loss, the layers' trainable
flags and the weight and optimizer-slot arrays themselves (``set_weights`` and
loading optimizer state copy in place and keep them). Anything else that
changes per step (a kernel scalar) makes the recordings differ, and that shape trains
eagerly after ``MAX_RECORDINGS`` tries. A recording that touches an array neither made
in it nor lasting across steps (work done around the device seam, such as a
regularization penalty summed by array arithmetic: ``Recording.foreign``) gives its
shape up at once. Results are those of the eager step, bit for bit
(tests/test_step_plan.py, tests/test_step_plan_scalars.py).

Example::

    >>> model.fit(x, y, batch_size=64)          # on cupy: steps 3, 4, ... replay the plan
    >>> from minicnn import config
    >>> with config.override(MINICNN_STEP_PLAN=False):
    ...     model.fit(x, y, batch_size=64)      # every step eagerly
"""
import numpy as np

from .. import backend, config
from ..backend.step_plan import Recording, as_outputs, same_work

MAX_SHAPES = 4        # plans per model: the batch size, the last short batch, a few more
MAX_RECORDINGS = 4    # recordings of one shape before it is given up as not static
_SCALARS = (bool, int, float, str, type(None))
# host values that reach the kernels as step values (refreshed by every replay), not in the work
_STEP_VALUES = ("iterations", "_learning_rate", "decay")


def host_state(model):
    """What the recorded work depends on on the host, or None when no plan can hold it
    (the optimizer is not built yet)."""
    opt = model.optimizer
    if not opt.built:
        return None
    hyper = tuple((k, v) for k, v in vars(opt).items() if type(v) in _SCALARS and k not in _STEP_VALUES)
    layers = model._compute_layers
    arrays = [w for layer in layers for w in layer.weights]
    for slot in opt._slots.values():   # the optimizer's state, updated in place as the weights
        arrays.extend(slot)
    return (opt, model._loss_fn, hyper, tuple(bool(getattr(layer, "trainable", True)) for layer in layers),
            arrays)


def lasting_arrays(model, plan, rec):
    """The arrays a planned step may use that outlive the step: the plan's inputs, the
    weights (and their flat buffers), the gradient buffer, the optimizer's slots, and the
    buffers of the step values the recording refreshed."""
    arrays = list(plan.inputs) + [w for layer in model._compute_layers for w in layer.weights]
    flat = getattr(model, "_flat", None)
    if flat is not None:
        arrays += [flat.params, flat.grads]
    opt = model.optimizer
    for slot in opt._slots.values():
        arrays.extend(slot)
    arrays.extend(opt._flat_slots.values())
    arrays.extend(values.on(rec.device) for values in rec.step_values)
    return arrays


def _same_state(a, b):
    """States equal, arrays compared by identity (a replaced weight array is a new plan)."""
    if a[0] is not b[0] or a[1] is not b[1] or a[2] != b[2] or a[3] != b[3] or len(a[4]) != len(b[4]):
        return False
    return all(x is y for x, y in zip(a[4], b[4]))


def _take_batch(device, dst, src):
    """Copy a batch into the plan's input buffer: from the device (a training set kept there,
    device_data.py) or from the host."""
    if device.target == "cupy" and isinstance(src, device.xp.ndarray):
        device.copy(dst, src)
    else:
        device.upload(dst, src)


class ShapePlan:
    """The plan of one batch shape: input buffers, the latest recording, readiness."""

    def __init__(self, device, x_shape, y_shape, state):
        self.inputs = (device.empty(x_shape), device.empty(y_shape))   # made outside any recording
        self.state = state
        self.last = None        # the latest Recording
        self.ready = False      # the last two recordings matched: replay `last`
        self.recordings = 0
        self.replays = 0        # steps this plan replayed
        self.given_up = False   # never matched: this shape trains eagerly

    def sums(self):
        """The step's (loss sum, [metric totals]): the plan's output buffers."""
        outputs = self.last.outputs
        return outputs[0], list(outputs[1:])


class StepPlans:
    """A model's step plans, by batch shape. ``train_batch`` returns the step's sums
    (buffers the next step overwrites: add them up, do not keep them), or None when the
    step must run eagerly (plans off, a non-CUDA device, a state no plan can hold)."""

    def __init__(self):
        self._plans = {}

    def clear(self):
        self._plans = {}

    def train_batch(self, model, xb, yb):
        device = backend.device()
        if device.kind != "cuda" or not config.get("MINICNN_STEP_PLAN") \
                or not all(isinstance(a, (np.ndarray, device.xp.ndarray)) for a in (xb, yb)):
            return None
        state = host_state(model)
        if state is None:
            return None
        key = (tuple(xb.shape), tuple(yb.shape))
        plan = self._plans.get(key)
        if plan is None or not _same_state(plan.state, state):
            if plan is None and len(self._plans) >= MAX_SHAPES:
                return None
            plan = self._plans[key] = ShapePlan(device, key[0], key[1], state)
        if plan.given_up:
            return None
        _take_batch(device, plan.inputs[0], xb)
        _take_batch(device, plan.inputs[1], yb)
        if plan.ready:
            plan.last.replay()   # this step's values first (the rate, dropout keys), then the work
            plan.replays += 1
            model.optimizer.iterations += 1   # the one host state of a static step besides them
            return plan.sums()
        return self._record(model, device, plan)

    @staticmethod
    def _record(model, device, plan):
        rec = Recording(device)
        with rec.active():
            loss_sum, totals = model._train_batch(*plan.inputs)
        rec.outputs = as_outputs([loss_sum] + list(totals))
        plan.recordings += 1
        if rec.foreign(lasting_arrays(model, plan, rec)):
            # work done around the seam (a regularization penalty summed by CuPy, say): a
            # replay would skip it, so this shape trains eagerly
            plan.given_up, plan.last = True, None
            return loss_sum, list(totals)
        if plan.last is not None and same_work(plan.last, rec):
            plan.ready = True
            rec.capture()   # CuPy: one CUDA graph from now on
        plan.last = rec
        if not plan.ready and plan.recordings >= MAX_RECORDINGS:
            plan.given_up, plan.last = True, None
        return plan.sums() if plan.last is not None else (loss_sum, list(totals))
