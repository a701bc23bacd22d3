"""Keras 2's ``keras.layers.convolutional`` path (``from keras.layers.convolutional import Conv2D``)."""
from .conv import Conv2D
from .pooling import AveragePooling2D, MaxPooling2D  # Keras 2 also exported pooling layers from here
from .reshaping import Cropping2D, ZeroPadding2D

Convolution2D = Conv2D

__all__ = ["AveragePooling2D", "Conv2D", "Convolution2D", "Cropping2D", "MaxPooling2D", "ZeroPadding2D"]
