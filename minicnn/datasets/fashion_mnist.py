"""Fashion-MNIST (Zalando Research), loaded like keras.datasets.fashion_mnist.

Sources, in order: a folder given by the user (the path argument, or a
fashion-mnist folder inside $MINICNN_DATA_DIR), then the cache folder, then
downloads that fill it: Keras's own origin, then Zalando's. The four .gz
files are checked against the sha256 that Keras pins for them
(keras/src/datasets/fashion_mnist.py, FILE_HASHES) before use, and kept in
the cache as published.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config
from .cache import dataset_cache_dir
from .download import check_sha256, fetch_published
from .idx import GZIP_MAGIC, IdxSpec, maybe_gunzip
from .mnist import DATA_DIR_ENV

MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # keras.datasets' origin
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Zalando's; same files
)
CACHE_NAME = "fashion-mnist"  # $MINICNN_CACHE_DIR/datasets/fashion-mnist
DATA_DIR_FOLDER = "fashion-mnist"  # looked for inside $MINICNN_DATA_DIR
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class GzIdxFile:
    """A published .gz IDX file: name, magic number, shape, sha256 of the .gz."""

    name: str
    magic: int
    shape: tuple
    sha256: str

    @property
    def idx(self):
        # For maybe_gunzip's size cap; the checksum is checked on the .gz instead.
        return IdxSpec(self.name[:-len(".gz")], self.magic, self.shape, sha256="")

    @property
    def max_bytes(self):
        return self.idx.file_size + (1 << 16)  # gzip may add a little to incompressible data


TRAIN_IMAGES = GzIdxFile("train-images-idx3-ubyte.gz", 2051, (60000, 28, 28),
                         "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84")
TRAIN_LABELS = GzIdxFile("train-labels-idx1-ubyte.gz", 2049, (60000,),
                         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845")
TEST_IMAGES = GzIdxFile("t10k-images-idx3-ubyte.gz", 2051, (10000, 28, 28),
                        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073")
TEST_LABELS = GzIdxFile("t10k-labels-idx1-ubyte.gz", 2049, (10000,),
                        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5")
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def load_data(path=None):
    """Loads the Fashion-MNIST dataset of clothing images.

    60,000 28x28 grayscale training images of 10 kinds of clothing (see
    CLASS_NAMES) and 10,000 test images: the same arrays as
    ``keras.datasets.fashion_mnist.load_data()``.

    Args:
        path: a folder holding the four published files
            train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
            t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (e.g.
            ~/.keras/datasets/fashion-mnist); nothing is downloaded then.
            Defaults to $MINICNN_DATA_DIR/fashion-mnist when that folder
            exists; else the files are read from the cache
            ($MINICNN_CACHE_DIR/datasets/fashion-mnist, see minicnn.config),
            downloaded there first if needed, all downloads together within
            $MINICNN_DOWNLOAD_BUDGET seconds (default 180).

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``.
        x_train: uint8, shape (60000, 28, 28), pixel values 0 to 255.
        y_train: uint8, shape (60000,), class labels 0 to 9.
        x_test, y_test: the same for the 10,000 test images.

    Raises:
        FileNotFoundError: the given folder does not exist or lacks a file.
        ValueError: a file is not the published one (sha256) or is damaged;
            the message names it. Also for a bad $MINICNN_DOWNLOAD_BUDGET.
        DatasetUnavailableError: nothing given or cached and every download
            failed or ran out of time; the message lists what was tried.

    Example:

    >>> from minicnn.datasets import fashion_mnist
    >>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
    ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    """
    files = FILES  # read at call time: tests substitute small files
    blobs = _find_files(path, files)
    x_train, y_train, x_test, y_test = (parse_gz_idx(*blobs[file.name], file) for file in files)
    return (x_train, y_train), (x_test, y_test)


def _find_files(path, files):
    if path is not None:
        return read_folder(Path(os.fspath(path)).expanduser(), files, "the path argument")
    looked = []
    data_dir = config.get(DATA_DIR_ENV)
    if data_dir:
        folder = Path(data_dir) / DATA_DIR_FOLDER
        if folder.exists():
            return read_folder(folder, files, f"${DATA_DIR_ENV}")
        looked.append((f"${DATA_DIR_ENV}", f"no folder {folder}"))
    hint = (
        "To use the files you already have ("
        + ", ".join(file.name for file in files)
        + "), point minicnn at their folder:\n"
        "    fashion_mnist.load_data(path='/folder/with/the/gz/files')\n"
        f"or put them in $MINICNN_DATA_DIR/{DATA_DIR_FOLDER}, or copy them into "
        f"{dataset_cache_dir(CACHE_NAME)}."
    )
    return fetch_published("Fashion-MNIST", files, MIRRORS, dataset_cache_dir(CACHE_NAME),
                           hint, looked)


def read_folder(folder, files, origin):
    """{name: (bytes, where)} of the four .gz files in `folder`, each sha256-checked."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(
            f"Fashion-MNIST data not found: {folder} (from {origin}) {what}. Expected a "
            f"folder with {', '.join(file.name for file in files)}."
        )
    missing = [file.name for file in files if not (folder / file.name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST folder {folder} (from {origin}) lacks {', '.join(missing)} "
            "(the .gz files as published: their sha256 is checked)"
        )
    blobs = {}
    for file in files:
        where = str(folder / file.name)
        blobs[file.name] = (check_sha256((folder / file.name).read_bytes(), file, where), where)
    return blobs


def parse_gz_idx(data, where, file):
    """The uint8 array in one .gz IDX file whose sha256 was checked already.

    Still checks the gzip framing, magic number, dimensions and size, so a
    wrong entry in FILES cannot pass silently. Returns a writable copy.
    """
    if data[:2] != GZIP_MAGIC:
        raise ValueError(f"{where}: not a gzip file")
    spec = file.idx
    raw = maybe_gunzip(data, spec, where)
    if len(raw) < spec.header_size:
        raise ValueError(f"{where}: only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != spec.magic:
        raise ValueError(f"{where}: bad magic number {magic}, expected {spec.magic}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", len(spec.shape), offset=4))
    if dims != spec.shape:
        raise ValueError(f"{where}: header gives shape {dims}, expected {spec.shape}")
    if len(raw) != spec.file_size:
        raise ValueError(f"{where}: decompresses to {len(raw)} bytes, expected {spec.file_size}")
    return np.frombuffer(raw, np.uint8, offset=spec.header_size).reshape(spec.shape).copy()
