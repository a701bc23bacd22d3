"""The loops of fit, evaluate and predict, and where they call the callbacks.

The order of the hooks is Keras's (see history.py). The batches come from a
source of data_sources.py (arrays, a generator or a Sequence). The loss and
each metric's total are summed as backend arrays (on the GPU they stay on the
device) and read back only when the progress line is drawn, an epoch ends, or
a callback overrides a batch-end hook and so needs each batch's running values.
"""
import math
import warnings

import numpy as np

from .. import backend
from ..distributed import fit_support
from .history import Callback, CallbackList
from .progbar import Progbar


def check_callbacks(callbacks, where):
    """``callbacks`` as a list of Callback instances, or a TypeError naming the culprit."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{where}: callbacks must be a list of keras.callbacks.Callback instances. "
                        f"Received: callbacks={callbacks!r}")
    for i, c in enumerate(callbacks):
        if not isinstance(c, Callback):
            if isinstance(c, type) and issubclass(c, Callback):
                hint = f" (it is the class: pass an instance, {c.__name__}(...))"
            elif callable(c):
                hint = " (wrap a function in keras.callbacks.LambdaCallback)"
            else:
                hint = ""
            raise TypeError(f"{where}: callbacks[{i}] is not a keras.callbacks.Callback instance{hint}. "
                            f"Received: {c!r}")
    return list(callbacks)


def check_validation_freq(freq):
    """An int >= 1, or a list/tuple/set/range of 1-based epochs."""
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, bool) and freq >= 1:
        return int(freq)
    if isinstance(freq, (list, tuple, set, frozenset, range)) and all(
            isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in freq):
        return frozenset(int(e) for e in freq)
    raise ValueError("fit: validation_freq must be a positive int (validate every N epochs) or a "
                     f"list of 1-based epochs to validate after. Received: validation_freq={freq!r}")


def should_validate(epoch, freq):
    """Keras's rule, with the user-facing 1-based epoch."""
    return (epoch + 1) % freq == 0 if isinstance(freq, int) else epoch + 1 in freq


def run_batches(model, source, progbar, callbacks, mode, draw_last=True, step_losses=None):
    """One epoch of batch ``source`` (mode 'train' trains, 'test' only measures);
    returns [(name, mean), ...] over the samples seen, or None if it gave no batch.

    ``step_losses`` (a list), if given, receives each step's loss sum as a
    backend scalar (no device sync), so that a non-finite loss can be traced
    back to its step afterwards. In training, ``model.stop_training`` set by a
    batch hook ends the pass after that batch."""
    train = mode == "train"
    hook_begin = callbacks.wants_batch_hooks(mode, end=False)
    hook_end = callbacks.wants_batch_hooks(mode, end=True)
    penalty = None if train else model._penalty()   # fixed weights: one penalty for the pass
    sums = None
    owned = False   # whether sums are arrays of this loop alone (then a plan's batch adds in place)
    trace = None    # the planned steps' losses, one device vector per epoch (see keep_loss)
    seen = 0
    for step, (xb, yb, swb) in enumerate(source.epoch()):
        if hook_begin:
            getattr(callbacks, f"on_{mode}_batch_begin")(step, {})
        n = len(xb)
        # the step plan takes the host batch into its own buffers (None: run the step eagerly)
        batch = model._planned_train_batch(xb, yb) if train and swb is None and fit_support.may_plan() else None
        if batch is not None:   # the plan's buffers, rewritten by its next step: add in place
            sums = add_in_place(sums if owned else None, batch, sums)
            owned = True
            if step_losses is not None:
                trace = keep_loss(step_losses, trace, batch[0], step, source.steps)
        else:
            xb, yb = backend.asarray(xb), backend.asarray(yb)
            weights = () if swb is None else (backend.asarray(swb),)   # no sample weights: the 2-argument step
            if train:
                batch = model._train_batch(xb, yb, *weights)
            else:
                batch = model._test_batch(xb, yb, *weights, penalty=penalty)
            if step_losses is not None:
                step_losses.append(batch[0])
            owned = False   # sums may be this batch's own arrays (kept in step_losses) or NumPy scalars
            sums = batch if sums is None else (sums[0] + batch[0], [a + b for a, b in zip(sums[1], batch[1])])
        seen += n
        values = None
        if hook_end:  # the one per-batch read back, only for a callback that asked for it
            values = model._running(sums, seen)
            getattr(callbacks, f"on_{mode}_batch_end")(step, dict(values))
        if (step + 1 < source.steps or draw_last) and progbar.wants_update(step + 1):
            progbar.update(step + 1, values or model._running(sums, seen))
        if train and model.stop_training:
            break
    if sums is None:
        return None
    # several workers: the means over all of their samples (one exchange, the same on every rank)
    return fit_support.average_over_workers(model._running(sums, seen), seen)


def add_in_place(own, batch, shared=None):
    """``sums + batch`` for a step plan's batch sums (buffers its next step rewrites):
    into ``own`` (sums of this loop alone) in place, no allocation per step and the same
    float additions. Without ``own``: into copies of the batch (``shared + batch`` when
    there are sums already that another array may hold)."""
    xp = backend.device().xp
    if own is None:
        # new arrays (a NumPy scalar, as a step that could not be planned
        # may return, becomes a 0-d array that can be added into)
        own = xp.asarray(batch[0]).copy(), [xp.asarray(t).copy() for t in batch[1]]
        if shared is None:
            return own
        batch, own_sums = own, shared   # shared + batch, written into the copies
    else:
        own_sums = own
    xp.add(own_sums[0], batch[0], out=own[0])
    for a, b, out in zip(own_sums[1], batch[1], own[1]):
        xp.add(a, b, out=out)
    return own


def keep_loss(step_losses, trace, loss, step, steps):
    """Append a step plan's loss sum (a buffer its next step rewrites) to step_losses as a
    0-d view of ``trace``, one device vector per epoch written in place; returns trace."""
    if not isinstance(steps, int) or step >= steps:
        step_losses.append(loss.copy())
        return trace
    if trace is None:
        trace = backend.device().empty((steps,))
    trace[step:step + 1] = loss.reshape(1)
    step_losses.append(trace[step:step + 1].reshape(()))
    return trace


def evaluate_loop(model, source, callbacks, progbar, prefix=""):
    """on_test_begin, the batches, on_test_end(logs); returns [(prefix + name, mean), ...]."""
    callbacks.on_test_begin()
    values = run_batches(model, source, progbar, callbacks, "test")
    if values is None:
        raise ValueError("evaluate: the data gave no batch (a generator that is already exhausted?).")
    callbacks.on_test_end(dict(values))
    return [(prefix + k, v) for k, v in values]


def fit_loop(model, train, epochs, initial_epoch, verbose, validation, validation_freq, callbacks):
    """Epochs ``initial_epoch`` to ``epochs - 1`` over batch source ``train``, calling
    the hooks of ``callbacks``; ``validation``: a batch source or None."""
    model.stop_training = False
    callbacks.on_train_begin()
    # a callback may move the start (BackupAndRestore resuming: Keras's model._initial_epoch)
    initial_epoch = vars(model).get("_initial_epoch", initial_epoch)
    fit_support.agree("fit", **{"the first epoch (after on_train_begin)": initial_epoch})   # several workers
    logs = None
    warned = False
    # a diverging loss gets one warning, ours (below), not NumPy's overflow warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(initial_epoch, epochs):
            if verbose:  # printed first, as tf.keras's progress bar (the first callback) does
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            callbacks.on_epoch_begin(epoch)
            progbar = Progbar(train.steps, verbose=verbose)
            step_losses = []
            values = run_batches(model, train, progbar, callbacks, "train", draw_last=False,
                                 step_losses=step_losses)
            if values is None:   # a generator that ran out before this epoch (warned): stop
                break
            if not warned and not math.isfinite(values[0][1]):
                warned = True
                warn_nonfinite_loss(model, epoch, step_losses)
            if validation is not None and should_validate(epoch, validation_freq):
                values += evaluate_loop(model, validation, callbacks, Progbar(1, verbose=0), prefix="val_")
            progbar.update(progbar.target, values)  # the epoch's line, val_ values included
            logs = dict(values)
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    callbacks.on_train_end(logs)


def warn_nonfinite_loss(model, epoch, step_losses):
    """One warning (shown even at verbose=0) naming the first step whose loss was NaN/inf."""
    step = next((i for i, ls in enumerate(step_losses)
                 if not math.isfinite(float(backend.to_numpy(ls)))), len(step_losses) - 1)
    value = float(backend.to_numpy(step_losses[step]))
    lr = getattr(model.optimizer, "learning_rate", None)
    warnings.warn(
        f"fit: the training loss became {value} in epoch {epoch + 1}, step {step + 1}/"
        f"{len(step_losses)}; the weights are no longer finite and training cannot recover. "
        f"Likely cause: a learning rate too large for this model (learning_rate={lr}); "
        "or inputs of very large magnitude (scale them, e.g. x / 255).",
        RuntimeWarning, stacklevel=4)


def predict_loop(model, source, n, callbacks, progbar):
    """The outputs of each batch of ``source``: into one preallocated array of ``n``
    rows when n is known (arrays), else concatenated (a generator's batches)."""
    shape = tuple(model.output_shape[1:])
    out = None if n is None else np.empty((n,) + shape, dtype=np.float32)
    parts, start = [], 0
    hook_begin = callbacks.wants_batch_hooks("predict", end=False)
    hook_end = callbacks.wants_batch_hooks("predict", end=True)
    callbacks.on_predict_begin()
    for step, batch in enumerate(source.epoch()):
        if hook_begin:
            callbacks.on_predict_batch_begin(step, {})
        p = backend.to_numpy(model._forward(backend.asarray(batch[0])))
        if out is not None:
            out[start:start + len(p)] = p
            p = out[start:start + len(p)]
        else:
            p = np.array(p, dtype=np.float32)   # a copy: the device may reuse its buffer
            parts.append(p)
        start += len(p)
        if hook_end:
            callbacks.on_predict_batch_end(step, {"outputs": p})
        if progbar.wants_update(step + 1):
            progbar.update(step + 1, [])
    callbacks.on_predict_end()
    if out is None:
        out = np.concatenate(parts) if parts else np.empty((0,) + shape, dtype=np.float32)
    return out


def callback_list(model, callbacks, where, verbose, epochs, steps, add_history=False):
    """A CallbackList of the checked ``callbacks`` for ``model`` with Keras's params."""
    return CallbackList(check_callbacks(callbacks, where), add_history=add_history, model=model,
                        verbose=verbose, epochs=epochs, steps=steps)
