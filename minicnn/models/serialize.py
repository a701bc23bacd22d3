"""Model architectures as Keras configs and JSON: ``to_json`` / ``model_from_json``.

The layout is Keras 3's (``{"module": "keras", "class_name": "Sequential", "config":
{"name": ..., "layers": [...]}}``, a Sequential's first entry its InputLayer, a
functional model's layers with ``inbound_nodes``); tf.keras 2's configs read too
(``batch_input_shape`` on the first layer, nested-list ``inbound_nodes``).
Weights are not part of it (see ``save_weights``).

Example::

    >>> text = model.to_json()
    >>> twin = minicnn.models.model_from_json(text)   # same layers, new weights
"""
import json

from .. import layers as layers_module
from ..layers.base import KerasTensor, Layer
from ..layers.input import Input, InputLayer

LAYER_CLASSES = {name: cls for name, cls in vars(layers_module).items()
                 if isinstance(cls, type) and issubclass(cls, Layer) and cls is not Layer}


def layer_entry(layer):
    return {"module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
            "registered_name": None}


def layer_from_entry(entry):
    name = entry.get("class_name")
    cls = LAYER_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"model config: layer class {name!r} is not available in minicnn "
                         f"(available: {sorted(LAYER_CLASSES)})")
    return cls.from_config(entry.get("config") or {})


def model_config(model):
    """``{"module", "class_name", "config"}`` of a Sequential or functional model."""
    from .sequential import Sequential
    model._require_built("get_config")
    if isinstance(model, Sequential):
        entries = [] if model._input_layer is not None else [layer_entry(
            InputLayer(model.input_shape[1:], name=f"{model.layers[0].name}_input"))]
        entries += [layer_entry(l) for l in model._layers]
        config = {"name": model.name, "layers": entries}
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None}
    entries, previous = [], None
    for layer in model._layers:
        entry = {**layer_entry(layer), "name": layer.name, "inbound_nodes": []}
        if previous is not None:
            entry["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__", "config": {
                "shape": list(previous.output_shape), "dtype": "float32",
                "keras_history": [previous.name, 0, 0]}}], "kwargs": {}}]
        entries.append(entry)
        previous = layer
    config = {"name": model.name, "layers": entries,
              "input_layers": [[model._layers[0].name, 0, 0]],
              "output_layers": [[model._layers[-1].name, 0, 0]]}
    return {"module": "keras", "class_name": "Functional", "config": config, "registered_name": None}


def model_from_config(config):
    """A new (freshly initialised) model from :func:`model_config`'s dict or Keras's."""
    from .model import Model
    from .sequential import Sequential
    kind = config.get("class_name")
    body = config.get("config") or {}
    entries = body.get("layers") or []
    if kind == "Sequential":
        model = Sequential(name=body.get("name"))
        for entry in entries:
            if entry.get("class_name") == "InputLayer":
                layer = InputLayer.from_config(entry["config"])
                model.add(Input(shape=layer.output_shape[1:], name=layer.name))
            else:
                model.add(layer_from_entry(entry))
        return model
    if kind in ("Functional", "Model"):
        tensor, previous = None, None
        for entry in entries:
            if entry.get("class_name") == "InputLayer":
                layer = InputLayer.from_config(entry["config"])
                tensor = KerasTensor(layer.output_shape, layer=layer)
                inputs = tensor
            else:
                if _inbound_names(entry) != [previous]:
                    raise ValueError(f"model config: layer {entry.get('name')!r} takes "
                                     f"{_inbound_names(entry)}; minicnn models are chains of "
                                     "single-input layers")
                tensor = layer_from_entry(entry)(tensor)
            previous = tensor.layer.name
        return Model(inputs=inputs, outputs=tensor, name=body.get("name"))
    raise ValueError(f"model config: class {kind!r} is not a model minicnn can build "
                     "(expected 'Sequential' or 'Functional')")


def _inbound_names(entry):
    """The names of the layers feeding ``entry`` (Keras 3 dicts or tf.keras 2 lists)."""
    names = []
    for node in entry.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3
            for arg in node.get("args", []):
                history = (arg.get("config") or {}).get("keras_history")
                if history:
                    names.append(history[0])
        else:                       # tf.keras 2: [[name, node, tensor, kwargs], ...]
            names.extend(item[0] for item in node)
    return names


def to_json(model, **kwargs):
    return json.dumps(model_config(model), **kwargs)


def model_from_json(text):
    """A model from ``to_json`` text or Keras's ``model.to_json()`` (weights not included)."""
    try:
        config = json.loads(text)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"model_from_json: not a JSON model config ({e})") from None
    if not isinstance(config, dict):
        raise ValueError("model_from_json: expected a JSON object with 'class_name' and 'config'")
    return model_from_config(config)
