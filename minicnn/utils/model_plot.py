"""plot_model / model_to_dot: the layer graph as an image, as ``keras.utils.plot_model``.

They need pydot (``pip install pydot``) and, to draw, the Graphviz programs
(https://graphviz.gitlab.io/download/); without them the call raises
Keras's ImportError saying what to install. The boxes are Keras 3's: a
table with the layer's name and class, then (optional) its activation, its
input and output shapes, dtype and whether it trains.

Example::

    >>> from minicnn.utils import plot_model
    >>> plot_model(model, to_file='model.png', show_shapes=True)
"""
import os
import sys

PYDOT_MESSAGE = "You must install pydot (`pip install pydot`) for `plot_model` to work."
GRAPHVIZ_MESSAGE = ("You must install graphviz (see instructions at https://graphviz.gitlab.io/download/) "
                    "for `plot_model` to work.")
UNBUILT_MESSAGE = ("This model has not yet been built. Build the model first by calling `build()` or by "
                   "calling the model on a batch of data.")


def _pydot():
    """The pydot module (or one of its older forks, as Keras accepts), or None."""
    for name in ("pydot", "pydot_ng", "pydotplus"):
        try:
            return __import__(name)
        except ImportError:
            continue
    return None


def _has_graphviz(pydot):
    """True when Graphviz's programs run: drawing an empty graph works."""
    try:
        pydot.Dot.create(pydot.Dot())
        return True
    except (OSError, getattr(pydot, "PydotException", OSError)):
        return False


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return getattr(activation, "name", None) or getattr(activation, "__name__", None) or str(activation)


def _shape_text(shape):
    return "?" if shape is None else str(tuple(shape))


def _cell(text):
    return f'<td bgcolor="white"><font point-size="14">{text}</font></td>'


def layer_label(layer, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable):
    """The Graphviz HTML-like label of one layer's box, as Keras 3 draws it."""
    class_name = type(layer).__name__
    cells = []
    if show_shapes:
        if class_name != "InputLayer":
            cells.append(_cell(f"Input shape: <b>{_shape_text(layer.input_shape)}</b>"))
        cells.append(_cell(f"Output shape: <b>{_shape_text(layer.output_shape)}</b>"))
    if show_dtype:
        cells.append(_cell(f"Output dtype: <b>{getattr(layer, 'dtype', None) or '?'}</b>"))
    if show_trainable and layer.weights:
        color, text = ("forestgreen", "Trainable") if layer.trainable else ("firebrick", "Non-trainable")
        cells.append(f'<td bgcolor="{color}"><font point-size="14" color="white"><b>{text}</b></font></td>')
    span = max(1, len(cells))
    title = f"<b>{layer.name}</b> ({class_name})" if show_layer_names else f"<b>{class_name}</b>"
    rows = [f'<tr><td colspan="{span}" bgcolor="black"><font point-size="16" color="white">{title}'
            "</font></td></tr>"]
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        rows.append(f'<tr><td bgcolor="white" colspan="{span}"><font point-size="14">'
                    f"Activation: <b>{_activation_name(layer)}</b></font></td></tr>")
    if cells:
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return '<<table border="0" cellborder="1" bgcolor="black" cellpadding="10">' + "".join(rows) + "</table>>"


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False,
                 show_trainable=False, splines="ortho"):
    """The model's layer graph as a ``pydot.Dot`` (``keras.utils.model_to_dot``): one
    box per layer, in order, an edge from each layer to the next (minicnn's models
    are chains). ``expand_nested``: accepted; a minicnn model holds no models.

    Example: ``model_to_dot(model, show_shapes=True).write_svg('model.svg')``."""
    if not model.built:
        raise ValueError(UNBUILT_MESSAGE)
    pydot = _pydot()
    if pydot is None:
        raise ImportError("You must install pydot (`pip install pydot`) for model_to_dot to work.")
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"model_to_dot: rankdir must be 'TB' (top to bottom) or 'LR' (left to right). "
                         f"Received: rankdir={rankdir!r}")
    if subgraph:
        dot = pydot.Cluster(style="dashed", graph_name=model.name)
        dot.set("label", model.name)
        dot.set("labeljust", "l")
    else:
        dot = pydot.Dot()
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set("splines", splines)
        dot.set_node_defaults(shape="record")
    names = []
    for layer in model.layers:
        label = layer_label(layer, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable)
        node = pydot.Node(layer.name, label=label)  # layer names are unique within a model
        node.set("fontname", "Helvetica")
        node.set("border", "0")
        node.set("margin", "0")
        dot.add_node(node)
        names.append(layer.name)
    for source, target in zip(names, names[1:]):
        edge = pydot.Edge(source, target)
        edge.set("penwidth", "2")
        dot.add_edge(edge)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               splines="ortho", **kwargs):
    """Draw the model's layer graph into ``to_file`` (``keras.utils.plot_model``).

    The format comes from the extension, as in Keras: ``.png`` (also without
    one), ``.svg``, ``.pdf``, ... through Graphviz; ``.dot`` writes the graph's
    Graphviz source, which needs pydot only. ``show_layer_names`` is True by
    default, as in Keras 2 and the tutorials (Keras 3 made it False). In a
    notebook (IPython installed) it returns the image to display.

    Example: ``plot_model(model, to_file='model.png', show_shapes=True)``."""
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("Argument `layer_range` is no longer supported.")
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments: {kwargs}")
    if not model.built:
        raise ValueError(UNBUILT_MESSAGE)
    to_file = os.fsdecode(os.fspath(to_file))
    extension = os.path.splitext(to_file)[1][1:] or "png"
    pydot = _pydot()
    if pydot is None:
        raise ImportError(PYDOT_MESSAGE)
    if extension != "dot" and not _has_graphviz(pydot):
        raise ImportError(GRAPHVIZ_MESSAGE)
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable,
                       splines=splines)
    data = dot.to_string().encode() if extension == "dot" else dot.create(format=extension)
    from ..models.saving import atomic_write  # late: minicnn.models imports minicnn.utils
    atomic_write(to_file, lambda f: f.write(data), "plot_model")
    if extension not in ("pdf", "dot") and "IPython" in sys.modules:
        try:
            from IPython import display
            return display.Image(filename=to_file)
        except ImportError:
            pass
    return None
