"""Weight initializers by Keras name (kernel 'glorot_uniform', bias 'zeros')."""
import numpy as np

from .utils import get_rng


def _fans(shape):
    """Keras's fans: receptive field = prod(shape[:-2]); fan_in = shape[-2]*rf."""
    if len(shape) < 2:
        return shape[0] if shape else 1, shape[0] if shape else 1
    rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * rf, shape[-1] * rf


def glorot_uniform(shape):
    """Uniform in (-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return get_rng().uniform(-limit, limit, size=shape)


def he_normal(shape):
    """Truncated-free normal with std sqrt(2 / fan_in) (He et al.)."""
    fan_in, _ = _fans(shape)
    return get_rng().normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def zeros(shape):
    return np.zeros(shape)


def ones(shape):
    return np.ones(shape)


_BY_NAME = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "zeros": zeros, "ones": ones}
# Keras's class names, as in saved configs ({"class_name": "GlorotUniform", "config": {...}})
_CLASS_NAMES = {"glorot_uniform": "GlorotUniform", "he_normal": "HeNormal", "zeros": "Zeros", "ones": "Ones"}
_BY_CLASS = {cls.lower(): _BY_NAME[name] for name, cls in _CLASS_NAMES.items()}


def get(identifier):
    """The initializer function for a name ('glorot_uniform', 'GlorotUniform'), a Keras
    config dict ({'class_name': 'GlorotUniform', 'config': {...}}), or a callable."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        fn = _BY_CLASS.get(identifier["class_name"].lower())
        config = identifier.get("config") or {}
        if fn is not None and all(v is None for v in config.values()):  # seed, input_axes...: unset
            return fn
        raise ValueError(f"Unknown or unsupported initializer config: {identifier!r}. Supported: "
                         f"{sorted(_CLASS_NAMES.values())} without a seed.")
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key]
        if key in _BY_CLASS:
            return _BY_CLASS[key]
    raise ValueError(f"Unknown initializer: {identifier!r}. Expected one of {sorted(_BY_NAME)} "
                     "or a callable taking a shape.")


def serialize(fn):
    """Keras's config dict of a built-in initializer (a TypeError for a custom callable)."""
    for name, f in _BY_NAME.items():
        if f is fn:
            config = {"seed": None} if name in ("glorot_uniform", "he_normal") else {}
            return {"module": "keras.initializers", "class_name": _CLASS_NAMES[name],
                    "config": config, "registered_name": None}
    raise TypeError(f"Cannot serialize the initializer {fn!r}: only the built-in ones "
                    f"({sorted(_BY_NAME)}) can be saved in a model config.")
