"""The CUDA emulator: built-ins, speed, argument and launch checks, and the bug
classes it must catch (each shown with a deliberately broken kernel from
tests/emulator_kernels/broken.cu)."""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend import loader
from minicnn.backend.emulator import (BuildError, KernelError, KernelFault, KernelNotFound,
                                      KernelTimeout, RaceError, RawModule, build,
                                      run_in_all_orders, signatures)

KDIR = Path(__file__).resolve().parent / "emulator_kernels"
i32, f32 = np.int32, np.float32


# ----------------------------------------------------------------------------
# Fixtures and helpers
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A fresh library cache and default options for this module."""
    with pytest.MonkeyPatch.context() as mp:
        d = tmp_path_factory.mktemp("emu-cache")
        mp.setenv("MINICNN_CACHE_DIR", str(d))
        for var in ("MINICNN_EMU_ORDER", "MINICNN_EMU_SEED", "MINICNN_EMU_TIMEOUT",
                    "MINICNN_EMU_GUARD"):
            mp.delenv(var, raising=False)
        yield d


@pytest.fixture(scope="module")
def good(cache_dir):
    return RawModule(path=KDIR / "good.cu")


@pytest.fixture(scope="module")
def broken(cache_dir):
    return RawModule(path=KDIR / "broken.cu")


def matrices(M=64, K=576, N=64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((M, K), dtype=f32), rng.standard_normal((K, N), dtype=f32))


def sgemm(fn, A, B, **kw):
    (M, K), N = A.shape, B.shape[1]
    C = np.zeros((M, N), f32)
    fn(((N + 15) // 16, (M + 15) // 16), (16, 16), (A, B, C, i32(M), i32(N), i32(K)), **kw)
    return C


def best_time(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# ----------------------------------------------------------------------------
# Correct kernels: results and speed
# ----------------------------------------------------------------------------
def test_sgemm_tiled_matches_numpy_in_every_order_and_is_fast(good):
    fn = good.get_function("sgemm_tiled")
    A, B = matrices()
    for order in ("forward", "reverse", "random", "all"):
        np.testing.assert_allclose(sgemm(fn, A, B, order=order), A @ B, rtol=1e-4, atol=1e-3)
    seconds = best_time(lambda: sgemm(fn, A, B))
    print(f"\nSGEMM 64x576x64 (16x16 tiles, 4x4 blocks): {seconds * 1e3:.1f} ms")
    assert seconds < 1.0


def test_sgemm_odd_shapes_cover_partial_tiles(good):
    A, B = matrices(M=37, K=50, N=19, seed=1)
    np.testing.assert_allclose(sgemm(good.get_function("sgemm_tiled"), A, B), A @ B, rtol=1e-4, atol=1e-4)


def test_elementwise_one_million(good):
    fn = good.get_function("axpb")
    x = np.random.default_rng(2).standard_normal(1 << 20, dtype=f32)
    y = np.zeros_like(x)
    seconds = best_time(lambda: fn((4096,), (256,), (x, y, f32(2), f32(1), i32(x.size))))
    np.testing.assert_array_equal(y, 2 * x + 1)
    print(f"\naxpb on 2**20 floats (4096 blocks x 256): {seconds * 1e3:.1f} ms")
    assert seconds < 5.0


def test_index_variables_follow_cuda_linear_order(good):
    grid, block = (3, 2, 2), (4, 2, 3)
    out = np.full((12, 24, 2), -1, np.int32)
    good.get_function("where_am_i")(grid, block, (out,), order="random", seed=3)
    for b in range(12):
        bx, by, bz = b % 3, (b // 3) % 2, b // 6
        for t in range(24):
            tx, ty, tz = t % 4, (t // 4) % 2, t // 8
            assert tuple(out[b, t]) == ((bz * 100 + by) * 100 + bx, (tz * 100 + ty) * 100 + tx)


def test_warp_intrinsics(good):
    v = np.random.default_rng(4).standard_normal(128, dtype=f32)
    v[40] = 200.0  # warp 1 has a value > 100
    out = np.zeros((4, 6), f32)
    scan = np.zeros_like(v)
    run_in_all_orders(good.get_function("warp_ops"), (2,), (64,), (v, out, scan), rtol=1e-6)
    w = v.reshape(4, 32)
    np.testing.assert_allclose(out[:, 0], w.sum(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(out[:, 1], w.max(axis=1))
    np.testing.assert_array_equal(out[:, 2], w[:, 7])
    np.testing.assert_array_equal(out[:, 3], (w > 0).sum(axis=1))
    np.testing.assert_array_equal(out[:, 4], [0, 1, 0, 0])
    np.testing.assert_array_equal(out[:, 5], [1, 1, 1, 1])
    np.testing.assert_allclose(scan.reshape(4, 32), np.cumsum(w, axis=1), rtol=1e-5, atol=1e-5)


def test_atomics(good):
    n = 1000
    v = np.arange(n, dtype=f32) - 100
    ints = np.array([0, -(2**31), -1, 0], np.int32)
    uints = np.zeros(1, np.uint32)
    fsum = np.zeros(1, f32)
    good.get_function("atomics")((4,), (256,), (v, ints, uints, fsum, i32(n)))
    assert ints[0] == (v > 0).sum() and ints[1] == 899 and ints[2] == 0 and ints[3] == 7
    assert uints[0] == 2 * n and fsum[0] == n


def test_dynamic_shared_memory(good):
    x = np.arange(3 * 64, dtype=f32)
    y = np.zeros_like(x)
    good.get_function("reverse_chunks")((3,), (64,), (x, y), shared_mem=64 * 4, order="all")
    np.testing.assert_array_equal(y, x.reshape(3, 64)[:, ::-1].ravel())


def test_syncthreads_predicates(good):
    x = np.ones((3, 64), f32)
    x[1, 5] = -1
    x[2] = -1
    out = np.zeros((3, 3), np.int32)
    good.get_function("sync_predicates")((3,), (64,), (x, out))
    np.testing.assert_array_equal(out, [[64, 1, 1], [63, 0, 1], [0, 0, 0]])


def test_scalar_parameters_arrive_with_their_exact_c_types(good):
    out = np.zeros(7, np.float64)
    good.get_function("scalar_types")(1, 1, (out, np.int64(-(2**40)), np.uint32(2**32 - 1),
                                             np.float64(0.1), np.bool_(True), np.uint8(200),
                                             np.int16(-7), f32(1.5)))
    np.testing.assert_array_equal(out, [-(2**40), 2**32 - 1, 0.1, 1, 200, -7, 1.5])


def test_device_math(good):
    out = np.zeros(17, f32)
    good.get_function("math_funcs")(1, 1, (np.array([2.5], f32), out))
    v = np.float32(2.5)
    expected = [np.exp(v), np.log(v), np.sqrt(v), 1 / np.sqrt(v), 2.5, 2.0, np.exp(v), np.log(v),
                v / 4, np.tanh(v), v, 0, -1, 2, 2, 2.5, v]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_math_constants_and_min_max_overloads():
    mod = RawModule(code="""
extern "C" __global__ void consts(float* out, unsigned int* u) {
    out[0] = INFINITY; out[1] = FLT_MAX; out[2] = isinf(-INFINITY) ? 1.0f : 0.0f;
    u[0] = max(3u, 7u); u[1] = min(2, 9); u[2] = __popc(0xF0u) + __clz(1);
}""")
    out, u = np.zeros(3, f32), np.zeros(3, np.uint32)
    mod.get_function("consts")(1, 1, (out, u))
    assert out[0] == np.inf and out[1] == np.finfo(f32).max and out[2] == 1
    np.testing.assert_array_equal(u, [7, 2, 4 + 31])


def test_launch_bounds_limit_the_block_size(good):
    fn = good.get_function("bounded")
    assert fn.max_threads_per_block == 128
    y = np.zeros(128, f32)
    fn(1, 128, (y,))
    assert (y == 1).all()
    with pytest.raises(ValueError, match=r"kernel 'bounded' .*__launch_bounds__ \(128\)"):
        fn(1, 256, (np.zeros(256, f32),))


def test_spin_wait_with_nanosleep_makes_progress(good):
    out = np.zeros(1, np.int32)
    good.get_function("sleepy_handshake")(1, 64, (out,), timeout=10)
    assert out[0] == 42


def test_aliased_and_overlapping_arrays_share_memory(good):
    fn = good.get_function("axpb")
    x = np.arange(10, dtype=f32)
    fn(1, 32, (x, x, f32(2), f32(0), i32(10)))  # in place
    np.testing.assert_array_equal(x, 2 * np.arange(10))
    z = np.arange(11, dtype=f32)
    fn(1, 1, (z[1:], z[:10], f32(1), f32(0), i32(10)))  # one thread: a shift left
    np.testing.assert_array_equal(z, list(range(1, 11)) + [10])


def test_empty_arrays_and_unguarded_mode(good, monkeypatch):
    fn = good.get_function("axpb")
    fn(1, 32, (np.zeros(0, f32), np.zeros(0, f32), f32(1), f32(0), i32(0)))
    monkeypatch.setenv("MINICNN_EMU_GUARD", "0")
    x = np.arange(100, dtype=f32)
    y = np.zeros_like(x)
    fn(1, 64, (x, y, f32(3), f32(0), i32(100)))
    np.testing.assert_array_equal(y, 3 * x)


def test_concurrent_launches_from_threads(good):
    fn = good.get_function("sgemm_tiled")
    A, B = matrices(M=32, K=64, N=32)
    results, errors = [], []

    def work():
        try:
            results.append(sgemm(fn, A, B))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for C in results:
        np.testing.assert_allclose(C, A @ B, rtol=1e-4, atol=1e-4)


def test_ucontext_fallback_gives_the_same_results(cache_dir):
    mod = RawModule(path=KDIR / "good.cu", options=("-DEMU_UCONTEXT",))
    A, B = matrices(M=32, K=48, N=32)
    np.testing.assert_allclose(sgemm(mod.get_function("sgemm_tiled"), A, B, order="all"), A @ B,
                               rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------
# Argument checks (the CuPy traps)
# ----------------------------------------------------------------------------
def axpb_args():
    return [np.zeros(8, f32), np.zeros(8, f32), f32(1), f32(0), i32(8)]


@pytest.mark.parametrize("index, value, hint", [
    (4, 8, r"argument 4 \('n', C type int\): a Python int \(8\) is refused: pass np\.int32\(8\)"),
    (2, 1.0, r"argument 2 \('a', C type float\): a Python float \(1\.0\) is refused: pass np\.float32"),
    (4, True, r"argument 4 .*Python bool"),
])
def test_python_scalars_are_refused(good, index, value, hint):
    args = axpb_args()
    args[index] = value
    with pytest.raises(TypeError, match=r"kernel 'axpb' <<<.*" + hint):
        good.get_function("axpb")(1, 32, tuple(args))


@pytest.mark.parametrize("index, value, match", [
    (4, np.int64(8), r"argument 4 \('n', C type int\): expects np\.int32, received np\.int64"),
    (2, np.float64(1), r"argument 2 \('a', C type float\): expects np\.float32, received np\.float64"),
    (0, np.zeros(8, np.float64), r"argument 0 .*expects an array of float32 .*received float64"),
    (1, np.zeros((8, 2), f32)[:, 0], r"argument 1 .*not C-contiguous"),
    (4, np.zeros(1, np.int32), r"argument 4 \('n', C type int\): is passed by value but received an array"),
    (0, f32(1), r"argument 0 .*expects a pointer .*received the scalar"),
    (0, [1.0, 2.0], r"argument 0 .*unsupported argument type builtins\.list"),
])
def test_argument_types_are_checked_against_the_signature(good, index, value, match):
    args = axpb_args()
    args[index] = value
    with pytest.raises(TypeError, match=match):
        good.get_function("axpb")(1, 32, tuple(args))


def test_argument_count_and_read_only_outputs(good):
    fn = good.get_function("axpb")
    with pytest.raises(TypeError, match=r"kernel 'axpb' .*takes 5 arguments .*received 4"):
        fn(1, 32, tuple(axpb_args()[:4]))
    args = axpb_args()
    args[1].flags.writeable = False
    with pytest.raises(TypeError, match=r"argument 1 .*not const .*read-only"):
        fn(1, 32, tuple(args))
    args = axpb_args()
    args[0].flags.writeable = False  # a read-only input behind a const pointer is fine
    fn(1, 32, tuple(args))


@pytest.mark.parametrize("grid, block, shared, match", [
    (1, 2048, 0, r"block\.x = 2048 exceeds the limit 1024"),
    (1, (64, 32), 0, r"block has 2048 threads; the limit is 1024"),
    (1, (1, 1, 65), 0, r"block\.z = 65 exceeds"),
    (0, 32, 0, r"every grid dimension must be >= 1"),
    ((1, 0), 32, 0, r"every grid dimension must be >= 1"),
    (1, 32, 48 * 1024 + 4, r"49156 bytes of dynamic shared memory exceed"),
    ((1, 70000), 32, 0, r"grid\.y = 70000 exceeds the limit 65535"),
])
def test_bad_launch_configurations(good, grid, block, shared, match):
    with pytest.raises(ValueError, match=r"kernel 'axpb' <<<grid=\(.*\), block=\(.*\), "
                                         r"shared_mem=\d+>>>: " + match):
        good.get_function("axpb")(grid, block, tuple(axpb_args()), shared_mem=shared)


def test_config_types(good):
    fn = good.get_function("axpb")
    with pytest.raises(TypeError, match="block"):
        fn(1, 32.0, tuple(axpb_args()))
    with pytest.raises(TypeError, match="grid"):
        fn((1, 1, 1, 1), 32, tuple(axpb_args()))
    with pytest.raises(TypeError):
        fn(1, 32, tuple(axpb_args()), 0)  # shared_mem is keyword-only, as in CuPy
    fn(np.int64(1), (np.int32(32),), tuple(axpb_args()), shared_mem=np.int64(0))


# ----------------------------------------------------------------------------
# Bug classes, each with its broken kernel
# ----------------------------------------------------------------------------
def test_unwritten_shared_memory_reads_as_nan(broken):
    x, y = np.ones(256, f32), np.zeros(256, f32)
    broken.get_function("shared_read_unwritten")(1, 256, (x, y))
    assert np.isnan(y[255]) and (y[:255] == 2).all()


def test_missing_sync_after_load_shows_as_nan_in_every_order(broken):
    A, B = matrices(M=32, K=64, N=32)
    for order in ("forward", "reverse", "random"):
        C = sgemm(broken.get_function("sgemm_no_sync_after_load"), A, B, order=order)
        assert np.isnan(C).any(), order


@pytest.mark.parametrize("kernel", ["sgemm_no_sync_before_reload", "sgemm_no_sync_after_load"])
def test_missing_sync_is_caught_by_comparing_orders(broken, good, kernel):
    A, B = matrices(M=32, K=64, N=32)
    with pytest.raises(RaceError, match=rf"kernel '{kernel}' <<<.*depend on the order .*argument 2 \('C', C type float\*\)"):
        sgemm(broken.get_function(kernel), A, B, order="all")
    with pytest.raises(RaceError, match=rf"kernel '{kernel}'.*thread order"):
        C = np.zeros((32, 32), f32)
        run_in_all_orders(broken.get_function(kernel), (2, 2), (16, 16),
                          (A, B, C, i32(32), i32(32), i32(64)))
    C = np.zeros((32, 32), f32)  # the correct kernel passes the same helper
    run_in_all_orders(good.get_function("sgemm_tiled"), (2, 2), (16, 16),
                      (A, B, C, i32(32), i32(32), i32(64)))
    np.testing.assert_allclose(C, A @ B, rtol=1e-4, atol=1e-4)


def test_order_from_the_environment(broken, monkeypatch):
    x, out = np.ones(1024, f32), np.zeros(4, f32)
    fn = broken.get_function("reduce_no_sync_in_loop")
    fn(4, 256, (x, out))  # forward only: wrong, but no error
    monkeypatch.setenv("MINICNN_EMU_ORDER", "all")
    with pytest.raises(RaceError, match="reduce_no_sync_in_loop"):
        fn(4, 256, (x, out))
    monkeypatch.setenv("MINICNN_EMU_ORDER", "sideways")
    with pytest.raises(ValueError, match="order must be one of"):
        fn(4, 256, (x, out))


def test_barrier_after_early_return_is_reported(broken):
    with pytest.raises(KernelError, match=r"kernel 'early_return_then_sync' <<<grid=\(2,1,1\), "
                       r"block=\(256,1,1\).*divergent barrier: .*waits in __syncthreads\(\) at "
                       r".*broken\.cu:74, but .*thread \(200,0,0\) already returned"):
        broken.get_function("early_return_then_sync")(2, 256, (np.ones(512, f32), np.zeros(512, f32), i32(200)))


def test_barriers_on_different_lines_are_reported(broken):
    with pytest.raises(KernelError, match=r"kernel 'barrier_in_branches'.*different sync points: "
                       r".*broken\.cu:85 .*broken\.cu:88"):
        broken.get_function("barrier_in_branches")(1, 32, (np.zeros(32, f32),))


@pytest.mark.parametrize("kernel, block, match", [
    ("shuffle_after_return", 32, r"waits in __shfl_down_sync\(\) .*for lane 16 .*already returned"),
    ("shuffle_mask_without_self", 32, r"\(lane 16\) calls __shfl_xor_sync\(\) .*mask 0x0000ffff, "
                                      r"which does not include its own lane"),
    ("shuffle_partial_warp", 48, r"mask 0xffffffff, but its warp only has lanes 0x0000ffff"),
    ("shuffle_vs_barrier", 32, r"deadlock: .*__shfl_down_sync\(\) .*__syncthreads\(\)"),
])
def test_warp_intrinsic_misuse_is_reported(broken, kernel, block, match):
    with pytest.raises(KernelError, match=rf"kernel '{kernel}' <<<.*>>>: .*" + match):
        broken.get_function(kernel)(1, block, (np.ones(64, f32), np.zeros(64, f32)))


def test_read_one_past_the_end_faults_with_names(broken):
    x, y = np.ones(1000, f32), np.zeros(1000, f32)
    with pytest.raises(KernelFault, match=r"kernel 'off_by_one' <<<grid=\(4,1,1\), block=\(256,1,1\), "
                       r"shared_mem=0>>>: invalid memory access \(SIGSEGV\) in block \(3,0,0\) thread "
                       r"\(232,0,0\): invalid read .*argument 0 \('x', C type const float\*\) \(1000 elements "
                       r"of 4 bytes\): element 1000, 0 bytes past its end -- at .*broken\.cu:98"):
        broken.get_function("off_by_one")(4, 256, (x, y, i32(1000)))
    assert (y == 0).all()  # nothing copied back after a fault


def test_write_past_the_end_is_caught(broken):
    fn = broken.get_function("off_by_one_write")
    with pytest.raises(KernelFault, match=r"invalid write .*argument 1 \('y', C type float\*\).*element 1000"):
        fn(4, 256, (np.ones(1000, f32), np.zeros(1000, f32), i32(1000)))
    # 1001 floats leave 12 bytes of slack before the guard page: the check after
    # the launch reports the write there
    with pytest.raises(KernelFault, match=r"wrote out of bounds: argument 1 .*element 1001, 0 bytes past"):
        fn(4, 256, (np.ones(1001, f32), np.zeros(1001, f32), i32(1001)))


def test_read_before_the_start_and_write_to_const_input(broken):
    with pytest.raises(KernelFault, match=r"argument 0 .*8192 bytes before its start"):
        broken.get_function("read_before_start")(4, 256, (np.ones(1000, f32), np.zeros(1000, f32), i32(1000)))
    with pytest.raises(KernelFault, match=r"a write into argument 0 \('x', C type const float\*\).*declares const"):
        broken.get_function("writes_const_input")(1, 32, (np.ones(32, f32), np.zeros(32, f32)))


def test_dynamic_shared_memory_overruns(broken):
    with pytest.raises(KernelError, match=r"wrote dynamic shared memory at byte 128, past the shared_mem=128"):
        broken.get_function("dynamic_shared_overrun")(1, 32, (np.zeros(32, f32),), shared_mem=128)
    with pytest.raises(KernelFault, match=r"invalid write of dynamic shared memory at byte 4096, past the "
                       r"shared_mem=1024"):
        broken.get_function("dynamic_shared_far")(1, 32, (np.zeros(32, f32),), shared_mem=1024)


def test_hang_becomes_a_timeout(broken):
    t = time.perf_counter()
    with pytest.raises(KernelTimeout, match=r"kernel 'spin_forever' .*time limit of 0\.3 s exceeded"):
        broken.get_function("spin_forever")(1, 64, (np.zeros(64, np.int32),), timeout=0.3)
    assert time.perf_counter() - t < 5


def test_cpu_faults_become_exceptions(broken):
    with pytest.raises(KernelFault, match=r"SIGFPE.*broken\.cu:211"):
        broken.get_function("divide_by_zero")(1, 64, (np.ones(64, np.int32), np.zeros(64, np.int32), i32(0)))
    with pytest.raises(KernelFault, match=r"stack overflow in block \(0,0,0\) thread"):
        broken.get_function("huge_local_array")(1, 4, (np.zeros(4, f32), i32(60000)))
    x = np.ones(64, np.int32)
    x[5] = -1
    with pytest.raises(KernelError, match=r"thread \(5,0,0\): assertion failed at .*broken\.cu:225"):
        broken.get_function("failing_assert")(1, 64, (x,))


def _segv_handler():
    """The process's current SIGSEGV handler address (struct sigaction starts with it)."""
    libc = ctypes.CDLL(None)
    buf = ctypes.create_string_buffer(512)
    assert libc.sigaction(signal.SIGSEGV, None, buf) == 0
    return ctypes.c_void_p.from_buffer(buf).value


def test_process_is_intact_after_faults(broken, good):
    before = _segv_handler()
    for _ in range(3):
        with pytest.raises(KernelFault):
            broken.get_function("off_by_one")(1, 64, (np.ones(63, f32), np.zeros(63, f32), i32(63)))
    assert _segv_handler() == before  # Python's (faulthandler's) handler is back
    A, B = matrices(M=16, K=32, N=16)
    np.testing.assert_allclose(sgemm(good.get_function("sgemm_tiled"), A, B), A @ B, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------
# Building, caching, parsing
# ----------------------------------------------------------------------------
def test_compile_error_is_a_build_error_with_the_source_line(tmp_path):
    src = tmp_path / "bad.cu"
    src.write_text('extern "C" __global__ void k(float* y)\n{\n    y[0] = undefined_name;\n}\n')
    with pytest.raises(BuildError, match=r"bad\.cu:3.*undefined_name"):
        RawModule(path=src).get_function("k")


def test_unknown_kernel_name(good):
    with pytest.raises(KernelNotFound, match=r"no extern \"C\" __global__ kernel named 'nope' .*sgemm_tiled"):
        good.get_function("nope")


def test_library_cache_is_reused_and_keyed_by_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_CACHE_DIR", str(tmp_path))
    code = 'extern "C" __global__ void k(int* y) { y[threadIdx.x] = %d; }'
    first = RawModule(code=code % 1)
    first.get_function("k")
    built = sorted((tmp_path / "emulator").glob("*.so"))
    assert len(built) == 1 and first.library_path == built[0]

    def no_compile(*a, **k):
        raise AssertionError("the cached library should have been used")
    monkeypatch.setattr(build, "compile_unit", no_compile)
    again = RawModule(code=code % 1)
    y = np.zeros(4, np.int32)
    again.get_function("k")(1, 4, (y,))
    assert again.library_path == built[0] and (y == 1).all()
    with pytest.raises(AssertionError, match="cached"):
        RawModule(code=code % 2).get_function("k")  # other source: other key
    assert not list((tmp_path / "emulator").glob("*.tmp"))  # no half-written files


def test_signature_parser_handles_cuda_syntax():
    src = '''
    // extern "C" __global__ void in_a_comment(int x) {}
    /* extern "C" __global__ void in_a_block_comment(int x) {} */
    extern "C" __global__ void __launch_bounds__(256, 2) a(const float* __restrict__ x,
        float y[], unsigned int n = 4) { }
    extern "C" {
    __global__ void b(void) { }
    __global__ void c(float4* v, long long k);
    __global__ void c(float4* v, long long k) { }
    }
    __global__ void cpp_linkage(int x) { }
    '''
    ks = signatures.parse_kernels(src)
    assert sorted(ks) == ["a", "b", "c"]
    assert [(p.name, p.text) for p in ks["a"].params] == [
        ("x", "const float* __restrict__ x"), ("y", "float y[]"), ("n", "unsigned int n")]
    assert ks["a"].launch_bounds == "256" and ks["a"].line == 4
    assert ks["b"].params == [] and [p.name for p in ks["c"].params] == ["v", "k"]
    rewritten = signatures.rewrite_extern_shared("extern\n__shared__ float s[];")
    assert rewritten == "__emu_extern_shared\n float s[];"
    assert signatures.rewrite_extern_shared("static  __shared__ int n;") == "__shared__ int n;"
    assert signatures.extern_shared_names("extern __shared__ __align__(16) float sm[];") == ["sm"]


def test_cuda_options_pass_defines_through():
    assert build.translate_options(("--std=c++17", "-DTILE=8", "--define-macro=X", "-I", "inc",
                                    "-ftz=true")) == ["-DTILE=8", "-DX", "-I", "inc"]
    mod = RawModule(code='extern "C" __global__ void k(int* y) { y[0] = TILE; }', options=("-DTILE=8",))
    y = np.zeros(1, np.int32)
    mod.get_function("k")(1, 1, (y,))
    assert y[0] == 8


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on the PATH")
@pytest.mark.parametrize("name", ["good.cu", "broken.cu"])
def test_toy_kernels_also_compile_with_nvcc(tmp_path, name):
    res = subprocess.run(["nvcc", "-cubin", "-arch=sm_90", "-o", str(tmp_path / "k.cubin"),
                          str(KDIR / name)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------
# The loader
# ----------------------------------------------------------------------------
def test_loader_emulator_target_is_cached(tmp_path, monkeypatch):
    (tmp_path / "toy.cu").write_text(
        'extern "C" __global__ void fill(float* y, float v) { y[threadIdx.x] = v; }')
    monkeypatch.setattr(loader, "KERNEL_DIR", tmp_path)
    monkeypatch.setattr(loader, "_modules", {})
    mod = loader.load_module("toy", "emulator")
    assert loader.load_module("toy", "emulator") is mod
    y = np.zeros(8, f32)
    mod.get_function("fill")(1, 8, (y, f32(3)))
    assert (y == 3).all()
    with pytest.raises(FileNotFoundError, match=r"no kernel source .*missing\.cu; available: toy"):
        loader.load_module("missing", "emulator")
    with pytest.raises(ValueError, match="target must be one of"):
        loader.load_module("toy", "opencl")


def test_loader_kernel_dir_and_lazy_cupy():
    assert loader.KERNEL_DIR.resolve() == Path(__file__).resolve().parents[1] / "kernels"
    code = "import sys, minicnn.backend.loader; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.gpu
def test_loader_cupy_target_runs_on_the_gpu(tmp_path, monkeypatch):
    import cupy
    (tmp_path / "toy.cu").write_text(
        'extern "C" __global__ void fill(float* y, float v) { y[threadIdx.x] = v; }')
    monkeypatch.setattr(loader, "KERNEL_DIR", tmp_path)
    monkeypatch.setattr(loader, "_modules", {})
    y = cupy.zeros(8, cupy.float32)
    loader.load_module("toy", "cupy").get_function("fill")((1,), (8,), (y, np.float32(3)))
    assert (cupy.asnumpy(y) == 3).all()
