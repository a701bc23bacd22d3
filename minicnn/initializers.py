"""Weight initializers, as ``keras.initializers``: by name, as objects, or as a function of the shape.

Layers take ``kernel_initializer='he_uniform'``, an object (``HeUniform(seed=1)``,
``RandomNormal(mean=0.0, stddev=0.05)``, ``Constant(0.1)``, ...), a Keras config
dict, or any function ``f(shape)``; the built-in ones save as Keras's config dicts.
An initializer is called as ``init(shape, dtype=None)`` and returns a NumPy array
(float32 unless ``dtype`` says).

Keras 3's formulas (``keras/src/initializers/random_initializers.py``):

- Fans of a weight shape: (in, out) -> fan_in = in, fan_out = out; a conv kernel
  (kh, kw, in, out) -> receptive field rf = kh * kw, fan_in = rf * in,
  fan_out = rf * out; (n,) -> n, n; () -> 1, 1.
- ``VarianceScaling(scale=1, mode='fan_in', distribution='truncated_normal')``:
  n = fan_in, fan_out or (fan_in + fan_out) / 2 (at least 1), v = scale / n;
  'uniform': U(-sqrt(3 v), sqrt(3 v)); 'truncated_normal': N(0, sqrt(v) / 0.87962566103423978)
  redrawn beyond 2 standard deviations (0.8796... is the standard deviation of a
  unit normal cut to [-2, 2], so the draws have variance v); 'untruncated_normal':
  N(0, sqrt(v)). Keras 2's 'normal' means 'truncated_normal'.
- glorot_uniform / glorot_normal: scale 1, fan_avg; he_uniform / he_normal: scale 2,
  fan_in; lecun_uniform / lecun_normal: scale 1, fan_in (uniform / truncated_normal).
- RandomNormal(mean=0, stddev=0.05); RandomUniform(minval=-0.05, maxval=0.05);
  TruncatedNormal(mean=0, stddev=0.05), redrawn beyond 2 stddev; Zeros; Ones;
  Constant(value=0); Identity(gain=1) (2-D); Orthogonal(gain=1): Q of the QR of a
  normal (max(r, c), min(r, c)) matrix, r = prod(shape[:-1]), c = shape[-1], the
  signs of Q's columns made those of diag(R), transposed when r < c.

Draws come from ``minicnn.utils.get_rng()`` (``set_random_seed`` makes them
reproducible). Given a seed, an initializer draws from its own generator, seeded
anew at every call: the same values every time, as Keras's seeded initializers.

Example::

    >>> from minicnn import initializers
    >>> init = initializers.get('he_uniform')
    >>> init((3, 3, 1, 32)).shape
    (3, 3, 1, 32)
    >>> initializers.serialize(initializers.RandomNormal(stddev=0.1))['config']
    {'mean': 0.0, 'stddev': 0.1, 'seed': None}
"""
import math

import numpy as np

from .naming import snake_case
from .utils import get_rng

TRUNCATED_STDDEV = 0.87962566103423978   # std of a unit normal truncated to [-2, 2]


def compute_fans(shape, input_axes=None, output_axes=None):
    """``(fan_in, fan_out)`` of a weight shape, as Keras (see the module docstring)."""
    shape = tuple(int(d) for d in shape)
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes]))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * rf, shape[-1] * rf


def _float(cls, arg, value, positive=False):
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        what = "a positive number" if positive else "a finite number"
        raise ValueError(f"{cls}: `{arg}` must be {what}. Received: {arg}={value!r}")
    return float(value)


def _truncated_normal(rng, shape, mean, stddev):
    """N(mean, stddev) with every draw beyond 2 stddev drawn again (as TensorFlow's)."""
    x = rng.standard_normal(shape)
    bad = np.abs(x) > 2
    while bad.any():
        x[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2
    return mean + stddev * x


class Initializer:
    """Base class: ``init(shape, dtype=None)`` -> array; ``get_config`` / ``from_config``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype=None)")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def _out(values, shape, dtype):
        return np.asarray(values).reshape(tuple(shape)).astype(dtype or "float32", copy=False)


class RandomInitializer(Initializer):
    """An initializer that draws random numbers: from ``get_rng()``, or its own seed."""

    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{type(self).__name__}: `seed` must be an int or None. Received: seed={seed!r}")
        self.seed = None if seed is None else int(seed)

    def rng(self):
        return get_rng() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    """N(mean, stddev). Example: ``RandomNormal(mean=0.0, stddev=0.05, seed=None)``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = _float("RandomNormal", "mean", mean), _float("RandomNormal", "stddev", stddev)

    def __call__(self, shape, dtype=None):
        return self._out(self.rng().normal(self.mean, self.stddev, size=tuple(shape)), shape, dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """N(mean, stddev), draws beyond 2 stddev redrawn. Example: ``TruncatedNormal(stddev=0.05)``."""

    def __call__(self, shape, dtype=None):
        return self._out(_truncated_normal(self.rng(), tuple(shape), self.mean, self.stddev), shape, dtype)


class RandomUniform(RandomInitializer):
    """U(minval, maxval). Example: ``RandomUniform(minval=-0.05, maxval=0.05, seed=None)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = _float("RandomUniform", "minval", minval)
        self.maxval = _float("RandomUniform", "maxval", maxval)

    def __call__(self, shape, dtype=None):
        return self._out(self.rng().uniform(self.minval, self.maxval, size=tuple(shape)), shape, dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class VarianceScaling(RandomInitializer):
    """Draws of variance ``scale / n`` (n from the fans by ``mode``; module docstring).

    Example: ``VarianceScaling(scale=2.0, mode='fan_in', distribution='uniform')``
    is he_uniform."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        name = type(self).__name__
        self.scale = _float(name, "scale", scale, positive=True)
        if mode not in self.MODES:
            raise ValueError(f"{name}: `mode` must be one of {list(self.MODES)}. Received: mode={mode!r}")
        dist = distribution.lower() if isinstance(distribution, str) else distribution
        dist = "truncated_normal" if dist == "normal" else dist   # Keras 2's name
        if dist not in self.DISTRIBUTIONS:
            raise ValueError(f"{name}: `distribution` must be one of {list(self.DISTRIBUTIONS)}. "
                             f"Received: distribution={distribution!r}")
        self.mode, self.distribution = mode, dist
        self.input_axes, self.output_axes = input_axes, output_axes

    def variance(self, shape):
        """The variance scale / n of the draws for ``shape``."""
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        return self.scale / max(1.0, n)

    def __call__(self, shape, dtype=None):
        shape, v, rng = tuple(shape), self.variance(shape), self.rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * v)
            values = rng.uniform(-limit, limit, size=shape)
        elif self.distribution == "truncated_normal":
            values = _truncated_normal(rng, shape, 0.0, math.sqrt(v) / TRUNCATED_STDDEV)
        else:
            values = rng.normal(0.0, math.sqrt(v), size=shape)
        return self._out(values, shape, dtype)

    def _axes_config(self):
        # saved only when set: every Keras 3 reads the config without them
        return {k: v for k, v in (("input_axes", self.input_axes), ("output_axes", self.output_axes))
                if v is not None}

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config(), **self._axes_config()}


def _preset(class_name, scale, mode, distribution, doc):
    """A VarianceScaling with fixed arguments (GlorotUniform, HeNormal, ...), as Keras defines them."""
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, **self._axes_config()}

    return type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                                  "__doc__": doc, "__module__": __name__})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                        "U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)). Example: ``GlorotUniform(seed=None)``.")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Truncated normal of variance 2 / (fan_in + fan_out). Example: ``GlorotNormal()``.")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform",
                    "U(-limit, limit), limit = sqrt(6 / fan_in). Example: ``HeUniform(seed=None)``.")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                   "Truncated normal of variance 2 / fan_in. Example: ``HeNormal()``.")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform",
                       "U(-limit, limit), limit = sqrt(3 / fan_in). Example: ``LecunUniform()``.")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                      "Truncated normal of variance 1 / fan_in (for selu). Example: ``LecunNormal()``.")


class Zeros(Initializer):
    """All zeros. Example: ``Zeros()`` or ``'zeros'``."""

    def __call__(self, shape, dtype=None):
        return np.zeros(tuple(shape), dtype=dtype or "float32")


class Ones(Initializer):
    """All ones. Example: ``Ones()`` or ``'ones'``."""

    def __call__(self, shape, dtype=None):
        return np.ones(tuple(shape), dtype=dtype or "float32")


class Constant(Initializer):
    """Every value ``value`` (a number, or an array that broadcasts). Example: ``Constant(0.1)``."""

    def __init__(self, value=0.0):
        self.value = np.asarray(value, dtype=np.float64)
        if not np.isfinite(self.value).all():
            raise ValueError(f"Constant: `value` must be finite. Received: value={value!r}")

    def __call__(self, shape, dtype=None):
        return np.broadcast_to(self.value, tuple(shape)).astype(dtype or "float32")

    def get_config(self):
        return {"value": self.value.tolist()}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D weights only). Example: ``Identity(gain=1.0)``."""

    def __init__(self, gain=1.0):
        self.gain = _float("Identity", "gain", gain)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity: the weight must be 2-D. Received: shape={tuple(shape)}")
        return (self.gain * np.eye(*shape)).astype(dtype or "float32")

    def get_config(self):
        return {"gain": self.gain}


class Orthogonal(RandomInitializer):
    """A random orthogonal matrix (rows: all axes but the last) times ``gain``.

    Example: ``Orthogonal(gain=1.0, seed=None)``."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = _float("Orthogonal", "gain", gain)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the weight must have at least 2 axes. Received: shape={shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        q, r = np.linalg.qr(self.rng().standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))   # a unique Q: the signs of R's diagonal taken into Q's columns
        if rows < cols:
            q = q.T
        return self._out(self.gain * q, shape, dtype)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


_CLASSES = (Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
            GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal)
_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({snake_case(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update({"normal": RandomNormal, "uniform": RandomUniform, "zero": Zeros, "one": Ones,
                 "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal})
# Keras's snake-case names are the classes too: he_uniform() is HeUniform()
zeros, ones, constant, identity, orthogonal = Zeros, Ones, Constant, Identity, Orthogonal
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, glorot_uniform, glorot_normal = VarianceScaling, GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal
NAMES = tuple(sorted(snake_case(cls.__name__) for cls in _CLASSES))


def _class(name, identifier):
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None and isinstance(name, str):
        cls = {k.lower(): v for k, v in _BY_NAME.items()}.get(name.lower())
    if cls is None:
        raise ValueError(f"Unknown initializer: {identifier!r}. Expected one of {list(NAMES)} (or their "
                         f"class names, e.g. 'HeUniform'), a Keras config dict, or a callable taking a shape.")
    return cls


def get(identifier):
    """An initializer for a name ('he_uniform', 'HeUniform'), a Keras config dict
    ({'class_name': 'HeUniform', 'config': {'seed': None}}), an initializer class or
    object, or a callable taking a shape (returned as it is). None gives None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict):
        cls = _class(identifier.get("class_name"), identifier)
        try:
            return cls.from_config(dict(identifier.get("config") or {}))
        except TypeError as e:
            raise ValueError(f"Unsupported {cls.__name__} config {identifier.get('config')!r}: {e}") from None
    if isinstance(identifier, str):
        return _class(identifier, identifier)()
    if callable(identifier):
        return identifier
    raise ValueError(f"Unknown initializer: {identifier!r}. Expected one of {list(NAMES)}, a Keras config "
                     "dict, or a callable taking a shape.")


deserialize = get


def serialize(initializer):
    """Keras's config dict of a built-in initializer (a TypeError for a custom callable)."""
    if isinstance(initializer, str):
        initializer = get(initializer)
    if type(initializer) not in _CLASSES:
        raise TypeError(f"Cannot serialize the initializer {initializer!r}: only minicnn.initializers' "
                        f"own ({', '.join(NAMES)}) can be saved in a model config.")
    return {"module": "keras.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}
