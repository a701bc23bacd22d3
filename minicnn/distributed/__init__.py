"""Data-parallel training over several processes, machines and GPUs, with Horovod's conventions.

N workers (processes, started together by ``mpirun``/``mpiexec`` or ``srun``) each
hold the whole model; ``fit`` gives each its part of every global batch, the
gradients are averaged over the workers in one exchange per step, and every
worker applies the same update, so the weights stay the same everywhere.
The exchanges go through existing libraries, chosen by the arrays' kind:
MPI (mpi4py) for NumPy arrays (the numpy and emulator backends), NCCL
(``cupy.cuda.nccl``) for CuPy arrays, one GPU per worker. Every sum adds the
workers' values in rank order: the same bits on every worker, run after run.

A Horovod Keras script runs with ``import minicnn.distributed as hvd``::

    import minicnn.distributed as hvd
    hvd.init()
    model = build_model()
    opt = hvd.DistributedOptimizer(optimizers.RMSprop(0.001))
    model.compile(optimizer=opt, loss='categorical_crossentropy', metrics=['accuracy'])
    model.fit(x_train, y_train, batch_size=64, epochs=5,      # 64 samples per step in all
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
    if hvd.rank() == 0:
        model.save('mnist.keras')

    # mpirun -n 2 python train.py

What changes with more than one worker (one worker: nothing at all):

- fit / evaluate on arrays: every worker passes the same x, y; worker r takes the
  r-th contiguous part of each global batch of ``batch_size`` (65 over 2: 33 and 32);
  a shuffled order is rank 0's. A generator or Sequence is each worker's own data.
- Only rank 0 prints progress; the epoch's loss and metrics (History, callbacks'
  logs) are averaged over all samples of all workers, the same on every rank.
- Callbacks that write files (ModelCheckpoint, CSVLogger, BackupAndRestore): give
  them to rank 0 only, as Horovod does (``callbacks += [...] if hvd.rank() == 0``).
  Callbacks that stop training or change the learning rate from epoch logs
  (EarlyStopping, ReduceLROnPlateau) decide alike on every rank: pass them to all.
- Faults: a worker that waits more than MINICNN_DIST_TIMEOUT seconds (60) for
  another ends the job, naming the ranks that did not answer; an uncaught
  exception in any worker ends the job at once.
"""
from .collectives import allgather_object, allreduce, broadcast_object
from .optimizer import DistributedOptimizer, is_distributed
from .runtime import init, is_initialized, local_rank, rank, size
from .weights import broadcast_weights

__all__ = ["init", "rank", "size", "local_rank", "is_initialized", "DistributedOptimizer", "is_distributed",
           "broadcast_weights", "allreduce", "allgather_object", "broadcast_object", "callbacks"]


def __getattr__(name):
    """``hvd.callbacks``: the callbacks of Horovod's Keras API, from minicnn.callbacks
    (imported on first use: minicnn.callbacks needs the models, which need this package)."""
    if name == "callbacks":
        import importlib
        return importlib.import_module(__name__ + ".callbacks")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
