// ============================================================================
// gradient_clipping.cu -- the kernels of minicnn/ops/gradient_clipping.py
//
// clipnorm / global_clipnorm need a sum of squares. It is added in DOUBLE by
// ONE block per gradient, in a fixed order (each thread a grid-stride share,
// then a tree in shared memory), so the result depends only on the data and
// the block size, never on timing: no atomics. The element-wise kernels are
// one thread per element, grid-stride.
// ============================================================================

#define MAX_BLOCK 256  // threads of sum_squares (SUM_BLOCK in the ops module), a power of 2


// max as np.maximum computes it: a NaN in either operand wins.
__device__ __forceinline__ float nan_max(float a, float b)
{
    return (a != a || a > b) ? a : b;
}


// ----------------------------------------------------------------------------
// sum_squares
// Contract: sumsq[index] = float(sum of g[i]*g[i] over i < total), added in
// double. Launch exactly ONE block of MAX_BLOCK threads.
// ----------------------------------------------------------------------------
extern "C" __global__ void sum_squares(
    const float* __restrict__ g, float* __restrict__ sumsq, int total, int index)
{
    __shared__ double red[MAX_BLOCK];
    const int tid = threadIdx.x;
    double s = 0.0;
    for (int i = tid; i < total; i += blockDim.x) {
        const double x = g[i];
        s += x * x;
    }
    red[tid] = s;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {   // a fixed tree: same sum every run
        if (tid < half) red[tid] += red[tid + half];
        __syncthreads();
    }
    if (tid == 0) sumsq[index] = (float)red[0];
}


// ----------------------------------------------------------------------------
// clip_by_norm
// Contract (tf.clip_by_norm): n = sqrt(sumsq[0]), or sumsq[0] itself when it
// is not > 0; out = (g*c) / max(n, c).
// ----------------------------------------------------------------------------
extern "C" __global__ void clip_by_norm(
    const float* __restrict__ g, const float* __restrict__ sumsq, float* __restrict__ out,
    int total, float c)
{
    const float s = sumsq[0];
    const float norm = s > 0.0f ? sqrtf(s) : s;
    const float denominator = nan_max(norm, c);
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] = (g[i] * c) / denominator;
}


// ----------------------------------------------------------------------------
// global_norm_scale
// Contract (Keras 3 clip_by_global_norm): n = sqrt(sum of sumsq[0..count)),
// added in double in index order; scale[0] = c * min(1/n, inv_c) + (n - n).
// One thread.
// ----------------------------------------------------------------------------
extern "C" __global__ void global_norm_scale(
    const float* __restrict__ sumsq, float* __restrict__ scale, int count, float c, float inv_c)
{
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double total = 0.0;
    for (int i = 0; i < count; ++i) total += sumsq[i];
    const float n = sqrtf((float)total);
    const float inv_n = 1.0f / n;                    // n = 0: inf, and min picks inv_c
    const float smaller = (inv_n != inv_n || inv_n < inv_c) ? inv_n : inv_c;   // NaN wins
    scale[0] = c * smaller + (n - n);                // n inf or NaN: a NaN scale
}


// ----------------------------------------------------------------------------
// scale_by
// Contract: out = g * scale[0].
// ----------------------------------------------------------------------------
extern "C" __global__ void scale_by(
    const float* __restrict__ g, const float* __restrict__ scale, float* __restrict__ out, int total)
{
    const float k = scale[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        out[i] = g[i] * k;
}


// ----------------------------------------------------------------------------
// clip_by_value
// Contract (tf.clip_by_value): out = max(min(g, c), -c); NaN stays NaN.
// ----------------------------------------------------------------------------
extern "C" __global__ void clip_by_value(
    const float* __restrict__ g, float* __restrict__ out, int total, float c)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float x = g[i];
        x = x > c ? c : x;      // comparisons with NaN are false: NaN passes through
        x = x < -c ? -c : x;
        out[i] = x;
    }
}
