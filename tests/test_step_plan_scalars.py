"""Step values (issue 11): numbers that change every step (a schedule's rate, Keras 2's decay,
Adam's bias correction, Nadam's momentum product, a dropout key) reach the CUDA kernels
through fixed device buffers, so fit's step plans replay those steps too, on the emulator
bit for bit equal to the eager step."""
import shutil
import warnings

import numpy as np
import pytest

from minicnn import backend, config, layers, models, optimizers
from minicnn.backend.step_plan import Recording, same_work
from minicnn.backend.step_values import StepValues
from minicnn.ops.optimizers import sgd_update
from minicnn.optimizers import schedules

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")

FULL = ((8, 5, 5, 1), (8, 3))   # the plan of the full batches (20 samples: 8, 8, then 4)


def tiny_model(dropout=False):
    return models.Sequential(
        [layers.Conv2D(2, 3, activation="relu", input_shape=(5, 5, 1)), layers.Flatten(),
         layers.Dense(6, activation="relu")]
        + ([layers.Dropout(0.4, seed=3), layers.SpatialDropout2D(0.3, seed=5)][:1] if dropout else [])
        + [layers.Dense(3, activation="softmax")])


OPTIMIZERS = {
    "adam": lambda: optimizers.Adam(0.01),
    "adam_amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: optimizers.Adamax(0.01),
    "nadam": lambda: optimizers.Nadam(0.01),
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "sgd_momentum_clipnorm": lambda: optimizers.SGD(0.05, momentum=0.5, clipnorm=0.1),
    "rmsprop_schedule": lambda: optimizers.RMSprop(schedules.ExponentialDecay(0.01, 2, 0.5)),
    "rmsprop_decay": lambda: optimizers.RMSprop(0.01, decay=0.3),
    "rmsprop_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, global_clipnorm=1.0),
    "adagrad_cosine": lambda: optimizers.Adagrad(schedules.CosineDecay(0.05, 10, warmup_target=0.1,
                                                                       warmup_steps=3)),
    "adadelta_clipvalue": lambda: optimizers.Adadelta(1.0, clipvalue=0.01),
}


def train(make_optimizer, plan, dropout=False, epochs=3, between=None):
    """(model, weights) after ``epochs`` epochs (then ``between(model)`` and as many again)."""
    backend.set_backend("emulator")
    model = tiny_model(dropout)
    model.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.4
                       for i, w in enumerate(model.get_weights())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # Keras 2's decay
        model.compile(make_optimizer(), "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.random((20, 5, 5, 1), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 20)]
    with config.override(MINICNN_STEP_PLAN=plan):
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
        if between is not None:
            between(model)
            model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
    return model, [w.copy() for w in model.get_weights()]


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert np.array_equal(u, v), f"weight {i} differs by {np.abs(u - v).max()}"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_step_with_per_step_factors_plans_replays_and_equals_the_eager_step(name):
    _, eager = train(OPTIMIZERS[name], plan=False)
    model, planned = train(OPTIMIZERS[name], plan=True)
    assert_bitwise_equal(eager, planned)
    full = model._step_plans._plans[FULL]
    # 3 epochs of two full batches: the first builds the optimizer (eager), two recorded,
    # then ready: the other 3 replayed
    assert full.ready and not full.given_up and full.recordings == 2 and full.replays == 3
    assert model.optimizer.iterations == 9


def test_dropout_draws_a_new_mask_in_every_replayed_step():
    make = OPTIMIZERS["rmsprop_decay"]
    eager_model, eager = train(make, plan=False, dropout=True)
    model, planned = train(make, plan=True, dropout=True)
    assert_bitwise_equal(eager, planned)
    full = model._step_plans._plans[FULL]
    assert full.ready and full.replays == 3
    assert model.layers[3].step == eager_model.layers[3].step == 9   # each replay drew a key


@pytest.mark.parametrize("name", ["adam", "nadam", "sgd_nesterov", "rmsprop_decay"])
def test_a_learning_rate_changed_between_fits_is_read_by_the_same_plan(name):
    def between(model):
        model.optimizer.learning_rate = 0.003
    _, eager = train(OPTIMIZERS[name], plan=False, epochs=2, between=between)
    model, planned = train(OPTIMIZERS[name], plan=True, epochs=2, between=between)
    assert_bitwise_equal(eager, planned)
    full = model._step_plans._plans[FULL]
    assert full.recordings == 2 and full.replays == 5   # no new plan: the rate is a step value


def test_a_changed_kernel_scalar_makes_a_new_plan():
    def between(model):
        model.optimizer.rho = 0.5   # passed by value: other recorded work
    _, eager = train(OPTIMIZERS["rmsprop_decay"], plan=False, epochs=2, between=between)
    model, planned = train(OPTIMIZERS["rmsprop_decay"], plan=True, epochs=2, between=between)
    assert_bitwise_equal(eager, planned)
    assert model._step_plans._plans[FULL].recordings == 2   # the new plan's, recorded again


def test_a_replay_uploads_this_steps_values_before_the_work():
    backend.set_backend("emulator")
    device = backend.device()
    w, g = device.asarray(np.zeros(4, np.float32)), device.asarray(np.full(4, -1.0, np.float32))
    rates = iter(np.float32(r) for r in (1.0, 2.0, 4.0, 8.0))
    lr = StepValues(lambda: (next(rates),))

    def step():
        rec = Recording(device)
        with rec.active():
            lr.refresh()
            sgd_update(w, g, lr)   # w += lr[0]
        return rec
    first, second = step(), step()
    assert same_work(first, second) and second.step_values == [lr]
    second.replay()   # the third rate, uploaded before the kernel reads it
    second.replay()
    np.testing.assert_array_equal(device.to_numpy(w), 1 + 2 + 4 + 8)


def test_values_refreshed_twice_in_one_step_or_other_tables_never_match():
    backend.set_backend("emulator")
    device = backend.device()
    twice = StepValues(lambda: (np.float32(1),))

    def step(table, refreshes=1):
        rec = Recording(device)
        with rec.active():
            for _ in range(refreshes):
                twice.refresh()
            device.constant(np.array(table, np.int32), "int32")
        return rec
    assert same_work(step([1, 2]), step([1, 2]))
    assert not same_work(step([1, 2]), step([1, 3]))   # a table's values are part of the work
    assert not same_work(step([1, 2], 2), step([1, 2], 2))


def test_a_step_values_view_and_plain_numbers_on_every_device(impl):
    from minicnn.ops import adam
    values = StepValues(lambda: (np.float32(0.5), np.float32(0.25)))
    values.refresh()
    p = [backend.asarray(np.ones(3, np.float32)) for _ in range(2)]
    g = backend.asarray(np.full(3, 0.1, np.float32))
    m, v = (backend.asarray(np.zeros(3, np.float32)) for _ in range(2))
    adam.adam_update(p[0], g, m, v, values[1:], 0.9, 0.999, 1e-7)   # alpha = 0.25, the second value
    m[...], v[...] = 0, 0
    adam.adam_update(p[1], g, m, v, np.float32(0.25), 0.9, 0.999, 1e-7)
    np.testing.assert_array_equal(backend.to_numpy(p[0]), backend.to_numpy(p[1]))
    with pytest.raises(TypeError, match="only a tail view"):
        values[0]


def test_a_layers_keys_draw_the_masks_of_seed_and_step_on_every_device(impl):
    from minicnn.ops import dropout
    layer = layers.Dropout(0.5, seed=11)
    x = backend.asarray(np.random.default_rng(0).random((4, 9), dtype=np.float32) + 1)
    ys = [backend.to_numpy(layer.forward(x, training=True)).copy() for _ in range(2)]
    for step, y in enumerate(ys):
        one_off, ctx = dropout.forward(x, 0.5, 11, step, training=True)
        np.testing.assert_array_equal(y, backend.to_numpy(one_off))
    assert layer.step == 2 and not np.array_equal(ys[0], ys[1])
    old = dropout.make_mask(x.shape, 0.5, 11, 0)._replace(values=layer._keys)   # holds step 1's key now
    np.testing.assert_array_equal(backend.to_numpy(dropout.backward(x, old)), ys[0])


def test_a_planned_adam_step_costs_one_small_upload_more():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_host_cost.py"
    spec = importlib.util.spec_from_file_location("gpu_host_cost_scalars", path)
    host_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_cost)
    counts = {name: host_cost.measure(8, 4, 3, host_cost.plan_switch(), on=True, optimizer=name)[0]
              for name in ("rmsprop", "adam")}
    for per_step in counts.values():
        assert per_step["graphs"] == 1 and per_step["launches"] == 0
        assert per_step["allocations"] == 0 and per_step["syncs"] == 0 and per_step["d2h"] == 0
    # Adam's alpha changes every step: its step values are uploaded; RMSprop's rate did not change
    assert counts["adam"]["h2d"] == counts["rmsprop"]["h2d"] + 1
    assert sum(counts["adam"][k] for k in host_cost.DEVICE_OPS) <= 20
