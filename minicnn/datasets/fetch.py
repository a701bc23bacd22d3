"""Network helpers for dataset downloads that never hang.

Every request has a short socket timeout and draws on one overall Deadline,
so a whole chain of failing downloads ends within a known time.
"""

import io
import tarfile
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

USER_AGENT = "minicnn-datasets (Python urllib)"
SOCKET_TIMEOUT_S = 10.0  # per connect / per read, not per file
CHUNK_BYTES = 1 << 20


class Deadline:
    """A point in time after which no new network work may start."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self):
        return self.end - time.monotonic()

    def check(self):
        """Raise TimeoutError once the deadline has passed."""
        if self.remaining() <= 0:
            raise TimeoutError(f"overall download time limit of {self.seconds:g} s reached")

    def timeout(self, cap):
        """Seconds a blocking call may take: `cap`, or less if time is short."""
        self.check()
        return min(cap, self.remaining())


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

    Stops with TimeoutError once `deadline` has passed (checked between
    chunks; each read is also bounded by the socket timeout).
    """
    with urlopen(_request(url), timeout=deadline.timeout(SOCKET_TIMEOUT_S)) as resp:
        declared = resp.headers.get("Content-Length")
        if declared and int(declared) > max_bytes:
            raise ValueError(f"{url}: {declared} bytes, more than the {max_bytes} bytes expected")
        body = bytearray()
        while chunk := resp.read(CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                raise ValueError(f"{url}: more than the {max_bytes} bytes expected")
            deadline.check()
    return bytes(body)


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
