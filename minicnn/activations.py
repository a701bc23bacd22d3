"""Activations by Keras name; the names and the math live in minicnn.ops.bias_act."""
from .ops.bias_act import ACTIVATIONS

NAMES = ACTIVATIONS   # the names layers accept, defined once in minicnn.ops.bias_act


def get(identifier, layer_name="layer"):
    """The canonical activation name for ``identifier`` (None means 'linear')."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return identifier.lower()
    raise ValueError(f"{layer_name}: unknown activation {identifier!r}. "
                     f"Expected one of {list(NAMES)} or None.")
