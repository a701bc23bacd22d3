"""BroadcastGlobalVariablesCallback: every worker starts fit from rank 0's weights (Horovod's)."""
from ..distributed.weights import broadcast_optimizer_state, broadcast_weights
from ..models.history import Callback


class BroadcastGlobalVariablesCallback(Callback):
    """At the start of fit, set every worker's weights (and its optimizer's state, when
    the optimizer has some: a resumed model) to those of rank ``root_rank``, as Horovod's
    ``hvd.callbacks.BroadcastGlobalVariablesCallback``. It does so once, in the first fit
    it is given to, after checking that every worker built the same model (a ValueError
    naming the first differing weight otherwise). Give it to every worker.

    Horovod broadcasts after the first batch, once TensorFlow has made the optimizer's
    variables; here it is before the first step, so the first step already starts from
    the same weights everywhere (and matches one process training on the whole batch).

    Example::

        model.fit(x, y, batch_size=64, callbacks=[BroadcastGlobalVariablesCallback(0)])
    """

    def __init__(self, root_rank=0, device=""):
        super().__init__()
        self.root_rank = root_rank
        self.device = device   # Horovod's TensorFlow device name: nothing to choose here
        self.broadcast_done = False

    def on_train_begin(self, logs=None):
        if self.broadcast_done:
            return
        broadcast_weights(self.model, self.root_rank)
        broadcast_optimizer_state(self.model.optimizer, self.root_rank)
        self.broadcast_done = True
