"""Exchanges between workers through MPI (mpi4py), on NumPy arrays.

The numpy and emulator backends keep their arrays in NumPy, so their gradients
travel here; the CuPy backend's go through NCCL (nccl_engine.py) and use this
engine only for small host messages (the NCCL id, shapes, metrics).

Why a gather and an ordered sum rather than ``MPI_Allreduce``: the MPI standard
does not fix the order in which an allreduce adds the ranks' values, and with
more than two ranks some algorithms add them in different orders on different
ranks, so float32 results may differ in the last bits from rank to rank: the
weights would drift apart. Here every rank receives every rank's buffer (a
gather, one row per rank) and adds the rows in rank order, 0 + 1 + 2 + ...: the
same additions in the same order everywhere, so every rank holds the same bits,
and the same run gives the same bits again. The price is bandwidth: each rank
receives (size - 1) buffers instead of about 2 (a ring allreduce); for a small
CNN's gradients (the MNIST model: 93,322 floats, 365 KiB) that is nothing.

The gather is point-to-point (one ``Irecv`` from and one ``Isend`` to each peer)
so that a worker that does not answer is known by its rank (deadline.py).
"""
import json

import numpy as np

from .deadline import wait_all
from .runtime import timeout

TAG = 7   # every exchange of this engine; MPI keeps the messages of one sender in order


class MpiEngine:
    """One worker's end of the MPI exchanges, on communicator ``comm`` (its own copy of
    the job's: no user message ever mixes with these)."""

    def __init__(self, comm):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._send = None   # the gradient exchange's buffers, kept from step to step
        self._rows = None

    # -- the three moves -------------------------------------------------------------
    def gather_into(self, send, rows, what):
        """``rows[r] = rank r's send`` on every rank; ``send`` and each row C-contiguous."""
        rows[self.rank] = send
        peers = [p for p in range(self.size) if p != self.rank]
        requests = [(self.comm.Irecv(rows[p], source=p, tag=TAG), p) for p in peers]
        requests += [(self.comm.Isend(send, dest=p, tag=TAG), p) for p in peers]
        wait_all(self.comm, requests, what, timeout())
        return rows

    def gather(self, send, what):
        """A new (size, *send.shape) array: row r holds rank r's ``send``."""
        send = np.ascontiguousarray(send)
        return self.gather_into(send, np.empty((self.size,) + send.shape, send.dtype), what)

    def broadcast(self, buf, root, what):
        """Rank ``root``'s ``buf`` copied into ``buf`` on every rank (in place)."""
        if self.rank == root:
            requests = [(self.comm.Isend(buf, dest=p, tag=TAG), p) for p in range(self.size) if p != root]
        else:
            requests = [(self.comm.Irecv(buf, source=root, tag=TAG), root)]
        wait_all(self.comm, requests, what, timeout())
        return buf

    # -- sums ------------------------------------------------------------------------
    def sum_in_rank_order(self, values, what):
        """The sum over the ranks of array ``values``, added in rank order (the same bits everywhere)."""
        rows = self.gather(values, what)
        total = rows[0].copy()
        for row in rows[1:]:
            total += row
        return total

    def average_gradients(self, flat, count, what):
        """``flat`` (in place) = sum_r count_r * flat_r / sum_r count_r over the ranks: the
        mean gradient over all the workers' samples, when each ``flat_r`` is the mean over
        rank r's ``count_r`` samples. One exchange: the count travels as the last element."""
        n = flat.size
        if self._send is None or self._send.size != n + 1 or self._send.dtype != flat.dtype:
            self._send = np.empty(n + 1, flat.dtype)          # [count * flat..., count]
            self._rows = np.empty((self.size, n + 1), flat.dtype)
        send, rows = self._send, self._rows
        np.multiply(flat, flat.dtype.type(count), out=send[:n])
        send[n] = count
        self.gather_into(send, rows, what)
        np.copyto(flat, rows[0, :n])
        total = rows[0, n]
        for row in rows[1:]:   # rank order: see the module docstring
            np.add(flat, row[:n], out=flat)
            total += row[n]
        if total <= 0:
            raise ValueError(f"minicnn.distributed: {what}: the workers' batches hold no sample "
                             f"(batch sizes {rows[:, n].tolist()}).")
        np.divide(flat, total, out=flat)
        return flat

    # -- small Python values (JSON: numbers, strings, lists, dicts) ----------------------
    def allgather_object(self, obj, what):
        """[rank 0's obj, rank 1's, ...] on every rank."""
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
        lengths = self.gather(np.array([data.size], np.int64), what)[:, 0]
        padded = np.zeros(int(lengths.max()), np.uint8)
        padded[:data.size] = data
        rows = self.gather(padded, what)
        return [json.loads(rows[r, :lengths[r]].tobytes()) for r in range(self.size)]

    def broadcast_object(self, obj, root, what):
        """Rank ``root``'s obj, on every rank."""
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8) if self.rank == root else None
        length = self.broadcast(np.array([0 if data is None else data.size], np.int64), root, what)
        buf = data.copy() if data is not None else np.empty(int(length[0]), np.uint8)
        return json.loads(self.broadcast(buf, root, what).tobytes())
