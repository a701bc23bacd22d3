"""Keras 3.15.1's activation and initializer numbers, written once into tests/fixtures/activations/.

TensorFlow is no dependency of minicnn; this script is how the fixtures were made. Regenerate::

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1 h5py
    /tmp/tfvenv/bin/python tests/make_activation_fixtures.py

It writes:

- ``activations.npz``: for every case of ``CASES`` (a Keras activation and its arguments),
  ``<case>/x`` (float32 inputs, 0 exactly among them), ``<case>/y`` = the activation of x,
  ``<case>/dy`` (a random upstream gradient) and ``<case>/dx`` = TensorFlow's gradient
  (``tf.GradientTape``, eager). Softmax cases are rows (``axis`` given in the case).
- ``configs.json``: ``get_config()`` of the activation layers, of Dense/Conv2D with a string
  activation, and ``keras.initializers.serialize`` of every initializer by its string name.
- ``tiny.keras`` + ``tiny.npz``: a small CNN using the new layers, activations and
  initializers, saved by Keras, with an input batch ``x`` and Keras's predictions ``y``.
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402
from keras import activations as ka  # noqa: E402
from keras import layers as kl  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "activations")

# case name -> (keras activation, keyword arguments)
CASES = {
    "linear": (ka.linear, {}), "relu": (ka.relu, {}), "sigmoid": (ka.sigmoid, {}), "tanh": (ka.tanh, {}),
    "softmax": (ka.softmax, {}), "softmax_axis0": (ka.softmax, {"axis": 0}),
    "elu": (ka.elu, {}), "elu_alpha": (ka.elu, {"alpha": 0.5}), "selu": (ka.selu, {}),
    "gelu": (ka.gelu, {}), "gelu_approximate": (ka.gelu, {"approximate": True}),
    "softplus": (ka.softplus, {}), "softsign": (ka.softsign, {}), "silu": (ka.silu, {}),
    "hard_sigmoid": (ka.hard_sigmoid, {}), "relu6": (ka.relu6, {}), "exponential": (ka.exponential, {}),
    "hard_silu": (ka.hard_silu, {}), "mish": (ka.mish, {}), "leaky_relu": (ka.leaky_relu, {}),
    "leaky_relu_slope": (ka.leaky_relu, {"negative_slope": 0.5}),
    "relu_slope": (ka.relu, {"negative_slope": 0.3}),
    "relu_all": (ka.relu, {"negative_slope": 0.1, "max_value": 4.5, "threshold": 1.5}),
    "relu_max6": (ka.relu, {"max_value": 6.0}),
    "relu_max": (ka.relu, {"max_value": 2.0}),
    "relu_threshold": (ka.relu, {"threshold": 0.5}),
    "relu_negative_threshold": (ka.relu, {"threshold": -1.5}),
}

INITIALIZERS = ["he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_uniform",
                "lecun_normal", "random_normal", "random_uniform", "truncated_normal", "zeros", "ones",
                "orthogonal", "variance_scaling", "identity"]


def inputs(rng):
    """(4, 25) float32: mostly in (-7, 7), a few far out, and 0 exactly (the kinks' side)."""
    x = rng.uniform(-7, 7, (4, 25)).astype(np.float32)
    x[0, :6] = [0.0, -30.0, 30.0, -15.0, 15.0, 1e-4]
    x[1, :4] = [-1e-4, -3e-6, 90.0, -90.0]
    return x


def activation_numbers():
    rng = np.random.default_rng(20)
    out = {}
    for case, (fn, kwargs) in CASES.items():
        x = inputs(rng)
        if case == "exponential":
            x = np.clip(x, -60, 60)    # exp(90) is inf in float32: keep the numbers finite
        dy = rng.uniform(-1, 1, x.shape).astype(np.float32)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = fn(xt, **kwargs)
        dx = tape.gradient(y, xt, output_gradients=tf.constant(dy))
        out.update({f"{case}/x": x, f"{case}/y": np.asarray(y), f"{case}/dy": dy, f"{case}/dx": np.asarray(dx)})
    return out


def configs():
    def plain(config):   # Keras's dtype policy dict -> its name, as minicnn writes it
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = config["dtype"]["config"]["name"]
        return config
    made = {
        "Activation": kl.Activation("relu"), "Activation_swish": kl.Activation("swish"),
        "Activation_callable": kl.Activation(ka.gelu),
        "ReLU": kl.ReLU(), "ReLU_args": kl.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
        "Softmax": kl.Softmax(), "Softmax_axis": kl.Softmax(axis=1), "ELU": kl.ELU(), "ELU_alpha": kl.ELU(alpha=0.5),
        "Dense_hard_swish": kl.Dense(3, activation="hard_swish"),
        "Conv2D_he_uniform": kl.Conv2D(2, 3, activation="elu", kernel_initializer="he_uniform"),
    }
    layers = {k: {"class_name": type(v).__name__, "config": plain(v.get_config())} for k, v in made.items()}
    inits = {name: keras.initializers.serialize(keras.initializers.get(name)) for name in INITIALIZERS}
    inits["Constant"] = keras.initializers.serialize(keras.initializers.Constant(0.25))
    inits["RandomNormal_args"] = keras.initializers.serialize(keras.initializers.RandomNormal(0.5, 2.0, seed=3))
    inits["VarianceScaling_args"] = keras.initializers.serialize(
        keras.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=7))
    inits["TruncatedNormal_args"] = keras.initializers.serialize(keras.initializers.TruncatedNormal(0.0, 0.3))
    inits["Orthogonal_gain"] = keras.initializers.serialize(keras.initializers.Orthogonal(gain=2.0))
    return {"layers": layers, "initializers": inits}


def tiny_model():
    # fresh layer names (conv2d, conv2d_1, ...): the ones Keras's weights file uses for them
    keras.backend.clear_session()
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        kl.Conv2D(4, 3, activation="gelu", kernel_initializer="he_uniform", bias_initializer="ones"),
        kl.Activation("swish"),
        kl.ReLU(max_value=2.5, negative_slope=0.1),
        kl.ELU(alpha=0.7),
        kl.Conv2D(3, 2, activation="mish", kernel_initializer="lecun_normal"),
        kl.Flatten(),
        kl.Dense(5, activation="selu", kernel_initializer=keras.initializers.RandomNormal(stddev=0.3)),
        kl.Dense(4, activation="softplus", kernel_initializer="orthogonal",
                 bias_initializer=keras.initializers.Constant(0.1)),
        kl.Dense(3, kernel_initializer="truncated_normal"),
        kl.Softmax(),
    ])
    x = np.random.default_rng(5).uniform(-1, 1, (4, 8, 8, 2)).astype(np.float32)
    model.save(os.path.join(OUT, "tiny.keras"))
    np.savez(os.path.join(OUT, "tiny.npz"), x=x, y=model.predict(x, verbose=0))


def main():
    os.makedirs(OUT, exist_ok=True)
    np.savez_compressed(os.path.join(OUT, "activations.npz"), **activation_numbers())
    with open(os.path.join(OUT, "configs.json"), "w") as f:
        json.dump(configs(), f, indent=1, sort_keys=True)
    tiny_model()
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
