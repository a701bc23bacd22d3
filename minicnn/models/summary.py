"""model.summary(): the classic Keras 2 table, byte for byte.

Rules from Keras 2.2.4 ``keras/utils/layer_utils.py`` (``print_summary``) for
models whose layers form a chain: 65 columns with stops at 29, 55 and 65;
``line_length``, ``positions``, ``show_trainable`` and ``layer_range`` as
tf.keras 2 took them (``print_fn`` gets each line).
"""
import re

import numpy as np

LINE_LENGTH = 65
RELATIVE_POSITIONS = (0.45, 0.85, 1.0)
POSITIONS = (29, 55, 65)  # int(65 * p) for p in RELATIVE_POSITIONS
TRAINABLE_WIDTH = 11      # tf.keras 2's show_trainable column


def format_row(fields, positions=POSITIONS):
    """One row, cell by cell as Keras builds it.

    Before each cell after the first the line's last character becomes a
    space (so a long cell never touches the next), the cell is appended, and
    the line is cut at the cell's stop and padded to it. This is why
    'max_pooling2d_1 (MaxPooling2D)' prints as 'max_pooling2d_1 (MaxPooling2'.
    """
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line = line[:-1] + " "
        line += str(field)
        line = line[:positions[i]]
        line += " " * (positions[i] - len(line))
    return line


def summary_lines(model_name, rows, total_params, trainable_params=None, line_length=LINE_LENGTH,
                  positions=POSITIONS, header=("Layer (type)", "Output Shape", "Param #")):
    """All lines of the table; rows are (name (class), output_shape_text, params[, trainable])."""
    trainable_params = total_params if trainable_params is None else trainable_params
    lines = [f'Model: "{model_name}"', "_" * line_length, format_row(header, positions), "=" * line_length]
    for i, row in enumerate(rows):
        lines.append(format_row(row, positions))
        lines.append(("=" if i == len(rows) - 1 else "_") * line_length)
    if not rows:
        lines.append("=" * line_length)
    lines += [f"Total params: {total_params:,}", f"Trainable params: {trainable_params:,}",
              f"Non-trainable params: {total_params - trainable_params:,}", "_" * line_length]
    return lines


def table_geometry(line_length, positions, show_trainable):
    """(line_length, column stops, header) as Keras 2 computes them: ``positions``
    at most 1 are fractions of the line; show_trainable adds an 11-wide column."""
    if line_length is None:
        line_length = LINE_LENGTH
    elif isinstance(line_length, bool) or not isinstance(line_length, (int, np.integer)) or line_length < 1:
        raise ValueError(f"summary: line_length must be a positive int. Received: line_length={line_length!r}")
    positions = RELATIVE_POSITIONS if positions is None else positions
    if not isinstance(positions, (list, tuple)) or len(positions) != 3 or not all(
            isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool) for p in positions):
        raise ValueError("summary: positions must be 3 numbers, where each of the columns Layer (type), "
                         "Output Shape and Param # ends (fractions of line_length when all are <= 1). "
                         f"Received: positions={positions!r}")
    if positions[-1] <= 1:
        positions = [int(line_length * p) for p in positions]
    positions, header = [int(p) for p in positions], ["Layer (type)", "Output Shape", "Param #"]
    if show_trainable:
        line_length += TRAINABLE_WIDTH
        positions.append(line_length)
        header.append("Trainable")
    return int(line_length), positions, header


def layer_bounds(layers, layer_range):
    """[first, last + 1] of the layers ``layer_range`` selects, as Keras does: two
    regular expressions matched against the names; the first layer matching the
    first, through the last matching the second."""
    if layer_range is None:
        return 0, len(layers)
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2:
        raise ValueError("layer_range must be a list or tuple of length 2. Received: "
                         f"layer_range = {layer_range}")
    if not all(isinstance(name, str) for name in layer_range):
        raise ValueError(f"layer_range should contain string type only. Received: {layer_range}")
    lower = [i for i, layer in enumerate(layers) if re.match(layer_range[0], layer.name)]
    upper = [i for i, layer in enumerate(layers) if re.match(layer_range[1], layer.name)]
    if not lower or not upper:
        raise ValueError(f"Passed layer_names do not match the layer names in the model. Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"summary: {name} must be True or False. Received: {name}={value!r}")


def print_summary(model, line_length=None, positions=None, print_fn=None, expand_nested=False,
                  show_trainable=False, layer_range=None):
    """Print ``model``'s table line by line through ``print_fn`` (default print).

    ``expand_nested`` is accepted and checked: minicnn's models hold layers
    only, never another model, so there is nothing to expand."""
    if print_fn is not None and not callable(print_fn):
        raise TypeError(f"summary: print_fn must be a function taking one line of text. "
                        f"Received: print_fn={print_fn!r}")
    _check_flag("expand_nested", expand_nested)
    _check_flag("show_trainable", show_trainable)
    line_length, positions, header = table_geometry(line_length, positions, show_trainable)
    layers = model.layers
    first, end = layer_bounds(layers, layer_range)
    rows = []
    for layer in layers[first:end]:
        shape = str(tuple(layer.output_shape))
        if type(layer).__name__ == "InputLayer":
            shape = f"[{shape}]"  # tf.keras shows an Input's shape as a list of one tuple
        row = [f"{layer.name} ({type(layer).__name__})", shape, layer.count_params()]
        if show_trainable:
            row.append("Y" if layer.trainable else "N")
        rows.append(row)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    for line in summary_lines(model.name, rows, model.count_params(), trainable, line_length, positions, header):
        (print_fn or print)(line)
