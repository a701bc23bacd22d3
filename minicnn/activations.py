"""Activations by Keras name, and as functions (``keras.activations``): NumPy in, NumPy out.

Layers take an activation as a name (``activation='gelu'``), as one of these
functions (``activation=activations.gelu``) or None ('linear'), and save it by
its Keras name ('swish' is saved as 'silu', as Keras does). The math of each
one, its formula and derivative, lives in minicnn.ops.activation (and, for
linear/relu/sigmoid/tanh/softmax, minicnn.ops.bias_act); the functions here run
its NumPy reference in the input's float dtype (float32 unless float64).

Example::

    >>> from minicnn import activations
    >>> activations.relu([-2.0, 0.5], negative_slope=0.1)
    array([-0.2,  0.5], dtype=float32)
    >>> activations.get('swish') is activations.silu
    True
"""
import numpy as np

from .ops import activation as _ops
from .ops import bias_act as _bias_act

NAMES = _ops.NAMES                                   # the canonical names, defined once in the ops
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def _apply(name, x, **params):
    x = np.asarray(x)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32)   # a copy: x is the caller's
    params = _ops.check_params(name, name, params)
    if name == "softmax":   # the reference works on the last axis: move the one asked for there
        axis = params["axis"]
        if not -x.ndim <= axis < max(x.ndim, 1):
            raise ValueError(f"softmax: axis {axis} is out of range for an input of {x.ndim} axes. "
                             f"Received: axis={axis}, x.shape={x.shape}")
        moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
        return np.moveaxis(_bias_act.forward_reference(moved, None, "softmax"), -1, axis)
    if _ops.is_bias_act_own(name, params):
        return _bias_act.forward_reference(x, None, name)
    return _ops.value_reference(x, name, params)


def linear(x):
    """The identity: ``x`` (as float32)."""
    return _apply("linear", x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """``max(x, 0)``; with arguments: x above ``threshold`` (clipped to ``max_value``),
    ``negative_slope * (x - threshold)`` below it, as ``keras.activations.relu``."""
    return _apply("relu", x, negative_slope=negative_slope, max_value=max_value, threshold=threshold)


def leaky_relu(x, negative_slope=0.2):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    return _apply("leaky_relu", x, negative_slope=negative_slope)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return _apply("relu6", x)


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    return _apply("sigmoid", x)


def tanh(x):
    """The hyperbolic tangent."""
    return _apply("tanh", x)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis`` (shifted by the max: no overflow)."""
    return _apply("softmax", x, axis=axis)


def elu(x, alpha=1.0):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _apply("elu", x, alpha=alpha)


def selu(x):
    """``scale * elu(x, alpha)`` with Keras's scale 1.05070098 and alpha 1.67326324."""
    return _apply("selu", x)


def gelu(x, approximate=False):
    """``x/2 * (1 + erf(x / sqrt(2)))``; ``approximate=True``: the tanh form."""
    return _apply("gelu", x, approximate=approximate)


def softplus(x):
    """``log(exp(x) + 1)``, computed without overflow."""
    return _apply("softplus", x)


def softsign(x):
    """``x / (abs(x) + 1)``."""
    return _apply("softsign", x)


def silu(x):
    """``x * sigmoid(x)`` (also named swish)."""
    return _apply("silu", x)


def hard_sigmoid(x):
    """``relu6(x + 3) / 6``: 0 below -3, 1 above 3, ``x/6 + 1/2`` between."""
    return _apply("hard_sigmoid", x)


def hard_silu(x):
    """``x * hard_sigmoid(x)`` (also named hard_swish)."""
    return _apply("hard_silu", x)


def exponential(x):
    """``exp(x)``."""
    return _apply("exponential", x)


def mish(x):
    """``x * tanh(softplus(x))``."""
    return _apply("mish", x)


swish = silu
hard_swish = hard_silu

_BY_NAME = {name: globals()[name] for name in NAMES}
_BY_NAME.update({alias: _BY_NAME[name] for alias, name in ALIASES.items()})
_NAME_OF = {fn: name for name, fn in _BY_NAME.items() if name in NAMES}


def _lookup(identifier):
    """The canonical name of identifier, or None when it names none of ours."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, dict):   # Keras's {"class_name": "function", "config": "relu", ...}
        identifier = identifier.get("config")
    if isinstance(identifier, str):
        key = identifier if identifier in _BY_NAME else identifier.lower()
        return ALIASES.get(key, key) if key in _BY_NAME else None
    return _NAME_OF.get(identifier) if callable(identifier) else None


def _unknown(identifier, who):
    if callable(identifier) and not isinstance(identifier, str):
        return ValueError(f"{who}: activation must be a name or one of minicnn.activations' functions "
                          f"(minicnn has no derivative for a function of your own). "
                          f"Received: activation={identifier!r}")
    return ValueError(f"{who}: unknown activation {identifier!r}. Expected one of "
                      f"{sorted(_BY_NAME)} or None. Received: activation={identifier!r}")


def get(identifier):
    """The activation function for a name ('relu', 'swish', ...), a Keras config dict,
    one of these functions, or None (linear), as ``keras.activations.get``."""
    name = _lookup(identifier)
    if name is None:
        raise _unknown(identifier, "activations.get")
    return _BY_NAME[name]


deserialize = get


def name_of(identifier, layer_name="layer"):
    """The canonical name (what layers keep and save) for what ``get`` accepts;
    an unknown one is a ValueError naming ``layer_name`` and listing the names."""
    name = _lookup(identifier)
    if name is None:
        raise _unknown(identifier, layer_name)
    return name


def serialize(activation):
    """The Keras name of an activation function or name: ``serialize(swish) == 'silu'``."""
    return name_of(activation, "activations.serialize")
