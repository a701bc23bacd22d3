"""CIFAR-10 small color images, loaded like keras.datasets.cifar10.

The archive Keras downloads (cifar-10-python.tar.gz from the CIFAR page,
checked against Keras's file_hash) is kept in the cache as published and
read in memory; see cifar.py for the sources and safe_pickle.py for how
the pickled batches are read without running code from them.
"""

from .cifar import CifarLayout, load
from .download import PublishedFile

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

LAYOUT = CifarLayout(
    title="CIFAR-10",
    module="cifar10",
    archive=PublishedFile("cifar-10-python.tar.gz",
                          "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                          max_bytes=200 << 20),  # 170,498,071 bytes
    base_url="https://www.cs.toronto.edu/~kriz/",
    keras_archives=("cifar-10-batches-py.tar.gz", "cifar-10-batches-py_archive"),
    folder="cifar-10-batches-py",
    train=tuple((f"data_batch_{i}", 10000) for i in range(1, 6)),
    test=(("test_batch", 10000),),
    classes={"labels": 10},
    label_dtype="uint8",
    cache_name="cifar10",
)


def load_data(path=None):
    """Loads the CIFAR-10 dataset.

    50,000 32x32 color training images and 10,000 test images in 10 classes
    (see CLASS_NAMES): the same arrays as ``keras.datasets.cifar10.load_data()``
    with channels-last images, training images in the order of data_batch_1
    to data_batch_5.

    Args:
        path: a copy you already have: the archive cifar-10-python.tar.gz
            (any file name; its sha256 is checked), a folder holding it (also
            under Keras's names cifar-10-batches-py.tar.gz or
            cifar-10-batches-py_archive), or the extracted folder
            cifar-10-batches-py (or one holding it). Nothing is downloaded
            then. No checksum is published for the extracted batch files:
            they are checked for shape, type and label range only. Defaults
            to the archive or extracted folder inside $MINICNN_DATA_DIR when
            there is one; else the archive is read from the cache
            ($MINICNN_CACHE_DIR/datasets/cifar10, see minicnn.config),
            downloaded there first if needed (170 MB, within
            $MINICNN_DOWNLOAD_BUDGET seconds, default 180).

    Returns:
        Tuple of NumPy arrays: ``(x_train, y_train), (x_test, y_test)``.
        x_train: uint8, shape (50000, 32, 32, 3), pixel values 0 to 255.
        y_train: uint8, shape (50000, 1), class labels 0 to 9.
        x_test, y_test: the same for the 10,000 test images.

    Raises:
        FileNotFoundError: the given path does not exist or lacks a batch.
        ValueError: the archive is not the published one (sha256), or a
            batch is damaged or not a plain CIFAR pickle (anything that would
            run code is refused); the message names the file.
        DatasetUnavailableError: nothing given or cached and the download
            failed or ran out of time; the message lists what was tried.

    Example:

    >>> from minicnn.datasets import cifar10
    >>> (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
    ((50000, 32, 32, 3), (50000, 1), (10000, 32, 32, 3), (10000, 1))
    """
    return load(LAYOUT, path, "labels")
