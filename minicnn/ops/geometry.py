"""The geometry of sliding windows (convolution, pooling), written once.

Used by the layers (output shapes, TensorFlow's SAME padding), by the ops
(checks of explicit pads) and by the tests' naive loops. Pads are always
``(top, bottom, left, right)``, strides ``(sh, sw)`` and dilations ``(dh, dw)``.
A window of k cells dilated by d (dilated convolution) reads every d-th cell,
so it spans ``(k - 1) * d + 1`` cells: every size rule below takes that span.

Example::

    >>> same_pads(28, 3, 2)          # TF SAME: out = ceil(28 / 2) = 14
    (14, 0, 1)
    >>> out_size(28, 3, 2, 0 + 1)    # the same window with those pads
    14
    >>> span(3, 2)                   # a 3-cell kernel dilated by 2 reads cells 0, 2, 4
    5
"""


def span(k, dilation=1):
    """Cells covered by a window of ``k`` taps ``dilation`` apart: (k - 1) * dilation + 1."""
    return (k - 1) * dilation + 1


def out_size(size, k, stride, pad_total):
    """Outputs along one axis of a window ``k`` at ``stride`` over ``size`` cells
    plus ``pad_total`` padding: ``floor((size + pad - k) / stride) + 1`` (< 1: none fits)."""
    return (size + pad_total - k) // stride + 1


def same_pads(size, k, stride):
    """(out, pad_before, pad_after) of TensorFlow's SAME rule along one axis.

    out = ceil(size / stride); the total padding that makes the last window
    fit, pad = max(0, (out - 1) * stride + k - size), is split with the odd
    cell at the end (bottom/right), as TensorFlow does (kernel_shape_util.cc)."""
    out = -(-size // stride)
    pad = max(0, (out - 1) * stride + k - size)
    return out, pad // 2, pad - pad // 2


def out_size_and_pads(size, k, stride, padding):
    """(out, pad_before, pad_after) along one axis for padding 'valid' or 'same'."""
    if padding == "valid":
        return out_size(size, k, stride, 0), 0, 0
    return same_pads(size, k, stride)


def output_hw(h, w, window, strides, pads):
    """(OH, OW) of a window over an (h, w) image with explicit pads."""
    top, bottom, left, right = pads
    return (out_size(h, window[0], strides[0], top + bottom),
            out_size(w, window[1], strides[1], left + right))


def window_geometry(input_shape, window, strides, padding, layer_name, what="kernel", dilation=(1, 1)):
    """Output (H, W) and pads (top, bottom, left, right) of a layer's sliding window.

    ``dilation`` (dh, dw) spreads the window's taps (Conv2D's dilation_rate);
    sizes and SAME pads follow its span, as TensorFlow's. Raises a ValueError
    naming the layer when the input is not rank 4 or a 'valid' window does not
    fit it."""
    if len(input_shape) != 4:
        raise ValueError(f"{layer_name}: expected input of rank 4 (batch, height, width, channels), "
                         f"got shape {tuple(input_shape)}")
    h, w = input_shape[1], input_shape[2]
    kh, kw = span(window[0], dilation[0]), span(window[1], dilation[1])
    if padding == "valid" and (kh > h or kw > w):
        size = f"{what} size {tuple(window)}"
        if tuple(dilation) != (1, 1):
            size += f" with dilation_rate {tuple(dilation)} spans {(kh, kw)} cells and"
        raise ValueError(f"{layer_name}: {size} is larger than the input's spatial "
                         f"size ({h}, {w}) with padding='valid'. Use a smaller {what}, "
                         "padding='same', or a larger input.")
    oh, top, bottom = out_size_and_pads(h, kh, strides[0], padding)
    ow, left, right = out_size_and_pads(w, kw, strides[1], padding)
    return (oh, ow), (top, bottom, left, right)


def window_view(xp_, i, j, oh, ow, strides):
    """The cells of padded ``xp_`` that window offset (i, j) touches, one per output cell.

    Output cell (r, q) reads padded row r*sh + i and column q*sw + j, so offset
    (i, j) sees rows i, i+sh, ..., i+(oh-1)*sh: one strided slice covers the
    whole output at once (no Python loop over pixels)."""
    sh, sw = strides
    return xp_[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
