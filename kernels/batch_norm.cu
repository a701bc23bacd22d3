// ============================================================================
// batch_norm.cu -- the kernels of minicnn/ops/batch_norm.py
//
// The input is read as an (outer, channels, inner) array around the channel
// axis (inner = 1 for channels last, NHWC's usual case): the k-th of the
// m = outer * inner values of channel c sits at (o * channels + c) * inner + j
// with o = k / inner, j = k % inner.
//
// Per-channel reductions run ONE BLOCK PER CHANNEL (grid-stride over
// channels, so every thread of a block works on the same channel and reaches
// the same __syncthreads); each thread sums its values in index order, then
// the block adds the partial sums in a shared-memory tree of fixed shape. The
// result depends only on the shape and the block size, never on timing: no
// float atomics. The host launches blockDim.x = a power of two in [32, 256].
// Elementwise kernels: one thread per element (or channel), grid-stride.
//
// Division and sqrtf are the correctly rounded ones (no rsqrtf), as in NumPy.
// ============================================================================

#define MAX_BLOCK 256  // size of the reduction buffer; the host never launches more


// Index of the k-th value of channel c (the layout above).
__device__ __forceinline__ int channel_value(int k, int c, int channels, int inner)
{
    const int o = k / inner;
    return (o * channels + c) * inner + (k - o * inner);
}


// Sum of v over the block (all threads must call it together). red: MAX_BLOCK
// floats of shared memory. Same tree as softmax_xent.cu's block_sum.
__device__ __forceinline__ float block_sum(float v, float* red)
{
    const int tid = threadIdx.x;
    red[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {   // blockDim.x is a power of 2
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    const float total = red[0];
    __syncthreads();  // all have read red[0] before a next call overwrites it
    return total;
}


// ----------------------------------------------------------------------------
// batch_norm_stats
// Contract: mean[c] = sum_k x / m; var[c] = sum_k (x - mean[c])^2 / m (biased),
// over the m = outer * inner values of channel c; m >= 1. Two passes over the
// channel (the mean first), so a large mean does not cancel the variance.
// One block per channel.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_stats(
    const float* __restrict__ x, float* __restrict__ mean, float* __restrict__ var,
    int outer, int channels, int inner)
{
    __shared__ float red[MAX_BLOCK];
    const int m = outer * inner;
    for (int c = blockIdx.x; c < channels; c += gridDim.x) {
        float s = 0.0f;
        for (int k = threadIdx.x; k < m; k += blockDim.x) s += x[channel_value(k, c, channels, inner)];
        const float mu = block_sum(s, red) / (float)m;
        float q = 0.0f;
        for (int k = threadIdx.x; k < m; k += blockDim.x) {
            const float d = x[channel_value(k, c, channels, inner)] - mu;
            q += d * d;
        }
        q = block_sum(q, red);
        if (threadIdx.x == 0) {
            mean[c] = mu;
            var[c] = q / (float)m;
        }
    }
}


// ----------------------------------------------------------------------------
// batch_norm_moving_update
// Contract: new_mean[c] = moving_mean[c] * momentum + mean[c] * one_minus,
// new_var likewise from var (one_minus = 1 - momentum rounded once, on the
// host, as Keras). Writes new arrays: the caller commits them. One thread per channel.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_moving_update(
    const float* __restrict__ moving_mean, const float* __restrict__ moving_var,
    const float* __restrict__ mean, const float* __restrict__ var,
    float* __restrict__ new_mean, float* __restrict__ new_var,
    int channels, float momentum, float one_minus)
{
    const int stride = blockDim.x * gridDim.x;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < channels; c += stride) {
        new_mean[c] = moving_mean[c] * momentum + mean[c] * one_minus;
        new_var[c] = moving_var[c] * momentum + var[c] * one_minus;
    }
}


// ----------------------------------------------------------------------------
// batch_norm_coefficients
// Contract: inv = 1 / sqrt(var + eps); scale = gamma * inv;
// shift = beta - mean * scale, per channel (y = x * scale + shift).
// One thread per channel.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_coefficients(
    const float* __restrict__ mean, const float* __restrict__ var,
    const float* __restrict__ gamma, const float* __restrict__ beta,
    float* __restrict__ inv, float* __restrict__ scale, float* __restrict__ shift,
    int channels, float eps)
{
    const int stride = blockDim.x * gridDim.x;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < channels; c += stride) {
        const float r = 1.0f / sqrtf(var[c] + eps);
        const float k = gamma[c] * r;
        inv[c] = r;
        scale[c] = k;
        shift[c] = beta[c] - mean[c] * k;
    }
}


// ----------------------------------------------------------------------------
// batch_norm_apply
// Contract: y[i] = x[i] * scale[c] + shift[c], c = (i / inner) % channels,
// for i < total. One thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_apply(
    const float* __restrict__ x, const float* __restrict__ scale, const float* __restrict__ shift,
    float* __restrict__ y, int total, int channels, int inner)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (i / inner) % channels;
        y[i] = x[i] * scale[c] + shift[c];
    }
}


// ----------------------------------------------------------------------------
// batch_norm_backward_sums
// Contract: dbeta[c] = sum_k dy; dgamma[c] = sum_k dy * xhat, with
// xhat = (x - mean[c]) * inv[c], over the m values of channel c.
// One block per channel.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_backward_sums(
    const float* __restrict__ dy, const float* __restrict__ x,
    const float* __restrict__ mean, const float* __restrict__ inv,
    float* __restrict__ dbeta, float* __restrict__ dgamma,
    int outer, int channels, int inner)
{
    __shared__ float red[MAX_BLOCK];
    const int m = outer * inner;
    for (int c = blockIdx.x; c < channels; c += gridDim.x) {
        const float mu = mean[c], r = inv[c];
        float s = 0.0f, t = 0.0f;
        for (int k = threadIdx.x; k < m; k += blockDim.x) {
            const int i = channel_value(k, c, channels, inner);
            s += dy[i];
            t += dy[i] * ((x[i] - mu) * r);
        }
        s = block_sum(s, red);
        t = block_sum(t, red);
        if (threadIdx.x == 0) {
            dbeta[c] = s;
            dgamma[c] = t;
        }
    }
}


// ----------------------------------------------------------------------------
// batch_norm_backward_dx
// Contract, with c = (i / inner) % channels and xhat = (x - mean[c]) * inv[c]:
//   batch_stats: dx[i] = scale[c] * (dy[i] - (dbeta[c] + xhat * dgamma[c]) / m)
//   else:        dx[i] = dy[i] * scale[c]   (moving statistics are constants)
// for i < total. One thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void batch_norm_backward_dx(
    const float* __restrict__ dy, const float* __restrict__ x,
    const float* __restrict__ mean, const float* __restrict__ inv, const float* __restrict__ scale,
    const float* __restrict__ dbeta, const float* __restrict__ dgamma, float* __restrict__ dx,
    int total, int channels, int inner, float m, int batch_stats)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (i / inner) % channels;
        if (batch_stats) {
            const float xhat = (x[i] - mean[c]) * inv[c];
            dx[i] = scale[c] * (dy[i] - (dbeta[c] + xhat * dgamma[c]) / m);
        } else {
            dx[i] = dy[i] * scale[c];
        }
    }
}
