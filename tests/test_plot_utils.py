"""minicnn.utils.plot_model / model_to_dot (pydot + Graphviz, as keras.utils.plot_model)
and plot_history (matplotlib). What they say when those are missing is tested always;
the drawings when the packages are installed (the `plot` extra; Graphviz's `dot`)."""
import shutil
import sys
import types

import numpy as np
import pytest

import minicnn as keras
from minicnn import layers
from minicnn.models import Sequential
from minicnn.utils import clear_session, plot_history, plot_model, set_random_seed, to_categorical


def small_model():
    clear_session()
    set_random_seed(0)
    m = Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), layers.MaxPooling2D(2),
                    layers.Flatten(), layers.Dense(3, activation="softmax", trainable=False)])
    m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    return m


def no_pydot(monkeypatch):
    for name in ("pydot", "pydot_ng", "pydotplus"):
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError


def needs_pydot():
    return pytest.importorskip("pydot")


def needs_graphviz():
    pydot = needs_pydot()
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` program is not installed")
    return pydot


# -- what is said when something is missing -----------------------------------------------
def test_without_pydot_plot_model_says_what_to_install(monkeypatch, tmp_path):
    no_pydot(monkeypatch)
    for name in ("model.png", "model.dot"):
        with pytest.raises(ImportError, match=r"^You must install pydot \(`pip install pydot`\) for "
                                              r"`plot_model` to work\.$"):
            plot_model(small_model(), to_file=tmp_path / name)
    with pytest.raises(ImportError, match=r"You must install pydot \(`pip install pydot`\) for model_to_dot"):
        keras.utils.model_to_dot(small_model())
    assert list(tmp_path.iterdir()) == []


def test_without_graphviz_plot_model_says_what_to_install(monkeypatch, tmp_path):
    class PydotException(Exception):
        pass

    class Dot:
        def create(self, *args, **kwargs):
            raise FileNotFoundError('"dot" not found in path.')

    fake = types.SimpleNamespace(Dot=Dot, PydotException=PydotException)
    no_pydot(monkeypatch)
    monkeypatch.setitem(sys.modules, "pydot", fake)
    with pytest.raises(ImportError, match=r"^You must install graphviz \(see instructions at "
                                          r"https://graphviz\.gitlab\.io/download/\) for `plot_model` to work\.$"):
        plot_model(small_model(), to_file=tmp_path / "model.png")
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_plot_history_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"You must install matplotlib \(`pip install matplotlib`, or "
                                          r"`pip install 'minicnn\[plot\]'`\) for `plot_history` to work\."):
        plot_history({"loss": [1.0, 0.5]})


def test_plot_model_refuses_an_unbuilt_model_and_unknown_arguments(monkeypatch, tmp_path):
    no_pydot(monkeypatch)  # checked first, as in Keras: no package is needed to be told
    with pytest.raises(ValueError, match="This model has not yet been built. Build the model first"):
        plot_model(Sequential([layers.Dense(2)]), to_file=tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments: \{'show_colors': True\}"):
        plot_model(small_model(), to_file=tmp_path / "m.png", show_colors=True)
    with pytest.raises(ValueError, match="Argument `layer_range` is no longer supported."):
        plot_model(small_model(), to_file=tmp_path / "m.png", layer_range=["a", "b"])


# -- the drawings --------------------------------------------------------------------------
def test_model_to_dot_has_a_box_per_layer_and_an_edge_to_the_next():
    needs_pydot()
    dot = keras.utils.model_to_dot(small_model(), show_shapes=True, show_layer_activations=True,
                                   show_trainable=True, show_dtype=True)
    names = [n.get_name() for n in dot.get_nodes() if n.get_name() not in ("node", "edge", "graph")]
    assert names == ["conv2d", "max_pooling2d", "flatten", "dense"]
    assert [(e.get_source(), e.get_destination()) for e in dot.get_edges()] == [
        ("conv2d", "max_pooling2d"), ("max_pooling2d", "flatten"), ("flatten", "dense")]
    label = dot.get_node("conv2d")[0].get_label()
    for text in ("<b>conv2d</b> (Conv2D)", "Activation: <b>relu</b>", "Input shape: <b>(None, 8, 8, 1)</b>",
                 "Output shape: <b>(None, 6, 6, 4)</b>", "Output dtype: <b>float32</b>", "<b>Trainable</b>"):
        assert text in label
    assert "<b>Non-trainable</b>" in dot.get_node("dense")[0].get_label()
    assert "rainable" not in dot.get_node("flatten")[0].get_label()  # no weights: nothing to say
    bare = keras.utils.model_to_dot(small_model(), show_layer_names=False)
    assert "<b>Conv2D</b>" in bare.get_node("conv2d")[0].get_label()
    assert "conv2d</b>" not in bare.get_node("conv2d")[0].get_label()


def test_a_functional_model_starts_with_its_input_box():
    needs_pydot()
    clear_session()
    inputs = keras.Input(shape=(8, 8, 1))
    model = keras.Model(inputs, layers.Conv2D(2, 3)(inputs))
    dot = keras.utils.model_to_dot(model, show_shapes=True)
    assert [(e.get_source(), e.get_destination()) for e in dot.get_edges()] == [("input_1", "conv2d")]
    assert "Input shape" not in dot.get_node("input_1")[0].get_label()


def test_the_dot_source_needs_no_graphviz(tmp_path):
    needs_pydot()
    assert plot_model(small_model(), to_file=tmp_path / "model.dot") is None
    text = (tmp_path / "model.dot").read_text()
    assert text.startswith("digraph G {") and "conv2d -> max_pooling2d" in text
    assert [p.name for p in tmp_path.iterdir()] == ["model.dot"]  # written atomically, no temporary left


@pytest.mark.parametrize("name, magic", [("model.png", b"\x89PNG\r\n\x1a\n"), ("model", b"\x89PNG\r\n\x1a\n"),
                                         ("model.svg", b"<?xml")])
def test_plot_model_draws_in_the_format_of_the_extension(tmp_path, name, magic):
    needs_graphviz()
    plot_model(small_model(), to_file=tmp_path / name, show_shapes=True)
    data = (tmp_path / name).read_bytes()
    assert data.startswith(magic) and len(data) > 1000
    if name.endswith(".svg"):
        assert "max_pooling2d" in data.decode() and "(None, 3, 3, 4)" in data.decode()


def fit_history(validation_freq=1, epochs=4):
    m = small_model()
    rng = np.random.default_rng(0)
    x = rng.random((24, 8, 8, 1)).astype(np.float32)
    y = to_categorical(rng.integers(0, 3, 24), 3)
    return m.fit(x, y, epochs=epochs, batch_size=8, verbose=0, validation_data=(x[:8], y[:8]),
                 validation_freq=validation_freq)


def lines_of(axes):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in axes.get_lines()}


def test_plot_history_draws_loss_and_accuracy_with_their_validation_curves(tmp_path):
    pytest.importorskip("matplotlib")
    history = fit_history()
    figure = plot_history(history, to_file=tmp_path / "history.png")
    assert [a.get_title() for a in figure.axes] == ["model loss", "model accuracy"]
    loss, accuracy = (lines_of(a) for a in figure.axes)
    assert loss == {"training": ([1, 2, 3, 4], history.history["loss"]),
                    "validation": ([1, 2, 3, 4], history.history["val_loss"])}
    assert accuracy["validation"] == ([1, 2, 3, 4], history.history["val_accuracy"])
    assert figure.axes[0].get_xlabel() == "epoch"
    assert (tmp_path / "history.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["history.png"]


def test_plot_history_puts_sparse_validation_at_the_validated_epochs():
    pytest.importorskip("matplotlib")
    history = fit_history(validation_freq=2)
    assert history.epochs_of("val_loss") == [1, 3] and history.epochs_of("val_acc") == [1, 3]
    loss = lines_of(plot_history(history).axes[0])
    assert loss["validation"] == ([2, 4], history.history["val_loss"])
    assert loss["training"][0] == [1, 2, 3, 4]


def test_plot_history_takes_a_plain_dict_and_refuses_what_it_cannot_draw():
    pytest.importorskip("matplotlib")
    figure = plot_history({"loss": [1.0, 0.5, 0.25], "val_loss": [1.5, 1.0, 0.75], "learning_rate": [1e-3] * 3})
    assert [a.get_title() for a in figure.axes] == ["model loss", "model learning_rate"]
    assert lines_of(figure.axes[0])["validation"] == ([1, 2, 3], [1.5, 1.0, 0.75])
    with pytest.raises(ValueError, match="plot_history: the history has no epochs to plot"):
        plot_history({"loss": []})
    with pytest.raises(TypeError, match=r"plot_history: history\['loss'\] must be a list of numbers"):
        plot_history({"loss": ["a"]})
    with pytest.raises(TypeError, match="expected the History that fit returns .* Received: list"):
        plot_history([1.0, 2.0])
