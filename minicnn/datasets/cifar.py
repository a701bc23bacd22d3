"""What CIFAR-10 and CIFAR-100 share: finding the archive, reading its batches.

Both are published as one .tar.gz of pickled batches ("CIFAR-10 python
version"). Sources, in order: what the user gives (the path argument, or
the archive or extracted folder inside $MINICNN_DATA_DIR), then the cache
folder, then the download Keras uses, which fills the cache. The archive's
sha256 (Keras's file_hash) is checked whenever it is read; the batches are
read from it in memory (no member path is ever written to disk) and
unpickled by safe_pickle, which runs nothing from the file.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import config
from .cache import dataset_cache_dir
from .download import PublishedFile, check_sha256, fetch_published
from .fetch import read_tar_members
from .mnist import DATA_DIR_ENV
from .safe_pickle import load_dict

PIXELS = 3 * 32 * 32  # one row of b'data': the red, green and blue 32x32 planes


@dataclass(frozen=True)
class CifarLayout:
    """One CIFAR dataset: its archive and the batches in it, in Keras's order."""

    title: str  # "CIFAR-10", for messages
    module: str  # "cifar10", for messages
    archive: PublishedFile  # the archive as published
    base_url: str  # where the archive is published (archive.name appended)
    keras_archives: tuple  # the names Keras keeps it under in ~/.keras/datasets
    folder: str  # the folder inside the archive, as Keras extracts it
    train: tuple  # ((batch name, examples), ...) concatenated in this order
    test: tuple
    classes: dict  # label key -> number of classes
    label_dtype: str  # of y, as Keras returns it
    cache_name: str  # $MINICNN_CACHE_DIR/datasets/<cache_name>

    @property
    def batches(self):
        return self.train + self.test


def max_batch_bytes(examples):
    # The pixels plus labels, file names and pickle framing (about 45 bytes an example).
    return examples * (PIXELS + 256) + (1 << 16)


def load(layout, path, label_key):
    """``(x_train, y_train), (x_test, y_test)`` as Keras returns them."""
    if label_key not in layout.classes:
        raise ValueError(f"{layout.module}: no labels {label_key!r}; expected one of {sorted(layout.classes)}")
    batches = read_batches(layout, path)
    parts = {name: parse_batch(data, where, layout, name, examples, label_key)
             for (name, examples), (data, where) in zip(layout.batches, batches)}
    result = []
    for split in (layout.train, layout.test):
        # Filled batch by batch: C-contiguous (Keras returns a transposed view), one copy.
        count = sum(examples for _, examples in split)
        x = np.empty((count, 32, 32, 3), np.uint8)
        y = np.empty((count, 1), layout.label_dtype)
        start = 0
        for name, examples in split:
            x[start:start + examples], y[start:start + examples, 0] = parts[name]
            start += examples
        result.append((x, y))
    return tuple(result)


def read_batches(layout, path):
    """[(pickle bytes, where)] of every batch, in layout.batches' order."""
    if path is not None:
        path = Path(os.fspath(path)).expanduser()
        found = find_local(layout, path, whole=True)
        if found is None:
            what = "holds none of these" if path.exists() else "does not exist"
            raise FileNotFoundError(
                f"{layout.title} data not found: {path} (from the path argument) {what}. "
                f"Expected {expected_local(layout)}."
            )
        return read_local(layout, *found, "the path argument")
    looked = []
    data_dir = config.get(DATA_DIR_ENV)
    if data_dir:
        found = find_local(layout, Path(data_dir), whole=False)
        if found is not None:
            return read_local(layout, *found, f"${DATA_DIR_ENV}")
        looked.append((f"${DATA_DIR_ENV}", f"no {layout.archive.name} or {layout.folder} in {data_dir}"))
    cache = dataset_cache_dir(layout.cache_name)
    hint = (
        f"To use a copy you already have ({expected_local(layout)}), point minicnn at it:\n"
        f"    {layout.module}.load_data(path='/path/to/{layout.archive.name}')\n"
        f"or put it in $MINICNN_DATA_DIR, or copy {layout.archive.name} into {cache}."
    )
    blobs = fetch_published(layout.title, [layout.archive], [layout.base_url], cache, hint, looked)
    return batches_in_archive(layout, *blobs[layout.archive.name])


def expected_local(layout):
    return (f"the archive {layout.archive.name} (or Keras's {' or '.join(layout.keras_archives)}), "
            f"or the extracted folder {layout.folder} with "
            f"{', '.join(name for name, _ in layout.batches)}")


def find_local(layout, path, whole):
    """("archive", file) or ("folder", folder) for what `path` holds, or None.

    `whole`: `path` itself may be the archive or the extracted folder (the
    path argument); else only what is inside it counts ($MINICNN_DATA_DIR).
    The archive is preferred: its checksum is published.
    """
    if whole and path.is_file():
        return "archive", path
    if not path.is_dir():
        return None
    for name in (layout.archive.name,) + layout.keras_archives:
        if (path / name).is_file():
            return "archive", path / name
    candidates = [path / layout.folder] + ([path] if whole else [])
    for folder in candidates:
        if any((folder / name).exists() for name, _ in layout.batches):
            return "folder", folder
    return None


def read_local(layout, kind, path, origin):
    if kind == "archive":
        data = check_sha256(path.read_bytes(), layout.archive, f"{path} (from {origin})")
        return batches_in_archive(layout, data, str(path))
    # Extracted batches: no checksum is published for them, so they are
    # checked for shape, type and label range only (parse_batch).
    missing = [name for name, _ in layout.batches if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{layout.title} folder {path} (from {origin}) lacks {', '.join(missing)}")
    batches = []
    for name, examples in layout.batches:
        file = path / name
        if file.stat().st_size > max_batch_bytes(examples):
            raise ValueError(f"{file}: {file.stat().st_size} bytes, too large for a "
                             f"{layout.title} batch of {examples} images")
        batches.append((file.read_bytes(), str(file)))
    return batches


def batches_in_archive(layout, data, where):
    """[(pickle bytes, where)] of the batches in the archive `data`, in memory."""
    members = {f"{layout.folder}/{name}": max_batch_bytes(examples) for name, examples in layout.batches}
    try:
        found = read_tar_members(data, members)
    except Exception as err:  # tarfile, gzip and zlib each fail their own way
        raise ValueError(f"{where}: not a readable .tar.gz archive ({type(err).__name__}: {err})") from None
    absent = [name for name in members if name not in found]
    if absent:
        raise ValueError(f"{where}: no regular file {', '.join(absent)} (or larger than a batch can be)")
    return [(found[name], f"{where}:{name}") for name in members]


def parse_batch(data, where, layout, name, examples, label_key):
    """(x, y) of one batch: x uint8 (n, 32, 32, 3) channels last, y (n,)."""
    batch = load_dict(data, where)
    pixels, labels = batch.get("data"), batch.get(label_key)
    if pixels is None or labels is None:
        raise ValueError(f"{where}: no {'data' if pixels is None else label_key} entry; keys are "
                         f"{sorted(batch)}")
    if not isinstance(pixels, np.ndarray) or pixels.shape != (examples, PIXELS):
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise ValueError(f"{where}: data is {shape}, expected a uint8 array of shape ({examples}, {PIXELS})")
    classes = layout.classes[label_key]
    if not (isinstance(labels, list) and len(labels) == examples
            and all(type(label) is int and 0 <= label < classes for label in labels)):
        raise ValueError(f"{where}: {label_key} is not a list of {examples} integers from 0 to {classes - 1}")
    # Keras: reshape to (n, 3, 32, 32), then transpose to channels last.
    x = pixels.reshape(examples, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.array(labels, dtype=layout.label_dtype)
