// ============================================================================
// good.cu -- correct toy kernels for tests/test_emulator.py. Each exercises
// one group of CUDA built-ins the emulator provides. Must also compile with
// nvcc -cubin -arch=sm_90 (no emulator-only code here).
// ============================================================================

#define TILE 16

// ----------------------------------------------------------------------------
// Shared-memory tiled SGEMM: C[M,N] = A[M,K] @ B[K,N], row-major.
// ----------------------------------------------------------------------------
extern "C" __global__ void sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B,
                                       float* __restrict__ C, int M, int N, int K)
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
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
}

// ----------------------------------------------------------------------------
// Elementwise: y = a * x + b (grid-stride loop)
// ----------------------------------------------------------------------------
extern "C" __global__ void axpb(const float* __restrict__ x, float* __restrict__ y,
                                float a, float b, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        y[i] = a * x[i] + b;
}

// ----------------------------------------------------------------------------
// Where each thread sits: out[global linear id] = packed (block, thread) ids.
// Checks the 3-D index variables and the linearisation order.
// ----------------------------------------------------------------------------
extern "C" __global__ void where_am_i(int* out)
{
    const int bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int nthreads = blockDim.x * blockDim.y * blockDim.z;
    const int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int* o = out + 2 * (bid * nthreads + tid);
    o[0] = (blockIdx.z * 100 + blockIdx.y) * 100 + blockIdx.x;
    o[1] = (threadIdx.z * 100 + threadIdx.y) * 100 + threadIdx.x;
}

// ----------------------------------------------------------------------------
// Warp intrinsics: per warp, the sum (shfl_down), max (shfl_xor), a broadcast
// (shfl), the ballot/any/all of v > 0, and an inclusive scan (shfl_up).
// out: 6 ints per warp; scan: one float per thread.
// ----------------------------------------------------------------------------
extern "C" __global__ void warp_ops(const float* __restrict__ v, float* __restrict__ out,
                                    float* __restrict__ scan)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % 32, warp = i / 32;
    const float x = v[i];
    float s = x, m = x, p = x;
    for (int d = 16; d > 0; d >>= 1) s += __shfl_down_sync(0xffffffffu, s, d);
    for (int d = 16; d > 0; d >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, d));
    for (int d = 1; d < 32; d <<= 1) {
        const float q = __shfl_up_sync(0xffffffffu, p, d);
        if (lane >= d) p += q;
    }
    scan[i] = p;
    const float b = __shfl_sync(0xffffffffu, x, 7);
    const unsigned ballot = __ballot_sync(0xffffffffu, x > 0.0f);
    const int any = __any_sync(0xffffffffu, x > 100.0f);
    const int all = __all_sync(0xffffffffu, x > -100.0f);
    __syncwarp();
    if (lane == 0) {
        float* o = out + 6 * warp;
        o[0] = s; o[1] = m; o[2] = b;
        o[3] = (float)__popc(ballot); o[4] = (float)any; o[5] = (float)all;
    }
}

// ----------------------------------------------------------------------------
// Atomics: counters and a float sum over the whole grid.
// ints: [0] count of v > 0, [1] max of (int)v, [2] CAS-claimed winner, [3] exch.
// ----------------------------------------------------------------------------
extern "C" __global__ void atomics(const float* __restrict__ v, int* __restrict__ ints,
                                   unsigned int* __restrict__ uints, float* __restrict__ fsum, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (v[i] > 0.0f) atomicAdd(&ints[0], 1);
    atomicMax(&ints[1], (int)v[i]);
    atomicCAS(&ints[2], -1, i);        // only the first thread to come claims it
    atomicExch(&ints[3], 7);
    atomicAdd(&uints[0], 2u);
    atomicAdd(fsum, 1);                // int operand converts to float, as in CUDA
}

// ----------------------------------------------------------------------------
// Dynamic shared memory: each block reverses its chunk through extern smem.
// ----------------------------------------------------------------------------
extern "C" __global__ void reverse_chunks(const float* __restrict__ x, float* __restrict__ y)
{
    extern __shared__ float smem[];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    smem[t] = x[base + t];
    __syncthreads();
    y[base + t] = smem[blockDim.x - 1 - t];
}

// ----------------------------------------------------------------------------
// Block-wide barrier predicates: per block, count/and/or of x > 0.
// ----------------------------------------------------------------------------
extern "C" __global__ void sync_predicates(const float* __restrict__ x, int* __restrict__ out)
{
    const float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    const int c = __syncthreads_count(v > 0.0f);
    const int a = __syncthreads_and(v > 0.0f);
    const int o = __syncthreads_or(v > 0.0f);
    if (threadIdx.x == 0) {
        out[3 * blockIdx.x] = c; out[3 * blockIdx.x + 1] = a; out[3 * blockIdx.x + 2] = o;
    }
}

// ----------------------------------------------------------------------------
// Scalar parameter types: every one lands in its own output slot.
// ----------------------------------------------------------------------------
typedef long long i64;
extern "C" __global__ void scalar_types(double* __restrict__ out, i64 a, unsigned int b,
                                        double c, bool d, unsigned char e, short f, float g)
{
    out[0] = (double)a; out[1] = b; out[2] = c; out[3] = d ? 1.0 : 0.0;
    out[4] = e; out[5] = f; out[6] = g;
}

// ----------------------------------------------------------------------------
// Device math: the functions kernels use, one slot each.
// ----------------------------------------------------------------------------
extern "C" __global__ void math_funcs(const float* __restrict__ x, float* __restrict__ out)
{
    const float v = x[0];
    out[0] = expf(v); out[1] = logf(v); out[2] = sqrtf(v); out[3] = rsqrtf(v);
    out[4] = fmaxf(v, 2.0f); out[5] = fminf(v, 2.0f); out[6] = __expf(v); out[7] = __logf(v);
    out[8] = __fdividef(v, 4.0f); out[9] = tanhf(v); out[10] = fabsf(-v);
    out[11] = isnan(v) ? 1.0f : 0.0f; out[12] = copysignf(1.0f, -v); out[13] = floorf(v);
    out[14] = (float)min(3, (int)v); out[15] = max(1.5f, v);
    out[16] = __int_as_float(__float_as_int(v));
}

// ----------------------------------------------------------------------------
// __launch_bounds__ (a macro the compiler evaluates) limits the block size.
// ----------------------------------------------------------------------------
#define BOUND (2 * 64)
extern "C" __global__ void __launch_bounds__(BOUND) bounded(float* y)
{
    y[threadIdx.x] = 1.0f;
}

// ----------------------------------------------------------------------------
// A spin-wait that sleeps: thread 0 waits for a flag the last thread sets.
// On the GPU this works because warps interleave; here __nanosleep yields.
// ----------------------------------------------------------------------------
extern "C" __global__ void sleepy_handshake(int* out)
{
    __shared__ volatile int flag;
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x == 0) {
        while (flag == 0) __nanosleep(100);
        out[0] = flag;
    }
    if (threadIdx.x == blockDim.x - 1) flag = 42;
}
