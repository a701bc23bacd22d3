"""The loops of fit, evaluate and predict, and where they call the callbacks.

The order of the hooks is Keras's (see history.py). The loss and the count of
correct predictions are summed as backend arrays (on the GPU they stay on the
device) and read back only when the progress line is drawn, an epoch ends, or
a callback overrides a batch-end hook and so needs each batch's running values.
"""
import math
import warnings

import numpy as np

from .. import backend
from ..utils import get_rng
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


def run_batches(model, x, y, batch_size, order, progbar, callbacks, mode, draw_last=True,
                step_losses=None):
    """One pass over x in ``order`` (mode 'train' trains, 'test' only measures);
    returns [(name, mean), ...] over the samples seen.

    ``step_losses`` (a list), if given, receives each step's loss sum as a
    backend scalar (no device sync), so that a non-finite loss can be traced
    back to its step afterwards. In training, ``model.stop_training`` set by a
    batch hook ends the pass after that batch."""
    train = mode == "train"
    hook_begin = callbacks.wants_batch_hooks(mode, end=False)
    hook_end = callbacks.wants_batch_hooks(mode, end=True)
    loss_sum = correct = None
    seen = 0
    steps = -(-len(x) // batch_size)
    for step in range(steps):
        if hook_begin:
            getattr(callbacks, f"on_{mode}_batch_begin")(step, {})
        idx = order[step * batch_size:(step + 1) * batch_size]
        xb, yb = backend.asarray(x[idx]), backend.asarray(y[idx])
        if train:
            ls, c = model._train_batch(xb, yb)
        else:
            ls, c = model._loss_and_correct(model._forward(xb), yb)
        if step_losses is not None:
            step_losses.append(ls)
        loss_sum = ls if loss_sum is None else loss_sum + ls
        if c is not None:
            correct = c if correct is None else correct + c
        seen = min((step + 1) * batch_size, len(x))
        values = None
        if hook_end:  # the one per-batch read back, only for a callback that asked for it
            values = model._running(loss_sum, correct, seen)
            getattr(callbacks, f"on_{mode}_batch_end")(step, dict(values))
        if (step + 1 < steps or draw_last) and progbar.wants_update(step + 1):
            progbar.update(step + 1, values or model._running(loss_sum, correct, seen))
        if train and model.stop_training:
            break
    return model._running(loss_sum, correct, seen)


def evaluate_loop(model, x, y, batch_size, callbacks, progbar, prefix=""):
    """on_test_begin, the batches, on_test_end(logs); returns [(prefix + name, mean), ...]."""
    callbacks.on_test_begin()
    values = run_batches(model, x, y, batch_size, np.arange(len(x)), progbar, callbacks, "test")
    callbacks.on_test_end(dict(values))
    return [(prefix + k, v) for k, v in values]


def fit_loop(model, x, y, batch_size, epochs, initial_epoch, verbose, validation_data,
             validation_freq, shuffle, callbacks):
    """Epochs ``initial_epoch`` to ``epochs - 1``, calling the hooks of ``callbacks``."""
    steps = callbacks.params["steps"]
    model.stop_training = False
    callbacks.on_train_begin()
    logs = None
    warned = False
    # a diverging loss gets one warning, ours (below), not NumPy's overflow warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(initial_epoch, epochs):
            if verbose:  # printed first, as tf.keras's progress bar (the first callback) does
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            callbacks.on_epoch_begin(epoch)
            order = get_rng().permutation(len(x)) if shuffle else np.arange(len(x))
            progbar = Progbar(steps, verbose=verbose)
            step_losses = []
            values = run_batches(model, x, y, batch_size, order, progbar, callbacks, "train",
                                 draw_last=False, step_losses=step_losses)
            if not warned and not math.isfinite(values[0][1]):
                warned = True
                warn_nonfinite_loss(model, epoch, step_losses)
            if validation_data is not None and should_validate(epoch, validation_freq):
                vx, vy = validation_data
                values += evaluate_loop(model, vx, vy, batch_size, callbacks, Progbar(1, verbose=0),
                                        prefix="val_")
            progbar.update(progbar.target, values)  # the epoch's line, val_ values included
            logs = dict(values)
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    callbacks.on_train_end(logs)


def warn_nonfinite_loss(model, epoch, step_losses):
    """One warning (shown even at verbose=0) naming the first step whose loss was NaN/inf."""
    step = next(i for i, ls in enumerate(step_losses)
                if not math.isfinite(float(backend.to_numpy(ls))))
    value = float(backend.to_numpy(step_losses[step]))
    lr = getattr(model.optimizer, "learning_rate", None)
    warnings.warn(
        f"fit: the training loss became {value} in epoch {epoch + 1}, step {step + 1}/"
        f"{len(step_losses)}; the weights are no longer finite and training cannot recover. "
        f"Likely cause: a learning rate too large for this model (learning_rate={lr}); "
        "or inputs of very large magnitude (scale them, e.g. x / 255).",
        RuntimeWarning, stacklevel=4)


def predict_loop(model, x, batch_size, callbacks):
    """The outputs for x, one batch at a time into one preallocated array."""
    out = np.empty((len(x),) + tuple(model.output_shape[1:]), dtype=np.float32)
    hook_begin = callbacks.wants_batch_hooks("predict", end=False)
    hook_end = callbacks.wants_batch_hooks("predict", end=True)
    callbacks.on_predict_begin()
    for step, start in enumerate(range(0, len(x), batch_size)):
        if hook_begin:
            callbacks.on_predict_batch_begin(step, {})
        p = model._forward(backend.asarray(x[start:start + batch_size]))
        out[start:start + len(p)] = backend.to_numpy(p)
        if hook_end:
            callbacks.on_predict_batch_end(step, {"outputs": out[start:start + len(p)]})
    callbacks.on_predict_end()
    return out


def callback_list(model, callbacks, where, verbose, epochs, steps, add_history=False):
    """A CallbackList of the checked ``callbacks`` for ``model`` with Keras's params."""
    return CallbackList(check_callbacks(callbacks, where), add_history=add_history, model=model,
                        verbose=verbose, epochs=epochs, steps=steps)
