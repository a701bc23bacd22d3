"""Keras 2's ``keras.layers.advanced_activations`` path (``from keras.layers.advanced_activations import LeakyReLU``)."""
from .activation import ELU, ReLU, Softmax
from .leaky_relu import LeakyReLU

__all__ = ["ELU", "LeakyReLU", "ReLU", "Softmax"]
