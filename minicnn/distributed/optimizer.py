"""DistributedOptimizer: the optimizer that averages the gradients over the workers.

As Horovod's ``hvd.DistributedOptimizer(opt)``: the result is an optimizer of the same
class (a subclass made for it, named as the original), with the same configuration
and state, so ``get_config``, saving and ``isinstance`` see the original optimizer.
It adds one thing: before clipping, weight decay and the update, each step's
gradients (one flat buffer, every trainable variable's gradient end to end) become
the mean over all the workers' samples,

    g = sum_r n_r * g_r / sum_r n_r       (n_r: the samples of worker r's batch),

which is the gradient one process would get from the whole global batch: the loss
gradient of each worker is the mean over its own n_r samples, and batches split
unevenly (65 samples over 2 workers: 33 and 32) must count each sample once.
One exchange per step, on the flat buffer (not one per variable).
"""
import functools

from .. import optimizers
from . import runtime


class _AveragesOverWorkers:
    """The mixin DistributedOptimizer puts before the optimizer's class."""

    def _aggregate_gradients(self, flat_grad, batch_size):
        flat_grad = super()._aggregate_gradients(flat_grad, batch_size)
        if not runtime.active():
            return flat_grad
        count = 1 if batch_size is None else batch_size   # apply_gradients called directly: equal weights
        engine = runtime.engine_for(flat_grad)
        return engine.average_gradients(flat_grad, count, f"the gradient exchange of step {self.iterations + 1}")


@functools.lru_cache(maxsize=None)
def _distributed_class(cls):
    """The subclass of optimizer class ``cls`` that averages gradients (one per class)."""
    return type(cls.__name__, (_AveragesOverWorkers, cls),
                {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                 "__doc__": f"{cls.__name__} whose gradients are averaged over the workers "
                            "(minicnn.distributed.DistributedOptimizer)."})


def DistributedOptimizer(optimizer, name=None):
    """``optimizer`` averaging its gradients over all workers before each update
    (Horovod's ``hvd.DistributedOptimizer``).

    ``optimizer``: an Optimizer instance or a name ('rmsprop'). The returned optimizer
    takes over its configuration and state (a resumed model's slots come along): use
    it, not the one passed in. ``name``: a new name for it (default: the same).
    With one worker it updates exactly as the optimizer alone would.

    Example (every worker runs this script: ``mpirun -n 2 python train.py``)::

        import minicnn.distributed as hvd
        hvd.init()
        opt = hvd.DistributedOptimizer(optimizers.RMSprop(learning_rate=0.001))
        model.compile(optimizer=opt, loss='categorical_crossentropy', metrics=['accuracy'])
        model.fit(x, y, batch_size=64, epochs=5,   # 64 per step in all, 32 per worker
                  callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
    """
    runtime._require_init("DistributedOptimizer")
    opt = optimizers.get(optimizer)
    if isinstance(opt, _AveragesOverWorkers):
        raise ValueError(f"DistributedOptimizer: the optimizer already averages its gradients over the "
                         f"workers. Received: optimizer={opt!r}")
    wrapped = object.__new__(_distributed_class(type(opt)))
    wrapped.__dict__.update(vars(opt))
    if name is not None:
        wrapped.name = str(name)
    return wrapped


def is_distributed(optimizer):
    """Whether ``optimizer`` came from DistributedOptimizer."""
    return isinstance(optimizer, _AveragesOverWorkers)
