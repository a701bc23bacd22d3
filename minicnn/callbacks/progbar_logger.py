"""ProgbarLogger: the progress line of fit (``keras.callbacks.ProgbarLogger``)."""
from ..models.history import Callback


class ProgbarLogger(Callback):
    """The progress bar fit prints (``keras.callbacks.ProgbarLogger``).

    As in Keras, fit shows it whenever ``verbose`` is 1 or 2, and passing one
    in ``callbacks`` shows that same bar, not a second one: here fit draws
    the line itself (minicnn.models.progbar), so that it reads the running
    loss back from the device only when the line is redrawn, and this class
    just stands for it in scripts that name it. The Keras 2 arguments are
    accepted: ``count_mode`` ('steps', as Keras 3 counts; 'samples' is
    accepted and counts steps too) and ``stateful_metrics`` (every value
    shown is already the epoch's running mean).

    Example: ``model.fit(x, y, verbose=1, callbacks=[ProgbarLogger()])``.
    """

    def __init__(self, count_mode="steps", stateful_metrics=None):
        super().__init__()
        if count_mode not in ("steps", "samples"):
            raise ValueError(f"ProgbarLogger: unknown `count_mode`: {count_mode!r}. Expected 'steps' or "
                             "'samples'.")
        self.count_mode = count_mode
        self.stateful_metrics = set(stateful_metrics or ())
