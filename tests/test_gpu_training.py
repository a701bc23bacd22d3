"""Whole training on a real GPU (the 'cupy' backend) against the NumPy backend.

Marked ``gpu``: skipped, saying so, where ``cupy.is_available()`` is False
(tests/conftest.py). The op-level GPU tests are the ``impl[gpu]`` variants of
tests/ops; these check what only whole training shows: a full step of the book
model (batch 64 and 1024, where the grid-stride loops go round more than once),
``fit`` over several steps, and that fit's steps never wait for the GPU.
The same checks run in benchmarks/gpu_check.sh (benchmarks/gpu_parts.py).
"""
import argparse

import numpy as np
import pytest

from benchmarks import gpu_parts
from minicnn import backend, config
from minicnn.utils import set_random_seed

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("batch", [64, 1024])
def test_book_model_training_step_matches_numpy(batch):
    ok, text = gpu_parts.step_parity("cupy", batch)
    assert ok, text


def fit_steps(name, weights, x, y, batch_size):
    """History and final weights of one shuffled epoch of fit on backend ``name``."""
    backend.set_backend(name)
    try:
        with gpu_parts.reference_when(name):
            model = gpu_parts.book_model()
            model.set_weights(weights)
            set_random_seed(5)  # the same shuffling on both backends
            history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
            return history.history, model.get_weights()
    finally:
        backend.set_backend("numpy")


def test_fit_for_a_few_steps_matches_numpy():
    set_random_seed(1)
    x, y = gpu_parts.batch_of(64 * 5 + 17, seed=1)   # five whole batches and a short one
    start = gpu_parts.book_model().get_weights()
    ref_history, ref_weights = fit_steps("numpy", start, x, y, 64)
    gpu_history, gpu_weights = fit_steps("cupy", start, x, y, 64)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(gpu_history[key], ref_history[key], rtol=1e-3, atol=1e-5)
    for got, want in zip(gpu_weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-2, atol=2e-4)
    assert max(np.abs(a - b).max() for a, b in zip(ref_weights, start)) > 1e-3


def test_fit_steps_never_wait_for_the_gpu(capsys):
    """Ten steps of fit under cupyx.allow_synchronize(False), counting launches."""
    args = argparse.Namespace(emulator=False, batch=64, steps=10)
    rc = gpu_parts.nosync(args)
    out = capsys.readouterr().out
    assert rc == gpu_parts.PASS, out
    assert "read-backs 0" in out


def test_the_planned_fit_replays_one_cuda_graph_and_equals_the_eager_fit():
    """The step plan on the GPU (on by default): ready after two recordings, captured as one
    CUDA graph, and the same training as eager steps (same kernels, same order)."""
    set_random_seed(2)
    x, y = gpu_parts.batch_of(64 * 6, seed=2)
    start = gpu_parts.book_model().get_weights()
    results = {}
    for plan in (False, True):
        backend.set_backend("cupy")
        try:
            with config.override(MINICNN_STEP_PLAN=plan):
                model = gpu_parts.book_model()
                model.set_weights(start)
                model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
                results[plan] = (model.get_weights(), model._step_plans._plans)
        finally:
            backend.set_backend("numpy")
    (eager, _), (planned, plans) = results[False], results[True]
    full = next(iter(plans.values()))
    assert full.ready and full.replays == 4 and full.last.graph is not None
    for got, want in zip(planned, eager):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
