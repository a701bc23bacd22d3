"""Callbacks as in ``keras.callbacks``: pass them to fit (or evaluate / predict).

Example::

    from minicnn.callbacks import EarlyStopping, ModelCheckpoint
    model.fit(x, y, epochs=20, validation_split=0.1, callbacks=[
        EarlyStopping(patience=2, restore_best_weights=True),
        ModelCheckpoint('best.weights.npz', save_best_only=True, save_weights_only=True)])

The protocol (hooks, their order, ``logs``) is documented in
``minicnn/models/history.py``, beside the loop's side of it. ``epoch`` and
``batch`` are 0-based in hooks; messages and file names count epochs from 1.
One module per callback, named as Keras names its files.
"""
from ..models.history import Callback, CallbackList, History
from .backup_and_restore import BackupAndRestore
from .broadcast_global_variables import BroadcastGlobalVariablesCallback
from .csv_logger import CSVLogger
from .early_stopping import EarlyStopping
from .lambda_callback import LambdaCallback
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .metric_average import MetricAverageCallback
from .model_checkpoint import ModelCheckpoint
from .progbar_logger import ProgbarLogger
from .terminate_on_nan import TerminateOnNaN

__all__ = ["BackupAndRestore", "BroadcastGlobalVariablesCallback", "Callback", "CallbackList", "CSVLogger",
           "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler", "MetricAverageCallback",
           "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau", "TerminateOnNaN"]
