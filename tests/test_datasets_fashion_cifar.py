"""minicnn.datasets.fashion_mnist, cifar10 and cifar100 on tiny files in the real formats.

Fashion-MNIST: gzip'ed IDX files; CIFAR: a .tar.gz of batches pickled as
Python 2's cPickle wrote them (protocol 2, str as BINSTRING, arrays through
numpy.core.multiarray._reconstruct). Their checksums are patched in for each
test. A real HTTP server on 127.0.0.1 serves downloads; fetch.urlopen is
replaced by a guard that lets only 127.0.0.1 through and is offline for
everything else, so no test touches the internet.
"""

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading
import time
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import ProxyHandler, build_opener

import numpy as np
import pytest

from minicnn.datasets import DatasetUnavailableError, cifar10, cifar100, fashion_mnist, fetch, safe_pickle
from minicnn.datasets.download import PublishedFile


class Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.reply(send_body=False)

    def do_GET(self):
        self.reply(send_body=True)

    def reply(self, send_body):
        self.server.requests.append((self.command, self.path))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Serves `server.files` {path: bytes}; `server.base` is its URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.requests = {}, []
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


class Guard:
    """fetch.urlopen for tests: 127.0.0.1 is real, everything else is offline."""

    def __init__(self):
        self.local = build_opener(ProxyHandler({}))
        self.urls = []

    def __call__(self, request, timeout=None):
        assert timeout is not None and timeout <= 10, "every request needs a short timeout"
        self.urls.append((request.get_method(), request.full_url))
        if urlsplit(request.full_url).hostname == "127.0.0.1":
            return self.local.open(request, timeout=timeout)
        raise URLError("network disabled in tests")


@pytest.fixture(autouse=True)
def guard(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("MINICNN_DATA_DIR", "MINICNN_DOWNLOAD_BUDGET"):
        monkeypatch.delenv(name, raising=False)
    network = Guard()
    monkeypatch.setattr(fetch, "urlopen", network)
    return network


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---- Fashion-MNIST: 5 training and 3 test images ----

def idx_bytes(array, magic):
    return magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()


@pytest.fixture
def fashion(monkeypatch):
    """{name: .gz bytes} of tiny files, patched in as fashion_mnist.FILES; and the arrays."""
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), rng.integers(0, 10, 5, dtype=np.uint8),
              rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), rng.integers(0, 10, 3, dtype=np.uint8)]
    files, gz = [], {}
    for real, array in zip(fashion_mnist.FILES, arrays):
        gz[real.name] = gzip.compress(idx_bytes(array, real.magic), mtime=0)
        files.append(dataclasses.replace(real, shape=array.shape, sha256=sha256(gz[real.name])))
    monkeypatch.setattr(fashion_mnist, "FILES", tuple(files))
    return gz, arrays


def assert_fashion(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want)
    assert x_train.flags.writeable


def test_fashion_mnist_real_constants_are_keras():
    assert [f.shape for f in fashion_mnist.FILES] == [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)]
    assert fashion_mnist.MIRRORS[0] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
    assert fashion_mnist.TRAIN_IMAGES.sha256.startswith("3aede38d")


def test_fashion_mnist_download_checks_fills_cache_and_reuses_it(fashion, server, guard, monkeypatch, tmp_path):
    gz, arrays = fashion
    server.files = {f"/keras/{name}": data for name, data in gz.items()}
    server.files["/keras/train-labels-idx1-ubyte.gz"] = gzip.compress(b"not the published file")
    server.files["/zalando/train-labels-idx1-ubyte.gz"] = gz["train-labels-idx1-ubyte.gz"]
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (f"{server.base}/keras/", f"{server.base}/zalando/"))
    assert_fashion(fashion_mnist.load_data(), arrays)
    gets = [path for method, path in server.requests if method == "GET"]
    # The first mirror's bad labels were refused; the second mirror served them.
    assert gets == [f"/keras/{name}" for name in gz] + ["/zalando/train-labels-idx1-ubyte.gz"]
    cache = tmp_path / "cache" / "datasets" / "fashion-mnist"
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == gz  # kept as published, no .part left

    server.requests.clear()
    guard.urls.clear()
    assert_fashion(fashion_mnist.load_data(), arrays)
    assert server.requests == [] and guard.urls == []


def test_fashion_mnist_local_folders_are_checked_and_never_download(fashion, guard, tmp_path, monkeypatch):
    gz, arrays = fashion
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name, data in gz.items():
        (folder / name).write_bytes(data)
    assert_fashion(fashion_mnist.load_data(path=folder), arrays)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(folder.parent))  # its fashion-mnist folder is used
    assert_fashion(fashion_mnist.load_data(), arrays)

    bad = bytearray(gz["t10k-images-idx3-ubyte.gz"])
    bad[-12] ^= 0xFF
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(bad)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: sha256 is [0-9a-f]{64}, expected"):
        fashion_mnist.load_data()
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="MINICNN_DATA_DIR.*lacks t10k-labels-idx1-ubyte.gz"):
        fashion_mnist.load_data()
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        fashion_mnist.load_data(path=tmp_path / "nowhere")
    assert guard.urls == []


def test_fashion_mnist_offline_fails_fast_listing_every_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA_DIR", str(tmp_path / "mnist"))  # an MNIST folder: no fashion-mnist in it
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        fashion_mnist.load_data()
    assert time.monotonic() - start < 5
    message = str(info.value)
    cache = tmp_path / "cache" / "datasets" / "fashion-mnist"
    assert f"$MINICNN_DATA_DIR: no folder {tmp_path / 'mnist' / 'fashion-mnist'}" in message
    assert f"cache {cache}: no train-images-idx3-ubyte.gz" in message
    for base in fashion_mnist.MIRRORS:
        assert f"mirror {base}: unreachable: cannot connect (network disabled in tests)" in message
    assert "fashion_mnist.load_data(path='/folder/with/the/gz/files')" in message


# ---- CIFAR: batches pickled as Python 2 did ----

class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2's str (BINSTRING), as cPickle wrote the CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def py2_pickle(obj):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_batch(seed, count, label_keys):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": f"batch {seed}".encode(), b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
             b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(count)]}
    for key, classes in label_keys.items():
        batch[key.encode()] = [int(v) for v in rng.integers(0, classes, count)]
    return batch


def tar_gz(members):
    """A .tar.gz of {name: bytes}; a bytes value of None adds a symlink to /etc/passwd."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            else:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return buffer.getvalue()


def tiny_cifar(monkeypatch, module, counts, extra=None):
    """Patch module.LAYOUT to tiny batches; return (archive bytes, {name: batch dict}, layout)."""
    real = module.LAYOUT
    sizes = dict(zip([name for name, _ in real.batches], counts))
    batches = {name: cifar_batch(i, n, real.classes) for i, (name, n) in enumerate(sizes.items())}
    members = {f"{real.folder}/batches.meta": py2_pickle({b"label_names": [b"x"]})}
    members.update({f"{real.folder}/{name}": py2_pickle(batch) for name, batch in batches.items()})
    members.update(extra or {})
    archive = tar_gz(members)
    layout = dataclasses.replace(
        real, archive=dataclasses.replace(real.archive, sha256=sha256(archive)),
        train=tuple((name, sizes[name]) for name, _ in real.train),
        test=tuple((name, sizes[name]) for name, _ in real.test))
    monkeypatch.setattr(module, "LAYOUT", layout)
    return archive, batches, layout


def expected_split(batches, names, label_key, dtype):
    """Keras's own steps: each batch reshaped to (n, 3, 32, 32), stacked in order, channels moved last."""
    x = np.concatenate([batches[name][b"data"].reshape(-1, 3, 32, 32) for name in names]).transpose(0, 2, 3, 1)
    y = np.array(sum((batches[name][label_key.encode()] for name in names), []), dtype=dtype).reshape(-1, 1)
    return x, y


def assert_cifar10(loaded, batches):
    (x_train, y_train), (x_test, y_test) = loaded
    names = [f"data_batch_{i}" for i in range(1, 6)]
    want_x, want_y = expected_split(batches, names, "labels", np.uint8)
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1) and x_train.flags.c_contiguous
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert np.array_equal(x_train, want_x) and np.array_equal(y_train, want_y)
    # Example 2 is data_batch_2's first; pixel (row 3, col 5) of its blue plane:
    assert x_train[2, 3, 5, 2] == batches["data_batch_2"][b"data"][0, 2 * 1024 + 3 * 32 + 5]
    want_x, want_y = expected_split(batches, ["test_batch"], "labels", np.uint8)
    assert x_test.shape == (3, 32, 32, 3) and np.array_equal(x_test, want_x) and np.array_equal(y_test, want_y)


CIFAR10_COUNTS = (2, 2, 2, 2, 2, 3)


def test_cifar10_real_constants_are_keras():
    layout = cifar10.LAYOUT
    assert layout.base_url + layout.archive.name == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert layout.archive.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert [name for name, _ in layout.batches] == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    assert sum(n for _, n in layout.train) == 50000 and layout.test == (("test_batch", 10000),)


def test_cifar10_archive_and_extracted_folder_give_keras_arrays(monkeypatch, guard, tmp_path):
    archive, batches, layout = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS)
    file = tmp_path / "any-name.tgz"
    file.write_bytes(archive)
    assert_cifar10(cifar10.load_data(path=file), batches)
    keras_dir = tmp_path / "keras"  # ~/.keras/datasets: the archive under Keras's name
    keras_dir.mkdir()
    (keras_dir / "cifar-10-batches-py.tar.gz").write_bytes(archive)
    assert_cifar10(cifar10.load_data(path=keras_dir), batches)
    extracted = tmp_path / "data" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    for name, batch in batches.items():
        (extracted / name).write_bytes(py2_pickle(batch))
    assert_cifar10(cifar10.load_data(path=extracted), batches)
    monkeypatch.setenv("MINICNN_DATA_DIR", str(extracted.parent))
    assert_cifar10(cifar10.load_data(), batches)
    assert guard.urls == []

    file.write_bytes(archive[:-1] + bytes([archive[-1] ^ 1]))
    with pytest.raises(ValueError, match=f"{file} .from the path argument.: sha256 is"):
        cifar10.load_data(path=file)
    (extracted / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match="lacks test_batch"):
        cifar10.load_data()


def test_cifar10_download_fills_cache_and_reuses_it(monkeypatch, server, guard, tmp_path):
    archive, batches, layout = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS)
    monkeypatch.setattr(cifar10, "LAYOUT", dataclasses.replace(layout, base_url=f"{server.base}/kriz/"))
    server.files["/kriz/cifar-10-python.tar.gz"] = archive
    cache = tmp_path / "cache" / "datasets" / "cifar10"
    cache.mkdir(parents=True)
    (cache / "cifar-10-python.tar.gz").write_bytes(archive[:100])  # an interrupted copy: replaced
    assert_cifar10(cifar10.load_data(), batches)
    assert ("GET", "/kriz/cifar-10-python.tar.gz") in server.requests
    assert [p.name for p in cache.iterdir()] == ["cifar-10-python.tar.gz"]
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == archive
    server.requests.clear()
    guard.urls.clear()
    assert_cifar10(cifar10.load_data(), batches)
    assert server.requests == [] and guard.urls == []


def test_cifar10_offline_fails_fast_listing_what_was_tried(tmp_path):
    start = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as info:
        cifar10.load_data()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert f"cache {tmp_path / 'cache' / 'datasets' / 'cifar10'}: no cifar-10-python.tar.gz" in message
    assert "mirror https://www.cs.toronto.edu/~kriz/: unreachable: cannot connect" in message
    assert "cifar10.load_data(path='/path/to/cifar-10-python.tar.gz')" in message


def test_a_bad_budget_is_reported_before_any_network_work(monkeypatch, guard):
    monkeypatch.setenv("MINICNN_DOWNLOAD_BUDGET", "soon")
    for module in (cifar10, fashion_mnist):
        with pytest.raises(ValueError, match="MINICNN_DOWNLOAD_BUDGET='soon' is invalid"):
            module.load_data()
    assert guard.urls == []


def test_cifar100_fine_and_coarse_labels_like_keras(monkeypatch, tmp_path):
    archive, batches, _ = tiny_cifar(monkeypatch, cifar100, (4, 2))
    file = tmp_path / "cifar-100-python.tar.gz"
    file.write_bytes(archive)
    for mode in ("fine", "coarse"):
        (x_train, y_train), (x_test, y_test) = cifar100.load_data(mode, path=file)
        for (x, y), name in (((x_train, y_train), "train"), ((x_test, y_test), "test")):
            want_x, want_y = expected_split(batches, [name], f"{mode}_labels", np.int64)
            assert x.dtype == np.uint8 and y.dtype == np.int64 and y.shape == (len(x), 1)
            assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data("medium", path=file)


# ---- hostile and damaged files ----

class Calls:
    """Pickles as a call of function(*args): what a hostile pickle does when loaded freely."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


def hostile_pickles(marker):
    """(what, pickle bytes, why refused) for pickles that would create `marker` or do harm."""
    data = np.zeros((2, 3072), np.uint8)
    return [
        ("os.system", pickle.dumps({b"data": Calls(os.system, f"touch {marker}"), b"labels": [0, 1]}, protocol=2),
         "global posix.system is not allowed"),
        ("exec, protocol 4", pickle.dumps({b"labels": Calls(exec, f"open({str(marker)!r}, 'w')")}, protocol=4),
         "global builtins.exec is not allowed"),
        ("INST opcode", f"(S'touch {marker}'\nios\nsystem\n.".encode(), "opcode INST is not allowed"),
        ("object array", py2_pickle({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}),
         "dtype b'O8' is not allowed"),
        ("float array", py2_pickle({b"data": data.astype(np.float64), b"labels": [0, 1]}),
         "dtype b'f8' is not allowed"),
        ("numpy.ndarray called", b"\x80\x02cnumpy\nndarray\nK\x02\x85R.", "is not callable"),
        ("memo bomb", b"\x80\x02K\x01r\xff\xff\xff\x7f.", "memo index 2147483647 out of range"),
        ("truncated", py2_pickle({b"data": data, b"labels": [0, 1]})[:-40], "but only"),
        ("not a dict", py2_pickle([data, [0, 1]]), "the pickle holds a list, not a dict"),
    ]


@pytest.mark.parametrize("index", range(9))
def test_hostile_or_damaged_pickles_are_refused_without_running_code(monkeypatch, tmp_path, index):
    _, batches, _ = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS)
    marker = tmp_path / "code-ran"
    what, evil, reason = hostile_pickles(marker)[index]
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, batch in batches.items():
        (folder / name).write_bytes(evil if name == "data_batch_3" else py2_pickle(batch))
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"{folder / 'data_batch_3'}: ") as info:
        cifar10.load_data(path=folder)
    assert time.monotonic() - start < 2, what
    assert not marker.exists(), f"{what}: code from the pickle ran"
    assert reason in str(info.value), what


def test_hostile_pickle_inside_a_checksummed_archive_is_refused(monkeypatch, tmp_path):
    marker = tmp_path / "code-ran"
    evil = {"cifar-10-batches-py/test_batch": hostile_pickles(marker)[0][1]}  # replaces the real one
    archive, _, _ = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS, extra=evil)
    (tmp_path / "a.tar.gz").write_bytes(archive)
    with pytest.raises(ValueError, match=r"a.tar.gz:cifar-10-batches-py/test_batch: .*global posix.system is not"):
        cifar10.load_data(path=tmp_path / "a.tar.gz")
    assert not marker.exists()


def test_archive_members_are_read_in_memory_links_and_escapes_ignored(monkeypatch, tmp_path):
    extra = {"../../escaped": b"outside", "cifar-10-batches-py/data_batch_4": None}  # symlink replaces a batch
    archive, _, _ = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS, extra=extra)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    (tmp_path / "a.tar.gz").write_bytes(archive)
    with pytest.raises(ValueError, match="no regular file cifar-10-batches-py/data_batch_4"):
        cifar10.load_data(path=tmp_path / "a.tar.gz")
    assert not (tmp_path / "escaped").exists() and not any((tmp_path / "work").iterdir())


@pytest.mark.parametrize("change, message", [
    (lambda b: b.pop(b"labels"), "no labels entry"),
    (lambda b: b.update({b"labels": [0, 10]}), "labels is not a list of 2 integers from 0 to 9"),
    (lambda b: b.update({b"labels": [0]}), "labels is not a list of 2"),
    (lambda b: b.update({b"data": b[b"data"][:, :100]}), r"data is \(2, 100\), expected a uint8 array"),
])
def test_batches_of_the_wrong_shape_or_labels_are_refused(monkeypatch, tmp_path, change, message):
    _, batches, _ = tiny_cifar(monkeypatch, cifar10, CIFAR10_COUNTS)
    change(batches["data_batch_5"])
    for name, batch in batches.items():
        (tmp_path / name).write_bytes(py2_pickle(batch))
    with pytest.raises(ValueError, match=f"data_batch_5: {message}"):
        cifar10.load_data(path=tmp_path)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_python3_pickles_of_batches_load_too(protocol):
    batch = cifar_batch(0, 2, {"labels": 10})
    loaded = safe_pickle.load_dict(pickle.dumps(batch, protocol=protocol), "x")
    assert np.array_equal(loaded["data"], batch[b"data"]) and loaded["labels"] == batch[b"labels"]
    assert loaded["data"].dtype == np.uint8
