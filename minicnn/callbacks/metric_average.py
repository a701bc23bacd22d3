"""MetricAverageCallback: the epoch's logs averaged over the workers (Horovod's)."""
import numbers

from ..distributed import runtime
from ..distributed.collectives import allgather_object
from ..models.history import Callback


class MetricAverageCallback(Callback):
    """At each epoch's end, replace each number in ``logs`` that differs between the
    workers by its mean over the workers (added in rank order), as Horovod's
    ``hvd.callbacks.MetricAverageCallback``; put it before the callbacks that read the logs.

    fit itself already averages its loss and metrics over all the workers' samples, so
    they are the same everywhere and this callback keeps them as they are: it is for
    Horovod scripts, which pass it, and for values a callback before it added per worker.

    Example: ``model.fit(x, y, callbacks=[BroadcastGlobalVariablesCallback(0), MetricAverageCallback()])``.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not runtime.active():
            return
        keys = sorted(k for k, v in logs.items() if isinstance(v, numbers.Real) and not isinstance(v, bool))
        everyone = allgather_object([keys, [float(logs[k]) for k in keys]])
        if any(theirs != keys for theirs, _ in everyone):
            raise ValueError(f"MetricAverageCallback: the workers' logs hold different values: {keys} on rank "
                             f"{runtime.rank()}, {[theirs for theirs, _ in everyone]} on ranks 0, 1, ...")
        for i, key in enumerate(keys):
            values = [theirs[i] for _, theirs in everyone]
            if any(v != values[0] for v in values):   # the same everywhere (fit's own): kept as it is
                total = values[0]
                for v in values[1:]:
                    total += v
                logs[key] = total / len(values)
