"""Waiting for the other workers, for a bounded time: no silent hang forever.

Every exchange is made of nonblocking MPI requests (``Isend``/``Irecv``), each tied
to the peer it talks to. :func:`wait_all` polls them (``Test()``, which also drives
MPI's progress) until all are done; when ``timeout`` seconds pass first, the peers
whose requests are still open are the ones that did not answer: :func:`give_up`
prints that, naming them, and ends the whole job with ``MPI_Abort`` (a dead worker
never answers, and a hung one would keep every other worker waiting with it).

The polling naps between tries, growing from 10 us to 1 ms: a worker waiting for a
slower one leaves its CPU to it (two workers may share one machine's cores), and an
exchange that completes is noticed within 1 ms at worst.
"""
import sys
import time

FIRST_NAP = 1e-5   # seconds
LAST_NAP = 1e-3


def wait_all(comm, requests, what, timeout):
    """Wait until every ``(request, peer)`` of ``requests`` is done; ``what`` names the
    exchange for the message (e.g. "the gradient exchange of step 3")."""
    pending = list(requests)
    deadline = time.monotonic() + timeout if timeout else None
    nap = FIRST_NAP
    while True:
        pending = [(r, peer) for r, peer in pending if not r.Test()]
        if not pending:
            return
        if deadline is not None and time.monotonic() > deadline:
            peers = sorted({peer for _, peer in pending})
            give_up(comm, f"waited {timeout:g} s (MINICNN_DIST_TIMEOUT) in {what} for rank(s) "
                          f"{', '.join(map(str, peers))}, which did not answer: they died or hang (or "
                          "run other work: every worker must make the same calls, e.g. the same fit).")
        time.sleep(nap)
        nap = min(nap * 2, LAST_NAP)


def give_up(comm, message):
    """Print ``message`` (prefixed with this rank) and end every worker of ``comm``'s job."""
    text = f"minicnn.distributed: rank {comm.Get_rank()} of {comm.Get_size()}: {message} Ending the job."
    print(text, file=sys.stderr, flush=True)
    comm.Abort(1)
    raise RuntimeError(text)   # only reached when Abort returns (a test's stand-in communicator)
