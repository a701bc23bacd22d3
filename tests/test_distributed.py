"""minicnn.distributed in one process: the launcher's variables, the batch parts, the
optimizer wrapper, the checks and their messages, the deadline, and the NCCL engine's
buffer handling with NumPy stand-ins for CuPy and NCCL (its real run: the gpu test at
the end). Several workers are played by stand-in engines whose "other ranks" are
arrays the test chooses; the real 2-process runs are in test_distributed_mpi.py."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import minicnn.distributed as hvd
from minicnn import callbacks, layers, models, optimizers
from minicnn.distributed import fit_support, launch, nccl_engine, runtime
from minicnn.distributed.deadline import wait_all
from minicnn.distributed.weights import first_difference, weight_shapes
from minicnn.utils import set_random_seed


# -- what the launcher says -------------------------------------------------------------
def who(environ):
    found = launch.from_environment(environ)
    return found.rank, found.size, found.local_rank


def test_each_launchers_variables_give_rank_size_and_local_rank():
    ompi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    pmi = {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "2"}
    assert who(ompi) == (3, 4, 1)
    assert who(pmi) == (1, 2, 1)
    assert who(slurm) == (5, 8, 2)
    assert launch.from_environment({**slurm, **ompi}).launcher == "mpirun (Open MPI)"   # mpirun in an allocation
    assert launch.from_environment({"PMI_RANK": "0", "PMI_SIZE": "2"}).local_rank is None   # MPI finds it
    assert launch.from_environment({}) == launch.Launch()   # plain python: worker 0 of 1
    assert launch.from_environment({"SLURM_NTASKS": "4"}) == launch.Launch()   # an allocation, no srun


def test_bad_launcher_variables_are_named():
    with pytest.raises(ValueError, match=r"OMPI_COMM_WORLD_RANK=2 and OMPI_COMM_WORLD_SIZE=2: the rank must be"):
        launch.from_environment({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match=r"PMI_SIZE must be a non-negative integer. Received: PMI_SIZE='two'"):
        launch.from_environment({"PMI_RANK": "0", "PMI_SIZE": "two"})


def run_python(code, **env):
    import os
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI_", "SLURM_", "PMIX_"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


def test_plain_python_is_one_worker_and_never_loads_mpi():
    run = run_python("import sys, minicnn.distributed as hvd; hvd.init(); "
                     "print(hvd.rank(), hvd.size(), hvd.local_rank(), 'mpi4py' in sys.modules)")
    assert run.stdout.split() == ["0", "1", "0", "False"], run.stderr


def test_a_launched_worker_without_mpi4py_says_what_to_install():
    run = run_python("import sys; sys.modules['mpi4py'] = None\nimport minicnn.distributed as hvd; hvd.init()",
                     OMPI_COMM_WORLD_RANK="0", OMPI_COMM_WORLD_SIZE="2")
    assert "mpirun (Open MPI) started this process as one of 2 (OMPI_COMM_WORLD_SIZE=2), which needs " \
           "mpi4py: pip install 'minicnn[mpi]'" in run.stderr, run.stderr


@pytest.fixture
def fresh_state(monkeypatch):
    """A process where init() has not run (restored afterwards)."""
    state = runtime._State()
    monkeypatch.setattr(runtime, "_state", state)
    return state


def test_the_api_asks_for_init_first(fresh_state):
    for call in (hvd.rank, hvd.size, hvd.local_rank, lambda: hvd.DistributedOptimizer("sgd"),
                 lambda: hvd.allreduce(1.0)):
        with pytest.raises(ValueError, match=r"minicnn.distributed has not been initialized; call "
                                             r"minicnn.distributed.init\(\) before"):
            call()
    assert not hvd.is_initialized()
    hvd.init()
    assert hvd.is_initialized() and (hvd.rank(), hvd.size()) == (0, 1)
    assert hvd.allreduce(2.5) == 2.5 and hvd.allreduce([1.0, 2.0], weight=3).tolist() == [1.0, 2.0]
    assert hvd.allgather_object({"a": 1}) == [{"a": 1}] and hvd.broadcast_object([1]) == [1]
    with pytest.raises(ValueError, match=r"broadcast: root must be a rank from 0 to 0. Received: root=1"):
        hvd.broadcast_object(3, root=1)


# -- the parts of a global batch ----------------------------------------------------------
@pytest.mark.parametrize("n, size", [(65, 2), (64, 2), (7, 3), (3, 3), (100, 8)])
def test_the_workers_parts_cover_the_batch_once_in_order(n, size):
    bounds = [fit_support.part_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))   # contiguous, no gap, no overlap
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
    if (n, size) == (65, 2):
        assert lengths == [33, 32]


def test_one_worker_trains_as_without_distributed(fresh_state):
    """size 1: DistributedOptimizer, the broadcast callback and fit's hooks change no bit."""
    hvd.init()

    def run(distributed):
        set_random_seed(3)
        model = models.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                                   layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
        opt = optimizers.Adam(0.01)
        model.compile(hvd.DistributedOptimizer(opt) if distributed else opt, "categorical_crossentropy",
                      metrics=["accuracy"])
        rng = np.random.default_rng(0)
        x, y = rng.random((21, 8, 8, 1)), np.eye(3)[rng.integers(0, 3, 21)]
        extra = [callbacks.BroadcastGlobalVariablesCallback(0), callbacks.MetricAverageCallback()]
        h = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=extra if distributed else [])
        return model.get_weights(), h.history, model.evaluate(x, y, verbose=0)

    plain, wrapped = run(False), run(True)
    for a, b in zip(plain[0], wrapped[0]):
        np.testing.assert_array_equal(a, b)
    assert plain[1:] == wrapped[1:]


# -- DistributedOptimizer -----------------------------------------------------------------
def test_distributed_optimizer_is_the_optimizer_as_keras_sees_it(fresh_state):
    hvd.init()
    opt = optimizers.RMSprop(learning_rate=0.01, momentum=0.5, clipnorm=1.0)
    opt.iterations = 7
    d = hvd.DistributedOptimizer(opt, name="dist")
    assert isinstance(d, optimizers.RMSprop) and type(d).__name__ == "RMSprop" and hvd.is_distributed(d)
    assert d.get_config() == {**opt.get_config(), "name": "dist"} and d.iterations == 7
    assert optimizers.serialize(d)["class_name"] == "RMSprop"
    assert type(optimizers.deserialize(optimizers.serialize(d))) is optimizers.RMSprop
    assert type(hvd.DistributedOptimizer("adam")) is type(hvd.DistributedOptimizer(optimizers.Adam()))
    with pytest.raises(ValueError, match=r"DistributedOptimizer: the optimizer already averages"):
        hvd.DistributedOptimizer(d)


class FakeMpi:
    """A stand-in MpiEngine of rank 0 of 2, whose rank 1 sends ``theirs(message)``."""

    def __init__(self, theirs, rank=0, size=2):
        self.rank, self.size, self.theirs, self.calls = rank, size, theirs, []

    def sum_in_rank_order(self, values, what):
        self.calls.append(what)
        return values + self.theirs(values)

    def allgather_object(self, obj, what):
        self.calls.append(what)
        return [obj, json.loads(json.dumps(self.theirs(obj)))]

    def broadcast(self, buf, root, what):   # rank 0 is the root: its buffer stays
        self.calls.append(what)
        return buf


@pytest.fixture
def two_workers(monkeypatch):
    """This process as rank 0 of 2, with a stand-in engine (set ``.mpi`` on the result)."""
    state = runtime._State()
    state.initialized, state.size = True, 2
    monkeypatch.setattr(runtime, "_state", state)
    return state


def test_epoch_metrics_are_weighted_by_each_workers_samples(two_workers):
    # rank 0: 33 samples, loss 1.0; rank 1: 32 samples, loss 2.0 -> (33 + 64) / 65
    two_workers.mpi = FakeMpi(lambda m: np.array([32.0, 32.0 * 2.0, 32.0 * 0.5]))
    values = fit_support.average_over_workers([("loss", 1.0), ("accuracy", 0.25)], 33)
    assert values == [("loss", (33 + 64) / 65), ("accuracy", (33 * 0.25 + 16) / 65)]
    assert fit_support.quiet(1) == 1 and fit_support.local_part(np.arange(65)).tolist() == list(range(33))
    two_workers.rank = 1
    assert fit_support.quiet(2) == 0 and fit_support.local_part(np.arange(65)).tolist() == list(range(33, 65))


def small_model(distributed=False):
    model = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2, activation="softmax")])
    model.compile(hvd.DistributedOptimizer("sgd") if distributed else "sgd", "categorical_crossentropy")
    return model


def test_fit_refuses_work_that_differs_between_workers(two_workers):
    x, y = np.zeros((40, 3), np.float32), np.eye(2)[np.arange(40) % 2]
    model = small_model()
    two_workers.mpi = FakeMpi(lambda mine: {**mine, "epochs": 3})
    with pytest.raises(ValueError, match=r"^fit: the workers were not given the same work: epochs is 2 on "
                                         r"rank 0 but 3 on rank 1\. Every worker must call fit"):
        model.fit(x, y, epochs=2, verbose=0)
    two_workers.mpi = FakeMpi(lambda mine: {**mine, "samples of source 0": 39})
    with pytest.raises(ValueError, match=r"samples of source 0 is 40 on rank 0 but 39 on rank 1"):
        model.evaluate(x, y, verbose=0)
    assert model.optimizer.iterations == 0   # refused before any step


def test_fit_refuses_a_start_moved_on_one_worker_only(two_workers):
    """BackupAndRestore given to rank 0 alone would resume rank 0 alone: refused, not a hang."""
    class Resume(callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model._initial_epoch = 1

    key = "the first epoch (after on_train_begin)"
    two_workers.mpi = FakeMpi(lambda mine: {**mine, key: 0} if key in mine else mine)
    model = small_model(distributed=True)
    with pytest.raises(ValueError, match=r"the first epoch \(after on_train_begin\) is 1 on rank 0 but 0 on "
                                         r"rank 1\. Every worker must call fit with the same data and arguments "
                                         r"\(and when one resumes with BackupAndRestore, so must all\)"):
        model.fit(np.zeros((4, 3)), np.eye(2)[[0, 1, 0, 1]], epochs=2, verbose=0, callbacks=[Resume()])


def test_fit_refuses_a_batch_too_small_to_share(two_workers):
    x, y = np.zeros((41, 3), np.float32), np.eye(2)[np.arange(41) % 2]
    model = small_model()
    two_workers.mpi = FakeMpi(lambda mine: mine)
    with pytest.raises(ValueError, match=r"fit: with 2 workers every batch must hold at least 2 samples \(one "
                                         r"per worker\); 41 samples in batches of 10 make a batch of 1: drop "
                                         r"the last 1 samples or change batch_size\. Received: batch_size=10"):
        model.fit(x, y, batch_size=10, verbose=0)
    with pytest.raises(ValueError, match=r"make a batch of 1: choose batch_size >= 2"):
        model.evaluate(x, y, batch_size=1, verbose=0)


def test_fit_warns_when_the_optimizer_does_not_average(two_workers):
    model = small_model()
    two_workers.mpi = FakeMpi(lambda mine: mine)
    with pytest.warns(UserWarning, match=r"fit: 2 workers train, but the optimizer does not average"):
        model.fit(np.zeros((4, 3)), np.eye(2)[[0, 1, 0, 1]], batch_size=4, verbose=0)


def test_metric_average_callback_averages_only_values_that_differ(two_workers):
    two_workers.mpi = FakeMpi(lambda mine: [mine[0], [v + 1 if k == "mine" else v for k, v in zip(*mine)]])
    logs = {"loss": 0.5, "mine": 2.0, "note": "text"}
    callbacks.MetricAverageCallback().on_epoch_end(0, logs)
    assert logs == {"loss": 0.5, "mine": 2.5, "note": "text"}


# -- broadcast_weights' check ------------------------------------------------------------
def test_the_first_differing_weight_is_named():
    a = [("conv2d", 0, [3, 3, 1, 8]), ("conv2d", 1, [8]), ("dense", 0, [8, 2])]
    b = [("conv2d_1", 0, [3, 3, 1, 8]), ("conv2d_1", 1, [8]), ("dense_1", 0, [8, 3])]
    assert first_difference([a, a, a], 0) is None
    assert first_difference([a, b], 0) == (
        "broadcast_weights: the workers' models differ at weight 2: its shape is (8, 2) on rank 0 (layer "
        "'dense', weight 0) but its shape is (8, 3) on rank 1 (layer 'dense_1', weight 0) (3 weights on "
        "rank 0, 3 on rank 1). Build the same model on every worker.")
    message = first_difference([a[:2], a, a[:2]], 2)
    assert "weight 2: rank 2 has no weight 2 but its shape is (8, 2) on rank 1" in message
    model = small_model()
    first, second = model.layers[0].name, model.layers[1].name
    assert weight_shapes(model) == [(first, 0, [3, 4]), (first, 1, [4]), (second, 0, [4, 2]), (second, 1, [2])]


# -- the deadline ---------------------------------------------------------------------------
class Request:
    def __init__(self, done_after):
        self.tests = 0
        self.done_after = done_after

    def Test(self):
        self.tests += 1
        return self.tests > self.done_after


class Comm:
    def __init__(self, rank=0, size=3):
        self.rank, self.size, self.aborted = rank, size, None

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Abort(self, code):
        self.aborted = code


def test_wait_all_returns_when_every_request_is_done():
    comm, requests = Comm(), [(Request(3), 1), (Request(0), 2)]
    wait_all(comm, requests, "x", timeout=5)
    assert comm.aborted is None and requests[0][0].tests == 4 and requests[1][0].tests == 1


def test_wait_all_names_the_ranks_that_did_not_answer_and_aborts(capsys):
    comm = Comm()
    with pytest.raises(RuntimeError):
        wait_all(comm, [(Request(0), 1), (Request(10**9), 2), (Request(10**9), 2)], "the gradient exchange of "
                 "step 4", timeout=0.05)
    assert comm.aborted == 1
    assert capsys.readouterr().err.startswith(
        "minicnn.distributed: rank 0 of 3: waited 0.05 s (MINICNN_DIST_TIMEOUT) in the gradient exchange of "
        "step 4 for rank(s) 2, which did not answer: they died or hang")


# -- the NCCL engine, on NumPy stand-ins ---------------------------------------------------
class NumpyParts:
    """CupyParts with NumPy arrays: raw pointers are NumPy's, events are done when told."""
    xp = np
    float32 = 7   # NCCL's code for float32 in NCCL 2 (ncclFloat32)

    def __init__(self):
        self.events = []

    def pointer(self, a):
        return a.ctypes.data

    def stream(self):
        return 1234

    def event(self):
        e = type("Event", (), {"done": False})()
        self.events.append(e)
        return e


class FakeNccl:
    """ncclAllGather of ``rank`` of ``len(peers) + 1``: the other rows are the peers'."""

    def __init__(self, rank, peers):
        self.rank, self.peers, self.calls, self.aborted = rank, peers, [], False

    def allGather(self, send, recv, count, dtype, stream):
        import ctypes
        self.calls.append((count, dtype, stream))
        size = len(self.peers) + 1
        rows = np.ctypeslib.as_array(ctypes.cast(recv, ctypes.POINTER(ctypes.c_float)), (size, count))
        mine = np.ctypeslib.as_array(ctypes.cast(send, ctypes.POINTER(ctypes.c_float)), (count,))
        others = iter(self.peers)
        for r in range(size):
            rows[r] = mine if r == self.rank else next(others)

    def check_async_error(self):
        pass

    def abort(self):
        self.aborted = True


def test_the_nccl_engine_sends_count_and_gradient_in_one_gather():
    g1 = np.array([4.0, -2.0, 1.0], np.float32)   # rank 1's mean gradient over its 32 samples
    fake = FakeNccl(rank=0, peers=[np.append(g1 * 32, 32).astype(np.float32)])
    parts = NumpyParts()
    engine = nccl_engine.NcclEngine(fake, Comm(0, 2), 0, 2, parts)
    engine.watchdog.follow = lambda what: None   # no thread here: check() is tested below
    flat = np.array([1.0, 2.0, 3.0], np.float32)   # rank 0's, over 33 samples
    out = engine.average_gradients(flat, 33, "step 1")
    assert out is flat
    np.testing.assert_allclose(flat, (np.array([1, 2, 3]) * 33 + g1 * 32) / 65, rtol=1e-6)
    assert fake.calls == [(4, 7, 1234)]   # n + 1 floats, float32, the current stream
    send = engine._send
    engine.average_gradients(flat, 33, "step 2")
    assert engine._send is send   # the buffers live from step to step


def test_the_nccl_watchdog_ends_a_job_whose_exchange_never_completes(settings, capsys):
    parts = NumpyParts()
    fake, comm = FakeNccl(0, []), Comm(0, 2)
    engine = nccl_engine.NcclEngine(fake, comm, 0, 2, parts)
    dog = engine.watchdog
    dog.thread = "not started"   # follow() without its thread: the test looks itself
    dog.follow("the gradient exchange of step 1")
    dog.follow("the gradient exchange of step 2")
    parts.events[0].done = True
    dog.check()
    assert [what for _, what, _ in dog.pending] == ["the gradient exchange of step 2"] and comm.aborted is None
    settings(MINICNN_DIST_TIMEOUT=0.01)
    import time
    time.sleep(0.02)
    with pytest.raises(RuntimeError):
        dog.check()
    assert fake.aborted and comm.aborted == 1
    assert "the gradient exchange of step 2 (NCCL) is not done after 0.01 s" in capsys.readouterr().err


@pytest.mark.gpu
def test_the_nccl_engine_on_a_gpu():
    """One GPU, one rank: the real ncclAllGather path, its buffers and events."""
    import cupy
    from cupy.cuda import nccl
    if not nccl.available:
        pytest.skip(f"NCCL is not installed: pip install '{nccl_engine.NCCL_PACKAGE}'")
    comm = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
    engine = nccl_engine.NcclEngine(comm, Comm(0, 1), 0, 1, nccl_engine.CupyParts(cupy, nccl))
    flat = cupy.arange(1000, dtype=cupy.float32) / 7
    expected = flat.copy()
    engine.average_gradients(flat, 33, "step 1")
    cupy.cuda.get_current_stream().synchronize()
    cupy.testing.assert_allclose(flat, expected, rtol=1e-6)
    engine.watchdog.check()
    assert not engine.watchdog.pending


def test_nccl_without_a_gpu_says_what_is_missing():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from cupy.cuda import nccl
        except Exception:
            pytest.skip("no CuPy")
    if nccl.available:
        pytest.skip("NCCL is installed here")
    with pytest.raises(RuntimeError, match=r"needs NCCL: pip install 'nvidia-nccl-cu13>=2.27.7,<3'"):
        nccl_engine.NcclEngine.create(FakeMpi(None), 0)
