"""fit's training set kept on a CUDA device (issue 11, item 2): on the emulator the batches are
gathered on the "device" and training equals the per-batch host copies bit for bit."""
import shutil
import warnings

import numpy as np
import pytest

from minicnn import backend, config, layers, models
from minicnn.models import device_data
from minicnn.models.data_sources import ArrayBatches

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the emulator needs g++")


def model_and_data(n=37):
    model = models.Sequential([layers.Conv2D(3, (3, 3), activation="relu", input_shape=(7, 6, 1)),
                               layers.Flatten(), layers.Dense(4, activation="softmax")])
    model.set_weights([np.random.default_rng(i).standard_normal(w.shape).astype(np.float32) * 0.3
                       for i, w in enumerate(model.get_weights())])
    model.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (n, 7, 6, 1)).astype(np.uint8)   # converted to float32 on its way
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return model, x, y


def fit(device_data_on, plan=False):
    backend.set_backend("emulator")
    model, x, y = model_and_data()
    with config.override(MINICNN_DEVICE_DATA=device_data_on, MINICNN_STEP_PLAN=plan):
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    return model.get_weights(), history.history


@pytest.mark.parametrize("plan", [False, True])
def test_batches_gathered_on_the_device_train_as_host_batches(plan):
    from minicnn.utils import set_random_seed
    set_random_seed(3)
    host, h_host = fit(False, plan)
    set_random_seed(3)
    dev, h_dev = fit(True, plan)
    assert h_host == h_dev
    for a, b in zip(host, dev):
        assert np.array_equal(a, b)


def test_the_training_set_is_uploaded_once_in_chunks(monkeypatch):
    backend.set_backend("emulator")
    monkeypatch.setattr(device_data, "CHUNK_BYTES", 3 * 7 * 6 * 4)   # 3 images per chunk
    _, x, y = model_and_data(10)
    source = ArrayBatches(x, y, None, 4, shuffle=True, on_device=True)
    data = source.device_data
    assert data.x.dtype == np.float32 and np.array_equal(data.x, x.astype(np.float32))
    batches, seen = [], []
    for xb, yb, _ in source.epoch():   # copied at once: the next batch of that size overwrites it
        batches.append((xb, yb))
        seen.append(xb.copy())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    seen = np.concatenate(seen)
    assert sorted(map(tuple, seen.reshape(10, -1))) == sorted(map(tuple, x.reshape(10, -1).astype(np.float32)))
    # a batch lives in the buffers of its size: the next batch of that size overwrites it
    again = list(source.epoch())
    assert again[0][0] is batches[0][0] and again[2][0] is batches[2][0]


def test_a_set_too_big_for_the_device_stays_on_the_host_with_a_warning(monkeypatch):
    backend.set_backend("emulator")
    monkeypatch.setattr(device_data, "free_device_bytes", lambda device: 1000)
    _, x, y = model_and_data(10)
    with pytest.warns(RuntimeWarning, match=r"fit: the training set \(0 MiB as float32\) does not fit in half "
                                            r"of the device's free memory \(0 MiB\); its batches are copied"):
        source = ArrayBatches(x, y, None, 4, on_device=True)
    assert source.device_data is None
    xb, yb, _ = next(iter(source.epoch()))
    assert xb.dtype == np.uint8   # the host batch, converted on its way to the device


def test_the_numpy_backend_and_the_setting_off_keep_host_batches():
    _, x, y = model_and_data(10)
    assert ArrayBatches(x, y, None, 4, on_device=True).device_data is None   # numpy backend
    backend.set_backend("emulator")
    with config.override(MINICNN_DEVICE_DATA=False), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ArrayBatches(x, y, None, 4, on_device=True).device_data is None
