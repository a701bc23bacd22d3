"""CIFAR-100 small color images, loaded like keras.datasets.cifar100.

The same machinery as CIFAR-10 (cifar.py): Keras's archive
(cifar-100-python.tar.gz, checked against Keras's file_hash), kept in the
cache and read in memory, its pickles read by safe_pickle.
"""

from .cifar import CifarLayout, load
from .download import PublishedFile

LABEL_MODES = {"fine": "fine_labels", "coarse": "coarse_labels"}

LAYOUT = CifarLayout(
    title="CIFAR-100",
    module="cifar100",
    archive=PublishedFile("cifar-100-python.tar.gz",
                          "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
                          max_bytes=200 << 20),  # 169,001,437 bytes
    base_url="https://www.cs.toronto.edu/~kriz/",
    keras_archives=("cifar-100-python-target_archive",),
    folder="cifar-100-python",
    train=(("train", 50000),),
    test=(("test", 10000),),
    classes={"fine_labels": 100, "coarse_labels": 20},
    label_dtype="int64",  # Keras reshapes the pickled list without a cast
    cache_name="cifar100",
)


def load_data(label_mode="fine", path=None):
    """Loads the CIFAR-100 dataset.

    50,000 32x32 color training images and 10,000 test images, labeled with
    100 fine classes grouped into 20 coarse ones: the same arrays as
    ``keras.datasets.cifar100.load_data(label_mode)``, channels last.

    Args:
        label_mode: "fine" (labels 0 to 99) or "coarse" (the superclass,
            0 to 19).
        path: a copy you already have: the archive cifar-100-python.tar.gz
            (any file name; its sha256 is checked), a folder holding it, or
            the extracted folder cifar-100-python (or one holding it; its
            train and test files have no published checksum and are checked
            for shape, type and label range only). Defaults to the archive or
            extracted folder inside $MINICNN_DATA_DIR when there is one; else
            the archive is read from the cache ($MINICNN_CACHE_DIR/datasets/
            cifar100), downloaded there first if needed (169 MB, within
            $MINICNN_DOWNLOAD_BUDGET seconds, default 180).

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``.
        x_train: uint8, shape (50000, 32, 32, 3), pixel values 0 to 255.
        y_train: int64, shape (50000, 1), as Keras returns it (its docstring
            says uint8, its code gives int64).
        x_test, y_test: the same for the 10,000 test images.

    Raises:
        ValueError: a bad label_mode; the archive is not the published one,
            or a file is damaged or not a plain CIFAR pickle.
        FileNotFoundError, DatasetUnavailableError: as cifar10.load_data.
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f'`label_mode` must be one of "fine", "coarse". Received: label_mode={label_mode!r}.')
    return load(LAYOUT, path, LABEL_MODES[label_mode])
