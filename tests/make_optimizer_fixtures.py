"""Keras 3.15.1's optimizer numbers, written once into tests/fixtures/optimizers/ (TF is no dependency).

Regenerate (needs TensorFlow + Keras, not minicnn's deps)::

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1 h5py
    /tmp/tfvenv/bin/python tests/make_optimizer_fixtures.py

For every case of ``CASES`` it applies 5 steps of random float32 gradients to three variables of
odd shapes, eagerly (``optimizer.apply_gradients``, no XLA), and writes ``<case>.npz``:

- ``var<j>``: variable j before the first step; ``grads<j>[s]``: its gradient in step s;
- ``after<j>[s]``: variable j after step s; ``lr[s]``: ``optimizer.learning_rate`` before step s;
- ``state<k>``: ``[v.numpy() for v in optimizer.variables]`` after the last step (Keras's order,
  the one its files store); ``config``: ``optimizer.get_config()`` as JSON.

It also writes ``tiny_adam.keras``: a small CNN compiled with Adam(amsgrad=True), trained two
steps, and ``tiny_adam.npz`` with the data, the batch of a third step and Keras's weights after
that step. ``--check FILE`` loads a minicnn-saved .keras file in Keras and prints its optimizer's
class, iterations and variable count (Keras warns and skips the state if it does not fit).
"""
import json
import os
import sys
import zlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import optimizers as ko  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "optimizers")
SHAPES = [(3, 5), (7,), (2, 1, 3)]
S = ko.schedules

CASES = {
    "sgd": lambda: ko.SGD(),
    "sgd_momentum": lambda: ko.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: ko.SGD(0.05, momentum=0.8, nesterov=True),
    "rmsprop": lambda: ko.RMSprop(),
    "rmsprop_momentum": lambda: ko.RMSprop(0.01, rho=0.8, momentum=0.5),
    "rmsprop_centered": lambda: ko.RMSprop(centered=True),
    "rmsprop_centered_momentum": lambda: ko.RMSprop(0.01, momentum=0.9, centered=True),
    "adam": lambda: ko.Adam(0.01),
    "adam_amsgrad": lambda: ko.Adam(0.01, beta_1=0.8, beta_2=0.99, amsgrad=True),
    "adamw": lambda: ko.AdamW(0.01, weight_decay=0.1),
    "adamw_amsgrad": lambda: ko.AdamW(amsgrad=True),
    "adagrad": lambda: ko.Adagrad(0.05),
    "adagrad_initial": lambda: ko.Adagrad(0.1, initial_accumulator_value=0.5, epsilon=1e-4),
    "adadelta": lambda: ko.Adadelta(1.0),
    "adadelta_default": lambda: ko.Adadelta(),
    "nadam": lambda: ko.Nadam(0.01),
    "nadam_betas": lambda: ko.Nadam(0.02, beta_1=0.7, beta_2=0.9),
    "adamax": lambda: ko.Adamax(0.01),
    "adamax_betas": lambda: ko.Adamax(0.02, beta_1=0.7, beta_2=0.9, epsilon=1e-3),
    "clipnorm_adam": lambda: ko.Adam(0.01, clipnorm=0.5),
    "clipnorm_sgd": lambda: ko.SGD(0.1, clipnorm=1.0),
    "clipvalue_sgd": lambda: ko.SGD(0.1, clipvalue=0.3),
    "clipvalue_rmsprop": lambda: ko.RMSprop(clipvalue=0.5),
    "global_clipnorm_sgd": lambda: ko.SGD(0.1, momentum=0.9, global_clipnorm=1.0),
    "global_clipnorm_adam": lambda: ko.Adam(0.01, global_clipnorm=2.5),
    "weight_decay_sgd": lambda: ko.SGD(0.1, weight_decay=0.05),
    "weight_decay_rmsprop": lambda: ko.RMSprop(0.01, weight_decay=0.2),
    "weight_decay_nadam": lambda: ko.Nadam(0.01, weight_decay=0.1, clipnorm=1.0),
    "exponential_adam": lambda: ko.Adam(S.ExponentialDecay(0.01, 2, 0.5)),
    "exponential_staircase_sgd": lambda: ko.SGD(S.ExponentialDecay(0.1, 2, 0.5, staircase=True)),
    "piecewise_sgd": lambda: ko.SGD(S.PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01]), momentum=0.5),
    "inverse_time_rmsprop": lambda: ko.RMSprop(S.InverseTimeDecay(0.01, 2, 0.5)),
    "inverse_time_staircase_adagrad": lambda: ko.Adagrad(S.InverseTimeDecay(0.1, 2, 0.5, staircase=True)),
    "cosine_adam": lambda: ko.Adam(S.CosineDecay(0.01, 3, alpha=0.1)),
    "cosine_warmup_sgd": lambda: ko.SGD(S.CosineDecay(0.0, 2, warmup_target=0.1, warmup_steps=2)),
    "schedule_adamw": lambda: ko.AdamW(S.ExponentialDecay(0.01, 1, 0.8), weight_decay=0.5),
}


def gradients(rng, step, shape, j):
    g = rng.standard_normal(shape).astype("float32")
    if j == 1:
        g *= np.float32(10.0 ** -(step % 4))   # tiny gradients: epsilon's placement shows
    if j == 2 and step == 2:
        g[...] = 0                             # a zero gradient: clipnorm's l2sum = 0 branch
    return g


def run_case(name, make):
    rng = np.random.default_rng(zlib.crc32(name.encode()))   # one stream per case, every run
    start = [rng.uniform(-1, 1, s).astype("float32") for s in SHAPES]
    variables = [keras.Variable(v.copy(), name=f"v{j}") for j, v in enumerate(start)]
    opt = make()
    out = {f"var{j}": v for j, v in enumerate(start)}
    grads, after, lrs = [], [], []
    for step in range(5):
        grads.append([gradients(rng, step, s, j) for j, s in enumerate(SHAPES)])
        lrs.append(np.float32(keras.ops.convert_to_numpy(opt.learning_rate)))
        opt.apply_gradients(zip(grads[-1], variables))
        after.append([v.numpy() for v in variables])
    for j in range(len(SHAPES)):
        out[f"grads{j}"] = np.stack([g[j] for g in grads])
        out[f"after{j}"] = np.stack([a[j] for a in after])
    out["lr"] = np.array(lrs)
    for k, v in enumerate(opt.variables):
        out[f"state{k}"] = np.asarray(v.numpy())
    out["config"] = np.array(json.dumps(ko.serialize(opt)))
    np.savez_compressed(os.path.join(OUT, f"{name}.npz"), **out)


def tiny_model():
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(3, (3, 3), activation="relu"), keras.layers.Flatten(),
        keras.layers.Dense(4, activation="softmax")])


def tiny_adam():
    keras.utils.set_random_seed(0)
    model = tiny_model()
    model.compile(optimizer=ko.Adam(0.01, amsgrad=True), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 1)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, 16)]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(os.path.join(OUT, "tiny_adam.keras"))
    x3, y3 = x[:8], y[:8]
    model.train_on_batch(x3, y3)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(OUT, "tiny_adam.npz"), x3=x3, y3=y3, **arrays)


def check(path):
    model = keras.models.load_model(path)
    opt = model.optimizer
    print(type(opt).__name__, int(opt.iterations.numpy()), len(opt.variables),
          [tuple(v.shape) for v in opt.variables][:4])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        return check(sys.argv[2])
    os.makedirs(OUT, exist_ok=True)
    for name, make in CASES.items():
        run_case(name, make)
    tiny_adam()


if __name__ == "__main__":
    main()
