"""Download faults: slow or stalled servers, $MINICNN_MNIST_MIRROR, bad settings.

A real HTTP server runs on 127.0.0.1 in a thread of this process; it stops
by itself (every reply and the server have a time cap). urlopen is replaced
by a guard that lets only 127.0.0.1 and file: URLs through, so no test
touches the internet; npm and tensorflow-datasets are disabled as in
test_mnist_data.py.
"""

import gzip
import http.server
import socket
import threading
import time
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import ProxyHandler, build_opener

import pytest

from minicnn import config
from minicnn.datasets import DatasetUnavailableError, fetch, mnist, mnist_sources

from conftest import REAL_MNIST

SHARED = REAL_MNIST  # found as a user's would be (see conftest); None if nowhere
NAMES = [spec.name for spec in mnist.SPECS]
GCS = mnist_sources.MIRRORS[0]

SLACK_S = 2.5  # allowed past the budget: thread start-up on a loaded machine
# What each path's reply does: ("headers" or "body" dripped, seconds a byte).
# "stall" sends the headers, then nothing. A byte each 0.2 s never trips a
# 0.5 s socket timeout, so only a bound on the whole download stops it.
FAULTS = {"drip": ("body", 0.5), "trickle": ("body", 0.2), "stall": ("body", None),
          "slow-headers": ("headers", 0.2)}
REPLY_CAP_S = 12.0  # no reply lasts longer, so the old code (no bound) fails clearly
SERVER_LIFETIME_S = 60.0  # the server stops by itself even if teardown never runs


class Handler(http.server.BaseHTTPRequestHandler):
    """Replies by path: /FAULT/NAME (see FAULTS), /files/NAME, else 404.

    HEAD always answers at once, so the reachability probe passes and the
    fault shows in the download itself.
    """

    timeout = 5  # a client that never sends its request cannot hold a thread

    def do_HEAD(self):
        self.server.requests.append(("HEAD", self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.server.requests.append(("GET", self.path))
        try:
            self.reply()
        except OSError:  # the client gave up and closed the connection
            pass

    def reply(self):
        kind, _, name = self.path.strip("/").partition("/")
        if kind in FAULTS:
            part, interval = FAULTS[kind]
            if part == "headers":
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
            else:
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
            self.drip(interval)
        elif kind == "files" and name in self.server.files:
            body = self.server.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def drip(self, interval):
        """Send one byte each `interval` s (None: nothing) until stopped or capped."""
        end = time.monotonic() + REPLY_CAP_S
        while time.monotonic() < end:
            if self.server.stop.wait(interval or 0.05):
                return
            if interval:
                self.wfile.write(b"x")

    def log_message(self, *args):  # keep the test output clean
        pass


class LocalServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients hanging up are expected
        pass


@pytest.fixture
def server():
    """A running LocalServer; `server.base` is its URL, `server.files` what /files/ serves."""
    httpd = LocalServer(("127.0.0.1", 0), Handler)
    httpd.stop, httpd.requests, httpd.files = threading.Event(), [], {}
    httpd.timeout = 0.05  # handle_request returns this often to look at `stop`
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve():
        end = time.monotonic() + SERVER_LIFETIME_S
        while not httpd.stop.is_set() and time.monotonic() < end:
            httpd.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.stop.set()  # drips end within one interval
        thread.join(5)
        httpd.server_close()  # joins the reply threads


class FakeHead:
    """An empty answer to a probe: the internet 'answers' but serves nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class Guard:
    """Stands in for fetch.urlopen: 127.0.0.1 and file: URLs are real, others fail.

    Requests elsewhere are recorded; probes there answer (so built-in
    mirrors look reachable), downloads there fail.
    """

    def __init__(self):
        self.local = build_opener(ProxyHandler({}))  # never through a proxy
        self.urls = []

    def __call__(self, request, timeout=None):
        self.urls.append((request.get_method(), request.full_url))
        parts = urlsplit(request.full_url)
        if parts.scheme == "file" or parts.hostname == "127.0.0.1":
            return self.local.open(request, timeout=timeout)
        if request.get_method() == "HEAD":
            return FakeHead()
        raise URLError("network disabled in tests")


@pytest.fixture(autouse=True)
def guard(tmp_path, monkeypatch):
    """No test sees the user's cache or settings, the internet, npm or tfds."""
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("MINICNN_DATA_DIR", "MINICNN_MNIST_MIRROR", "MINICNN_DOWNLOAD_BUDGET"):
        monkeypatch.delenv(name, raising=False)
    network = Guard()
    monkeypatch.setattr(fetch, "urlopen", network)
    monkeypatch.setattr(mnist_sources.shutil, "which", lambda name: None)
    monkeypatch.setattr(mnist_sources, "tfds_installed", lambda: False)
    return network


def cache_dir(tmp_path):
    return tmp_path / "cache" / "datasets" / "mnist"


def test_dripping_mirror_ends_within_the_budget(server, monkeypatch, tmp_path):
    monkeypatch.setenv("MINICNN_DOWNLOAD_BUDGET", "2")
    monkeypatch.setenv("MINICNN_MNIST_MIRROR", f"{server.base}/drip/")
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data()
    elapsed = time.monotonic() - start
    assert elapsed < 2 + SLACK_S, f"load_data took {elapsed:.1f} s with a 2 s budget"
    message = str(info.value)
    assert (f"mirror {server.base}/drip/ ($MINICNN_MNIST_MIRROR): TimeoutError: "
            "overall download time limit of 2 s reached") in message
    assert "download time budget of 2 s ran out ($MINICNN_DOWNLOAD_BUDGET" in message
    assert ("GET", "/drip/train-images-idx3-ubyte.gz") in server.requests
    assert not cache_dir(tmp_path).exists()


@pytest.mark.parametrize("fault", ["trickle", "stall", "slow-headers"])
def test_one_download_ends_by_the_deadline_whatever_the_server_does(server, fault):
    url = f"{server.base}/{fault}/train-images-idx3-ubyte.gz"
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="time limit of 0.5 s reached"):
        fetch.http_get(url, fetch.Deadline(0.5), max_bytes=1 << 20)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + SLACK_S, f"{fault}: http_get took {elapsed:.1f} s with a 0.5 s deadline"


def test_the_socket_under_a_real_response_is_found(server, guard):
    # Without it each read keeps urlopen's timeout and only the worker
    # thread's bound stops a slow body.
    with guard.local.open(f"{server.base}/drip/x", timeout=5) as resp:
        assert isinstance(fetch.socket_of(resp), socket.socket)
    assert fetch.socket_of(FakeHead()) is None


def needs_shared(test):
    """Real MNIST as .gz files (the mirror serves them as they are)."""
    gz = SHARED is not None and all((SHARED / f"{name}.gz").is_file() for name in NAMES)
    test = pytest.mark.skipif(SHARED is not None and not gz,
                              reason=f"the MNIST files in {SHARED} are not .gz files")(test)
    return pytest.mark.usefixtures("real_mnist")(test)


@needs_shared
def test_env_mirrors_are_tried_first_in_order_and_fill_the_cache(server, guard, monkeypatch, tmp_path):
    server.files.update({f"{name}.gz": (SHARED / f"{name}.gz").read_bytes() for name in NAMES})
    # Comma and space separated, no trailing slash: the first serves nothing (404).
    monkeypatch.setenv("MINICNN_MNIST_MIRROR", f"{server.base}/empty, {server.base}/files")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    gets = [path for method, path in server.requests if method == "GET"]
    # A mirror is left at its first failed file; the next one serves them all.
    assert gets == [f"/empty/{NAMES[0]}.gz"] + [f"/files/{name}.gz" for name in NAMES]
    # The built-in mirrors answered the probe but were never asked for a file.
    assert not [url for method, url in guard.urls if method == "GET" and url.startswith(GCS)]
    cache = cache_dir(tmp_path)
    assert sorted(p.name for p in cache.iterdir()) == sorted(NAMES)
    assert (cache / "t10k-labels-idx1-ubyte").read_bytes() == gzip.decompress(
        server.files["t10k-labels-idx1-ubyte.gz"])


@needs_shared
def test_file_url_mirror_is_accepted_and_read(guard):
    # One small file through the mirror code: a full load is tested above.
    (base,) = config.parse("MINICNN_MNIST_MIRROR", SHARED.as_uri(), "test")  # no trailing slash given
    assert base == SHARED.as_uri() + "/"
    fetched = list(mnist_sources.fetch_from_mirror(base, [mnist.TEST_LABELS], fetch.Deadline(5)))
    assert [(spec, where) for spec, _, where in fetched] == [
        (mnist.TEST_LABELS, f"{base}t10k-labels-idx1-ubyte.gz")]
    assert fetched[0][1] == (SHARED / "t10k-labels-idx1-ubyte.gz").read_bytes()


@pytest.mark.parametrize("name, value, shown", [
    ("MINICNN_DOWNLOAD_BUDGET", "0", "'0'"),
    ("MINICNN_DOWNLOAD_BUDGET", "-3", "'-3'"),
    ("MINICNN_DOWNLOAD_BUDGET", "ten", "'ten'"),
    ("MINICNN_DOWNLOAD_BUDGET", "nan", "'nan'"),
    ("MINICNN_DOWNLOAD_BUDGET", "inf", "'inf'"),
    ("MINICNN_MNIST_MIRROR", "ftp://example.org/mnist/", "'ftp://example.org/mnist/'"),
    ("MINICNN_MNIST_MIRROR", "localhost:8000/mnist", "'localhost:8000/mnist'"),
    ("MINICNN_MNIST_MIRROR", "https://ok.example/mnist/, http:///no-host", "'http:///no-host'"),
])
def test_bad_settings_are_value_errors_before_any_network_work(guard, monkeypatch, name, value, shown):
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(mnist, "probe", lambda *a: pytest.fail("no probe with bad settings"))
    with pytest.raises(ValueError, match=name) as info:
        mnist.load_data()
    assert shown in str(info.value)
    assert guard.urls == []


def test_a_spent_budget_still_gives_the_full_report(monkeypatch):
    monkeypatch.setenv("MINICNN_DOWNLOAD_BUDGET", "1e-9")
    with pytest.raises(DatasetUnavailableError, match="time limit of 1e-09 s reached") as info:
        mnist.load_data()
    assert "download time budget of 1e-09 s ran out" in str(info.value)


def test_budget_default_and_values():
    assert config.SETTINGS["MINICNN_DOWNLOAD_BUDGET"].default == 180
    assert config.parse("MINICNN_DOWNLOAD_BUDGET", " 2.5 ", "test") == 2.5
    assert config.parse("MINICNN_MNIST_MIRROR", "http://a/x, file:///m ", "test") == ("http://a/x/", "file:///m/")
