"""Dropout and SpatialDropout2D: randomly zero inputs while training (Keras 3 semantics)."""
from ..ops import dropout
from ..utils import get_rng
from .base import Layer


class Dropout(Layer):
    """Inverted dropout, as ``keras.layers.Dropout``.

    While training, each input unit is set to 0 with probability ``rate`` and
    the others are scaled by ``1 / (1 - rate)``, so the expected sum stays the
    same; in inference the layer is the identity. ``noise_shape`` (one entry
    per input axis, None for "the input's dim", 1 to share the mask along an
    axis) shapes the mask: ``(None, 1, 1, None)`` drops whole channels.

    Reproducibility: the mask is a pure function of (seed, step, position)
    (a counter-based generator, see :mod:`minicnn.ops.dropout`), the same bits
    on every backend. ``seed=None`` draws the layer's seed from
    ``minicnn.utils.get_rng()`` when the layer is made, so
    ``set_random_seed`` makes runs repeat; ``step`` counts the training
    forwards and gives each one a new mask. Backward rebuilds the last
    forward's mask from its recipe (nothing batch-sized is kept). As in
    Keras, the generator's state is not a weight: ``get_weights()`` and saved
    files hold none for this layer, and a loaded model starts again at step 0
    (with the config's seed, or a newly drawn one for ``seed=None``).

    Example::

        >>> from minicnn.layers import Dense, Dropout
        >>> from minicnn.models import Sequential
        >>> Sequential([Dense(8, input_shape=(4,)), Dropout(0.5)]).output_shape
        (None, 8)
    """

    def __init__(self, rate, noise_shape=None, seed=None, input_shape=None, name=None, **kwargs):
        super().__init__(name=name, input_shape=input_shape, **kwargs)
        self.rate = dropout.check_rate(rate, self.name)
        self.noise_shape = dropout.check_noise_shape(noise_shape, self.name)
        self.seed = dropout.check_seed(seed, self.name)   # as given (what get_config saves)
        # the masks' keys, from the given seed or one drawn now from the global generator; each
        # training forward draws the next (see ops.dropout.MaskKeys: a step plan replays that too)
        seed = self.seed if self.seed is not None else int(get_rng().integers(0, 2 ** 32))
        self._keys = dropout.MaskKeys(seed)
        self._ctx = None

    @property
    def mask_seed(self):
        """The seed the masks use: ``seed``, or the one drawn when the layer was made."""
        return self._keys.seed

    @property
    def step(self):
        """Training forwards so far: the mask generator's counter."""
        return self._keys.step

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}

    def build(self, input_shape):
        dropout.resolve_noise_shape(self._noise_shape_for(input_shape), input_shape, self.name)
        super().build(input_shape)

    def _noise_shape_for(self, input_shape):
        return self.noise_shape

    def forward(self, x, training=False):
        y, ctx = dropout.forward(x, self.rate, self._keys, None, self._noise_shape_for(x.shape),
                                 training=training, op=self.name)
        if training:  # only backward needs the mask's recipe; inference touches no state
            self._ctx = ctx
        return y

    def backward(self, dout, need_dx=True):
        ctx = self._use_context()
        return dropout.backward(dout, ctx, op=f"{self.name} backward")


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps, as ``keras.layers.SpatialDropout2D``.

    On NHWC inputs ``(batch, rows, cols, channels)`` the mask has shape
    ``(batch, 1, 1, channels)``: each sample drops each channel entirely or
    keeps it (scaled by ``1 / (1 - rate)``). Needs 4-D inputs; minicnn is
    channels last, so ``data_format`` may only be 'channels_last' (or None).

    Example::

        >>> from minicnn.layers import Conv2D, SpatialDropout2D
        >>> from minicnn.models import Sequential
        >>> Sequential([Conv2D(4, 3, input_shape=(8, 8, 1)), SpatialDropout2D(0.2)]).output_shape
        (None, 6, 6, 4)
    """

    def __init__(self, rate, data_format=None, seed=None, input_shape=None, name=None, **kwargs):
        super().__init__(rate, seed=seed, input_shape=input_shape, name=name, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{self.name}: minicnn is channels last: `data_format` must be "
                             f"'channels_last' or None. Received: data_format={data_format!r}")

    def get_config(self):
        # exactly Keras's keys: its SpatialDropout2D takes no `trainable` or `noise_shape`
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype,
                "data_format": "channels_last"}

    def _noise_shape_for(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with the layer: "
                             f"expected ndim=4, found ndim={len(input_shape)}. Full shape received: "
                             f"{tuple(input_shape)}")
        return (input_shape[0], 1, 1, input_shape[3])
