"""Ready-made datasets, loaded like keras.datasets.

>>> from minicnn.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()

Also ``fashion_mnist``, ``cifar10`` and ``cifar100``, with Keras's arrays.
"""

from . import cifar10, cifar100, fashion_mnist, mnist
from .errors import DatasetUnavailableError

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "DatasetUnavailableError"]
