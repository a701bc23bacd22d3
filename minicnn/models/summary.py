"""model.summary(): the classic Keras 2 table, byte for byte.

Rules from Keras 2.2.4 ``keras/utils/layer_utils.py`` (``print_summary``) for
models whose layers form a chain: 65 columns with stops at 29, 55 and 65.
"""

import numpy as np

LINE_LENGTH = 65
POSITIONS = (29, 55, 65)  # int(65 * p) for p in (.45, .85, 1.)


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


def summary_lines(model_name, rows, total_params, trainable_params=None):
    """All lines of the table; rows are (name, class_name, output_shape_text, params)."""
    trainable_params = total_params if trainable_params is None else trainable_params
    lines = [f'Model: "{model_name}"', "_" * LINE_LENGTH,
             format_row(("Layer (type)", "Output Shape", "Param #")), "=" * LINE_LENGTH]
    for i, (name, cls, shape, params) in enumerate(rows):
        lines.append(format_row((f"{name} ({cls})", shape, params)))
        lines.append(("=" if i == len(rows) - 1 else "_") * LINE_LENGTH)
    if not rows:
        lines.append("=" * LINE_LENGTH)
    lines += [f"Total params: {total_params:,}", f"Trainable params: {trainable_params:,}",
              f"Non-trainable params: {total_params - trainable_params:,}", "_" * LINE_LENGTH]
    return lines


def print_summary(model, print_fn=None):
    """Print ``model``'s table line by line through ``print_fn`` (default print)."""
    print_fn = print_fn or print
    rows = []
    for layer in model.layers:
        shape = str(tuple(layer.output_shape))
        if type(layer).__name__ == "InputLayer":
            shape = f"[{shape}]"  # tf.keras shows an Input's shape as a list of one tuple
        rows.append((layer.name, type(layer).__name__, shape, layer.count_params()))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    for line in summary_lines(model.name, rows, model.count_params(), trainable):
        print_fn(line)
