"""The static-shape step plan (issue 11, item 2): fit's training step recorded once per
batch shape and replayed, on the emulator bit for bit equal to the eager step."""
import importlib.util
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from minicnn import backend, config, layers, models
from minicnn.backend.step_plan import Recording, same_work
from minicnn.ops import bias_act

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def book_model():
    return models.Sequential([
        layers.Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(8, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(8, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(16, activation="relu"),
        layers.Dense(10, activation="softmax")])


def odd_model():
    """SAME padding with strides on odd sizes, a pool that does not divide, no bias in one layer."""
    return models.Sequential([
        layers.Conv2D(5, (3, 2), strides=(2, 1), padding="same", activation="relu", input_shape=(11, 9, 2)),
        layers.MaxPooling2D((2, 2), strides=(2, 2), padding="same"),
        layers.Conv2D(3, (2, 3), strides=(1, 2), padding="same", activation="tanh", use_bias=False),
        layers.Flatten(),
        layers.Dense(4, activation="softmax")])


def data(model, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(model.input_shape[1:]), dtype=np.float32)
    y = np.eye(model.output_shape[-1], dtype=np.float32)[rng.integers(0, model.output_shape[-1], n)]
    return x, y


def train(build, plan, backend_name="emulator", n=27, batch_size=8, epochs=3, between=None, **compile_args):
    """(weights, history) of the same initial model trained with the plan on or off."""
    backend.set_backend(backend_name)
    model = build()
    model.set_weights([w * 0 + np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.3
                       for i, w in enumerate(model.get_weights())])
    model.compile(compile_args.pop("optimizer", "rmsprop"), "categorical_crossentropy",
                  metrics=["accuracy"], **compile_args)
    x, y = data(model, n)
    with config.override(MINICNN_STEP_PLAN=plan):
        history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False)
        if between is not None:
            between(model)
            history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=False)
    return model, [w.copy() for w in model.get_weights()], history.history


def assert_bitwise_equal(a, b):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert np.array_equal(u, v), f"weight {i} differs by {np.abs(u - v).max()}"


@pytest.mark.parametrize("build", [book_model, odd_model])
def test_replay_equals_eager_bit_for_bit_on_the_emulator(build):
    _, eager, h_eager = train(build, plan=False)
    model, planned, h_plan = train(build, plan=True)
    assert_bitwise_equal(eager, planned)
    assert h_eager == h_plan
    plans = model._step_plans._plans
    # 27 samples in batches of 8: the full batches and the short last one, each its own plan;
    # the full shape is ready after two recordings (of its 9 steps, 7 were replays)
    assert set(plans) == {((8,) + model.input_shape[1:], (8, model.output_shape[-1])),
                          ((3,) + model.input_shape[1:], (3, model.output_shape[-1]))}
    full = plans[((8,) + model.input_shape[1:], (8, model.output_shape[-1]))]
    assert full.ready and full.recordings == 2 and not full.given_up


def batch_norm_model(scale=True, center=True):
    return lambda: models.Sequential([
        layers.Conv2D(4, (3, 3), input_shape=(9, 9, 2)),
        layers.BatchNormalization(scale=scale, center=center, momentum=0.9),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("scale, center", [(True, True), (False, True), (True, False)])
def test_batch_norm_plans_and_its_moving_statistics_follow_every_replay(scale, center):
    """The moving statistics are written through the device seam, so a replay writes them too
    (get_weights holds them); scale=False's table of ones is made once per plan."""
    build = batch_norm_model(scale, center)
    _, eager, _ = train(build, plan=False)
    model, planned, _ = train(build, plan=True)
    assert_bitwise_equal(eager, planned)
    full = model._step_plans._plans[((8,) + model.input_shape[1:], (8, model.output_shape[-1]))]
    assert full.ready and full.replays > 0


def test_the_plan_matches_numpy_within_tolerance():
    _, reference, h_ref = train(odd_model, plan=False, backend_name="numpy")
    _, planned, h_plan = train(odd_model, plan=True)
    for u, v in zip(reference, planned):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_ref["loss"], h_plan["loss"], rtol=1e-5)


@pytest.mark.parametrize("change", ["learning_rate", "set_weights", "trainable"])
def test_a_change_between_fits_is_seen_by_the_plan(change):
    def between(model):
        if change == "learning_rate":
            model.optimizer.learning_rate = 0.01
        elif change == "set_weights":
            model.set_weights([w[::-1].copy() if w.ndim == 1 else w * 0.5 for w in model.get_weights()])
        else:
            model.layers[0].trainable = False
            model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    _, eager, h_eager = train(odd_model, plan=False, epochs=2, between=between)
    _, planned, h_plan = train(odd_model, plan=True, epochs=2, between=between)
    assert_bitwise_equal(eager, planned)
    assert h_eager == h_plan


def test_a_learning_rate_changed_by_a_callback_each_epoch():
    from minicnn.callbacks import LearningRateScheduler
    def fit(plan):
        backend.set_backend("emulator")
        model = odd_model()
        model.set_weights([np.full(w.shape, 0.1, np.float32) for w in model.get_weights()])
        model.compile("rmsprop", "categorical_crossentropy")
        x, y = data(model, 16)
        with config.override(MINICNN_STEP_PLAN=plan):
            model.fit(x, y, batch_size=4, epochs=4, verbose=0, shuffle=False,
                      callbacks=[LearningRateScheduler(lambda epoch, lr: 0.001 * (epoch + 1))])
        return model.get_weights()
    assert_bitwise_equal(fit(False), fit(True))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_other_optimizers_plan_and_stay_equal(optimizer):
    # Adam's bias correction changes every step: it reaches the kernel as a step value
    # (tests/test_step_plan_scalars.py has the other optimizers, schedules and dropout)
    _, eager, _ = train(odd_model, plan=False, optimizer=optimizer)
    model, planned, _ = train(odd_model, plan=True, optimizer=optimizer)
    assert_bitwise_equal(eager, planned)
    full = model._step_plans._plans[((8, 11, 9, 2), (8, 4))]
    assert full.ready and not full.given_up


def test_a_step_that_changes_per_step_trains_eagerly():
    from minicnn.ops import optimizers as ops
    from minicnn.optimizers import SGD

    class Wobbly(SGD):   # a per-step number passed as a plain value: a table of other bytes each step
        def _update(self, var, grad, slot, step):
            ops.sgd_update(var, grad, float(step.values[0]) / (1 + self.iterations))
    _, eager, _ = train(odd_model, plan=False, optimizer=Wobbly(0.01))
    model, planned, _ = train(odd_model, plan=True, optimizer=Wobbly(0.01))
    assert_bitwise_equal(eager, planned)
    assert all(p.given_up or not p.ready for p in model._step_plans._plans.values())


def test_plans_are_on_by_default_and_never_on_numpy():
    assert config.get("MINICNN_STEP_PLAN") is True
    model, _, _ = train(odd_model, plan=False)
    assert model._step_plans._plans == {}
    model, _, _ = train(odd_model, plan=True, backend_name="numpy")
    assert model._step_plans._plans == {}


def test_a_recording_names_arrays_by_place_and_scalars_by_value():
    backend.set_backend("emulator")
    device = backend.device()
    w = device.asarray(np.ones(6, np.float32))   # fixed: made outside the recordings
    lr = device.asarray(np.full(1, 0.1, np.float32))

    def step(momentum):
        rec = Recording(device)
        with rec.active():
            a = device.zeros((6,))
            device.launch("sgd", "optimizers", "sgd_update", (1, 1, 1), (32, 1, 1),
                          (w, w, w, np.int32(6), lr, np.float32(momentum), np.int32(0),
                           np.int32(0)))   # w -= w * lr[0] (the momentum unused, but an argument)
            rec.outputs = (device.matmul(a.reshape(2, 3), a.reshape(3, 2)),)
        return rec
    first, second, third = step(0.5), step(0.5), step(0.9)
    assert [a[0] for a in first.actions] == ["fill", "launch", "gemm"] and len(first.buffers) == 2
    assert same_work(first, second)      # new buffers, same places: the same work
    assert not same_work(second, third)  # another scalar
    before = w.copy()
    second.replay()                      # the update again, on the same buffers
    assert not np.array_equal(before, w)
    with pytest.raises(RuntimeError, match="already recording"):
        with first.active(), second.active():
            pass


def test_sum_all_is_the_sum_on_every_device():
    values = np.random.default_rng(3).random(1000, dtype=np.float32)
    backend.set_backend("emulator")
    total = bias_act.sum_all(backend.asarray(values))
    assert total.shape == () and total.dtype == np.float32
    np.testing.assert_allclose(total, values.astype(np.float64).sum(), rtol=1e-6)
    assert float(bias_act.sum_all(backend.asarray(np.zeros(0, np.float32)))) == 0.0
    strided = backend.asarray(values)[::2]   # not contiguous: CuPy's own sum
    np.testing.assert_allclose(bias_act.sum_all(strided), values[::2].sum(), rtol=1e-6)
    backend.set_backend("numpy")
    assert bias_act.sum_all(values) == values.sum()


def test_a_diverging_loss_names_its_step_under_the_plan():
    from minicnn.optimizers import SGD
    from test_nan_progress import tiny_data, tiny_model

    def fit(plan):
        backend.set_backend("emulator")
        model = tiny_model()
        model.compile(SGD(learning_rate=1e30), "mse")   # the first step overflows the weights
        with config.override(MINICNN_STEP_PLAN=plan), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(*tiny_data(), batch_size=4, epochs=2, verbose=0, shuffle=False)
        return [str(w.message) for w in caught if "training loss became" in str(w.message)]
    eager, planned = fit(False), fit(True)
    assert eager == planned and len(eager) == 1


def test_the_planned_step_meets_the_host_cost_targets():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_host_cost.py"
    spec = importlib.util.spec_from_file_location("gpu_host_cost_plan", path)
    host_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(host_cost)
    per_step, steady, by_name, us, wall = host_cost.measure(8, 4, 3, host_cost.plan_switch(), on=True)
    assert steady, "every measured step replays the same plan"
    assert per_step["graphs"] == 1 and per_step["launches"] == per_step["gemms"] == 0
    assert sum(per_step[k] for k in host_cost.DEVICE_OPS) <= 20
    assert per_step["allocations"] == 0 and per_step["syncs"] == 0 and per_step["d2h"] == 0


class _CaptureCupy:
    """Just what Recording.capture calls on CuPy; ``allocate`` makes the captured work take
    a buffer from the pool (the memory hook then sees it)."""

    float32 = np.float32

    def __init__(self, allocate):
        self.allocate, self.hooks, self.launched = allocate, [], []
        cupy = self

        class MemoryHook:
            def __enter__(self):
                cupy.hooks.append(self)
                return self

            def __exit__(self, *exc):
                cupy.hooks.remove(self)

        class Stream:
            def __init__(self, non_blocking=False):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def synchronize(self):
                pass

            def begin_capture(self):
                pass

            def end_capture(self):
                return type("Graph", (), {"launch": lambda graph: cupy.launched.append("graph")})()

        self.cuda = type("cuda", (), {"MemoryHook": MemoryHook, "Stream": Stream})

    def ones(self, shape, dtype):
        return np.ones(shape, dtype)

    def matmul(self, a, b, out=None):
        return np.matmul(a, b, out=out)

    def kernel(self, grid, block, args):
        self.launched.append("kernel")
        for hook in self.hooks if self.allocate else ():
            hook.malloc_preprocess(size=4)


@pytest.mark.parametrize("allocate", [False, True])
def test_a_capture_that_allocates_is_refused_and_replays_launch_by_launch(allocate):
    from types import SimpleNamespace
    cupy = _CaptureCupy(allocate)
    rec = Recording(SimpleNamespace(target="cupy", xp=cupy, recording=None))
    rec.launched(cupy.kernel, (1, 1, 1), (1, 1, 1), ())
    if allocate:
        with pytest.warns(RuntimeWarning, match=r"allocation\(s\) inside the capture"):
            assert rec.capture() is False
    else:
        assert rec.capture() is True
    cupy.launched.clear()
    rec.replay()
    assert cupy.launched == (["kernel"] if allocate else ["graph"])


def every_layer_model():
    """One of each layer kind, so that any device work done around the seam (which a replay
    would silently skip) shows up as a difference from the eager step."""
    return models.Sequential([
        layers.ZeroPadding2D(((1, 0), (0, 1)), input_shape=(12, 16, 2)),
        layers.Conv2D(6, (3, 3), strides=(1, 2), padding="same"),
        layers.BatchNormalization(),
        layers.LeakyReLU(0.1),
        layers.AveragePooling2D((2, 2), padding="same"),
        layers.SpatialDropout2D(0.3, seed=3),
        layers.Conv2D(5, (2, 2), activation="elu", use_bias=False),
        layers.Cropping2D(((1, 0), (0, 1))),
        layers.ELU(0.5),
        layers.MaxPooling2D((2, 2), strides=(1, 1)),
        layers.ReLU(max_value=4.0),
        layers.Reshape((-1,)),
        layers.Dropout(0.2, seed=4),
        layers.Dense(7, activation="gelu"),
        layers.Activation("tanh"),
        layers.Dense(4),
        layers.Softmax()])


def global_pool_model(pool):
    return lambda: models.Sequential([
        layers.Conv2D(6, (3, 3), activation="relu", input_shape=(8, 8, 3)), pool(),
        layers.Dense(4, activation="softmax")])


@pytest.mark.parametrize("build", [every_layer_model, global_pool_model(layers.GlobalMaxPooling2D),
                                   global_pool_model(layers.GlobalAveragePooling2D)])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_every_layer_plans_and_its_replays_equal_the_eager_steps(build, optimizer):
    _, eager, h_eager = train(build, plan=False, optimizer=optimizer)
    model, planned, h_plan = train(build, plan=True, optimizer=optimizer)
    assert_bitwise_equal(eager, planned)
    assert h_eager == h_plan
    full = model._step_plans._plans[((8,) + model.input_shape[1:], (8, model.output_shape[-1]))]
    assert full.ready and full.replays > 0, "a layer did device work outside the seam"


def test_work_around_the_seam_is_never_replayed():
    """A regularization penalty is summed by array arithmetic, not through the seam: the
    recording sees results it did not make (here NumPy scalars), gives the shape up, and
    the model trains eagerly, with the eager results."""
    def build():
        return models.Sequential([
            layers.Conv2D(4, (3, 3), activation="relu", kernel_regularizer="l2", input_shape=(7, 7, 1)),
            layers.Flatten(),
            layers.Dense(3, activation="softmax", bias_regularizer="l1")])
    _, eager, h_eager = train(build, plan=False)
    model, planned, h_plan = train(build, plan=True)
    assert_bitwise_equal(eager, planned)
    assert h_eager == h_plan
    assert all(p.given_up and p.replays == 0 for p in model._step_plans._plans.values())


def test_a_recording_names_what_it_did_not_make():
    backend.set_backend("emulator")
    device = backend.device()
    lasting = device.zeros((4,))
    stray = device.zeros((4,))   # made before the recording: neither arena nor lasting
    rec = Recording(device)
    with rec.active():
        own = device.empty((4,))
        device.copy(own, lasting)
        device.copy(lasting[1:3], stray[:2])
    rec.outputs = (own, np.float32(1))
    found = rec.foreign([lasting])
    assert len(found) == 2 and found[0] is not own and isinstance(found[1], np.float32)
    assert rec.foreign([lasting, stray])[-1] is rec.outputs[1]
