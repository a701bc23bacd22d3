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


def get(identifier):
    """The initializer function for a name (or a callable taking a shape)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(f"Unknown initializer: {identifier!r}. Expected one of {sorted(_BY_NAME)} "
                     "or a callable taking a shape.")
