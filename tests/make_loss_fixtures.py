"""Keras 3.15.1's numbers for losses, metrics, regularizers and weighted training, written once
into tests/fixtures/losses/ (TensorFlow is no dependency of minicnn; the tests read the files).

Regenerate (needs TensorFlow + Keras, not minicnn's deps)::

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1
    /tmp/tfvenv/bin/python tests/make_loss_fixtures.py

Files (TensorFlow backend, eager, float32):

- ``losses.npz``: for every case of ``loss_cases()``, ``<case>/y_true``, ``<case>/y_pred``,
  ``<case>/sample_weight``, ``<case>/values`` (reduction None), ``<case>/mean`` (the default
  'sum_over_batch_size'), ``<case>/weighted`` (mean with sample_weight), ``<case>/sum``, and
  ``<case>/grad``: d mean / d y_pred by tf.GradientTape (through clip and renormalisation).
- ``metrics.npz``: ``<case>/y_true``, ``<case>/y_pred``, ``<case>/result`` of the metric
  object after one update_state (and ``<case>/values`` of its function form).
- ``regularizers.npz``: ``w``, and for each case ``<case>/penalty`` and ``<case>/grad``.
- ``training.npz``: one Dense(3, softmax) model with an L2 kernel regularizer: its starting
  weights, a batch, sample weights and class weights, then Keras's reported loss and the
  weights after one SGD step of train_on_batch(sample_weight=...), after fit(class_weight=...)
  (one batch, no shuffle), and evaluate(sample_weight=...).
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402
from keras import losses as kl, metrics as km, regularizers as kr  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "losses")
rng = np.random.default_rng(20240611)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def probabilities(n, k):
    """Softmax rows, one clipped from below and above, one that does not sum to 1."""
    p = softmax(rng.normal(0, 2, (n, k)))
    p[0] = 0.0
    p[0, 1] = 1.0                    # q = 1 and q = 0: both clips active
    p[1] = rng.uniform(0.1, 2.0, k)  # unnormalised
    return p.astype(np.float32)


def onehot(labels, k):
    return np.eye(k, dtype=np.float32)[labels]


def loss_cases():
    n, k = 6, 5
    labels = rng.integers(0, k, n)
    labels[0] = 1
    p = probabilities(n, k)
    z = rng.normal(0, 3, (n, k)).astype(np.float32)
    z[2, 3] = 60.0                   # a large logit: log-softmax must stay finite
    soft = softmax(rng.normal(0, 1, (n, k)))
    pb = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    pb[0, 0], pb[0, 1] = 0.0, 1.0    # clipped
    yb = rng.integers(0, 2, (n, 3)).astype(np.float32)
    zb = rng.normal(0, 4, (n, 3)).astype(np.float32)
    zb[1, 2], zb[2, 0] = 40.0, -40.0
    p1 = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    y1 = rng.integers(0, 2, (n, 1)).astype(np.float32)
    reg_p = rng.normal(0, 1, (n, 4)).astype(np.float32)
    reg_y = rng.normal(0, 1, (n, 4)).astype(np.float32)
    reg_y[0, 0] = reg_p[0, 0]        # an exact zero error: MAE's gradient is 0 there
    return {
        "cce": (kl.CategoricalCrossentropy(), onehot(labels, k), p),
        "cce_soft_labels": (kl.CategoricalCrossentropy(), soft, p),
        "cce_smoothing": (kl.CategoricalCrossentropy(label_smoothing=0.1), onehot(labels, k), p),
        "cce_logits": (kl.CategoricalCrossentropy(from_logits=True), onehot(labels, k), z),
        "cce_logits_smoothing": (kl.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                                 onehot(labels, k), z),
        "scce": (kl.SparseCategoricalCrossentropy(), labels.astype(np.int32), softmax(z)),
        "scce_logits": (kl.SparseCategoricalCrossentropy(from_logits=True), labels.astype(np.int32), z),
        "bce": (kl.BinaryCrossentropy(), yb, pb),
        "bce_one_unit": (kl.BinaryCrossentropy(), y1, p1),
        "bce_smoothing": (kl.BinaryCrossentropy(label_smoothing=0.2), yb, pb),
        "bce_logits": (kl.BinaryCrossentropy(from_logits=True), yb, zb),
        "bce_logits_smoothing": (kl.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), yb, zb),
        "mse": (kl.MeanSquaredError(), reg_y, reg_p),
        "mae": (kl.MeanAbsoluteError(), reg_y, reg_p),
    }


def make_losses():
    out = {}
    for name, (loss, y, p) in loss_cases().items():
        sw = rng.uniform(0, 2, len(p)).astype(np.float32)
        config = {k: v for k, v in loss.get_config().items() if k not in ("name", "reduction")}
        cls = type(loss)
        out[f"{name}/y_true"], out[f"{name}/y_pred"], out[f"{name}/sample_weight"] = y, p, sw
        out[f"{name}/values"] = cls(reduction=None, **config)(y, p).numpy()
        out[f"{name}/sum"] = cls(reduction="sum", **config)(y, p).numpy()
        out[f"{name}/weighted"] = loss(y, p, sample_weight=sw).numpy()
        pv = tf.Variable(p)
        with tf.GradientTape() as tape:
            value = loss(y, pv)
        out[f"{name}/mean"] = value.numpy()
        out[f"{name}/grad"] = tape.gradient(value, pv).numpy()
    return out


def make_metrics():
    n, k = 8, 6
    labels = rng.integers(0, k, n)
    p = softmax(rng.normal(0, 1, (n, k)))
    p[0] = 1.0 / k                     # all tied: the target is in the top k
    p[1, :] = 0.1
    p[1, labels[1]] = 0.05             # the target below all the others
    for i in (2, 3, 4):                # a few right answers
        p[i, labels[i]] = p[i].max() + 0.1
    p = (p / p.sum(-1, keepdims=True)).astype(np.float32)
    pb = rng.uniform(0, 1, (n, 3)).astype(np.float32)
    pb[0, 0] = 0.5                     # exactly at the threshold: predicted 0
    yb = rng.integers(0, 2, (n, 3)).astype(np.float32)
    reg_p, reg_y = rng.normal(0, 1, (n, 2)).astype(np.float32), rng.normal(0, 1, (n, 2)).astype(np.float32)
    cases = {
        "categorical_accuracy": (km.CategoricalAccuracy(), km.categorical_accuracy, onehot(labels, k), p),
        "sparse_categorical_accuracy": (km.SparseCategoricalAccuracy(), km.sparse_categorical_accuracy,
                                        labels[:, None].astype(np.float32), p),
        "binary_accuracy": (km.BinaryAccuracy(), km.binary_accuracy, yb, pb),
        "binary_accuracy_07": (km.BinaryAccuracy(threshold=0.7), None, yb, pb),
        "top_k": (km.TopKCategoricalAccuracy(), km.top_k_categorical_accuracy, onehot(labels, k), p),
        "top_2": (km.TopKCategoricalAccuracy(k=2), None, onehot(labels, k), p),
        "sparse_top_2": (km.SparseTopKCategoricalAccuracy(k=2), None, labels.astype(np.int32), p),
        "mse": (km.MeanSquaredError(), km.mean_squared_error, reg_y, reg_p),
        "mae": (km.MeanAbsoluteError(), km.mean_absolute_error, reg_y, reg_p),
        "categorical_crossentropy": (km.CategoricalCrossentropy(), None, onehot(labels, k), p),
    }
    out = {}
    for name, (metric, fn, y, pred) in cases.items():
        metric.update_state(y, pred)
        out[f"{name}/y_true"], out[f"{name}/y_pred"] = y, pred
        out[f"{name}/result"] = np.float32(metric.result().numpy())
        if fn is not None:
            out[f"{name}/values"] = np.asarray(fn(y, pred))
    return out


def make_regularizers():
    w = rng.normal(0, 1, (3, 3, 2, 4)).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    out = {"w": w}
    for name, reg in {"l1": kr.L1(0.01), "l2": kr.L2(0.02), "l1_l2": kr.L1L2(l1=0.01, l2=0.02),
                      "l2_default": kr.get("l2")}.items():
        v = tf.Variable(w)
        with tf.GradientTape() as tape:
            penalty = reg(v)
        out[f"{name}/penalty"] = np.float32(penalty.numpy())
        out[f"{name}/grad"] = tape.gradient(penalty, v).numpy()
    return out


def dense_model(w, b):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, activation="softmax", kernel_regularizer=kr.L2(0.05))])
    model.layers[0].set_weights([w, b])
    model.compile(keras.optimizers.SGD(learning_rate=0.5), "categorical_crossentropy", metrics=["accuracy"])
    return model


def make_training():
    w = rng.normal(0, 1, (4, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 3).astype(np.float32)
    x = rng.normal(0, 1, (8, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 0])
    y = onehot(labels, 3)
    sw = rng.uniform(0, 2, 8).astype(np.float32)
    class_weight = {0: 0.5, 1: 2.0, 2: 1.5}
    out = {"w": w, "b": b, "x": x, "y": y, "sample_weight": sw,
           "class_weight": np.array([class_weight[i] for i in range(3)], np.float32)}
    m = dense_model(w, b)
    out["train_on_batch/logs"] = np.array(m.train_on_batch(x, y, sample_weight=sw), np.float32)
    out["train_on_batch/w"], out["train_on_batch/b"] = m.layers[0].get_weights()
    m = dense_model(w, b)
    h = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, class_weight=class_weight, verbose=0)
    out["fit_class_weight/loss"] = np.float32(h.history["loss"][0])
    out["fit_class_weight/w"], out["fit_class_weight/b"] = m.layers[0].get_weights()
    m = dense_model(w, b)
    out["evaluate/weighted"] = np.array(m.evaluate(x, y, sample_weight=sw, batch_size=3, verbose=0), np.float32)
    out["evaluate/plain"] = np.array(m.evaluate(x, y, batch_size=3, verbose=0), np.float32)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, make in (("losses", make_losses), ("metrics", make_metrics),
                       ("regularizers", make_regularizers), ("training", make_training)):
        np.savez(os.path.join(OUT, f"{name}.npz"), **make())
        print("wrote", os.path.join(OUT, f"{name}.npz"))


if __name__ == "__main__":
    main()
