"""Activations by Keras name; the math lives in the backend's bias_act ops."""

NAMES = ("linear", "relu", "sigmoid", "tanh", "softmax")


def get(identifier, layer_name="layer"):
    """The canonical activation name for ``identifier`` (None means 'linear')."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str) and identifier.lower() in NAMES:
        return identifier.lower()
    raise ValueError(f"{layer_name}: unknown activation {identifier!r}. "
                     f"Expected one of {list(NAMES)} or None.")
