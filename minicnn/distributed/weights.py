"""broadcast_weights: every worker starts from the same weights (rank ``root``'s).

Each worker builds its model with its own random initial weights; data-parallel
training needs them equal (the same averaged gradient then keeps them equal).
First every rank's list of weight shapes is compared with the root's, so that
workers that built different models fail at once, all of them with the same
message naming the first weight that differs, rather than mixing up bytes.
The weights then travel as one message of their raw bytes (any dtype, exact).
"""
import numpy as np

from . import runtime
from .collectives import check_root


def weight_shapes(model):
    """[(layer name, weight index in its layer, shape)] of every weight, in model order."""
    return [(layer.name, i, list(w.shape)) for layer in model.layers for i, w in enumerate(layer.weights)]


def first_difference(shapes_per_rank, root):
    """The message for the first weight (in model order) whose shape differs between rank
    ``root`` and another rank, or None when all ranks have the same shapes."""
    ours = shapes_per_rank[root]
    for k in range(max(len(s) for s in shapes_per_rank)):
        for r, theirs in enumerate(shapes_per_rank):
            mine = ours[k] if k < len(ours) else None
            other = theirs[k] if k < len(theirs) else None
            if r == root or _shape(mine) == _shape(other):
                continue
            return (f"broadcast_weights: the workers' models differ at weight {k}: {_describe(mine, k, root)} "
                    f"but {_describe(other, k, r)} ({len(ours)} weights on rank {root}, {len(theirs)} on rank "
                    f"{r}). Build the same model on every worker.")
    return None


def _shape(entry):
    return None if entry is None else list(entry[2])


def _describe(entry, k, rank):
    if entry is None:
        return f"rank {rank} has no weight {k}"
    return f"its shape is {tuple(entry[2])} on rank {rank} (layer {entry[0]!r}, weight {entry[1]})"


def broadcast_weights(model, root=0):
    """Give every worker's ``model`` the weights of rank ``root``'s (all weights, trainable
    or not), after checking that every worker's model has the same weight shapes
    (a ValueError naming the first differing weight otherwise, on every rank).

    Call it after building the model and before training (or use
    ``callbacks.BroadcastGlobalVariablesCallback(0)``, which calls it when fit starts).

    Example::

        model = build_model()
        hvd.broadcast_weights(model, root=0)
    """
    runtime._require_init("broadcast_weights")
    root = check_root(root, "broadcast_weights")
    if not runtime.active():
        return
    mpi = runtime.mpi()
    problem = first_difference(mpi.allgather_object(weight_shapes(model), "the weight shape check"), root)
    if problem:
        raise ValueError(problem)
    arrays = model.get_weights()
    if not arrays:
        return
    data = np.concatenate([np.ascontiguousarray(a).view(np.uint8).ravel() for a in arrays])
    mpi.broadcast(data, root, "broadcast_weights")
    received, start = [], 0
    for a in arrays:
        received.append(data[start:start + a.nbytes].view(a.dtype).reshape(a.shape))
        start += a.nbytes
    model.set_weights(received)


def broadcast_optimizer_state(optimizer, root=0):
    """Give every worker's ``optimizer`` rank ``root``'s state (iterations, slots), when it
    has some: a resumed model's optimizer. Nothing when no worker's optimizer is built yet
    (the usual start: the first step builds the same zero state everywhere); a ValueError
    on every rank when some have state and others not, or of other shapes."""
    runtime._require_init("broadcast_optimizer_state")
    root = check_root(root, "broadcast_optimizer_state")
    if not runtime.active() or optimizer is None:
        return
    mpi = runtime.mpi()
    arrays = optimizer.state_arrays() if optimizer.built else []
    layout = [[a.dtype.str, list(a.shape)] for a in arrays]
    everyone = mpi.allgather_object([optimizer.built, layout], "the optimizer state check")
    if not any(built for built, _ in everyone):
        return
    for r, (built, theirs) in enumerate(everyone):
        if (built, theirs) != (everyone[root][0], everyone[root][1]):
            raise ValueError(f"broadcast_optimizer_state: the optimizer's state on rank {r} "
                             f"({len(theirs) if built else 'none'} arrays) does not match rank {root}'s "
                             f"({len(everyone[root][1]) if everyone[root][0] else 'none'}): give every worker "
                             "the same model and optimizer (load the same file on every worker to resume).")
    data = np.concatenate([np.ascontiguousarray(a).view(np.uint8).ravel() for a in arrays])
    mpi.broadcast(data, root, "broadcast_optimizer_state")
    if mpi.rank != root:
        received, start = [], 0
        for a in arrays:
            received.append(data[start:start + a.nbytes].view(a.dtype).reshape(a.shape).copy())
            start += a.nbytes
        optimizer.restore_state(optimizer._variables, received)
