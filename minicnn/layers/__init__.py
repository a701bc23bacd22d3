"""Layers with Keras's names: Input, Conv2D, MaxPooling2D, Flatten, Dense, LeakyReLU."""
from .base import KerasTensor, Layer
from .conv import Conv2D
from .core import Dense, Flatten
from .input import Input, InputLayer
from .leaky_relu import LeakyReLU
from .pooling import MaxPooling2D

__all__ = ["Layer", "KerasTensor", "Input", "InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "LeakyReLU"]
