"""Models: Sequential and the functional Model."""
from .keras_files import load_model
from .model import Model
from .sequential import Sequential
from .serialize import model_from_config, model_from_json

__all__ = ["Model", "Sequential", "load_model", "model_from_config", "model_from_json"]
