"""Bad input gets a clear ValueError/TypeError before any work starts."""
import numpy as np
import pytest

import minicnn as keras
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.models import Sequential


def small_model():
    m = Sequential([Conv2D(2, 3, activation="relu", input_shape=(8, 8, 1)), Flatten(),
                    Dense(3, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def test_missing_channel_axis_is_named():
    m = small_model()
    with pytest.raises(ValueError, match=r"expected shape \(None, 8, 8, 1\), got \(4, 8, 8\): add a channel axis"):
        m.fit(np.zeros((4, 8, 8)), np.zeros((4, 3)), verbose=0)


def test_wrong_input_shape_and_rank():
    m = small_model()
    with pytest.raises(ValueError, match=r"expected shape \(None, 8, 8, 1\), got \(4, 9, 8, 1\)"):
        m.predict(np.zeros((4, 9, 8, 1)))
    with pytest.raises(ValueError, match="expected shape"):
        m.evaluate(np.zeros((4, 64)), np.zeros((4, 3)), verbose=0)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="x has 4 samples, y has 5"):
        small_model().fit(np.zeros((4, 8, 8, 1)), np.zeros((5, 3)), verbose=0)


def test_integer_labels_with_categorical_loss_get_a_hint():
    with pytest.raises(ValueError, match="to_categorical"):
        small_model().fit(np.zeros((4, 8, 8, 1)), np.zeros(4), verbose=0)


def test_non_numeric_input():
    with pytest.raises(TypeError, match="x must"):
        small_model().predict(np.array([["a"]]))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        Conv2D(2, 3, activation="relux")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        small_model().compile("adagrad-x", "categorical_crossentropy")
    with pytest.raises(ValueError, match="Unknown loss"):
        small_model().compile("rmsprop", "hinge-x")
    with pytest.raises(ValueError, match="Unknown metric"):
        small_model().compile("rmsprop", "categorical_crossentropy", metrics=["auc"])
    with pytest.raises(ValueError, match="padding"):
        MaxPooling2D(padding="full")


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match=r"Received: kernel_size=\(3, 0\)"):
        Conv2D(2, (3, 0))
    with pytest.raises(ValueError, match="filters"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="units"):
        Dense(-1)
    with pytest.raises(ValueError, match="input_shape"):
        Dense(2, input_shape=(0,))
    with pytest.raises(TypeError, match="unexpected keyword"):
        Dense(2, activaton="relu")


def test_kernel_larger_than_valid_input_fails_at_add():
    m = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), MaxPooling2D(2)])
    with pytest.raises(ValueError, match=r"conv2d\w*: kernel size \(3, 3\) is larger than the input's spatial size \(1, 1\)"):
        m.add(Conv2D(2, 3))
    assert len(m.layers) == 2  # nothing half-added


def test_dense_after_conv_applies_to_the_last_axis():
    m = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1))])
    m.add(Dense(3))   # as in Keras: the kernel is (channels, units), applied at each pixel
    assert m.output_shape == (None, 3, 3, 3) and m.layers[-1].count_params() == 2 * 3 + 3


def test_unbuilt_and_uncompiled_models():
    m = Sequential([Conv2D(2, 3), Flatten(), Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="not yet been built"):
        m.summary()
    with pytest.raises(RuntimeError, match="compile"):
        m.fit(np.zeros((2, 5, 5, 1)), np.zeros((2, 2)))
    # a deferred build from the data works, as in Keras
    assert m.predict(np.zeros((2, 5, 5, 1))).shape == (2, 2)
    assert m.output_shape == (None, 2)


def test_model_wiring_errors():
    a = keras.Input(shape=(4, 4, 1))
    b = keras.Input(shape=(4, 4, 1))
    y = Conv2D(1, 2)(a)
    with pytest.raises(ValueError, match="not computed from `inputs`"):
        keras.Model(inputs=b, outputs=y)
    with pytest.raises(TypeError, match="outputs"):
        keras.Model(inputs=a, outputs="y")
    with pytest.raises(ValueError, match="shape"):
        keras.Input(shape=(4, -1))


def test_fit_argument_errors():
    m = small_model()
    x, y = np.zeros((4, 8, 8, 1)), np.zeros((4, 3))
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match="verbose"):
        m.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="validation_split"):
        m.fit(x, y, validation_split=1.5)


def test_inference_keeps_no_activations_and_backward_needs_training():
    m = small_model()
    m.predict(np.zeros((2, 8, 8, 1)))
    conv = m.layers[0]
    assert conv._ctx is None and conv._a is None  # nothing held between predict calls
    with pytest.raises(RuntimeError, match=r"conv2d\w*: backward\(\) needs a forward\(x, training=True\)"):
        conv.backward(np.zeros((2, 6, 6, 2), np.float32))
    pool = MaxPooling2D()
    pool(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(RuntimeError, match="training=True"):
        pool.backward(np.zeros((1, 2, 2, 1), np.float32))
