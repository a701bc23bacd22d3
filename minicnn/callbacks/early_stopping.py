"""EarlyStopping: stop when a monitored value stops improving (``keras.callbacks.EarlyStopping``)."""
import warnings

from ..models.history import Callback
from .checks import check_bool, check_int, check_monitor, check_number, maximizes


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving (``keras.callbacks.EarlyStopping``).

    An epoch improves when the value beats the best so far by more than
    ``min_delta``; after ``patience`` epochs without one (never in epoch 0)
    it sets ``model.stop_training``. ``mode='auto'`` maximizes names containing
    'acc' and minimizes the rest. ``baseline``: the wait restarts only on values
    that beat it too. Epochs before ``start_from_epoch`` are ignored.
    ``restore_best_weights``: when training ends, stopped or not, the model gets
    the weights of the best epoch's end. A missing ``monitor`` key warns and
    the epoch is skipped. After fit: ``stopped_epoch``, ``best``, ``best_epoch``.

    Example: ``EarlyStopping(monitor='val_loss', patience=3, restore_best_weights=True)``.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        owner = "EarlyStopping"
        self.monitor = check_monitor(owner, monitor)
        self.min_delta = abs(check_number(owner, "min_delta", min_delta))
        self.patience = check_int(owner, "patience", patience)
        self.verbose = check_int(owner, "verbose", verbose)
        self.maximize = maximizes(owner, mode, self.monitor)
        self.mode = mode
        self.baseline = baseline if baseline is None else check_number(owner, "baseline", baseline)
        self.restore_best_weights = check_bool(owner, "restore_best_weights", restore_best_weights)
        self.start_from_epoch = check_int(owner, "start_from_epoch", start_from_epoch)
        self.on_train_begin()

    def on_train_begin(self, logs=None):  # reset: an instance may serve several fits
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = self.best_weights = None

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return value - self.min_delta > reference if self.maximize else value + self.min_delta < reference

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs or {})}", UserWarning, stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
