"""Host-side exchanges for user code: averaging a metric, sharing a Python value.

All go through MPI (host values), add in rank order (the same result on every
rank) and wait at most MINICNN_DIST_TIMEOUT seconds. Every worker must make the
same calls in the same order. With one worker each returns its input's value.
"""
import numpy as np

from . import runtime


def allreduce(value, average=True, weight=None):
    """The mean over the workers of ``value`` (a number or NumPy array), or the sum with
    ``average=False``; the same float64 result on every rank (Horovod's ``hvd.allreduce``).

    ``weight``: this worker's weight for a weighted mean, sum_r w_r v_r / sum_r w_r
    (e.g. its number of samples, so that a metric counts each sample once).

    Example::

        val_acc = hvd.allreduce(local_correct / local_count, weight=local_count)
    """
    runtime._require_init("allreduce")
    values = np.asarray(value, np.float64)
    w = 1.0 if weight is None else float(weight)
    if not runtime.active():
        result = values.copy()
    else:
        message = np.concatenate([[w], (values * w if average else values).ravel()])
        total = runtime.mpi().sum_in_rank_order(message, "allreduce")
        result = (total[1:] / total[0] if average else total[1:]).reshape(values.shape)
    return float(result) if result.ndim == 0 else result


def allgather_object(obj):
    """[rank 0's ``obj``, rank 1's, ...] on every rank; ``obj``: JSON-able (numbers,
    strings, lists, dicts). Example: ``hosts = hvd.allgather_object(socket.gethostname())``."""
    runtime._require_init("allgather_object")
    return runtime.mpi().allgather_object(obj, "allgather_object") if runtime.active() else [obj]


def broadcast_object(obj, root=0):
    """Rank ``root``'s ``obj`` (JSON-able) on every rank. Example:
    ``epochs = hvd.broadcast_object(args.epochs)``."""
    runtime._require_init("broadcast_object")
    check_root(root)
    return runtime.mpi().broadcast_object(obj, root, "broadcast_object") if runtime.active() else obj


def check_root(root, where="broadcast"):
    """``root`` as an int rank of this job, or a ValueError."""
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < runtime.size():
        raise ValueError(f"{where}: root must be a rank from 0 to {runtime.size() - 1}. Received: root={root!r}")
    return int(root)
