"""TensorFlow's padding rules (kernel_shape_util.cc), shared by conv and pooling."""


def normalize_padding(padding, layer_name):
    """'valid'/'same' in any case -> lower case; anything else is a ValueError."""
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f"{layer_name}: `padding` must be 'valid' or 'same'. Received: padding={padding!r}")


def out_size_and_pads(size, k, stride, padding):
    """(out, pad_before, pad_after) along one axis.

    VALID: out = floor((size - k) / stride) + 1, no padding.
    SAME:  out = ceil(size / stride); the total padding that makes the last
    window fit, pad = max(0, (out - 1) * stride + k - size), is split with the
    odd cell at the end (bottom/right), as TensorFlow does.
    """
    if padding == "valid":
        return (size - k) // stride + 1, 0, 0
    out = -(-size // stride)
    pad = max(0, (out - 1) * stride + k - size)
    return out, pad // 2, pad - pad // 2


def window_geometry(input_shape, window, strides, padding, layer_name, what="kernel"):
    """Output (H, W) and pads (top, bottom, left, right) of a sliding window.

    Raises a ValueError when a 'valid' window does not fit the input."""
    if len(input_shape) != 4:
        raise ValueError(f"{layer_name}: expected input of rank 4 (batch, height, width, channels), "
                         f"got shape {tuple(input_shape)}")
    h, w = input_shape[1], input_shape[2]
    if padding == "valid" and (window[0] > h or window[1] > w):
        raise ValueError(f"{layer_name}: {what} size {window} is larger than the input's spatial "
                         f"size ({h}, {w}) with padding='valid'. Use a smaller {what}, "
                         "padding='same', or a larger input.")
    oh, top, bottom = out_size_and_pads(h, window[0], strides[0], padding)
    ow, left, right = out_size_and_pads(w, window[1], strides[1], padding)
    return (oh, ow), (top, bottom, left, right)
