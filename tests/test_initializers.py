"""minicnn.initializers: Keras 3's formulas, statistics of large draws, seeds, configs, errors."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from minicnn import initializers, layers, models
from minicnn.utils import get_rng, set_random_seed

KERAS = json.loads((Path(__file__).resolve().parent / "fixtures" / "activations" / "configs.json").read_text())
CONV = (3, 3, 64, 96)          # fan_in 576, fan_out 864
FAN_IN, FAN_OUT = 576, 864


def test_fans_are_keras_fans():
    assert initializers.compute_fans(CONV) == (FAN_IN, FAN_OUT)
    assert initializers.compute_fans((5, 7)) == (5, 7)
    assert initializers.compute_fans((4,)) == (4, 4)
    assert initializers.compute_fans(()) == (1, 1)
    assert initializers.compute_fans((2, 3, 5), input_axes=(0, 1), output_axes=(2,)) == (6, 5)


# name -> (bound of |w| or None, the standard deviation Keras's formula gives)
UNIFORM = {"he_uniform": math.sqrt(6 / FAN_IN), "glorot_uniform": math.sqrt(6 / (FAN_IN + FAN_OUT)),
           "lecun_uniform": math.sqrt(3 / FAN_IN), "random_uniform": 0.05}
NORMAL = {"he_normal": math.sqrt(2 / FAN_IN), "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
          "lecun_normal": math.sqrt(1 / FAN_IN), "random_normal": 0.05,
          "truncated_normal": 0.05 * initializers.TRUNCATED_STDDEV,   # stddev 0.05 before the cut
          "variance_scaling": math.sqrt(1 / FAN_IN)}


@pytest.mark.parametrize("name, limit", sorted(UNIFORM.items()))
def test_uniform_initializers_fill_their_limits(name, limit):
    w = initializers.get(name)(CONV)
    assert w.shape == CONV and w.dtype == np.float32
    assert np.abs(w).max() <= np.float32(limit) and np.abs(w).max() > 0.999 * limit
    assert abs(w.mean()) < 0.01 * limit
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("name, std", sorted(NORMAL.items()))
def test_normal_initializers_have_keras_variance(name, std):
    """Truncated ones (variance scaling): drawn at std / 0.8796..., cut at 2 of those, so
    their std is the formula's."""
    w = initializers.get(name)(CONV).astype(np.float64)
    assert abs(w.mean()) < 0.02 * std
    assert w.std() == pytest.approx(std, rel=0.015)
    if name != "random_normal":
        wide = std / initializers.TRUNCATED_STDDEV   # the normal drawn before the cut
        assert np.abs(w).max() <= 2 * wide * (1 + 1e-6)
        assert np.abs(w).max() > 1.9 * wide
    else:
        assert np.abs(w).max() > 3 * std   # no truncation


def test_variance_scaling_arguments():
    vs = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="untruncated_normal")
    assert vs.variance(CONV) == 3.0 / FAN_OUT
    w = vs(CONV)
    assert w.std() == pytest.approx(math.sqrt(3 / FAN_OUT), rel=0.015) and np.abs(w).max() > 3 * w.std()
    avg = initializers.VarianceScaling(2.0, "fan_avg", "uniform")
    assert np.abs(avg(CONV)).max() <= math.sqrt(3 * 2.0 / ((FAN_IN + FAN_OUT) / 2))
    assert initializers.VarianceScaling(distribution="normal").distribution == "truncated_normal"  # Keras 2
    assert initializers.VarianceScaling().variance((0, 3)) == 1.0   # n is at least 1


def test_the_truncated_normal_correction_is_the_truncated_std():
    """0.87962566103423978 = std of N(0, 1) cut to [-2, 2] (Keras's constant)."""
    phi = math.exp(-2) / math.sqrt(2 * math.pi)
    z = math.erf(2 / math.sqrt(2))
    assert math.sqrt(1 - 4 * phi / z) == pytest.approx(initializers.TRUNCATED_STDDEV, rel=1e-15)


def test_constants_identity_and_orthogonal():
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("ones")((4,)), np.ones(4))
    np.testing.assert_array_equal(initializers.Constant(0.25)((2, 2)), np.full((2, 2), 0.25, np.float32))
    np.testing.assert_array_equal(initializers.Constant([1.0, 2.0])((3, 2)), [[1, 2]] * 3)
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((2, 3)), 2 * np.eye(2, 3))
    q = initializers.Orthogonal(gain=1.5)((3, 3, 4, 8)).reshape(-1, 8).astype(np.float64)
    np.testing.assert_allclose(q.T @ q, 2.25 * np.eye(8), atol=1e-5)     # orthogonal columns
    wide = initializers.get("orthogonal")((4, 10)).astype(np.float64)
    np.testing.assert_allclose(wide @ wide.T, np.eye(4), atol=1e-5)      # orthogonal rows
    assert initializers.Zeros()((2,), dtype="float64").dtype == np.float64


def test_draws_come_from_the_global_generator_unless_seeded():
    set_random_seed(7)
    a = initializers.HeUniform()((5, 5))
    b = initializers.HeUniform()((5, 5))
    set_random_seed(7)
    np.testing.assert_array_equal(initializers.HeUniform()((5, 5)), a)
    assert not np.array_equal(a, b)
    seeded = initializers.RandomNormal(stddev=1.0, seed=3)
    state = get_rng().bit_generator.state
    first = seeded((4, 4))
    np.testing.assert_array_equal(seeded((4, 4)), first)      # the same values every call, as Keras
    assert get_rng().bit_generator.state == state              # the global generator untouched
    np.testing.assert_array_equal(initializers.RandomNormal(stddev=1.0, seed=3)((4, 4)), first)


def test_glorot_uniform_draws_as_before():
    """The default kernel initializer draws the very numbers it drew before (the book model's)."""
    set_random_seed(1)
    limit = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    want = get_rng().uniform(-limit, limit, size=CONV).astype(np.float32)
    set_random_seed(1)
    np.testing.assert_array_equal(initializers.get("glorot_uniform")(CONV), want)


@pytest.mark.parametrize("key", sorted(KERAS["initializers"]))
def test_keras_configs_load_and_serialize_back(key):
    config = KERAS["initializers"][key]
    init = initializers.get(config)
    assert type(init).__name__ == config["class_name"]
    ours = initializers.serialize(init)
    assert ours["class_name"] == config["class_name"] and ours["module"] == "keras.initializers"
    keras_config = {k: v for k, v in config["config"].items() if v is not None or k == "seed"}
    if key == "identity":
        keras_config = {"gain": 1.0}   # Keras 3.15 drops Identity's gain from its config
    assert {k: v for k, v in ours["config"].items()} == keras_config
    assert type(initializers.get(ours)) is type(init) and initializers.get(ours).get_config() == init.get_config()


@pytest.mark.parametrize("name", initializers.NAMES)
def test_names_class_names_and_classes(name):
    cls = type(initializers.get(name))
    assert initializers.get(cls.__name__).get_config() == cls().get_config()
    assert isinstance(initializers.get(cls), cls) and getattr(initializers, name) is cls
    assert initializers.get(cls.__name__.upper()).__class__ is cls   # minicnn also takes any case


def test_keras_2_aliases_and_callables():
    assert type(initializers.get("normal")) is initializers.RandomNormal
    assert type(initializers.get("uniform")) is initializers.RandomUniform
    assert type(initializers.get("zero")) is initializers.Zeros and type(initializers.get("one")) is initializers.Ones
    fn = lambda shape: np.ones(shape)   # noqa: E731
    assert initializers.get(fn) is fn and initializers.get(None) is None
    tf2 = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in",
                                                        "distribution": "truncated_normal", "seed": None}}
    assert initializers.get(tf2).get_config() == {"scale": 2.0, "mode": "fan_in",
                                                  "distribution": "truncated_normal", "seed": None}


def test_layers_take_and_save_initializers(tmp_path):
    pytest.importorskip("h5py", reason="Keras files need h5py")
    m = models.Sequential([
        layers.Conv2D(4, 3, kernel_initializer="he_uniform", bias_initializer=initializers.Constant(0.5),
                      input_shape=(6, 6, 1)),
        layers.Flatten(),
        layers.Dense(3, kernel_initializer=initializers.TruncatedNormal(stddev=0.2, seed=5),
                     bias_initializer="ones")])
    conv, dense = m.layers[0], m.layers[2]
    np.testing.assert_array_equal(conv.get_weights()[1], 0.5)
    assert np.abs(conv.get_weights()[0]).max() <= math.sqrt(6 / 9)
    np.testing.assert_array_equal(dense.get_weights()[0], initializers.TruncatedNormal(stddev=0.2, seed=5)((64, 3)))
    m.save(tmp_path / "m.keras")
    twin = models.load_model(tmp_path / "m.keras")
    assert twin.layers[0].get_config()["bias_initializer"]["config"] == {"value": 0.5}
    assert twin.layers[2].get_config()["kernel_initializer"]["config"] == {"mean": 0.0, "stddev": 0.2, "seed": 5}
    assert twin.layers[0].get_config()["kernel_initializer"]["class_name"] == "HeUniform"


def test_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"Unknown initializer: 'he_uniformm'. Expected one of \['constant', "
                                         r"'glorot_normal', .*'zeros'\]"):
        initializers.get("he_uniformm")
    with pytest.raises(ValueError, match=r"Unknown initializer: \{'class_name': 'Bogus'"):
        initializers.get({"class_name": "Bogus", "config": {}})
    with pytest.raises(ValueError, match=r"Unsupported HeUniform config \{'scale': 2\}"):
        initializers.get({"class_name": "HeUniform", "config": {"scale": 2}})
    with pytest.raises(ValueError, match=r"VarianceScaling: `scale` must be a positive number. Received: scale=0"):
        initializers.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match=r"`mode` must be one of \['fan_in', 'fan_out', 'fan_avg'\]. "
                                         r"Received: mode='fan'"):
        initializers.VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match=r"`distribution` must be one of .*Received: distribution='gauss'"):
        initializers.VarianceScaling(distribution="gauss")
    with pytest.raises(ValueError, match=r"HeNormal: `seed` must be an int or None. Received: seed='1'"):
        initializers.HeNormal(seed="1")
    with pytest.raises(ValueError, match=r"Orthogonal: the weight must have at least 2 axes. Received: shape=\(3,\)"):
        initializers.Orthogonal()((3,))
    with pytest.raises(ValueError, match=r"Identity: the weight must be 2-D"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(TypeError, match=r"Cannot serialize the initializer"):
        initializers.serialize(lambda shape: np.zeros(shape))
    with pytest.raises(ValueError, match=r"Unknown initializer: 'glorot'"):
        layers.Dense(2, kernel_initializer="glorot")
