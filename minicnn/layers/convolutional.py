"""Keras 2's ``keras.layers.convolutional`` path (``from keras.layers.convolutional import Conv2D``)."""
from .conv import Conv2D
from .pooling import MaxPooling2D  # Keras 2.0 also exported pooling layers from here

__all__ = ["Conv2D", "MaxPooling2D"]
