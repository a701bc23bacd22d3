"""Layers with Keras's names (keras.layers): Input, Conv2D, MaxPooling2D, Flatten, Dense, ..."""
from .base import KerasTensor, Layer
from .conv import Conv2D
from .core import Dense, Flatten
from .input import Input, InputLayer
from .leaky_relu import LeakyReLU
from .pooling import MaxPooling2D
# -- regularization layers (Dropout, BatchNormalization) --
from .batch_norm import BatchNormalization
from .dropout import Dropout, SpatialDropout2D
# -- activation layers (Activation, ReLU, Softmax, ...) --
from .activation import ELU, Activation, ReLU, Softmax
# -- pooling and reshaping layers (AveragePooling2D, ZeroPadding2D, Reshape, ...) --
from .conv import Conv2D as Convolution2D  # Keras 2's name, the same class
from .pooling import (AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, GlobalAvgPool2D,
                      GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool2D)
from .reshaping import Cropping2D, Reshape, ZeroPadding2D

__all__ = sorted(name for name, value in globals().items()
                 if isinstance(value, type) and issubclass(value, (Layer, KerasTensor)))
