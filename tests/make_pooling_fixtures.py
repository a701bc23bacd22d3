"""Generate tests/fixtures/pooling/: Keras 3 numbers for the pooling and reshaping layers,
dilated Conv2D and Dense on rank > 2 (TensorFlow backend).

Run once, with a Python that has TensorFlow and Keras 3 (TensorFlow is not a
minicnn dependency; the tests only read the fixtures)::

    /tmp/tfvenv/bin/python tests/make_pooling_fixtures.py

Writes
- ``layers.npz``: per case ``<case>/x``, ``<case>/r`` (a cotangent: the loss is
  sum(y * r)), the layer's weights ``<case>/w<i>``, Keras's output ``<case>/y``
  and its gradients ``<case>/dx``, ``<case>/dw<i>``; ``layers.json``: each
  case's layer class and arguments;
- ``model.keras`` + ``model.json`` + ``model_predictions.npz``: a small model
  with every new layer, trained two steps (Keras's layer names, output shapes,
  parameter counts and configs in the JSON; Keras's predictions on ``x``) for
  load_model and summary tests.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

OUT = Path(__file__).resolve().parent / "fixtures" / "pooling"

CASES = {
    # name: (input shape, layer class, arguments)
    "avg_valid_2x2": ((2, 7, 5, 3), "AveragePooling2D", {"pool_size": 2}),
    "avg_same_2x2": ((2, 7, 5, 3), "AveragePooling2D", {"pool_size": 2, "padding": "same"}),
    "avg_same_3x3_s2x1": ((2, 7, 5, 3), "AveragePooling2D", {"pool_size": 3, "strides": (2, 1), "padding": "same"}),
    "avg_same_3x2_s1": ((1, 6, 7, 2), "AveragePooling2D", {"pool_size": (3, 2), "strides": 1, "padding": "same"}),
    "avg_valid_3x3_s2": ((2, 9, 8, 4), "AveragePooling2D", {"pool_size": 3, "strides": 2}),
    "gap": ((2, 7, 5, 3), "GlobalAveragePooling2D", {}),
    "gap_keepdims": ((2, 4, 6, 5), "GlobalAveragePooling2D", {"keepdims": True}),
    "gmp": ((2, 7, 5, 3), "GlobalMaxPooling2D", {}),
    "conv_dil2_valid": ((2, 9, 8, 3), "Conv2D", {"filters": 4, "kernel_size": 3, "dilation_rate": 2}),
    "conv_dil2_same": ((2, 9, 8, 3), "Conv2D", {"filters": 4, "kernel_size": 3, "dilation_rate": 2,
                                                 "padding": "same"}),
    "conv_dil2x3_same": ((2, 7, 5, 3), "Conv2D", {"filters": 2, "kernel_size": (2, 3),
                                                   "dilation_rate": (2, 3), "padding": "same"}),
    "conv_dil1x2_valid": ((1, 6, 9, 2), "Conv2D", {"filters": 3, "kernel_size": (3, 2),
                                                    "dilation_rate": (1, 2), "activation": "relu"}),
    "dense_rank4": ((2, 7, 5, 3), "Dense", {"units": 4, "activation": "tanh"}),
    "dense_rank3": ((3, 6, 5), "Dense", {"units": 2}),
}


def layer_case(name, shape, cls, args, rng):
    layer = getattr(layers, cls)(**args)
    x = rng.standard_normal(shape).astype(np.float32)
    layer.build(shape)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in layer.weights]
    if weights:
        layer.set_weights(weights)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        r = tf.constant(rng.standard_normal(y.shape).astype(np.float32))
        loss = tf.reduce_sum(y * r)
    grads = tape.gradient(loss, [xt] + list(layer.trainable_variables))
    out = {f"{name}/x": x, f"{name}/r": r.numpy(), f"{name}/y": y.numpy(), f"{name}/dx": grads[0].numpy()}
    for i, (w, g) in enumerate(zip(weights, grads[1:])):
        out[f"{name}/w{i}"] = w
        out[f"{name}/dw{i}"] = g.numpy()
    return out


def small_model():
    """Every new layer in one model (shapes chosen so each one changes something)."""
    return keras.Sequential([
        keras.Input((11, 9, 2)),
        layers.ZeroPadding2D(((1, 0), (2, 1))),
        layers.Conv2D(4, 3, dilation_rate=2, activation="relu", padding="same"),
        layers.AveragePooling2D(2, padding="same"),
        layers.Cropping2D(((1, 0), (0, 1))),
        layers.Dense(5, activation="relu"),
        layers.MaxPool2D(2, strides=1, padding="same"),
        layers.Reshape((-1, 5)),
        layers.Reshape((5, 5, 5)),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays, meta = {}, {}
    for name, (shape, cls, args) in CASES.items():
        arrays.update(layer_case(name, shape, cls, args, rng))
        meta[name] = {"class": cls, "args": args}
    np.savez_compressed(OUT / "layers.npz", **arrays)
    (OUT / "layers.json").write_text(json.dumps(meta, indent=1) + "\n")

    keras.backend.clear_session()   # the layer names of a fresh session: conv2d, dense, dense_1, ...
    keras.utils.set_random_seed(1)
    model = small_model()
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    # two training steps: the file then holds optimizer state too, as a user's would
    model.fit(rng.random((12, 11, 9, 2)).astype(np.float32), np.eye(3)[np.arange(12) % 3],
              batch_size=6, epochs=1, verbose=0)
    x = rng.random((6, 11, 9, 2)).astype(np.float32)
    model.save(OUT / "model.keras")
    info = {"layers": [{"name": l.name, "class": type(l).__name__, "output_shape": list(l.output.shape),
                        "params": l.count_params(), "config": l.get_config()} for l in model.layers],
            "total_params": model.count_params()}
    (OUT / "model.json").write_text(json.dumps(info, indent=1, default=list) + "\n")
    np.savez_compressed(OUT / "model_predictions.npz", x=x, p=model.predict(x, verbose=0))
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
