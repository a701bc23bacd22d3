"""What fit and evaluate do differently when several workers train one model.

Every function here returns its input unchanged with one worker (no init, or
size 1), so a single process trains exactly as without minicnn.distributed.

- Sharding (arrays): every worker passes the same x and y; each global batch of
  ``batch_size`` samples is cut into ``size`` contiguous parts, worker r taking
  part r (:func:`part_bounds`: 65 samples over 2 workers are 33 and 32). With
  shuffling, rank 0's order is every worker's (:func:`same_order`). A generator
  or Sequence is each worker's own data, as in Horovod scripts: its batches are
  the worker's parts, not cut again.
- Printing: progress lines on rank 0 only (:func:`quiet`).
- Metrics: each worker's epoch values become the mean over all workers weighted
  by their samples (:func:`average_over_workers`), the same on every rank, so
  History, EarlyStopping and ReduceLROnPlateau decide alike everywhere.
- Checks before training (:func:`check_fit`): the same steps and data on every
  worker, and every global batch big enough to give each worker a sample.
"""
import warnings

import numpy as np

from . import runtime
from .optimizer import is_distributed


def part_bounds(n, rank, size):
    """(start, stop) of worker ``rank``'s contiguous part of a batch of ``n`` samples: the
    first ``n % size`` workers take one sample more than the others."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def local_part(indices):
    """This worker's part of one global batch's sample ``indices`` (all of them alone)."""
    if not runtime.active():
        return indices
    start, stop = part_bounds(len(indices), runtime.rank(), runtime.size())
    return indices[start:stop]


def same_order(order):
    """Rank 0's sample ``order`` (a shuffled pass) on every worker, so they cut the same batches."""
    if not runtime.active():
        return order
    order = np.ascontiguousarray(order, np.int64)
    return runtime.mpi().broadcast(order, 0, "the shuffled order of the samples")


def may_plan():
    """Whether fit may replay a recorded step plan (MINICNN_STEP_PLAN): not with several
    workers, whose step holds an exchange that a replay of device operations would skip."""
    return not runtime.active()


def quiet(verbose):
    """``verbose``, or 0 on every worker but rank 0 (one progress bar for the job)."""
    return 0 if runtime.active() and runtime.rank() != 0 else verbose


def average_over_workers(values, seen):
    """[(name, mean)] of one pass over this worker's ``seen`` samples -> [(name, mean over
    all workers' samples)]: sum_r seen_r * v_r / sum_r seen_r, added in rank order."""
    if not runtime.active():
        return values
    message = np.array([seen] + [seen * v for _, v in values], np.float64)
    total = runtime.mpi().sum_in_rank_order(message, "the exchange of the epoch's metrics")
    return [(name, float(t / total[0])) for (name, _), t in zip(values, total[1:])]


def agree(where, **facts):
    """The same ValueError on every rank unless every worker has the same ``facts``
    (numbers: steps per epoch, epochs, ...)."""
    if not runtime.active():
        return
    everyone = runtime.mpi().allgather_object(facts, f"the check of {where}'s arguments")
    for r, theirs in enumerate(everyone):
        for key in sorted(set().union(*everyone)):
            if theirs.get(key) != everyone[0].get(key):
                raise ValueError(f"{where}: the workers were not given the same work: {key} is "
                                 f"{everyone[0].get(key)} on rank 0 but {theirs.get(key)} on rank {r}. "
                                 "Every worker must call fit with the same data and arguments (and when "
                                 "one resumes with BackupAndRestore, so must all).")


def check_fit(where, model, sources, **facts):
    """Before any work: every worker must run the same passes (else one would wait for
    the others forever), and each global batch of arrays must give every worker a sample.
    ``sources``: the batch sources of this call (None for absent ones); ``facts``: other
    values that must agree (epochs, ...). The same ValueError on every rank when not.
    Warns when the optimizer does not average the gradients."""
    if not runtime.active():
        return
    size = runtime.size()
    mine, batches = dict(facts), []
    for i, source in enumerate(s for s in sources if s is not None):
        mine[f"steps of source {i}"] = source.steps
        if getattr(source, "sharded", False):
            mine[f"samples of source {i}"] = len(source.x)
            mine[f"batch_size of source {i}"] = source.batch_size
            batches.append((len(source.x), source.batch_size))
    agree(where, **mine)
    for n, batch in batches:   # the same on every rank now
        smallest = min(batch, n % batch or batch, n)
        if smallest < size:
            fix = (f"choose batch_size >= {size}" if batch < size else
                   f"drop the last {smallest} samples or change batch_size")
            raise ValueError(f"{where}: with {size} workers every batch must hold at least {size} samples "
                             f"(one per worker); {n} samples in batches of {batch} make a batch of "
                             f"{smallest}: {fix}. Received: batch_size={batch}")
    optimizer = getattr(model, "optimizer", None)
    if where == "fit" and optimizer is not None and not is_distributed(optimizer):
        warnings.warn(f"fit: {size} workers train, but the optimizer does not average their gradients: "
                      "each worker would follow its own part of the data and the models would drift "
                      "apart. Wrap it: model.compile(optimizer=minicnn.distributed.DistributedOptimizer(opt)).",
                      UserWarning, stacklevel=3)
