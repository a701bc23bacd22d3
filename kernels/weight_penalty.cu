// ============================================================================
// weight_penalty.cu -- the kernels of minicnn/ops/weight_penalty.py: Keras's L1/L2
// weight penalty  l1 * sum|w| + l2 * sum w^2  and its gradient.
//
// The penalty is a deterministic two-pass reduction (no float atomics): pass
// 1 runs a fixed grid, each block summing its grid-stride share of w in a
// fixed tree order into partial[2 * block] (sum |w|) and partial[2 * block +
// 1] (sum w^2); pass 2, one block, sums the partials the same way. The bits
// depend only on the size of w and the launch shape, never on timing.
// ============================================================================

#define MAX_BLOCK 256  // size of the reduction buffers; the host never launches more


// Sums of a and b over the block (all threads must call it together).
__device__ __forceinline__ void block_sum2(float* a, float* b, float* red_a, float* red_b)
{
    const int tid = threadIdx.x;
    red_a[tid] = *a;
    red_b[tid] = *b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {   // blockDim.x is a power of 2
        if (tid < s) {
            red_a[tid] += red_a[tid + s];
            red_b[tid] += red_b[tid + s];
        }
        __syncthreads();
    }
    *a = red_a[0];
    *b = red_b[0];
}


// ----------------------------------------------------------------------------
// penalty_partials (pass 1)
// Contract: partial[2 * blockIdx.x] = sum |w[i]|, partial[2 * blockIdx.x + 1]
// = sum w[i]^2 over the i this block visits (i = block * blockDim + thread,
// striding by the whole grid).
// ----------------------------------------------------------------------------
extern "C" __global__ void penalty_partials(
    const float* __restrict__ w, float* __restrict__ partial, int total)
{
    __shared__ float red_a[MAX_BLOCK];
    __shared__ float red_b[MAX_BLOCK];
    float a = 0.0f, b = 0.0f;
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float v = w[i];
        a += fabsf(v);
        b += v * v;
    }
    block_sum2(&a, &b, red_a, red_b);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = a;
        partial[2 * blockIdx.x + 1] = b;
    }
}


// ----------------------------------------------------------------------------
// penalty_finish (pass 2, one block)
// Contract: out[0] = l1 * sum_k partial[2k] + l2 * sum_k partial[2k + 1]
// over the blocks k < parts; a term whose factor is 0 is left out (as
// Keras's L1L2 does: 0 * inf would be NaN).
// ----------------------------------------------------------------------------
extern "C" __global__ void penalty_finish(
    const float* __restrict__ partial, float* __restrict__ out, int parts, float l1, float l2)
{
    __shared__ float red_a[MAX_BLOCK];
    __shared__ float red_b[MAX_BLOCK];
    float a = 0.0f, b = 0.0f;
    for (int k = threadIdx.x; k < parts; k += blockDim.x) {
        a += partial[2 * k];
        b += partial[2 * k + 1];
    }
    block_sum2(&a, &b, red_a, red_b);
    if (threadIdx.x == 0) {
        float total = 0.0f;
        if (l1 != 0.0f) total += l1 * a;
        if (l2 != 0.0f) total += l2 * b;
        out[0] = total;
    }
}


// ----------------------------------------------------------------------------
// penalty_gradient
// Contract: g[i] += l1 * sign(w[i]) + 2 * l2 * w[i], in place (sign(0) = 0,
// TensorFlow's gradient of |w| at 0). One thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void penalty_gradient(
    float* __restrict__ g, const float* __restrict__ w, int total, float l1, float l2)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float v = w[i];
        const float sign = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f);
        g[i] += l1 * sign + 2.0f * l2 * v;
    }
}
