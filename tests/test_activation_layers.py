"""Activation, ReLU, ELU, Softmax; activation= in Conv2D/Dense; minicnn.activations' functions."""
import json
from pathlib import Path

import numpy as np
import pytest

import naive
from minicnn import activations, backend, layers, models
from minicnn.ops import activation as act_ops
from minicnn.ops import bias_act

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "activations"
KERAS = json.loads((FIXTURES / "configs.json").read_text())

LAYERS = [layers.Activation("gelu"), layers.Activation("swish"), layers.Activation("softmax"),
          layers.ReLU(), layers.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.5), layers.ELU(),
          layers.ELU(alpha=0.4), layers.Softmax(), layers.Softmax(axis=1)]
LAYER_IDS = ["Activation-gelu", "Activation-swish", "Activation-softmax", "ReLU", "ReLU-args", "ELU",
             "ELU-alpha", "Softmax", "Softmax-axis1"]


def fresh(layer, dtype="float32"):
    return type(layer).from_config({**layer.get_config(), "name": None, "dtype": dtype})


def summary_lines(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


@pytest.mark.parametrize("key", sorted(k for k in KERAS["layers"] if k.split("_")[0] in
                                       ("Activation", "ReLU", "ELU", "Softmax")))
def test_configs_are_keras_configs(key):
    """Keras's get_config() (dtype policy as its name) loads, and ours gives it back."""
    entry = KERAS["layers"][key]
    layer = getattr(layers, entry["class_name"]).from_config(entry["config"])
    assert layer.get_config() == entry["config"]


def test_string_activations_save_as_keras_names():
    dense = KERAS["layers"]["Dense_hard_swish"]["config"]
    assert layers.Dense(3, activation="hard_swish").get_config()["activation"] == dense["activation"] == "hard_silu"
    conv = layers.Conv2D.from_config(KERAS["layers"]["Conv2D_he_uniform"]["config"])
    assert conv.activation == "elu" and type(conv.kernel_initializer).__name__ == "HeUniform"
    assert layers.Dense(2, activation=activations.swish).get_config()["activation"] == "silu"
    assert layers.Activation(activations.gelu).get_config()["activation"] == "gelu"
    assert layers.Conv2D(2, 3, activation=None).activation == "linear"


def test_summary_rows_have_no_parameters():
    backend.clear_session()
    m = models.Sequential([layers.Conv2D(4, 3, input_shape=(8, 8, 1)), layers.Activation("relu"),
                           layers.ReLU(max_value=6.0), layers.ELU(), layers.Flatten(), layers.Dense(3),
                           layers.Softmax()])
    rows = [line.rstrip() for line in summary_lines(m)]
    for row in ["activation (Activation)      (None, 6, 6, 4)           0",
                "re_lu (ReLU)                 (None, 6, 6, 4)           0",
                "elu (ELU)                    (None, 6, 6, 4)           0",
                "softmax (Softmax)            (None, 3)                 0",
                "Total params: 475"]:
        assert row in rows
    assert m.count_params() == 4 * 9 + 4 + 144 * 3 + 3


@pytest.mark.parametrize("layer", LAYERS, ids=LAYER_IDS)
def test_float64_gradients_match_finite_differences(layer):
    layer = fresh(layer, "float64")
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (2, 3, 4))
    w = rng.uniform(-1, 1, x.shape)
    y = layer(x, training=True)
    dx = layer.backward(w)
    assert layer._ctx is None   # used up
    np.testing.assert_allclose(dx, naive.numeric_grad(lambda: float((w * layer(x)).sum()), x),
                               rtol=1e-6, atol=1e-9)
    assert y.dtype == np.float64 and layer.count_params() == 0


@pytest.mark.parametrize("layer", LAYERS, ids=LAYER_IDS)
def test_layers_agree_on_every_backend(impl, layer, monkeypatch):
    monkeypatch.setattr(act_ops, "MIN_KERNEL_SIZE", 0)
    layer = fresh(layer)
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, (3, 5, 7)).astype(np.float32)
    dy = rng.uniform(-1, 1, x.shape).astype(np.float32)
    previous = backend.backend_name()
    backend.set_backend("numpy")        # the float64 reference
    ref = fresh(layer, "float64")
    want = ref(x.astype(np.float64), training=True), ref.backward(dy.astype(np.float64))
    backend.set_backend(previous)
    xd = backend.asarray(x)
    y = backend.to_numpy(layer(xd, training=True))
    dx = backend.to_numpy(layer.backward(backend.asarray(dy)))
    np.testing.assert_array_equal(backend.to_numpy(xd), x)     # the input is left alone
    np.testing.assert_allclose(y, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, want[1], rtol=1e-4, atol=1e-5)
    layer(xd)
    assert layer._ctx is None   # inference keeps nothing


@pytest.mark.parametrize("last", [lambda: layers.Softmax(), lambda: layers.Activation("softmax")])
def test_a_softmax_layer_at_the_end_fuses_with_the_loss(last):
    """Dense + Softmax() trains exactly as Dense(activation='softmax')."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (16, 6)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 16)]
    fused = models.Sequential([layers.Dense(4, activation="softmax", input_shape=(6,))])
    split = models.Sequential([layers.Dense(4, input_shape=(6,)), last()])
    split.set_weights(fused.get_weights())
    assert split.layers[-1].output_activation == "softmax"
    for m in (fused, split):
        m.compile("sgd", "categorical_crossentropy")
        m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(fused.get_weights(), split.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_output_activation_is_named_only_when_the_loss_may_fuse_with_it():
    assert layers.ReLU().output_activation == "relu" and layers.ReLU(max_value=1.0).output_activation is None
    assert layers.ELU().output_activation == "elu" and layers.ELU(alpha=2.0).output_activation is None
    m = models.Sequential([layers.Softmax(axis=1, input_shape=(3, 4))])
    assert m.layers[-1].output_activation is None   # softmax over the rows, not the classes
    assert models.Sequential([layers.Softmax(axis=1, input_shape=(4,))]).layers[-1].output_activation == "softmax"


@pytest.mark.parametrize("name", activations.NAMES + tuple(activations.ALIASES))
def test_every_activation_trains_in_dense(name):
    """activation= every name in Dense (float64, the reference): the layer keeps the
    right context (output or pre-activation) for its backward."""
    dense = layers.Dense(3, activation=name, dtype="float64")
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (4, 5))
    w = rng.uniform(-1, 1, (4, 3))
    dense(x)
    kernel = dense.kernel
    dense(x, training=True)
    dense.backward(w)
    np.testing.assert_allclose(dense.grads[0], naive.numeric_grad(lambda: float((w * dense(x)).sum()), kernel),
                               rtol=1e-6, atol=1e-9)
    u = x @ kernel + dense.bias
    np.testing.assert_allclose(dense(x), activations.get(name)(u), rtol=1e-12, atol=1e-14)


def test_the_activation_functions_take_and_give_numpy():
    assert activations.relu([-1, 2]).dtype == np.float32
    np.testing.assert_array_equal(activations.relu([-1, 2]), [0, 2])
    assert activations.gelu(np.array([1.0])).dtype == np.float64
    np.testing.assert_allclose(activations.softmax([[1.0, 2.0, 1.0]]), [[0.21194157, 0.5761169, 0.21194157]],
                               rtol=1e-6)
    np.testing.assert_allclose(activations.softmax(np.ones((2, 3)), axis=0), np.full((2, 3), 0.5))
    np.testing.assert_array_equal(activations.relu([-10, -5, 0.0, 5, 10], threshold=5.0), [-0.0, -0.0, 0, 0, 10])
    np.testing.assert_array_equal(activations.relu([-10, -5, 0.0, 5, 10], negative_slope=0.5, max_value=5.0),
                                  [-5, -2.5, 0, 5, 5])
    x = np.array([-1.0, 3.0], np.float32)
    activations.elu(x)
    np.testing.assert_array_equal(x, [-1.0, 3.0])   # the input is left alone


def test_get_serialize_and_aliases():
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get(None) is activations.linear and activations.get(activations.mish) is activations.mish
    assert activations.get({"module": "keras.activations", "class_name": "function", "config": "elu",
                            "registered_name": "function"}) is activations.elu
    assert activations.serialize(activations.swish) == "silu" and activations.serialize("relu6") == "relu6"
    assert activations.deserialize("selu") is activations.selu
    for name in activations.NAMES:
        assert activations.serialize(activations.get(name)) == name
        assert bias_act.check_activation("test", name) is not None


def test_unknown_activations_and_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"dense_x: unknown activation 'relux'. Expected one of \['elu', "
                                         r"'exponential', .*'swish', 'tanh'\] or None. Received: activation='relux'"):
        layers.Dense(3, activation="relux", name="dense_x")
    with pytest.raises(ValueError, match=r"activation must be a name or one of minicnn.activations' functions"):
        layers.Conv2D(2, 3, activation=lambda x: x)
    with pytest.raises(ValueError, match=r"activations.get: unknown activation 'nope'"):
        activations.get("nope")
    with pytest.raises(ValueError, match=r"re_lu_bad: `max_value` must be a finite number >= 0 or None. "
                                         r"Received: max_value=-1"):
        layers.ReLU(max_value=-1, name="re_lu_bad")
    with pytest.raises(ValueError, match=r"`negative_slope` must be a finite number >= 0. Received: negative_slope=None"):
        layers.ReLU(negative_slope=None)
    with pytest.raises(ValueError, match=r"`threshold` must be a finite number >= 0. Received: threshold=-0.5"):
        layers.ReLU(threshold=-0.5)
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number. Received: alpha='1'"):
        layers.ELU(alpha="1")
    with pytest.raises(ValueError, match=r"`axis` must be an int \(one axis\). Received: axis=\(1, 2\)"):
        layers.Softmax(axis=(1, 2))
    with pytest.raises(ValueError, match=r"softmax_bad: `axis` must be in \[-2, 2\) for inputs of shape "
                                         r"\(None, 4\). Received: axis=2"):
        models.Sequential([layers.Softmax(axis=2, input_shape=(4,), name="softmax_bad")])
    with pytest.raises(ValueError, match=r"leaky_relu: `negative_slope` must be a finite number. "
                                         r"Received: negative_slope='a'"):
        activations.leaky_relu([1.0], negative_slope="a")
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward\(x, training=True\) first"):
        layers.ELU().backward(np.ones((1, 2), np.float32))


def test_the_keras_made_model_loads_with_its_predictions():
    pytest.importorskip("h5py", reason="Keras files need h5py")
    m = models.load_model(FIXTURES / "tiny.keras")
    ref = np.load(FIXTURES / "tiny.npz")
    np.testing.assert_allclose(m.predict(ref["x"], verbose=0), ref["y"], rtol=0, atol=1e-6)
    assert [type(l).__name__ for l in m.layers[1:5]] == ["Activation", "ReLU", "ELU", "Conv2D"]
    assert m.layers[1].activation == "silu" and m.layers[2].max_value == 2.5 and m.layers[3].alpha == 0.7


def test_save_and_load_round_trip(tmp_path):
    pytest.importorskip("h5py", reason="Keras files need h5py")
    m = models.load_model(FIXTURES / "tiny.keras")
    m.save(tmp_path / "again.keras")
    twin = models.load_model(tmp_path / "again.keras")
    assert [l.get_config() for l in twin.layers] == [l.get_config() for l in m.layers]
    x = np.load(FIXTURES / "tiny.npz")["x"]
    np.testing.assert_array_equal(twin.predict(x, verbose=0), m.predict(x, verbose=0))


def test_keras_2_module_path():
    from minicnn.layers.advanced_activations import ELU, LeakyReLU, ReLU, Softmax
    assert (ELU, LeakyReLU, ReLU, Softmax) == (layers.ELU, layers.LeakyReLU, layers.ReLU, layers.Softmax)
