"""The `padding` argument of conv and pooling layers (the geometry is in minicnn.ops.geometry)."""


def normalize_padding(padding, layer_name):
    """'valid'/'same' in any case -> lower case; anything else is a ValueError."""
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f"{layer_name}: `padding` must be 'valid' or 'same'. Received: padding={padding!r}")
