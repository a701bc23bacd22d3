// ============================================================================
// broken.cu -- deliberately WRONG kernels, one bug each. tests/test_emulator.py
// checks that the emulator reports every one. They still compile with nvcc.
// ============================================================================

#define TILE 16

// ----------------------------------------------------------------------------
// Missing __syncthreads() after loading the tiles: threads read tile entries
// other threads have not written yet (NaN-filled shared memory shows it).
// ----------------------------------------------------------------------------
extern "C" __global__ void sgemm_no_sync_after_load(const float* A, const float* B, float* C,
                                                    int M, int N, int K)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
        Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
        // BUG: __syncthreads() missing here
        for (int k = 0; k < TILE; ++k) acc += As[ty][k] * Bs[k][tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// ----------------------------------------------------------------------------
// Missing __syncthreads() before the tiles are overwritten: fast threads
// clobber a tile slow threads still read. Shared memory is always written
// before it is read, so only the thread order reveals it.
// ----------------------------------------------------------------------------
extern "C" __global__ void sgemm_no_sync_before_reload(const float* A, const float* B, float* C,
                                                       int M, int N, int K)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
        Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc += As[ty][k] * Bs[k][tx];
        // BUG: __syncthreads() missing here
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// ----------------------------------------------------------------------------
// Reads a shared element no thread writes (the buffer holds blockDim.x + 1).
// ----------------------------------------------------------------------------
extern "C" __global__ void shared_read_unwritten(const float* x, float* y)
{
    __shared__ float buf[257];
    const int t = threadIdx.x;
    buf[t] = x[t];
    __syncthreads();
    y[t] = buf[t] + buf[t + 1];  // BUG: buf[blockDim.x] is never written
}

// ----------------------------------------------------------------------------
// Early return before a barrier: the classic divergent __syncthreads().
// ----------------------------------------------------------------------------
extern "C" __global__ void early_return_then_sync(const float* x, float* y, int n)
{
    __shared__ float buf[256];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;  // BUG: the other threads wait at the barrier below
    buf[threadIdx.x] = x[i];
    __syncthreads();
    y[i] = buf[threadIdx.x];
}

// ----------------------------------------------------------------------------
// Two barriers in the two branches of an if: different source lines.
// ----------------------------------------------------------------------------
extern "C" __global__ void barrier_in_branches(float* y)
{
    if (threadIdx.x < 16) {
        y[threadIdx.x] = 1.0f;
        __syncthreads();  // BUG: not the same barrier as the one below
    } else {
        y[threadIdx.x] = 2.0f;
        __syncthreads();
    }
}

// ----------------------------------------------------------------------------
// Off by one: i <= n reads and writes one element past both arrays.
// ----------------------------------------------------------------------------
extern "C" __global__ void off_by_one(const float* x, float* y, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 2.0f * x[i];  // BUG: i == n is out of bounds
}

// Off by one on the write side only (the read stays in bounds).
extern "C" __global__ void off_by_one_write(const float* x, float* y, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i + 1] = x[i];  // BUG: y[n] is written
}

// A negative index: reads before the start of the array.
extern "C" __global__ void read_before_start(const float* x, float* y, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i - 2048];  // BUG: far before x[0]
}

// Writes its input through a cast-away const.
extern "C" __global__ void writes_const_input(const float* x, float* y)
{
    ((float*)x)[threadIdx.x] = 0.0f;  // BUG: x is an input
    y[threadIdx.x] = 1.0f;
}

// ----------------------------------------------------------------------------
// Dynamic shared memory: the launch gives blockDim.x floats, the kernel uses
// one more.
// ----------------------------------------------------------------------------
extern "C" __global__ void dynamic_shared_overrun(float* y)
{
    extern __shared__ float smem[];
    smem[threadIdx.x + 1] = 1.0f;  // BUG: smem[blockDim.x] is past shared_mem
    __syncthreads();
    y[threadIdx.x] = smem[threadIdx.x];
}

// Far past the dynamic shared memory (a wrong element size, say).
extern "C" __global__ void dynamic_shared_far(float* y)
{
    extern __shared__ float smem[];
    smem[threadIdx.x * 64] = 1.0f;  // BUG: launch has 1 KiB, this reaches 64 KiB
    y[threadIdx.x] = 0.0f;
}

// ----------------------------------------------------------------------------
// Warp intrinsics used wrongly
// ----------------------------------------------------------------------------
// Half the warp returns, the other half shuffles with a full mask.
extern "C" __global__ void shuffle_after_return(const float* x, float* y)
{
    const int t = threadIdx.x;
    if (t >= 16) return;  // BUG: lanes 16..31 are in the mask below
    y[t] = __shfl_down_sync(0xffffffffu, x[t], 1);
}

// The mask leaves out the calling lane.
extern "C" __global__ void shuffle_mask_without_self(const float* x, float* y)
{
    const int t = threadIdx.x;
    y[t] = __shfl_xor_sync(0x0000ffffu, x[t], 1);  // BUG: lanes 16..31 call it too
}

// A full-warp mask in a block of 48 threads: the second warp has 16 lanes.
extern "C" __global__ void shuffle_partial_warp(const float* x, float* y)
{
    const int t = threadIdx.x;
    y[t] = __shfl_down_sync(0xffffffffu, x[t], 1);  // BUG when blockDim.x % 32 != 0
}

// Half a warp shuffles while the other half waits at a barrier.
extern "C" __global__ void shuffle_vs_barrier(const float* x, float* y)
{
    const int t = threadIdx.x;
    float v = x[t];
    if (t < 16) v = __shfl_down_sync(0xffffffffu, v, 1);  // BUG: lanes 16..31 never come
    __syncthreads();
    y[t] = v;
}

// ----------------------------------------------------------------------------
// Tree reduction missing the barrier inside its loop.
// ----------------------------------------------------------------------------
extern "C" __global__ void reduce_no_sync_in_loop(const float* x, float* out)
{
    __shared__ float red[256];
    const int t = threadIdx.x;
    red[t] = x[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        // BUG: __syncthreads() missing here
    }
    if (t == 0) out[blockIdx.x] = red[0];
}

// ----------------------------------------------------------------------------
// Hangs and CPU faults
// ----------------------------------------------------------------------------
// Spins on a flag the last thread sets later, without sleeping: on the GPU
// this may hang too (no forward-progress guarantee across warps).
extern "C" __global__ void spin_forever(int* out)
{
    __shared__ volatile int flag;
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x == 0) while (flag == 0) { }  // BUG: busy-wait
    if (threadIdx.x == blockDim.x - 1) flag = 1;
    out[threadIdx.x] = 1;
}

// Integer division by a zero divisor.
extern "C" __global__ void divide_by_zero(const int* x, int* y, int d)
{
    y[threadIdx.x] = x[threadIdx.x] / d;  // BUG when d == 0 (the GPU gives garbage)
}

// A local array far beyond the emulator's per-thread stack.
extern "C" __global__ void huge_local_array(float* y, int n)
{
    volatile float big[64 * 1024];  // 256 KiB of "registers"
    for (int i = 0; i < n; ++i) big[i] = (float)i;
    y[threadIdx.x] = big[n - 1];
}

// A failed device-side assert.
extern "C" __global__ void failing_assert(const int* x)
{
    assert(x[threadIdx.x] >= 0);
}
