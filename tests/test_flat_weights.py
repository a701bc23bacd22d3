"""Flat weights (issue 11, item 2): a model's trainable weights live in one flat buffer, their
gradients in another, the optimizer's slots in flat buffers of the same layout; one step is
one optimizer op over all of them, with the same bits as one op per variable."""
import numpy as np
import pytest

from minicnn import backend, config, layers, models, optimizers
from minicnn.layers.base import Layer
from minicnn.models.flat_weights import FlatWeights


def small_model(dtype="float32"):
    return models.Sequential([
        layers.Conv2D(4, (3, 3), activation="relu", input_shape=(9, 8, 2), dtype=dtype),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(3, (2, 2), activation="tanh", use_bias=False),
        layers.Flatten(),
        layers.Dense(5, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(3, activation="softmax")])


def data(n=21, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 9, 8, 2), dtype=np.float32)
    return x, np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def trained(optimizer, flat=True, steps_between=None, **fit):
    """The weights after fit, with the flat buffers (the default) or one variable at a time."""
    model = small_model()
    model.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.3
                       for i, w in enumerate(model.get_weights())])
    if not flat:
        model._flat_weights = lambda: None   # this model only: the per-variable path
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, **fit)
    return model, model.get_weights()


OPTIMIZERS = [
    lambda: optimizers.RMSprop(learning_rate=0.01),
    lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    lambda: optimizers.Adam(learning_rate=0.01, amsgrad=True),
    lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.Nadam(learning_rate=0.01, weight_decay=0.01),
    lambda: optimizers.Adagrad(learning_rate=0.1, clipvalue=0.01),
    lambda: optimizers.Adamax(learning_rate=0.01, clipnorm=0.05),
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["rmsprop", "rmsprop-centered", "adam-amsgrad", "sgd-nesterov",
                                                  "nadam-decay", "adagrad-clipvalue", "adamax-clipnorm"])
def test_one_flat_update_gives_the_bits_of_one_update_per_variable(make, impl):
    if impl == "gpu":
        pytest.skip("covered by the emulator (same kernels); bits on a GPU are cuBLAS's")
    flat_model, flat = trained(make())
    _, per_variable = trained(make(), flat=False)
    assert flat_model._flat is not None
    for i, (a, b) in enumerate(zip(flat, per_variable)):
        assert np.array_equal(a, b), f"weight {i} differs by {np.abs(a - b).max()}"


def test_global_clipnorm_on_the_flat_buffer_matches_within_rounding():
    # the norm is summed over one buffer instead of variable by variable: the last bits may move
    _, flat = trained(optimizers.RMSprop(learning_rate=0.01, global_clipnorm=0.1))
    _, per_variable = trained(optimizers.RMSprop(learning_rate=0.01, global_clipnorm=0.1), flat=False)
    for a, b in zip(flat, per_variable):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_weights_gradients_and_slots_are_views_of_one_buffer_each():
    model, _ = trained("rmsprop")
    flat, opt = model._flat, model.optimizer
    trainable = [w for layer in model._compute_layers for w in layer.trainable_weights]
    assert [v is w for v, w in zip(flat.variables, trainable)] == [True] * len(trainable)
    assert flat.params.size == sum(w.size for w in trainable) == model.count_params() - 10   # BN moving stats
    start = 0
    for w, g, slot in zip(trainable, flat.grad_views, opt._slots["velocity"]):
        n = w.size
        assert np.shares_memory(w, flat.params[start:start + n])
        assert np.shares_memory(g, flat.grads[start:start + n])
        assert np.shares_memory(slot, opt._flat_slots["velocity"][start:start + n])
        start += n
    bn = model.layers[5]
    assert not np.shares_memory(bn.moving_mean, flat.params)   # not trainable: not flat
    assert bn.gamma is bn.weights[0] and bn.gamma is flat.variables[-4]


def test_the_emulator_updates_every_weight_in_one_launch_and_writes_gradients_in_place(monkeypatch):
    backend.set_backend("emulator")
    device = backend.device()
    launches = []
    real = type(device).launch
    monkeypatch.setattr(type(device), "launch", lambda self, op, module, kernel, *a: (
        launches.append(kernel), real(self, op, module, kernel, *a))[1])
    copies = []
    real_copy = type(device).copy
    monkeypatch.setattr(type(device), "copy", lambda self, dst, src: (copies.append(dst.shape),
                                                                     real_copy(self, dst, src))[1])
    with config.override(MINICNN_STEP_PLAN=False):   # eager steps: every launch is a call here
        model, _ = trained("rmsprop")
    steps = 2 * 3   # 21 samples in batches of 8, 2 epochs
    assert launches.count("rmsprop_update") == steps
    # conv and dense kernels (GEMMs) and biases (column sums) are written straight into the flat
    # gradient buffer; only BatchNormalization's gamma and beta are copied there (after its
    # forward's copies of the new moving mean and variance into the layer's arrays)
    assert copies == [(5,), (5,), (5,), (5,)] * steps
    conv = model.layers[0]
    assert conv.grads[0] is model._flat.grad_views[0] and conv.grads[1] is model._flat.grad_views[1]


def test_the_gradient_hook_sees_the_flat_buffer_once_per_step_before_the_update():
    calls = []

    class Frozen(optimizers.RMSprop):
        def _aggregate_gradients(self, flat_grad, batch_size):
            calls.append((flat_grad.shape, batch_size))
            flat_grad[...] = 0   # in place: no gradient, so RMSprop moves nothing
            return flat_grad

    model = small_model()
    before = model.get_weights()
    model.compile(Frozen(), "categorical_crossentropy")
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    n = model._flat.params.size
    assert calls == [((n,), 8), ((n,), 8), ((n,), 5)]
    trainable = [i for i in range(len(before)) if i not in (7, 8)]   # BN's moving stats do move
    for i in trainable:
        assert np.array_equal(model.get_weights()[i], before[i])
    # a direct apply_gradients packs the gradients into one buffer for the hook (no batch size)
    pairs = [(np.ones(w.shape, np.float32), w) for w in model._flat.variables]
    model.optimizer.apply_gradients(pairs)
    assert calls[-1] == ((n,), None)


def test_a_layer_frozen_without_recompiling_trains_one_variable_at_a_time():
    model, _ = trained("rmsprop")
    frozen = model.layers[0]
    frozen.trainable = False
    kept = frozen.get_weights()
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen.get_weights(), kept))
    assert model.layers[-1].get_weights()[0].std() > 0
    frozen.trainable = True   # back as it was: the flat buffers hold the same weights again
    assert model._flat.holds(model._compute_layers) and model._flat_weights() is model._flat


def test_a_custom_layer_that_keeps_its_weight_in_an_attribute_is_not_moved():
    class Scale(Layer):
        def build(self, input_shape):
            self.w = self.add_weight((input_shape[-1],), "ones")
            super().build(input_shape)

        def forward(self, x, training=False):
            self._x = x
            return x * self.w

        def backward(self, dout, need_dx=True):
            self.grads = [(dout * self._x).reshape(-1, dout.shape[-1]).sum(axis=0)]
            return dout * self.w

    model = models.Sequential([layers.Dense(4, input_shape=(3,)), Scale(), layers.Dense(2, activation="softmax")])
    assert FlatWeights.of(model._compute_layers) is None
    model.compile("rmsprop", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((16, 3), dtype=np.float32), np.eye(2, dtype=np.float32)[rng.integers(0, 2, 16)],
              epochs=1, verbose=0)
    assert model._flat is None
    scale = model.layers[1]
    assert scale.w is scale.weights[0] and not np.array_equal(scale.w, np.ones(4))   # it trained


def test_a_loaded_model_resumes_on_flat_buffers(tmp_path):
    model, _ = trained("adam")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = models.load_model(path)
    assert loaded._flat is not None and loaded.optimizer._flat_slots
    assert loaded.optimizer._variables[0] is loaded._flat.variables[0]
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


def test_move_weight_refuses_storage_of_another_shape():
    layer = layers.Dense(3)
    layer._build_for((None, 2))
    with pytest.raises(ValueError, match=r"dense.*weight 0 is \(2, 3\) float32; cannot move it into storage \(6,\)"):
        layer.move_weight(0, np.zeros(6, np.float32))
    assert layer.weights[0].shape == (2, 3)


def test_a_layer_shared_by_two_models_stays_in_the_first_models_buffers():
    shared = layers.Dense(4, activation="relu")
    first = models.Sequential([layers.Input((3,)), shared, layers.Dense(2, activation="softmax")])
    first.compile("rmsprop", "categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3), dtype=np.float32), np.eye(2, dtype=np.float32)[np.arange(16) % 2]
    first.fit(x, y, epochs=1, verbose=0)
    second = models.Sequential([layers.Input((3,)), shared, layers.Dense(2, activation="softmax")])
    second.compile("adam", "categorical_crossentropy")
    second.fit(x, y, epochs=1, verbose=0)      # trains one variable at a time
    assert second._flat is None and shared.weights[0] is first._flat.variables[0]
    before = shared.get_weights()[0]
    first.fit(x, y, epochs=1, verbose=0)       # its optimizer still knows the shared weights
    assert not np.array_equal(shared.get_weights()[0], before)
