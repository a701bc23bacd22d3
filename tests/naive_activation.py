"""Naive activations, one number at a time in float64, as the textbooks and Keras's docs write them.

``F[name](u, **args)`` is f(u); ``DF[name](u, **args)`` is f'(u), written out by hand
(mish's in its paper's closed form, not from tanh(softplus)), so they check the ops'
formulas rather than repeat them. ``apply(table, x, name, args)`` maps one over an array.
"""
import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def sigmoid(u):
    return 1 / (1 + math.exp(-u)) if u >= 0 else math.exp(u) / (1 + math.exp(u))


def softplus(u):
    return u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u))


def relu(u, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ReLU.static_call, step by step."""
    x = u if u > threshold else 0.0
    if max_value is not None:
        x = min(max(x, 0.0), max_value)
    return x - negative_slope * max(threshold - u, 0.0)


def relu_slope(u, negative_slope=0.0, max_value=None, threshold=0.0):
    if u <= threshold:
        return negative_slope
    if max_value is not None and not 0 < u < max_value:
        return 0.0
    return 1.0


def gelu(u, approximate=False):
    if approximate:
        return 0.5 * u * (1 + math.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
    return u * 0.5 * (1 + math.erf(u / math.sqrt(2)))          # u * Phi(u)


def gelu_slope(u, approximate=False):
    if approximate:
        c = math.sqrt(2 / math.pi)
        inner = c * (u + 0.044715 * u ** 3)
        sech2 = 1 / math.cosh(inner) ** 2 if abs(inner) < 300 else 0.0   # cosh overflows past ~710
        return 0.5 * (1 + math.tanh(inner)) + 0.5 * u * sech2 * c * (1 + 3 * 0.044715 * u ** 2)
    phi = math.exp(-u * u / 2) / math.sqrt(2 * math.pi)
    return 0.5 * (1 + math.erf(u / math.sqrt(2))) + u * phi       # Phi(u) + u phi(u)


def mish_slope(u):
    """Misra (2019), eq. (5): e^u w / d^2, w = 4(u+1) + 4e^2u + e^3u + e^u(4u+6), d = 2e^u + e^2u + 2."""
    if u > 20:   # e^3u overflows soon; there mish'(u) = 1 to float64 precision
        return 1.0
    e = math.exp(u)
    w = 4 * (u + 1) + 4 * e * e + e ** 3 + e * (4 * u + 6)
    d = 2 * e + e * e + 2
    return e * w / (d * d)


F = {
    "relu": relu, "leaky_relu": lambda u, negative_slope=0.2: u if u > 0 else negative_slope * u,
    "relu6": lambda u: min(max(u, 0.0), 6.0),
    "elu": lambda u, alpha=1.0: u if u > 0 else alpha * (math.exp(u) - 1),
    "selu": lambda u: SELU_SCALE * (u if u > 0 else SELU_ALPHA * (math.exp(u) - 1)),
    "gelu": gelu, "softplus": softplus, "softsign": lambda u: u / (1 + abs(u)),
    "silu": lambda u: u * sigmoid(u),
    "hard_sigmoid": lambda u: 0.0 if u <= -3 else 1.0 if u >= 3 else u / 6 + 0.5,
    "hard_silu": lambda u: 0.0 if u < -3 else u if u > 3 else u * (u + 3) / 6,
    "exponential": math.exp, "mish": lambda u: u * math.tanh(softplus(u)),
}

DF = {
    "relu": relu_slope, "leaky_relu": lambda u, negative_slope=0.2: 1.0 if u > 0 else negative_slope,
    "relu6": lambda u: 1.0 if 0 < u < 6 else 0.0,
    "elu": lambda u, alpha=1.0: 1.0 if u > 0 else alpha * math.exp(u),
    "selu": lambda u: SELU_SCALE * (1.0 if u >= 0 else SELU_ALPHA * math.exp(u)),
    "gelu": gelu_slope, "softplus": sigmoid, "softsign": lambda u: 1 / (1 + abs(u)) ** 2,
    "silu": lambda u: sigmoid(u) + u * sigmoid(u) * (1 - sigmoid(u)),
    "hard_sigmoid": lambda u: 1 / 6 if -3 < u < 3 else 0.0,
    "hard_silu": lambda u: 0.0 if u < -3 else 1.0 if u > 3 else (2 * u + 3) / 6,
    "exponential": math.exp, "mish": mish_slope,
}


def apply(table, x, name, args):
    """table[name] on every element of x, in float64."""
    fn = table[name]
    return np.array([fn(float(v), **args) for v in np.asarray(x).ravel()]).reshape(np.shape(x))
