"""The README's custom-layer example, run as written, and the layer contract."""
import re
from pathlib import Path

import numpy as np
import pytest

from minicnn import layers
from minicnn.models import Sequential
from minicnn.utils import set_random_seed

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example():
    text = README.read_text()
    section = text[text.index("### Custom layers"):text.index("## Backends")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_readme_custom_layer_trains_with_fit():
    set_random_seed(0)
    scope = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    model, history = scope["model"], scope["history"]
    scale = model.layers[1]
    assert type(scale).__name__ == "Scale" and scale.name == "scale"
    assert not np.allclose(scale.get_weights()[0], 1)   # trained
    assert history.history["loss"][-1] < history.history["loss"][0]
    # its gradient is right: finite differences of the mean loss in float64
    check_scale_gradient(scope["Scale"], scope["x"][:8].astype(np.float64))


def check_scale_gradient(Scale, x):
    layer = Scale(dtype="float64")
    layer(x)  # builds
    rng = np.random.default_rng(1)
    layer.set_weights([rng.uniform(0.5, 1.5, x.shape[-1])])
    dout = rng.standard_normal(x.shape)
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    (ds,) = layer.grads
    s = layer.get_weights()[0]
    eps = 1e-6
    for c in range(x.shape[-1]):
        sp, sm = s.copy(), s.copy()
        sp[c] += eps
        sm[c] -= eps
        numeric = ((x * sp * dout).sum() - (x * sm * dout).sum()) / (2 * eps)
        assert ds[c] == pytest.approx(numeric, rel=1e-6)
    np.testing.assert_allclose(dx, dout * s)


def test_a_frozen_layer_is_not_trained_and_summary_counts_it(capsys):
    set_random_seed(0)
    conv = layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1), trainable=False)
    m = Sequential([conv, layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("rmsprop", "categorical_crossentropy")
    frozen = conv.get_weights()
    x = np.random.default_rng(0).random((16, 6, 6, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
    dense_before = m.layers[-1].get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, conv.get_weights()))
    assert not np.array_equal(dense_before[0], m.layers[-1].get_weights()[0])
    assert len(m.trainable_weights) == 2 and len(m.non_trainable_weights) == 2
    m.summary()
    out = capsys.readouterr().out
    assert "Total params: 119\n" in out and "Trainable params: 99\n" in out
    assert "Non-trainable params: 20\n" in out


def test_the_loss_fuses_its_gradient_with_a_softmax_output():
    from minicnn import losses
    p = np.array([[0.2, 0.8]], np.float32)
    y = np.array([[0.0, 1.0]], np.float32)
    fused, wrt_logits = losses.get("categorical_crossentropy").gradient(p, y, "softmax")
    assert wrt_logits and np.allclose(fused, p - y)
    plain, wrt_logits = losses.get("categorical_crossentropy").gradient(p, y, "sigmoid")
    assert not wrt_logits and plain.shape == p.shape
