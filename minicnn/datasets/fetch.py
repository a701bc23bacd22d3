"""Network helpers for dataset downloads that never hang.

Every request draws on one overall Deadline: each socket operation waits at
most the time left, and each download runs in a worker thread that the
caller stops waiting for once the time is up. So a whole chain of
downloads ends within the budget (plus GRACE_S), whatever the servers do:
slow DNS or connect, stalled or dripping headers, a body sent byte by byte.
"""

import io
import socket
import tarfile
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

USER_AGENT = "minicnn-datasets (Python urllib)"
SOCKET_TIMEOUT_S = 10.0  # per connect / per read, not per file; less if time is short
CHUNK_BYTES = 64 << 10  # the most one read returns; reads return what has arrived
GRACE_S = 0.5  # how long past the deadline a download may take to report its own error


class Deadline:
    """A point in time after which no new network work may start."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def expired(self):
        return self.remaining() <= 0

    def error(self):
        """The TimeoutError raised once the deadline has passed."""
        return TimeoutError(f"overall download time limit of {self.seconds:g} s reached")

    def check(self):
        """Raise TimeoutError once the deadline has passed."""
        if self.expired():
            raise self.error()

    def timeout(self, cap):
        """Seconds a blocking call may take: `cap`, or less if time is short.

        Always > 0 (a socket timeout of 0 would mean non-blocking): raises
        TimeoutError instead once no time is left.
        """
        left = self.remaining()  # read once: a second read could be <= 0
        if left <= 0:
            raise self.error()
        return min(cap, left)


def describe(err):
    """A one-line reason for a failed attempt, for error messages."""
    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        return f"cannot connect ({err.reason})"
    text = str(err) or "no details"
    return f"{type(err).__name__}: {text}"


def _request(url, method="GET"):
    # Some servers refuse urllib's default agent string; name ourselves.
    return Request(url, method=method, headers={"User-Agent": USER_AGENT})


def http_get(url, deadline, max_bytes):
    """Download `url` into memory, refusing more than `max_bytes`.

    Ends by `deadline` (plus GRACE_S) with TimeoutError, whatever the server
    does. Each socket read waits at most the time left and the deadline is
    checked after every read, which bounds the body. urllib offers no such
    hook for DNS, connect, TLS and the headers (a server dripping header
    bytes never trips a per-read timeout), so the request runs in a worker
    thread: at the deadline the caller stops waiting, cuts the connection
    if it has one, and the worker ends at its next socket operation.
    """
    sockets = []  # filled by the worker once connected, for cut_off
    box = {}

    def work():
        try:
            box["value"] = _download(url, deadline, max_bytes, sockets)
        except BaseException as err:  # handed to the caller's thread below
            box["error"] = err

    worker = threading.Thread(target=work, name=f"minicnn download {url}", daemon=True)
    worker.start()
    worker.join(deadline.timeout(float("inf")) + GRACE_S)  # raises if no time is left
    if worker.is_alive():
        cut_off(sockets)
        raise deadline.error()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _download(url, deadline, max_bytes, sockets):
    try:
        with urlopen(_request(url), timeout=deadline.timeout(SOCKET_TIMEOUT_S)) as resp:
            sock = socket_of(resp)
            if sock is not None:
                sockets.append(sock)
            declared = resp.headers.get("Content-Length")
            if declared and int(declared) > max_bytes:
                raise ValueError(f"{url}: {declared} bytes, more than the {max_bytes} bytes expected")
            body = read_body(resp, sock, deadline, max_bytes, url)
    except OSError:
        # A socket timeout cut short by the deadline reads "timed out";
        # say which limit it was instead.
        if deadline.expired():
            raise deadline.error() from None
        raise
    if declared and len(body) != int(declared):
        raise ValueError(f"{url}: connection closed after {len(body)} of {declared} bytes")
    return body


def read_body(resp, sock, deadline, max_bytes, url):
    """Read the body of `resp`, checking size and deadline after every read.

    read1 returns what one socket read gives (read would wait for a full
    chunk, however slowly it arrives); each read's timeout is the time left.
    """
    read = getattr(resp, "read1", resp.read)
    body = bytearray()
    while True:
        seconds = deadline.timeout(SOCKET_TIMEOUT_S)
        if sock is not None:
            sock.settimeout(seconds)
        chunk = read(CHUNK_BYTES)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            raise ValueError(f"{url}: more than the {max_bytes} bytes expected")
        deadline.check()


def socket_of(resp):
    """The socket under an http.client response, or None (file: URLs, fakes).

    urllib exposes no public way to it; without it, reads keep the timeout
    given to urlopen and the worker thread in http_get still bounds them.
    """
    raw = getattr(getattr(resp, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def cut_off(sockets):
    """Shut down `sockets` so that a thread blocked reading them wakes up."""
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed: nothing left to stop
            pass


def probe(urls, timeout):
    """Check in parallel which URLs' servers answer within `timeout` seconds.

    Returns {url: None if the server answered, else a reason}. Any HTTP
    status counts as an answer. Run in parallel so that an offline machine
    pays one timeout, not one per server; slow lookups are abandoned in
    daemon threads rather than waited for.
    """
    results = {url: f"no answer within {timeout:g} s" for url in urls}

    def check(url):
        try:
            with urlopen(_request(url, "HEAD"), timeout=timeout):
                pass
            results[url] = None
        except HTTPError:
            results[url] = None
        except Exception as err:  # any failure means: do not use this server
            results[url] = describe(err)

    threads = [threading.Thread(target=check, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return dict(results)  # a copy: threads still running must not change it


def run_bounded(function, seconds):
    """Call `function()` in a daemon thread; give up after `seconds`.

    For libraries that retry for minutes with no timeout of their own. On
    timeout the thread is abandoned (it cannot be killed) and TimeoutError
    is raised; the function's own exception is re-raised otherwise.
    """
    box = {}

    def target():
        try:
            box["value"] = function()
        except BaseException as err:  # handed to the caller's thread below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no result within {seconds:g} s (abandoned)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def read_tar_members(tar_bytes, wanted):
    """Return {member name: bytes} for the regular files named in `wanted`.

    `wanted` maps exact member names to the largest size accepted. Nothing
    is written to disk, so member paths (../, absolute, links) cannot
    escape anywhere; links and other special members are skipped.
    """
    found = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:*") as tar:
        for member in tar:
            limit = wanted.get(member.name)
            if limit is None or not member.isreg() or member.size > limit:
                continue
            found[member.name] = tar.extractfile(member).read()
    return found
