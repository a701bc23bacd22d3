"""Generate tests/fixtures/batch_norm/*.npz: Keras 3 BatchNormalization numbers (TensorFlow backend).

Run once, with a Python that has TensorFlow and Keras 3 (TensorFlow is not a
minicnn dependency; the tests only read the fixtures)::

    /tmp/tfvenv/bin/python tests/make_batch_norm_fixtures.py

Each case: inputs x, a cotangent r (the loss is sum(y * r)), the layer's
weights before the call, then from Keras: the training output, the moving
statistics after that training call, the gradients of the training call
w.r.t. x, gamma and beta, the inference output and its gradients (with the
updated statistics), and the output of the layer frozen (trainable=False)
called with training=True (Keras 3 runs it in inference mode).
"""
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

OUT = Path(__file__).resolve().parent / "fixtures" / "batch_norm"

CASES = {
    # name: (input shape, layer arguments)
    "nhwc": ((4, 5, 6, 3), {}),
    "dense": ((7, 13), {"momentum": 0.9, "epsilon": 1e-2}),
    "plain": ((6, 2, 3, 4), {"center": False, "scale": False, "momentum": 0.5}),
}


def weights_of(layer, channels, rng):
    """Random gamma, beta, moving statistics in the layer's order."""
    values = []
    if layer.scale:
        values.append(rng.uniform(0.5, 2.0, channels))
    if layer.center:
        values.append(rng.standard_normal(channels))
    values += [rng.standard_normal(channels) * 0.5, rng.uniform(0.5, 3.0, channels)]
    return [v.astype(np.float32) for v in values]


def run(layer, x, r, training):
    """(y, dx, d trainable weights) of sum(layer(x) * r)."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=training)
        loss = tf.reduce_sum(y * r)
    grads = tape.gradient(loss, [xt] + list(layer.trainable_weights))
    return [np.asarray(y)] + [np.asarray(g) for g in grads]


def make(name, shape, kwargs, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2.0 + 3.0).astype(np.float32)
    r = rng.standard_normal(shape).astype(np.float32)
    layer = keras.layers.BatchNormalization(**kwargs)
    layer.build(shape)
    weights = weights_of(layer, shape[-1], rng)
    layer.set_weights(weights)
    out = {"x": x, "r": r, "momentum": np.float64(layer.momentum), "epsilon": np.float64(layer.epsilon),
           "center": layer.center, "scale": layer.scale}
    out.update({f"w{i}": w for i, w in enumerate(weights)})
    y, dx, *dw = run(layer, x, r, training=True)
    out.update(y_train=y, dx_train=dx, moving_mean=np.asarray(layer.moving_mean),
               moving_variance=np.asarray(layer.moving_variance))
    out.update({f"dw{i}_train": g for i, g in enumerate(dw)})
    y, dx, *dw = run(layer, x, r, training=False)
    out.update(y_infer=y, dx_infer=dx)
    out.update({f"dw{i}_infer": g for i, g in enumerate(dw)})
    layer.trainable = False
    out["y_frozen"] = np.asarray(layer(tf.constant(x), training=True))
    out["moving_mean_frozen"] = np.asarray(layer.moving_mean)
    np.savez(OUT / f"{name}.npz", **out)
    print(f"{name}: {', '.join(sorted(out))}")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    print("keras", keras.__version__, "tensorflow", tf.__version__)
    for i, (name, (shape, kwargs)) in enumerate(CASES.items()):
        make(name, shape, kwargs, seed=i)


if __name__ == "__main__":
    main()
