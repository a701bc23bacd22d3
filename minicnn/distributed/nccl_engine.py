"""The gradient exchange between GPUs through NCCL (``cupy.cuda.nccl``): one GPU per worker.

MPI only starts it: rank 0 makes NCCL's unique id and MPI carries it to the others
(:meth:`NcclEngine.create`). The gradients then move GPU to GPU, in the order of the
CUDA stream the step runs on, with no host sync.

Deterministic as the MPI engine is (see mpi_engine.py): ``ncclAllGather`` gives every
GPU every worker's scaled gradient, one row per rank, and each GPU adds the rows in rank
order, so every GPU holds the same bits. (``ncclAllReduce`` fixes its order only for a
given algorithm, topology and size; a gather does not depend on them.) Bytes per step:
each GPU receives ``(size - 1) * 4 * (n + 1)`` for n gradient values; for the MNIST model
on 8 GPUs, 7 * 365 KiB = 2.5 MiB, about 10 us on NVLink.

Faults: a collective of a dead or hung peer never completes, and a GPU stream waiting
on it would hang the host at its next read-back. A watchdog thread follows each step's
exchange by a CUDA event; one not done after MINICNN_DIST_TIMEOUT seconds (or an error
NCCL reports) ends the job with MPI_Abort, after aborting the NCCL communicator.

Every CuPy call goes through a :class:`CupyParts` object, so that the tests can run this
file's buffer handling with NumPy stand-ins where there is no GPU.
"""
import collections
import threading
import time

from .deadline import give_up
from .runtime import timeout

NCCL_PACKAGE = "nvidia-nccl-cu13>=2.27.7,<3"


class CupyParts:
    """The CuPy side of the engine: arrays, raw pointers, the current stream, events."""

    def __init__(self, cupy, nccl):
        self.xp = cupy
        self.float32 = nccl.NCCL_FLOAT32

    def pointer(self, a):
        return a.data.ptr

    def stream(self):
        return self.xp.cuda.get_current_stream().ptr

    def event(self):
        """A CUDA event recorded now on the current stream (``.done``: the GPU got past it)."""
        e = self.xp.cuda.Event(block=False, disable_timing=True)
        e.record()
        return e


class NcclEngine:
    """One GPU's end of the NCCL exchanges (``comm``: a ``cupy.cuda.nccl.NcclCommunicator``)."""

    def __init__(self, comm, mpi_comm, rank, size, parts):
        self.comm, self.mpi_comm = comm, mpi_comm
        self.rank, self.size = rank, size
        self.parts = parts
        self._send = None   # [count * flat..., count] and the gathered rows, kept from step to step
        self._rows = None
        self.watchdog = Watchdog(self)

    @classmethod
    def create(cls, mpi, local_rank):
        """The engine for this worker's GPU (GPU ``local_rank``), its NCCL id from rank 0 through ``mpi``."""
        import cupy
        from cupy.cuda import nccl
        if not nccl.available:
            raise RuntimeError("minicnn.distributed: training on CuPy arrays across workers needs NCCL: "
                               f"pip install '{NCCL_PACKAGE}' (or use the numpy backend: MPI).")
        gpus = cupy.cuda.runtime.getDeviceCount()
        if local_rank >= gpus:
            raise RuntimeError(f"minicnn.distributed: rank {mpi.rank} is worker {local_rank} of its machine, "
                               f"which has {gpus} GPU(s): start at most {gpus} workers per machine "
                               f"(mpirun -n N --map-by ppr:{gpus}:node).")
        cupy.cuda.Device(local_rank).use()
        uid = mpi.broadcast_object(list(nccl.get_unique_id()) if mpi.rank == 0 else None, 0, "the NCCL id")
        comm = nccl.NcclCommunicator(mpi.size, tuple(uid), mpi.rank)
        return cls(comm, mpi.comm, mpi.rank, mpi.size, CupyParts(cupy, nccl))

    def average_gradients(self, flat, count, what):
        """``flat`` (in place) = sum_r count_r * flat_r / sum_r count_r over the workers
        (as MpiEngine.average_gradients), on the GPU, queued on the current stream."""
        xp, n = self.parts.xp, flat.size
        if self._send is None or self._send.size != n + 1:
            self._send = xp.empty(n + 1, xp.float32)
            self._rows = xp.empty((self.size, n + 1), xp.float32)
        send, rows = self._send, self._rows
        xp.multiply(flat, xp.float32(count), out=send[:n])
        send[n:] = xp.float32(count)
        self.comm.allGather(self.parts.pointer(send), self.parts.pointer(rows), n + 1, self.parts.float32,
                            self.parts.stream())
        flat[...] = rows[0, :n]
        total = rows[0, n:].copy()   # stays on the GPU: no sync
        for r in range(1, self.size):   # rank order
            xp.add(flat, rows[r, :n], out=flat)
            total += rows[r, n:]
        xp.divide(flat, total, out=flat)
        self.watchdog.follow(what)
        return flat


class Watchdog:
    """Ends the job when a followed exchange is not done within the time limit."""

    PERIOD = 0.5   # seconds between looks

    def __init__(self, engine):
        self.engine = engine
        self.pending = collections.deque()   # (event, what, since), oldest first
        self.thread = None

    def follow(self, what):
        self.pending.append((self.engine.parts.event(), what, time.monotonic()))
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="minicnn-nccl-watchdog", daemon=True)
            self.thread.start()

    def check(self):
        """One look: drop the exchanges done; give up on one too old or on an NCCL error."""
        while self.pending and self.pending[0][0].done:
            self.pending.popleft()
        try:
            self.engine.comm.check_async_error()
        except Exception as e:   # e.g. a peer's connection lost
            self._give_up(f"NCCL reported {type(e).__name__}: {e}.")
        limit = timeout()
        if self.pending and limit and time.monotonic() - self.pending[0][2] > limit:
            self._give_up(f"{self.pending[0][1]} (NCCL) is not done after {limit:g} s "
                          "(MINICNN_DIST_TIMEOUT): a worker died or hangs.")

    def _give_up(self, message):
        try:
            self.engine.comm.abort()   # frees the GPU streams stuck in the collective
        finally:
            give_up(self.engine.mpi_comm, message)

    def _run(self):
        while True:
            time.sleep(self.PERIOD)
            self.check()
