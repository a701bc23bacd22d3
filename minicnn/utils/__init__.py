"""Small helpers with Keras's names: to_categorical, set_random_seed."""
import numpy as np

from .history_plot import plot_history
from .model_plot import model_to_dot, plot_model
from .sequence import PyDataset, Sequence

_rng = np.random.default_rng()


def get_rng():
    """The generator behind weight initialisation and shuffling."""
    return _rng


def set_random_seed(seed):
    """Make initial weights and shuffling reproducible, as in Keras.

    Example::

        >>> from minicnn.utils import set_random_seed
        >>> set_random_seed(42)
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed expects an int. Received: seed={seed!r}")
    _rng = np.random.default_rng(int(seed))


def clear_session():
    """As ``keras.backend.clear_session()``: see :func:`minicnn.backend.clear_session`."""
    from ..backend import clear_session as clear
    clear()


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels, like ``keras.utils.to_categorical``.

    Example::

        >>> to_categorical([0, 2], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    y = np.asarray(y)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"to_categorical expects integer class labels. Received dtype {y.dtype} "
                             "with non-integer values")
    y = y.astype("int64")
    # Keras drops a trailing axis of size 1: labels shaped (n, 1) act as (n,)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical expects labels >= 0. Received a minimum of {y.min()}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: label {y.max()} does not fit num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
