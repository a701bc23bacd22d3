"""Every optimizer against Keras 3.15.1's own numbers: 5 steps on three float32 variables of
odd shapes, the learning rate before each step, the state in Keras's order and the config.

The fixtures in tests/fixtures/optimizers were made by Keras (the TensorFlow backend,
eager, no XLA): tests/make_optimizer_fixtures.py regenerates them. Each case is built
from Keras's own serialized config, so reading Keras's configs is tested too."""
import json
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend, optimizers

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "optimizers"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz") if p.stem != "tiny_adam")


def case(name):
    data = np.load(FIXTURES / f"{name}.npz")
    state = [data[f"state{k}"] for k in range(sum(key.startswith("state") for key in data.files))]
    return data, json.loads(str(data["config"])), state


def test_the_fixtures_cover_every_optimizer_and_option():
    configs = [case(name)[1] for name in CASES]
    assert {c["class_name"] for c in configs} == {"SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta",
                                                  "Nadam", "Adamax"}
    options = {k for c in configs for k, v in c["config"].items() if v not in (None, False, 0.0)}
    assert {"clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "amsgrad", "nesterov", "centered",
            "momentum"} <= options
    schedules = {c["config"]["learning_rate"]["class_name"] for c in configs
                 if isinstance(c["config"]["learning_rate"], dict)}
    assert schedules == {"ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay", "CosineDecay"}


@pytest.mark.parametrize("impl", ["reference", "cpu_kernels", "emulator"], indirect=True)
@pytest.mark.parametrize("name", CASES)
def test_five_steps_match_keras(impl, name):
    data, config, state = case(name)
    opt = optimizers.deserialize(config)
    assert type(opt).__name__ == config["class_name"]
    variables = [backend.asarray(data[f"var{j}"].copy()) for j in range(3)]
    for step in range(5):
        assert opt.learning_rate == pytest.approx(float(data["lr"][step]), rel=1e-6, abs=1e-12)
        opt.apply_gradients([(backend.asarray(data[f"grads{j}"][step]), v) for j, v in enumerate(variables)])
        for j, v in enumerate(variables):
            np.testing.assert_allclose(backend.to_numpy(v), data[f"after{j}"][step], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{name}: variable {j} after step {step}")
    assert opt.iterations == 5
    ours = opt.state_arrays()
    assert [a.shape for a in ours] == [s.shape for s in state], "Keras's optimizer.variables layout"
    assert ours[0].dtype == np.int64 and int(ours[0]) == int(state[0])
    for k, (a, s) in enumerate(zip(ours[1:], state[1:]), 1):
        np.testing.assert_allclose(a, s, rtol=1e-5, atol=1e-8, err_msg=f"{name}: state {k}")


@pytest.mark.parametrize("name", CASES)
def test_the_config_has_keras_s_keys_and_values(name):
    _, config, _ = case(name)
    opt = optimizers.deserialize(config)
    ours, theirs = optimizers.serialize(opt), config
    assert ours["class_name"] == theirs["class_name"] and ours["module"] == theirs["module"]
    assert list(ours["config"]) == list(theirs["config"])   # the same keys, in Keras's order
    for key, value in theirs["config"].items():
        if isinstance(value, float):
            assert ours["config"][key] == pytest.approx(value, rel=1e-7), key
        else:
            assert ours["config"][key] == value, key
    again = optimizers.deserialize(json.loads(json.dumps(ours)))
    assert again.get_config() == opt.get_config()
