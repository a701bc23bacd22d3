"""Keras 2 spellings that tutorials still use, where they do not clash with Keras 3."""
import warnings

import numpy as np
import pytest

import minicnn as keras


def test_np_utils_and_the_convolutional_path():
    from minicnn.utils import np_utils
    from minicnn.utils.np_utils import to_categorical
    from minicnn.layers.convolutional import Conv2D, MaxPooling2D
    from minicnn.layers.core import Dense, Flatten  # noqa: F401 (the Keras 2 path exists)
    assert to_categorical is keras.utils.to_categorical is np_utils.to_categorical
    assert Conv2D is keras.layers.Conv2D and MaxPooling2D is keras.layers.MaxPooling2D
    np.testing.assert_array_equal(to_categorical([2], 3), [[0, 0, 1]])


def test_backend_image_data_format():
    assert keras.backend.image_data_format() == "channels_last"
    assert keras.backend.floatx() == "float32"


def test_lr_is_accepted_with_keras_2s_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="use `learning_rate` instead"):
        opt = keras.optimizers.RMSprop(lr=1e-4)
    assert opt.learning_rate == pytest.approx(1e-4)
    with pytest.warns(DeprecationWarning):
        assert keras.optimizers.SGD(lr=0.5).learning_rate == 0.5
    with warnings.catch_warnings(), pytest.raises(ValueError, match="learning_rate"):
        warnings.simplefilter("ignore")
        keras.optimizers.RMSprop(lr=-1)
