"""Keras 2's ``keras.utils.np_utils`` path, kept for the scripts that import from it.

Example: ``from minicnn.utils.np_utils import to_categorical``.
"""
from . import to_categorical

__all__ = ["to_categorical"]
