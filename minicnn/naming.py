"""Layer and model names as tf.keras hands them out: 'conv2d', 'conv2d_1', ...

A leaf module (it imports nothing of minicnn), so that clear_session can
reset the counters from anywhere without an import cycle.
"""
import re
from collections import defaultdict

_name_counts = defaultdict(int)


def unique_name(base, zero_based=True):
    """tf.keras naming: the first 'conv2d', then 'conv2d_1', 'conv2d_2', ...

    Inputs count from one instead ('input_1', 'input_2'), as in tf.keras."""
    n = _name_counts[base]
    _name_counts[base] += 1
    if not zero_based:
        return f"{base}_{n + 1}"
    return base if n == 0 else f"{base}_{n}"


def reset_names():
    """Forget every name handed out (see clear_session)."""
    _name_counts.clear()


def snake_case(class_name):
    """'MaxPooling2D' -> 'max_pooling2d', 'Conv2D' -> 'conv2d' (Keras's rule)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
