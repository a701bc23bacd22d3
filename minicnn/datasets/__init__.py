"""Ready-made datasets, loaded like keras.datasets.

>>> from minicnn.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
"""

from . import mnist
from .errors import DatasetUnavailableError

__all__ = ["mnist", "DatasetUnavailableError"]
