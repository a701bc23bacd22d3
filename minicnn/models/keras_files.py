"""Whole models and weights in Keras's own files, chosen by extension as Keras does.

- ``.keras`` (Keras 3): a zip of ``metadata.json``, ``config.json`` (the
  architecture and the compile arguments) and ``model.weights.h5``.
- ``.weights.h5`` (Keras 3 weights): ``layers/<key>/vars/<i>``, where the key
  is the layer's class in snake case, numbered by position as Keras 3 does
  (``conv2d``, ``conv2d_1``, ...: not the layer's name), and the
  optimizer's state in ``optimizer/vars/<i>`` (Keras's ``optimizer.variables``:
  iterations, the learning rate unless it is a schedule, then the slots).
- ``.h5`` (tf.keras 2, legacy): the ``model_config`` / ``training_config``
  attributes, ``model_weights/<layer>/...`` with ``layer_names`` /
  ``weight_names`` giving the order, and ``optimizer_weights``.

Every write goes to a temporary file renamed over the target (never a
half-written file); loading reads and checks everything before the model
changes, and never unpickles or runs code from the file. Needs h5py (the
``h5`` extra). Example::

    >>> model.save('mnist.keras')
    >>> same = minicnn.models.load_model('mnist.keras')
"""
import datetime
import io
import json
import warnings
import zipfile

import numpy as np

from .. import optimizers
from ..naming import snake_case
from ..utils import get_rng
from .saving import _as_path, atomic_write
from .serialize import model_config, model_from_config

KERAS_FORMAT_VERSION = "3.15.1"   # the Keras release whose layout these files follow


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras's .keras and .h5 files need h5py: pip install 'minicnn[h5]'") from None
    return h5py


# ----------------------------------------------------------------------------
# whole models
# ----------------------------------------------------------------------------
def save_model(model, filepath):
    """Write ``model`` (architecture, weights, compile arguments, optimizer state)."""
    path = _as_path(filepath, "save")
    if path.endswith(".keras"):
        atomic_write(path, lambda f: f.write(_keras_zip(model)), "save")
    elif path.endswith(".h5"):
        atomic_write(path, lambda f: f.write(_legacy_h5(model)), "save")
    else:
        raise ValueError(f"save: the file name must end in .keras (Keras 3) or .h5 (legacy). "
                         f"Received: filepath={path!r}")


def load_model(filepath, compile=True):
    """A model from a .keras or .h5 file written by minicnn or by Keras."""
    path = _as_path(filepath, "load_model")
    try:
        if path.endswith(".keras"):
            return _load_keras_zip(path, compile)
        if path.endswith(".h5"):
            return _load_legacy_h5(path, compile)
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"load_model: {path!r} is not a readable Keras model file: {e}") from None
    raise ValueError(f"load_model: the file name must end in .keras or .h5. Received: {path!r}")


def _keras_zip(model):
    config = model_config(model)
    config["build_config"] = {"input_shape": list(model.input_shape)}
    if model.optimizer is not None:
        config["compile_config"] = {"optimizer": _optimizer_config(model.optimizer),
                                    "loss": model.loss, "metrics": list(model._metric_names)}
    from .. import __version__ as minicnn_version  # late: minicnn/__init__ imports models
    metadata = {"keras_version": KERAS_FORMAT_VERSION, "minicnn_version": minicnn_version,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps(metadata))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", _weights_h5_bytes(model))
    return buf.getvalue()


def _fresh_model(config):
    """The architecture, built without drawing from the global RNG: the weights are
    overwritten anyway, and a resumed fit must shuffle as an uninterrupted one would."""
    rng = get_rng()
    state = rng.bit_generator.state
    try:
        return model_from_config(config)
    finally:
        rng.bit_generator.state = state


def _load_keras_zip(path, compile):
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    model = _fresh_model(config)
    if compile and config.get("compile_config"):
        _compile_from(model, config["compile_config"])
    with _h5py().File(io.BytesIO(weights), "r") as f:
        _apply(model, _read_weights_h5(model, f, path), _read_optimizer_h5(f))
    return model


# ----------------------------------------------------------------------------
# Keras 3 weights: layers/<name>/vars/<i>, optimizer/vars/<i>
# ----------------------------------------------------------------------------
def save_weights_h5(model, path):
    atomic_write(path, lambda f: f.write(_weights_h5_bytes(model)), "save_weights")


def load_weights_h5(model, path):
    """Set the weights (and the optimizer's state, when the model is compiled) from
    a Keras 3 .weights.h5 or a tf.keras 2 .h5 weights file."""
    with _h5py().File(path, "r") as f:
        if "layer_names" in f.attrs or "model_weights" in f:
            return _apply(model, _read_legacy_weights(model, f, path), None)
        _apply(model, _read_weights_h5(model, f, path), _read_optimizer_h5(f))


def _weights_h5_bytes(model):
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for key, layer in _layer_keys(model):
            group = f.create_group(f"layers/{key}/vars")
            group.attrs["name"] = layer.name
            for i, w in enumerate(layer.get_weights()):
                group.create_dataset(str(i), data=w)
        f.create_group("vars").attrs["name"] = model.name
        state = _optimizer_state(model)
        if state is not None:
            group = f.create_group("optimizer/vars")
            group.attrs["name"] = state[0]
            for i, value in enumerate(state[1]):
                group.create_dataset(str(i), data=value)
    return buf.getvalue()


def _read_weights_h5(model, f, path):
    arrays = []
    for name, layer in _layer_keys(model):
        expected = len(layer.weights)
        key = f"layers/{name}/vars"
        if expected and key not in f:
            present = sorted(f["layers"]) if "layers" in f else []
            raise ValueError(f"{path!r}: no weights for layer {layer.name!r} under {key!r} (the file "
                             f"has layers {present}; Keras 3 files key layers by class and position)")
        group = f[key] if key in f else {}
        if len(group) != expected:
            raise ValueError(f"{path!r}: layer {layer.name!r} expects {expected} weights, the file "
                             f"has {len(group)}")
        arrays += [np.asarray(group[str(i)]) for i in range(expected)]
    return arrays


def _read_optimizer_h5(f):
    if "optimizer/vars" not in f:
        return None
    group = f["optimizer/vars"]
    return [np.asarray(group[str(i)]) for i in range(len(group))]


# ----------------------------------------------------------------------------
# tf.keras 2 legacy .h5
# ----------------------------------------------------------------------------
def _legacy_h5(model):
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["backend"] = "minicnn"
        f.attrs["keras_version"] = KERAS_FORMAT_VERSION
        f.attrs["model_config"] = json.dumps(model_config(model))
        if model.optimizer is not None:
            f.attrs["training_config"] = json.dumps({
                "loss": model.loss, "loss_weights": None, "metrics": list(model._metric_names),
                "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
                "jit_compile": False, "optimizer_config": _optimizer_config(model.optimizer)})
        weights = f.create_group("model_weights")
        names = [layer.name for layer in model._compute_layers]
        weights.attrs["layer_names"] = np.array(names, dtype=h5py.string_dtype())
        for layer in model._compute_layers:
            group = weights.create_group(layer.name)
            wnames = [f"{model.name}/{layer.name}/{n}" for n in _weight_names(layer)]
            group.attrs["weight_names"] = np.array(wnames, dtype=h5py.string_dtype())
            for wname, w in zip(wnames, layer.get_weights()):
                group.create_dataset(wname, data=w)
        state = _optimizer_state(model)
        if state is not None:
            group = f.create_group("optimizer_weights")
            names = [f"{state[0]}/{i}" for i in range(len(state[1]))]
            group.attrs["weight_names"] = np.array(names, dtype=h5py.string_dtype())
            for name, value in zip(names, state[1]):
                group.create_dataset(name, data=value)
    return buf.getvalue()


def _layer_keys(model):
    """(key, layer) for each layer, keyed as Keras 3's saving_lib keys them in
    ``.weights.h5``: the class name in snake case, ``_1``, ``_2``... for the
    second, third... layer of that class, whatever the layers are called (so a
    file saved in one session loads into the same model rebuilt in another)."""
    seen = {}
    for layer in model._compute_layers:
        base = snake_case(type(layer).__name__)
        count = seen.get(base, 0)
        seen[base] = count + 1
        yield (base if count == 0 else f"{base}_{count}"), layer


def _weight_names(layer):
    """The names tf.keras 2 gives the layer's weights (kernel, bias; gamma, beta, ...)."""
    return list(getattr(layer, "weight_names", ("kernel", "bias")))[:len(layer.weights)]


def _load_legacy_h5(path, compile):
    with _h5py().File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"load_model: {path!r} holds weights only (no model_config); build the "
                             "model and call load_weights")
        model = _fresh_model(json.loads(_text(f.attrs["model_config"])))
        training = f.attrs.get("training_config")
        if compile and training is not None:
            training = json.loads(_text(training))
            _compile_from(model, {"optimizer": training.get("optimizer_config"),
                                  "loss": training.get("loss"), "metrics": training.get("metrics")})
        optimizer_state = None
        if "optimizer_weights" in f:
            group = f["optimizer_weights"]
            optimizer_state = [np.asarray(group[_text(n)]) for n in group.attrs["weight_names"]]
        _apply(model, _read_legacy_weights(model, f, path), optimizer_state)
    return model


def _read_legacy_weights(model, f, path):
    root = f["model_weights"] if "model_weights" in f else f
    names = [_text(n) for n in root.attrs["layer_names"]]
    stored = [root[n] for n in names if len(root[n].attrs.get("weight_names", []))]
    layers = [layer for layer in model._compute_layers if layer.weights]
    if len(stored) != len(layers):  # legacy files match layers by position
        raise ValueError(f"{path!r}: {len(stored)} layers with weights in the file, {len(layers)} in the model")
    arrays = []
    for layer, group in zip(layers, stored):
        values = [np.asarray(group[_text(n)]) for n in group.attrs["weight_names"]]
        if len(values) != len(layer.weights):
            raise ValueError(f"{path!r}: layer {layer.name!r} expects {len(layer.weights)} weights, "
                             f"the file has {len(values)}")
        arrays += values
    return arrays


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------
# compile arguments and optimizer state
# ----------------------------------------------------------------------------
def _optimizer_config(opt):
    return optimizers.serialize(opt)   # Keras's dict: class_name, config (get_config), ...


def _optimizer_from(config):
    try:
        return optimizers.deserialize(config or {})
    except (ValueError, TypeError) as e:
        raise ValueError(f"the file's optimizer is not available in minicnn ({e}); pass compile=False "
                         "and compile yourself") from None


def _compile_from(model, compile_config):
    metrics = []
    for m in compile_config.get("metrics") or []:   # tf.keras 2 may save [["accuracy"]]
        metrics += m if isinstance(m, list) else [m]
    metrics = [m for m in metrics if m is not None]
    model.compile(optimizer=_optimizer_from(compile_config.get("optimizer")),
                  loss=compile_config.get("loss"), metrics=metrics)


def _optimizer_state(model):
    """(name, Keras's optimizer variables: iterations, learning rate, slots...) once built."""
    opt = model.optimizer
    if opt is None or not opt.built:
        return None
    return opt.name, opt.state_arrays()


def _apply(model, arrays, optimizer_state):
    """Set weights (checked in full first), then the optimizer's state if it fits (else,
    as Keras does, a warning and a fresh optimizer)."""
    model.set_weights(arrays)
    opt = model.optimizer
    if opt is None or not optimizer_state:
        return
    try:
        opt.restore_state(model.trainable_weights, optimizer_state)
    except ValueError as e:
        warnings.warn(f"Skipping variable loading for optimizer '{opt.name}': {e}", stacklevel=3)
