"""get_config / from_config / to_json / model_from_json: architectures as Keras configs."""
import json

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers, models
from train_mnist import build_model

# The layout tf.keras 2.x's model.to_json() writes for a small CNN (hand-written after it;
# the Keras-made files that issue 9 asks for come with a generation script later).
TF_KERAS_2_JSON = json.dumps({
    "class_name": "Sequential", "keras_version": "2.11.0", "backend": "tensorflow",
    "config": {"name": "sequential_7", "layers": [
        {"class_name": "Conv2D", "config": {
            "name": "conv2d_9", "trainable": True, "batch_input_shape": [None, 12, 12, 1],
            "dtype": "float32", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
            "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
            "activation": "relu", "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None}},
        {"class_name": "MaxPooling2D", "config": {
            "name": "max_pooling2d_3", "trainable": True, "dtype": "float32", "pool_size": [2, 2],
            "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
        {"class_name": "Flatten", "config": {"name": "flatten_2", "trainable": True, "dtype": "float32",
                                             "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {
            "name": "dense_5", "trainable": True, "dtype": "float32", "units": 3, "activation": "softmax",
            "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}}]}})


def summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def test_the_book_model_round_trips_through_json():
    m = build_model()
    twin = models.model_from_json(m.to_json())
    assert summary_text(twin) == summary_text(m)
    twin.set_weights(m.get_weights())
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(twin.predict(x), m.predict(x))
    config = json.loads(m.to_json())
    assert config["class_name"] == "Sequential" and config["config"]["layers"][0]["class_name"] == "InputLayer"
    assert config["config"]["layers"][1]["config"]["kernel_initializer"]["class_name"] == "GlorotUniform"


def test_a_functional_model_round_trips():
    inputs = keras.Input(shape=(8, 8, 1))
    x = layers.Conv2D(3, 2, activation="relu", trainable=False)(inputs)
    x = layers.LeakyReLU(negative_slope=0.1)(layers.Flatten()(x))
    m = keras.Model(inputs=inputs, outputs=layers.Dense(2, activation="softmax")(x))
    twin = models.model_from_json(m.to_json())
    assert [type(l).__name__ for l in twin.layers] == ["InputLayer", "Conv2D", "Flatten", "LeakyReLU", "Dense"]
    assert [l.name for l in twin.layers] == [l.name for l in m.layers]
    assert not twin.layers[1].trainable and twin.layers[3].negative_slope == 0.1
    assert twin.count_params() == m.count_params()


def test_a_tf_keras_2_config_loads():
    m = models.model_from_json(TF_KERAS_2_JSON)
    assert m.input_shape == (None, 12, 12, 1) and m.output_shape == (None, 3)
    assert [l.name for l in m.layers] == ["conv2d_9", "max_pooling2d_3", "flatten_2", "dense_5"]
    assert m.count_params() == 4 * 9 + 4 + 100 * 3 + 3


def test_what_minicnn_cannot_build_is_named():
    config = json.loads(TF_KERAS_2_JSON)
    config["config"]["layers"][0]["config"]["groups"] = 2
    with pytest.raises(ValueError, match=r"Conv2D.from_config: groups=2 is not supported"):
        models.model_from_json(json.dumps(config))
    config["config"]["layers"][0] = {"class_name": "LSTM", "config": {}}
    with pytest.raises(ValueError, match="layer class 'LSTM' is not available in minicnn"):
        models.model_from_json(json.dumps(config))
    with pytest.raises(ValueError, match="not a JSON model config"):
        models.model_from_json("{not json")
    with pytest.raises(ValueError, match="'Bogus' is not a model"):
        models.model_from_json(json.dumps({"class_name": "Bogus", "config": {}}))


def test_custom_initializers_cannot_be_serialized():
    m = keras.Sequential([layers.Dense(2, kernel_initializer=lambda shape: np.ones(shape), input_shape=(3,))])
    with pytest.raises(TypeError, match="Cannot serialize the initializer"):
        m.to_json()
