"""TerminateOnNaN: stop at the first NaN or infinite loss (``keras.callbacks.TerminateOnNaN``)."""
import math

from ..models.history import Callback
from .checks import check_bool


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (``keras.callbacks.TerminateOnNaN``).

    By default it sets ``model.stop_training``: the batch's epoch ends (its
    line shows ``loss: nan``, its logs reach ``on_epoch_end``) and so does
    fit, calling ``on_train_end`` as usual. ``raise_error=True`` raises a
    RuntimeError at once instead (as Keras 3 does), so that no
    ``on_train_end`` runs: a BackupAndRestore then keeps its last good backup.
    It reads the loss after every batch (on a GPU: one sync per batch).

    Example: ``model.fit(x, y, callbacks=[TerminateOnNaN()])``.
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = check_bool("TerminateOnNaN", "raise_error", raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
