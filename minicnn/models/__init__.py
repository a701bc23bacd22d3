"""Models: Sequential and the functional Model."""
from .model import Model
from .sequential import Sequential
from .serialize import model_from_config, model_from_json

__all__ = ["Model", "Sequential", "model_from_config", "model_from_json"]
