"""LambdaCallback: a callback made of plain functions (``keras.callbacks.LambdaCallback``)."""
from ..models.history import Callback

_LAMBDA_HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    """A callback from plain functions (``keras.callbacks.LambdaCallback``).

    Each keyword names a hook and takes a function with that hook's arguments:
    ``on_epoch_end=lambda epoch, logs: print(epoch, logs['loss'])``. Hooks not
    given stay no-ops (a batch hook given makes fit read the loss every batch).
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name not in _LAMBDA_HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}. Expected one of {list(_LAMBDA_HOOKS)}")
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be a function. Received: {name}={fn!r}")
            if fn is not None:
                setattr(self, name, fn)
