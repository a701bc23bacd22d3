"""The optimizers' Keras API: names, defaults, checks, Keras 2 spellings, schedules, clipping,
weight decay, float64 against the formulas, and their state's save/restore checks."""
import re
import warnings

import numpy as np
import pytest

import naive_optimizers as naive
from minicnn import optimizers
from minicnn.optimizers import schedules

KERAS_DEFAULTS = {   # keras/src/optimizers/*.py, 3.15.1
    "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
    "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
    "adamw": dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, amsgrad=False),
    "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
    "adadelta": dict(learning_rate=0.001, rho=0.95, epsilon=1e-7),
    "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
}


@pytest.mark.parametrize("name", sorted(KERAS_DEFAULTS))
def test_by_name_with_keras_s_defaults(name):
    opt = optimizers.get(name)
    assert type(opt).__name__.lower() == name and optimizers.get(name.upper()).__class__ is type(opt)
    config = opt.get_config()
    for key, value in KERAS_DEFAULTS[name].items():
        assert config[key] == value, key
    assert optimizers.get(opt) is opt
    assert type(optimizers.get(optimizers.serialize(opt))) is type(opt)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape(
            "Unknown optimizer: 'adamx'. Expected one of ['adadelta', 'adagrad', 'adam', 'adamax', 'adamw', "
            "'nadam', 'rmsprop', 'sgd'] or an Optimizer instance.")):
        optimizers.get("adamx")
    with pytest.raises(ValueError, match="Unknown optimizer: 'Ftrl'"):
        optimizers.deserialize({"class_name": "Ftrl", "config": {}})


@pytest.mark.parametrize("cls, kwargs, message", [
    ("Adam", dict(beta_1=1.0), r"Adam: `beta_1` must be a finite number in \[0, 1\). Received: beta_1=1.0"),
    ("Adam", dict(beta_1=-0.1), r"`beta_1` must be a finite number in \[0, 1\)"),
    ("Nadam", dict(beta_2=1.5), r"Nadam: `beta_2` must be a finite number in \[0, 1\). Received: beta_2=1.5"),
    ("Adamax", dict(beta_2=float("nan")), r"Adamax: `beta_2` must be a finite number"),
    ("AdamW", dict(epsilon=-1e-7), r"AdamW: `epsilon` must be a finite number >= 0. Received: epsilon=-1e-07"),
    ("SGD", dict(momentum=1.5), r"SGD: `momentum` must be a finite number in \[0, 1\]. Received: momentum=1.5"),
    ("SGD", dict(momentum=-0.1), r"SGD: `momentum` must be a finite number in \[0, 1\]"),
    ("RMSprop", dict(momentum=2), r"RMSprop: `momentum` must be a finite number in \[0, 1\]"),
    ("Adadelta", dict(rho=1.0), r"Adadelta: `rho` must be a finite number in \[0, 1\)"),
    ("Adagrad", dict(initial_accumulator_value=-1), r"Adagrad: `initial_accumulator_value` must be"),
    ("Adam", dict(learning_rate="0.1"), r"Adam: `learning_rate` must be a finite number >= 0"),
    ("SGD", dict(clipnorm=-1.0), r"SGD: `clipnorm` must be a finite number >= 0"),
    ("Adam", dict(weight_decay=-0.1), r"Adam: `weight_decay` must be a finite number >= 0"),
    ("Adam", dict(decay=-1.0), r"Adam: `decay` must be a finite number >= 0"),
    ("Adam", dict(amsgrad="yes"), r"Adam: `amsgrad` must be True or False. Received: amsgrad='yes'"),
    ("SGD", dict(nesterov=2), r"SGD: `nesterov` must be True or False"),
    ("SGD", dict(clipnorm=1.0, clipvalue=1.0), r"SGD: Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"),
    ("Adam", dict(use_ema=True), r"Adam: `use_ema` is not supported by minicnn \(only use_ema=False\)"),
    ("Adam", dict(beta1=0.9), r"Adam: Argument\(s\) not recognized: \{'beta1': 0.9\}"),
    ("AdamW", dict(weight_decay=None), r"AdamW: Argument `weight_decay` must be a float. Received: weight_decay=None"),
])
def test_bad_hyperparameters_name_the_optimizer_and_the_argument(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(optimizers, cls)(**kwargs)


def test_keras_2_spellings():
    with pytest.warns(DeprecationWarning, match="use `learning_rate` instead"):
        assert optimizers.Adam(lr=0.01).learning_rate == 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # Keras 2's defaults copied into a script: no noise
        opt = optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=None, decay=0.0, amsgrad=False)
    assert opt.epsilon == 1e-7 and opt.decay == 0.0
    with pytest.warns(DeprecationWarning, match=r"lr / \(1 \+ decay \* iterations\)"):
        opt = optimizers.SGD(0.1, decay=0.5)
    var = np.zeros(3, np.float32)
    want = np.zeros(3)
    for t in range(4):   # tf.keras 2: lr_t = lr / (1 + decay * iterations), iterations before the step
        opt.apply_gradients([(np.ones(3, np.float32), var)])
        want -= 0.1 / (1 + 0.5 * t)
    np.testing.assert_allclose(var, want, rtol=1e-6)
    assert opt.learning_rate == 0.1 and opt.get_config()["decay"] == 0.5


def test_a_schedule_sets_the_rate_and_is_not_settable():
    opt = optimizers.SGD(schedules.PiecewiseConstantDecay([1, 2], [0.5, 0.25, 0.125]))
    var = np.zeros(1, np.float32)
    rates = []
    for _ in range(4):
        rates.append(opt.learning_rate)
        opt.apply_gradients([(np.ones(1, np.float32), var)])
    assert rates == [0.5, 0.5, 0.25, 0.125]   # values[i] while step <= boundaries[i]
    np.testing.assert_allclose(var, [-sum(rates)])
    with pytest.raises(TypeError, match="its learning rate is not settable"):
        opt.learning_rate = 0.1
    plain = optimizers.Adam()
    plain.learning_rate = np.float32(0.5)
    assert plain.learning_rate == 0.5
    plain.learning_rate = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert plain.learning_rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="Adam: `learning_rate` must be a finite number >= 0"):
        optimizers.Adam().learning_rate = -1.0


def test_schedules_follow_their_formulas_in_float32():
    f = np.float32
    exp = schedules.ExponentialDecay(0.1, 3, 0.5)
    stair = schedules.ExponentialDecay(0.1, 3, 0.5, staircase=True)
    inv = schedules.InverseTimeDecay(0.2, 2, 0.5, staircase=True)
    cos = schedules.CosineDecay(1.0, 4, alpha=0.2)
    warm = schedules.CosineDecay(0.0, 4, warmup_target=0.4, warmup_steps=2)
    for step in range(8):
        assert isinstance(exp(step), np.float32)
        assert exp(step) == pytest.approx(0.1 * 0.5 ** (step / 3), rel=1e-6)
        assert stair(step) == f(0.1) * f(0.5 ** (step // 3))
        assert inv(step) == pytest.approx(0.2 / (1 + 0.5 * (step // 2)), rel=1e-6)
        s = min(step, 4)
        assert cos(step) == pytest.approx(0.8 * 0.5 * (1 + np.cos(np.pi * s / 4)) + 0.2, rel=1e-6, abs=1e-7)
        want = 0.4 * step / 2 if step < 2 else 0.4 * 0.5 * (1 + np.cos(np.pi * min(step - 2, 4) / 4))
        assert warm(step) == pytest.approx(want, rel=1e-6, abs=1e-7)
    for s in (exp, stair, inv, cos, warm, schedules.PiecewiseConstantDecay([10], [1.0, 0.5])):
        again = schedules.deserialize(schedules.serialize(s))
        assert type(again) is type(s) and again.get_config() == s.get_config()


def test_schedules_refuse_bad_arguments():
    with pytest.raises(ValueError, match=r"ExponentialDecay: Argument `decay_steps` must be > 0. Received: decay_steps=0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="The length of boundaries should be 1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="`boundaries` must be strictly increasing"):
        schedules.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="Unknown learning rate schedule: 'Cyclic'"):
        schedules.deserialize({"class_name": "Cyclic", "config": {}})


def test_float64_weights_follow_the_formulas():
    # the step factors are computed in the weights' dtype: float64 all the way
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((4, 3))
    for opt, step in [
        (optimizers.Adam(0.01, beta_1=0.8, amsgrad=True),
         lambda p, g, s, t: naive.adam(p, g, s[0], s[1], t, 0.01, 0.8, 0.999, 1e-7, s[2])),
        (optimizers.Nadam(0.01), lambda p, g, s, t: naive.nadam(p, g, s[0], s[1], t, 0.01, 0.9, 0.999, 1e-7)),
        (optimizers.Adamax(0.01), lambda p, g, s, t: naive.adamax(p, g, s[0], s[1], t, 0.01, 0.9, 0.999, 1e-7)),
        (optimizers.SGD(0.1, momentum=0.9, nesterov=True), lambda p, g, s, t: naive.sgd(p, g, 0.1, s[0], 0.9, True)),
    ]:
        var, want, state = p0.copy(), p0.copy(), [np.zeros_like(p0)] * 3
        for t in range(1, 6):
            g = rng.standard_normal((4, 3))
            opt.apply_gradients([(g, var)])
            want, *state = step(want, g, state, t)
            state += [np.zeros_like(p0)] * (3 - len(state))
        assert var.dtype == np.float64
        np.testing.assert_allclose(var, want, rtol=1e-12, err_msg=type(opt).__name__)


def test_clipping_and_weight_decay_come_before_the_update():
    var = np.ones(4, np.float32)
    optimizers.SGD(1.0, clipnorm=0.5).apply_gradients([(np.full(4, 10.0, np.float32), var)])
    np.testing.assert_allclose(var, 1 - 0.25, rtol=1e-6)          # |step| = 0.5 over 4 elements
    a, b = np.zeros(3, np.float32), np.zeros(4, np.float32)
    optimizers.SGD(1.0, global_clipnorm=1.0).apply_gradients([(np.full(3, 3.0, np.float32), a),
                                                              (np.full(4, 4.0, np.float32), b)])
    assert np.sqrt((a.astype(np.float64) ** 2).sum() + (b.astype(np.float64) ** 2).sum()) == pytest.approx(1.0)
    c = np.zeros(2, np.float32)
    optimizers.SGD(1.0, clipvalue=0.1).apply_gradients([(np.array([5.0, -0.05], np.float32), c)])
    np.testing.assert_allclose(c, [-0.1, 0.05], rtol=1e-6)
    w = np.full(3, 2.0, np.float32)
    opt = optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    for _ in range(2):   # a zero gradient moves nothing but the decay: w *= 1 - wd * lr
        opt.apply_gradients([(np.zeros(3, np.float32), w)])
    np.testing.assert_allclose(w, 2.0 * 0.95 ** 2, rtol=1e-6)


def test_apply_and_missing_gradients():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="Adam: When passing `grads` without `variables`, the optimizer must"):
        opt.apply([np.ones(2, np.float32)])
    a, b = np.zeros(2, np.float32), np.zeros(3, np.float32)
    opt.apply([np.ones(2, np.float32), None], [a, b])   # no gradient: that variable is left alone
    assert (a != 0).all() and (b == 0).all() and opt.iterations == 1
    opt.apply([np.ones(2, np.float32), np.ones(3, np.float32)])
    assert (b != 0).all() and opt.iterations == 2
    with pytest.raises(ValueError, match="Adam: No gradients provided for any variable."):
        opt.apply([None, None], [a, b])
    assert opt.apply_gradients([(np.ones(2, np.float32), a), (np.ones(3, np.float32), b)]) == 3


def test_restoring_a_state_that_does_not_fit_is_refused_whole():
    var = np.zeros((2, 3), np.float32)
    opt = optimizers.Adam(amsgrad=True)
    opt.apply_gradients([(np.ones((2, 3), np.float32), var)])
    state = opt.state_arrays()
    assert [a.shape for a in state] == [(), (), (2, 3), (2, 3), (2, 3)]   # iterations, lr, m, v, vhat
    fresh = optimizers.Adam(amsgrad=True)
    fresh.restore_state([var], state)
    assert fresh.iterations == 1 and all(np.array_equal(x, y) for x, y in zip(fresh.state_arrays(), state))
    with pytest.raises(ValueError, match=r"Adam: the saved optimizer state \(4 arrays\) does not fit this "
                                         r"optimizer \(5 variables for 1 trainable weights\)"):
        optimizers.Adam(amsgrad=True).restore_state([var], state[:4])
    unstarted = optimizers.Nadam()   # a state saved before the first step: iterations and the rate
    unstarted.restore_state([var], [np.array(0, np.int64), np.array(0.5, np.float32)])
    assert unstarted.built and unstarted.iterations == 0 and unstarted.learning_rate == 0.5
    nadam = optimizers.Nadam()
    nadam.apply_gradients([(np.ones((2, 3), np.float32), var)])
    product = nadam.state_arrays()[-1]   # mu_1, in float32 arithmetic (Keras's too: 0.46799996)
    assert product.shape == () and product.dtype == np.float32 and product == pytest.approx(0.9 * (1 - 0.5 * 0.96))
