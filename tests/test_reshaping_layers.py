"""Reshape, Dense on rank > 2, the aliases and Keras 2 module paths, and a model holding
every pooling/reshaping layer: Keras's shapes, summary rows, files and numbers.

tests/fixtures/pooling was made by Keras 3.15.1 (tests/make_pooling_fixtures.py regenerates it)."""
import json
from pathlib import Path

import numpy as np
import pytest

import naive
from minicnn import backend, layers, models
from minicnn.models import Sequential
from minicnn.models.summary import format_row
from minicnn.ops import dense

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pooling"
MODEL = json.loads((FIXTURES / "model.json").read_text())


# ----------------------------------------------------------------------------
# Reshape
# ----------------------------------------------------------------------------
def test_reshape_infers_one_axis_and_is_a_view(impl):
    x = backend.asarray(np.arange(2 * 24, dtype=np.float32).reshape(2, 3, 8))
    layer = layers.Reshape((-1, 2, 2))
    y = layer(x, training=True)
    assert layer.output_shape == (None, 6, 2, 2) and y.shape == (2, 6, 2, 2)
    np.testing.assert_array_equal(backend.to_numpy(y), backend.to_numpy(x).reshape(2, 6, 2, 2))
    assert backend.device().xp.shares_memory(y, x)   # no copy
    dx = layer.backward(y)
    assert dx.shape == (2, 3, 8) and backend.device().xp.shares_memory(dx, x)


def test_reshape_errors_name_the_layer_and_its_config_round_trips():
    for bad in ((-1, -1), (0, 3), "3", (2.5,)):
        with pytest.raises(ValueError, match=r"reshape\w*: `target_shape` must be a tuple of positive ints"):
            layers.Reshape(bad)
    for target in ((5, 5), (-1, 7)):
        with pytest.raises(ValueError, match=r"reshape\w*: the total size of the tensor must be unchanged. "
                                             r"Received: input_shape=\(None, 3, 8\), target_shape="):
            layers.Reshape(target).compute_output_shape((None, 3, 8))
    config = layers.Reshape([4, -1], name="r").get_config()
    assert config["target_shape"] == (4, -1)
    twin = layers.Reshape.from_config(json.loads(json.dumps(config)))
    assert twin.target_shape == (4, -1) and twin.compute_output_shape((None, 8, 3)) == (None, 4, 6)


# ----------------------------------------------------------------------------
# Dense on rank > 2: the last axis, as Keras
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 7, 5, 3), (3, 6, 5), (1, 1, 4)])
def test_dense_ops_on_higher_rank_match_the_last_axis_product(impl, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[-1], 4)).astype(np.float32)
    y = dense.forward(backend.asarray(x), backend.asarray(w))
    want = np.einsum("...i,io->...o", x.astype(np.float64), w)
    assert y.shape == shape[:-1] + (4,)
    np.testing.assert_allclose(backend.to_numpy(y), want, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    lead = tuple(range(len(shape) - 1))   # dw sums over every axis but the last
    dx, dw = dense.backward(backend.asarray(dy), backend.asarray(x), backend.asarray(w))
    np.testing.assert_allclose(backend.to_numpy(dx), np.einsum("...o,io->...i", dy.astype(np.float64), w),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(dw), np.tensordot(x.astype(np.float64), dy, (lead, lead)),
                               rtol=1e-4, atol=1e-4)
    none, _ = dense.backward(backend.asarray(dy), backend.asarray(x), backend.asarray(w), need_dx=False)
    assert none is None
    with pytest.raises(ValueError, match=r"dense backward: dy must have shape " + rf"\({shape[0]},"):
        dense.backward(backend.asarray(dy[..., :3]), backend.asarray(x), backend.asarray(w))


def test_dense_on_higher_rank_runs_the_2d_op_on_a_view(monkeypatch):
    backend.set_backend("numpy")
    seen = []
    real = dense._forward_rows
    monkeypatch.setattr(dense, "_forward_rows", lambda x, w: seen.append(x) or real(x, w))
    x = np.ones((2, 7, 5, 3), np.float32)
    dense.forward(x, np.ones((3, 4), np.float32))
    assert seen[0].shape == (70, 3) and np.shares_memory(seen[0], x)


@pytest.mark.parametrize("name", ["dense_rank4", "dense_rank3"])
def test_the_dense_layer_gives_keras_numbers_on_higher_rank(impl, name):
    args = json.loads((FIXTURES / "layers.json").read_text())[name]["args"]
    ref = np.load(FIXTURES / "layers.npz")
    x, r = ref[f"{name}/x"], ref[f"{name}/r"]
    layer = layers.Dense(**args)
    layer(backend.asarray(x[:1]))
    layer.set_weights([ref[f"{name}/w0"], ref[f"{name}/w1"]])
    assert layer.output_shape == (None,) + ref[f"{name}/y"].shape[1:] and layer.kernel.shape == (x.shape[-1], args["units"])
    out = layer(backend.asarray(x), training=True)
    np.testing.assert_allclose(backend.to_numpy(out), ref[f"{name}/y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(layer.backward(backend.asarray(r))), ref[f"{name}/dx"], rtol=1e-5, atol=1e-5)
    for got, key in zip(layer.grads, ("dw0", "dw1")):
        np.testing.assert_allclose(backend.to_numpy(got), ref[f"{name}/{key}"], rtol=1e-4, atol=1e-4)


def test_the_dense_layer_on_higher_rank_passes_a_float64_gradient_check():
    backend.set_backend("numpy")
    rng = np.random.default_rng(3)
    layer = layers.Dense(3, activation="sigmoid", dtype="float64")
    x = rng.standard_normal((2, 3, 2, 4))
    layer(x)
    dout = rng.standard_normal((2, 3, 2, 3))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    loss = lambda: float((layer.forward(x) * dout).sum())  # noqa: E731
    np.testing.assert_allclose(dx, naive.numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    for got, weight in zip(layer.grads, layer.weights):
        np.testing.assert_allclose(got, naive.numeric_grad(loss, weight), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"dense\w*: expected input of rank >= 2"):
        layers.Dense(2).compute_output_shape((None,))


# ----------------------------------------------------------------------------
# names, aliases, Keras 2 module paths
# ----------------------------------------------------------------------------
def test_aliases_and_keras_2_module_paths():
    from minicnn.layers.convolutional import AveragePooling2D, Conv2D, Convolution2D, Cropping2D, ZeroPadding2D
    from minicnn.layers.core import Dense, Dropout, Flatten, Reshape
    from minicnn.layers.pooling import GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPool2D, MaxPooling2D
    assert Convolution2D is Conv2D is layers.Convolution2D is layers.Conv2D
    assert MaxPool2D is MaxPooling2D is layers.MaxPool2D and layers.AvgPool2D is AveragePooling2D
    assert (Cropping2D, ZeroPadding2D, Reshape, Dense, Flatten, Dropout) == (
        layers.Cropping2D, layers.ZeroPadding2D, layers.Reshape, layers.Dense, layers.Flatten, layers.Dropout)
    assert (GlobalAveragePooling2D, GlobalMaxPooling2D) == (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)
    backend.clear_session()
    assert [layers.MaxPool2D().name, layers.Convolution2D(1, 1).name] == ["max_pooling2d", "conv2d"]


# ----------------------------------------------------------------------------
# a model with every new layer: Keras's file, shapes, summary, numbers
# ----------------------------------------------------------------------------
def keras_model(**kwargs):
    backend.clear_session()
    return models.load_model(FIXTURES / "model.keras", **kwargs)


def test_a_keras_made_model_loads_with_its_names_shapes_params_and_predictions():
    m = keras_model(compile=False)
    assert [(l.name, type(l).__name__, l.output_shape, l.count_params()) for l in m.layers] == [
        (e["name"], e["class"], tuple(e["output_shape"]), e["params"]) for e in MODEL["layers"]]
    assert m.count_params() == MODEL["total_params"]
    ref = np.load(FIXTURES / "model_predictions.npz")
    np.testing.assert_allclose(m.predict(ref["x"]), ref["p"], rtol=0, atol=1e-6)


def test_summary_rows_are_keras_s():
    lines = []
    keras_model(compile=False).summary(print_fn=lines.append)
    for entry in MODEL["layers"]:
        row = format_row((f"{entry['name']} ({entry['class']})", str(tuple(entry["output_shape"])), entry["params"]))
        assert row in lines
    assert "dense (Dense)                (None, 5, 5, 5)           25        " in lines
    assert "global_average_pooling2d (Gl (None, 1, 1, 5)           0         " in lines
    assert f"Total params: {MODEL['total_params']:,}" in lines


def test_each_layer_reads_its_keras_config():
    for entry in MODEL["layers"]:
        layer = getattr(layers, entry["class"]).from_config(entry["config"])
        assert layer.name == entry["name"]
        keras_keys = set(entry["config"]) - {"dtype", "trainable", "name"}
        assert keras_keys <= set(layer.get_config()) | {"kernel_regularizer", "bias_regularizer", "activity_regularizer",
                                                         "kernel_constraint", "bias_constraint", "groups", "quantization_config"}


def every_layer_model():
    return Sequential([
        layers.ZeroPadding2D(((1, 0), (2, 1)), input_shape=(11, 9, 2)),
        layers.Convolution2D(4, 3, dilation_rate=2, activation="relu", padding="same"),
        layers.AvgPool2D(2, padding="same"),
        layers.Cropping2D(((1, 0), (0, 1))),
        layers.Dense(5, activation="relu"),
        layers.MaxPool2D(2, strides=1, padding="same"),
        layers.Reshape((-1, 5)),
        layers.Reshape((5, 5, 5)),
        layers.GlobalMaxPooling2D(keepdims=True),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_load_model_round_trip(tmp_path, suffix):
    pytest.importorskip("h5py")
    backend.set_backend("numpy")
    m = every_layer_model()
    twin = models.model_from_json(m.to_json())
    assert [type(l).__name__ for l in twin.layers] == [type(l).__name__ for l in m.layers]
    m.save(tmp_path / f"m{suffix}")
    loaded = models.load_model(tmp_path / f"m{suffix}", compile=False)
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in m.layers]
    x = np.random.default_rng(0).random((4, 11, 9, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))


def train_step_grads(backend_name):
    """Every layer's forward and backward once (a fixed dL/dy), on one backend."""
    from minicnn.utils import set_random_seed
    backend.set_backend(backend_name)
    set_random_seed(4)
    m = every_layer_model()
    rng = np.random.default_rng(5)
    a = backend.asarray(rng.random((3, 11, 9, 2)).astype(np.float32))
    for layer in m.layers:
        a = layer.forward(a, training=True)
    d = backend.asarray(rng.standard_normal((3, 3)).astype(np.float32))
    for layer in reversed(m.layers):
        d = layer.backward(d)
    return backend.to_numpy(a), [backend.to_numpy(g) for l in m.layers for g in l.grads], backend.to_numpy(d)


def test_numpy_and_the_emulator_agree_on_every_layer(settings):
    settings(MINICNN_EMU_ORDER="all")
    previous = backend.backend_name()
    try:
        y0, g0, d0 = train_step_grads("numpy")
        y1, g1, d1 = train_step_grads("emulator")
    finally:
        backend.set_backend(previous)
    np.testing.assert_allclose(y1, y0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d1, d0, rtol=1e-4, atol=1e-6)
    assert len(g0) == len(g1) == 6
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
