"""activation: the element-wise activations, each f and f' in one place, on every device.

    a = f(u)        u = z + b, the pre-activation        du = da * f'(u)

The formulas, Keras 3's (``keras/src/activations/activations.py``; its TensorFlow
backend ``keras/src/backend/tensorflow/nn.py`` calls ``tf.nn``), matched against
TensorFlow's numbers in tests/ops/test_activation.py. s, m, t, alpha are arguments::

    relu(u; s=0, m=None, t=0)  g = u if u > t else 0, clipped to [0, m] when m is given;
                               f = g - s * max(t - u, 0)
                               f' = s where u <= t; else 1 where g is not clipped, else 0
    leaky_relu(u; s=0.2)       relu(u; s)             relu6(u)  relu(u; m=6)
    elu(u; alpha=1)            u if u > 0 else alpha * (exp(u) - 1)   f' = 1 | alpha * exp(u)
    selu(u)                    scale * elu(u; alpha), scale = 1.0507009873554805,
                               alpha = 1.6732632423543772            f' = scale (u >= 0) | scale*alpha*exp(u)
    gelu(u)                    u/2 * (1 + erf(u / sqrt(2)))          f' = (1 + erf(u/sqrt 2))/2 + u * phi(u)
    gelu(u; approximate=True)  u/2 * (1 + T), T = tanh(c (u + 0.044715 u^3)), c = sqrt(2/pi)
                               f' = (1 + T)/2 + u/2 * (1 - T^2) * c * (1 + 3 * 0.044715 u^2)
    softplus(u)                log(1 + exp(u)) = max(u, 0) + log1p(exp(-|u|))   f' = sigmoid(u)
    softsign(u)                u / (1 + |u|)                         f' = 1 / (1 + |u|)^2
    silu(u)  (swish)           u * sigmoid(u)                        f' = s (1 + u (1 - s)), s = sigmoid(u)
    hard_sigmoid(u)            relu6(u + 3) / 6 (tf.keras 2: 0.2u + 0.5) f' = 1/6 where -3 < u < 3, else 0
    hard_silu(u)  (hard_swish) u * hard_sigmoid(u)                   f' = hard_sigmoid(u) + u/6 where -3 < u < 3
    exponential(u)             exp(u)                                f' = exp(u)
    mish(u)                    u * tanh(softplus(u))                 f' = T + u (1 - T^2) sigmoid(u), T = tanh(softplus(u))

with phi(u) = exp(-u^2/2) / sqrt(2 pi) and sigmoid(u) = 1 / (1 + exp(-u)), computed from
exp(-|u|) so that nothing overflows. Details matched to TensorFlow: elu and selu compute
exp(u) - 1 (not expm1; it differs for |u| < 1e-3 by up to 1e-8); at a kink f' takes the
value of TensorFlow's gradient (relu'(t) = s, elu'(0) = alpha, selu'(0) = scale, relu6 and
hard_sigmoid 0 at their corners; a clipped relu's f' is 0 at exactly m).

The five activations of the book model, linear, relu without arguments, sigmoid, tanh and
softmax, are bias_act's own (its fused kernels; their f' read the OUTPUT a, so no copy of u
is kept): see minicnn/ops/bias_act.py. Everything here reads u.

Versions, top to bottom: the checks (every device); the reference (NumPy, any float
dtype; erf from Python's math module, element by element, as NumPy has none); the CPU
kernels, for gelu only (its erf; one pass on all cores, float32 arrays from
``MIN_KERNEL_SIZE`` values when compiled kernels run: the other activations' NumPy
ufuncs are faster than a compiled scalar loop); the CUDA launch (``kernels/activation.cu``).

Example::

    >>> params = activation.check_params("my_op", "elu", {"alpha": 0.5})   # {'alpha': 0.5}
    >>> a, u = activation.forward(z, b, "elu", params, in_place=False)    # z now holds u = z + b
    >>> dz = activation.backward(da, u, "elu", params)

(Layers reach these through minicnn.ops.bias_act, which checks the arguments.)
"""
import math

import numpy as np

from .. import backend
from ..backend.devices import BLOCK_1D, grid_1d
from .common import prange, require_array, require_shape

KERNELS = ("activation_forward", "activation_backward")   # in kernels/activation.cu
MIN_KERNEL_SIZE = 1 << 16   # below this, waking the threads costs more than the pass

# Every activation by its Keras name, with its arguments and their defaults.
PARAMS = {
    "linear": {}, "relu": {"negative_slope": 0.0, "max_value": None, "threshold": 0.0},
    "sigmoid": {}, "tanh": {}, "softmax": {"axis": -1},
    "elu": {"alpha": 1.0}, "selu": {}, "gelu": {"approximate": False}, "softplus": {},
    "softsign": {}, "silu": {}, "hard_sigmoid": {}, "relu6": {}, "exponential": {},
    "hard_silu": {}, "mish": {}, "leaky_relu": {"negative_slope": 0.2},
}
NAMES = tuple(PARAMS)
BIAS_ACT_OWN = ("linear", "relu", "sigmoid", "tanh", "softmax")   # with default arguments

# The ACT_* codes of kernels/activation.cu (leaky_relu and relu6 are relu with arguments).
RELU, ELU, SELU, GELU, GELU_TANH, SOFTPLUS, SOFTSIGN, SILU, HARD_SIGMOID, HARD_SILU, \
    EXPONENTIAL, MISH = range(1, 13)
CODES = {"relu": RELU, "elu": ELU, "selu": SELU, "gelu": GELU, "gelu_tanh": GELU_TANH,
         "softplus": SOFTPLUS, "softsign": SOFTSIGN, "silu": SILU, "hard_sigmoid": HARD_SIGMOID,
         "hard_silu": HARD_SILU, "exponential": EXPONENTIAL, "mish": MISH}

SELU_SCALE = 1.0507009873554805
SELU_SCALE_ALPHA = 1.7580993408473766   # scale * alpha
SQRT_2 = 1.4142135623730951
INV_SQRT_2PI = 0.3989422804014327
GELU_C = 0.7978845608028654             # sqrt(2 / pi)
GELU_K = 0.044715


# ----------------------------------------------------------------------------
# checks (every device)
# ----------------------------------------------------------------------------
def _number(op, key, value, allow_none=False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        what = "a finite number" + (" or None" if allow_none else "")
        raise ValueError(f"{op}: `{key}` must be {what}. Received: {key}={value!r}")
    return float(value)


def check_params(op, name, params):
    """The activation's arguments with their defaults filled in, or an error naming them.

    ``name`` must be one of NAMES (the canonical names; minicnn.activations maps
    aliases such as 'swish' to them)."""
    if not isinstance(name, str) or name not in PARAMS:
        raise ValueError(f"{op}: unknown activation {name!r}; expected one of {NAMES}. "
                         f"Received: activation={name!r}")
    allowed = PARAMS[name]
    if not params:
        return allowed   # the defaults (read-only): the common call, kept cheap
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"{op}: activation {name!r} takes the arguments {tuple(allowed)}. "
                        f"Received: {', '.join(f'{k}={params[k]!r}' for k in unknown)}")
    full = {**allowed, **params}
    for key in ("negative_slope", "threshold", "alpha"):
        if key in full:
            full[key] = _number(op, key, full[key])
    if "max_value" in full:
        full["max_value"] = _number(op, "max_value", full["max_value"], allow_none=True)
    if "approximate" in full and not isinstance(full["approximate"], (bool, np.bool_)):
        raise TypeError(f"{op}: `approximate` must be True or False. "
                        f"Received: approximate={full['approximate']!r}")
    if "axis" in full and (isinstance(full["axis"], bool) or not isinstance(full["axis"], (int, np.integer))):
        raise TypeError(f"{op}: `axis` must be an int. Received: axis={full['axis']!r}")
    return full


def is_bias_act_own(name, params):
    """True for the activations bias_act computes itself (f' from the output): the
    five of BIAS_ACT_OWN, relu only without arguments (softmax on any axis)."""
    return name in BIAS_ACT_OWN and (name != "relu" or params == PARAMS["relu"])


def kernel_form(name, params):
    """``(code, p0, p1, p2)``: the activation as the kernels take it (np.int32, 3 np.float32)."""
    if name in ("relu", "leaky_relu", "relu6"):
        s, m, t = _relu_args(name, params)
        code, p = RELU, (s, math.inf if m is None else m, t)    # max_value None travels as +inf
    elif name == "gelu":
        code, p = (GELU_TANH if params["approximate"] else GELU), (0, 0, 0)
    else:
        code, p = CODES[name], (params.get("alpha", 0), 0, 0)   # elu's alpha; the others take none
    return (np.int32(code),) + tuple(np.float32(v) for v in p)


def forward(z, b, name, params, in_place):
    """``(a, u)``: a = f(z + b). With ``in_place`` a is written over z and u is None
    (inference); else z is left holding u = z + b (its own values when b is None:
    z is then never written) and a is a new array."""
    device = backend.device()
    has_bias = b is not None
    if device.kind == "cuda":
        code, p0, p1, p2 = kernel_form(name, params)
        device.require("bias_act", "z", z)
        if has_bias:
            device.require("bias_act", "b", b)
        a = z if in_place else device.empty(z.shape)
        if z.size:
            device.launch("bias_act", "activation", "activation_forward", grid_1d(z.size), (BLOCK_1D, 1, 1),
                          (z, z if b is None else b, a, np.int32(z.size), np.int32(z.shape[-1]),
                           np.int32(has_bias), code, p0, p1, p2))
    elif _cpu_kernel(name, params, z, *((b,) if has_bias else ())):
        from ..backend.cpu import runtime
        a = z if in_place else np.empty_like(z)
        z2, a2 = z.reshape(-1, z.shape[-1]), a.reshape(-1, z.shape[-1])
        runtime().compile(gelu_forward_kernel)(z2, b if has_bias else z2[0], a2, has_bias)
    else:
        if has_bias:
            z += b
        a = value_reference(z, name, params)
        if in_place:
            z[...] = a
            a = z
    return a, (None if in_place else z)


def backward(da, u, name, params):
    """dz = da * f'(u), u the pre-activation forward kept."""
    require_array("bias_act backward", "u", u)
    require_shape("bias_act backward", "u", u, da.shape)
    device = backend.device()
    if device.kind == "cuda":
        code, p0, p1, p2 = kernel_form(name, params)
        device.require("bias_act backward", "da", da)
        device.require("bias_act backward", "u", u)
        dz = device.empty(da.shape)
        if da.size:
            device.launch("bias_act backward", "activation", "activation_backward", grid_1d(da.size),
                          (BLOCK_1D, 1, 1), (da, u, dz, np.int32(da.size), code, p0, p1, p2))
        return dz
    if _cpu_kernel(name, params, da, u):
        from ..backend.cpu import runtime
        dz = np.empty_like(da)
        runtime().compile(gelu_backward_kernel)(da.reshape(-1), u.reshape(-1), dz.reshape(-1))
        return dz
    return da * slope_reference(u, name, params)


# ----------------------------------------------------------------------------
# the reference: NumPy, any float dtype (new arrays; u is never changed)
# ----------------------------------------------------------------------------
def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype, copy=False)


def _exp_neg(u):
    """exp(u) where u <= 0 (elu's negative side), without overflowing where np.where discards it."""
    return np.exp(np.minimum(u, 0))


def _sigmoid(u):
    e = np.exp(-np.abs(u))                      # in (0, 1]: never overflows
    return np.where(u >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(u):
    return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))


def _hard_sigmoid(u):
    return np.clip(u + 3, 0, 6) / 6


def _relu_args(name, params):
    if name == "leaky_relu":
        return params["negative_slope"], None, 0.0
    if name == "relu6":
        return 0.0, 6.0, 0.0
    return params["negative_slope"], params["max_value"], params["threshold"]


def value_reference(u, name, params):
    """f(u) (a new array of u's dtype)."""
    k = u.dtype.type   # constants in u's dtype keep float32 arithmetic in float32
    if name in ("relu", "leaky_relu", "relu6"):
        s, m, t = _relu_args(name, params)
        g = np.where(u > t, u, k(0))
        if m is not None:
            g = np.clip(g, k(0), k(m))
        return g - k(s) * np.maximum(k(t) - u, k(0))
    if name == "elu":
        return np.where(u > 0, u, k(params["alpha"]) * (_exp_neg(u) - 1))
    if name == "selu":
        return np.where(u > 0, k(SELU_SCALE) * u, k(SELU_SCALE_ALPHA) * (_exp_neg(u) - 1))
    if name == "gelu" and params["approximate"]:
        return 0.5 * u * (1 + np.tanh(k(GELU_C) * (u + k(GELU_K) * u * u * u)))
    if name == "gelu":
        return 0.5 * u * (1 + _erf(u / k(SQRT_2)))
    if name == "softplus":
        return _softplus(u)
    if name == "softsign":
        return u / (1 + np.abs(u))
    if name == "silu":
        return u * _sigmoid(u)
    if name == "hard_sigmoid":
        return _hard_sigmoid(u)
    if name == "hard_silu":
        return u * _hard_sigmoid(u)
    if name == "exponential":
        return np.exp(u)
    if name == "mish":
        return u * np.tanh(_softplus(u))
    raise ValueError(f"activation: {name!r} is not computed here (see bias_act)")


def slope_reference(u, name, params):
    """f'(u) (a new array of u's dtype)."""
    k = u.dtype.type
    if name in ("relu", "leaky_relu", "relu6"):
        s, m, t = _relu_args(name, params)
        above = k(1) if m is None else np.where((u > 0) & (u < m), k(1), k(0))
        return np.where(u <= t, k(s), above)
    if name == "elu":
        return np.where(u > 0, k(1), k(params["alpha"]) * _exp_neg(u))
    if name == "selu":
        return np.where(u >= 0, k(SELU_SCALE), k(SELU_SCALE_ALPHA) * _exp_neg(u))
    if name == "gelu" and params["approximate"]:
        th = np.tanh(k(GELU_C) * (u + k(GELU_K) * u * u * u))
        return 0.5 * (1 + th) + 0.5 * u * (1 - th * th) * k(GELU_C) * (1 + k(3 * GELU_K) * u * u)
    if name == "gelu":
        return 0.5 * (1 + _erf(u / k(SQRT_2))) + u * np.exp(-0.5 * u * u) * k(INV_SQRT_2PI)
    if name == "softplus":
        return _sigmoid(u)
    if name == "softsign":
        return 1 / (1 + np.abs(u)) ** 2
    if name == "silu":
        s = _sigmoid(u)
        return s * (1 + u * (1 - s))
    if name == "hard_sigmoid":
        return np.where((u > -3) & (u < 3), k(1 / 6), k(0))
    if name == "hard_silu":
        return _hard_sigmoid(u) + np.where((u > -3) & (u < 3), u / 6, k(0))
    if name == "exponential":
        return np.exp(u)
    if name == "mish":
        th = np.tanh(_softplus(u))
        return th + u * (1 - th * th) * _sigmoid(u)
    raise ValueError(f"activation: {name!r} is not computed here (see bias_act)")


# ----------------------------------------------------------------------------
# the CPU kernels: gelu only (float32; compiled by the CPU runtime). NumPy has
# no erf, so the reference calls math.erf per element (~100x slower than a
# ufunc); for every other activation here NumPy's vectorized float32
# exp/log1p/tanh beat a compiled scalar loop, so the CPU runs the reference.
# ----------------------------------------------------------------------------
def _cpu_kernel(name, params, *arrays):
    if name != "gelu" or params["approximate"] or arrays[0].size < max(MIN_KERNEL_SIZE, 1):
        return False
    from ..backend.cpu import runtime  # late: the CUDA path never loads the CPU runtime
    return runtime().uses_kernels(*arrays)


def gelu_forward_kernel(z2, b, a2, has_bias):
    """a2 = gelu(z2 + b) over (rows, cols); z2 keeps z2 + b when has_bias (a2 may be z2)."""
    rows, cols = z2.shape
    for r in prange(rows):
        for j in range(cols):
            u = z2[r, j]
            if has_bias:
                u = u + b[j]
                z2[r, j] = u
            a2[r, j] = 0.5 * u * (1.0 + math.erf(u / SQRT_2))


def gelu_backward_kernel(da, u, dz):
    """dz = da * gelu'(u), flat arrays."""
    for i in prange(u.shape[0]):
        x = u[i]
        dz[i] = da[i] * (0.5 * (1.0 + math.erf(x / SQRT_2)) + x * math.exp(-0.5 * x * x) * INV_SQRT_2PI)
