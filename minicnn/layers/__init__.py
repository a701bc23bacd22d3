"""Layers with Keras's names (keras.layers): Input, Conv2D, MaxPooling2D, Flatten, Dense, ..."""
from .base import KerasTensor, Layer
from .conv import Conv2D
from .core import Dense, Flatten
from .input import Input, InputLayer
from .leaky_relu import LeakyReLU
from .pooling import MaxPooling2D
# -- regularization layers (Dropout, BatchNormalization) --
# -- activation layers (Activation, ReLU, Softmax, ...) --
# -- pooling and reshaping layers (AveragePooling2D, ZeroPadding2D, Reshape, ...) --

__all__ = sorted(name for name, value in globals().items()
                 if isinstance(value, type) and issubclass(value, (Layer, KerasTensor)))
