// ============================================================================
// softmax_xent.cu -- row-wise kernels of minicnn/ops/softmax_xent.py: the
// categorical cross-entropy (Keras semantics) forward/backward, the same loss
// from logits, the fused softmax+xent gradient, and the accuracy count. (The
// softmax activation itself is in bias_act.cu.)
//
// Arrays are (rows, cols) matrices, one sample per row, classes along cols.
// Row kernels run ONE BLOCK PER ROW (grid-stride over rows, so every thread of
// a block works on the same row and reaches the same __syncthreads). The
// host launches blockDim.x = a power of two in [32, 256].
//
// Reductions use a shared-memory tree in a fixed order: results depend only
// on the shape and the block size, never on timing (no float atomics).
// ============================================================================

#define MAX_BLOCK 256  // size of the reduction buffer; the host never launches more

// clip(v, lo, hi) as np.clip computes it: a NaN stays NaN. (fminf/fmaxf return
// the other operand when one is NaN, which would turn a diverged model's NaN
// probabilities into a finite loss, and fit could no longer say it diverged.)
__device__ __forceinline__ float clip_keep_nan(float v, float lo, float hi)
{
    return v != v ? v : fminf(fmaxf(v, lo), hi);
}


// ----------------------------------------------------------------------------
// Block reductions (all threads of the block must call them together)
// ----------------------------------------------------------------------------

// Sum of v over the block. red: MAX_BLOCK floats of shared memory.
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

// Maximum of v over the block (NaN-propagating: a NaN anywhere gives NaN, as
// numpy's max does). red: MAX_BLOCK floats of shared memory.
__device__ __forceinline__ float block_max(float v, float* red)
{
    const int tid = threadIdx.x;
    red[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) {
            const float o = red[tid + s];
            if (o > red[tid] || o != o) red[tid] = o;
        }
        __syncthreads();
    }
    const float m = red[0];
    __syncthreads();
    return m;
}


// ----------------------------------------------------------------------------
// xent_loss_rows
// Contract: loss[row] = -sum_j y * log(clip(p / sum(p), lo, hi)), Keras's
// categorical cross-entropy on probabilities (lo = eps, hi = 1 - eps).
// One block per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void xent_loss_rows(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ loss,
    int rows, int cols, float lo, float hi)
{
    __shared__ float red[MAX_BLOCK];
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const int base = row * cols;
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s += p[base + j];
        s = block_sum(s, red);
        float t = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float q = clip_keep_nan(p[base + j] / s, lo, hi);
            t += y[base + j] * logf(q);
        }
        t = block_sum(t, red);
        if (threadIdx.x == 0) loss[row] = -t;
    }
}


// ----------------------------------------------------------------------------
// logits_xent_loss_rows
// Contract: loss[row] = -sum_j y * log_softmax(z)_j, the cross-entropy of the
// logits z (Keras's from_logits=True). With m = max_j z_j and
// S = sum_j exp(z_j - m): log_softmax(z)_j = z_j - m - log S, so
// loss = log(S) * sum_j y_j - sum_j y_j (z_j - m): exp never overflows.
// One block per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void logits_xent_loss_rows(
    const float* __restrict__ z, const float* __restrict__ y, float* __restrict__ loss,
    int rows, int cols)
{
    __shared__ float red[MAX_BLOCK];
    const float neg_inf = -1.0f / 0.0f;  // no INFINITY macro under NVRTC
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const int base = row * cols;
        float m = neg_inf;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float v = z[base + j];
            if (v > m || v != v) m = v;
        }
        m = block_max(m, red);
        float s = 0.0f, t = 0.0f, sy = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            s += expf(z[base + j] - m);
            t += y[base + j] * (z[base + j] - m);
            sy += y[base + j];
        }
        s = block_sum(s, red);
        t = block_sum(t, red);
        sy = block_sum(sy, red);
        if (threadIdx.x == 0) loss[row] = logf(s) * sy - t;
    }
}


// ----------------------------------------------------------------------------
// xent_backward_rows
// Contract: dp = gradient of the MEAN xent_loss over n rows w.r.t. p:
// with s = sum(p), q = p/s, dq = -y/clip(q) * [lo <= q <= hi] / n,
// dp = (dq - sum(dq * q)) / s. One block per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void xent_backward_rows(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ dp,
    int rows, int cols, float lo, float hi, float n)
{
    __shared__ float red[MAX_BLOCK];
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const int base = row * cols;
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s += p[base + j];
        s = block_sum(s, red);
        // dq is recomputed in the last pass rather than stored: the same
        // arithmetic gives the same bits, and no scratch array is needed.
        float t = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float q = p[base + j] / s;
            const float inside = (q >= lo && q <= hi) ? 1.0f : 0.0f;  // clip inactive
            const float dq = -y[base + j] / clip_keep_nan(q, lo, hi) * inside / n;
            t += dq * q;
        }
        t = block_sum(t, red);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float q = p[base + j] / s;
            const float inside = (q >= lo && q <= hi) ? 1.0f : 0.0f;
            const float dq = -y[base + j] / clip_keep_nan(q, lo, hi) * inside / n;
            dp[base + j] = (dq - t) / s;
        }
    }
}


// ----------------------------------------------------------------------------
// softmax_xent_backward
// Contract: dz = (p - y) / n, the gradient of mean xent(softmax(z)) w.r.t. the
// logits z. One thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void softmax_xent_backward(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ dz,
    int total, float n)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride)
        dz[idx] = (p[idx] - y[idx]) / n;
}


// ----------------------------------------------------------------------------
// accuracy_count
// Contract: *count += number of rows with argmax(p) == argmax(y) (ties and
// NaN: the first index, like numpy.argmax). One thread per row; the count is
// an integer atomic, so the result is exact and order-free. The host zeroes
// *count first.
// ----------------------------------------------------------------------------

// numpy.argmax semantics: the first maximum, or the first NaN if any.
__device__ __forceinline__ int row_argmax(const float* v, int cols)
{
    float best = v[0];
    int k = 0;
    if (best != best) return 0;
    for (int j = 1; j < cols; ++j) {
        const float x = v[j];
        if (x != x) return j;
        if (x > best) { best = x; k = j; }
    }
    return k;
}

extern "C" __global__ void accuracy_count(
    const float* __restrict__ p, const float* __restrict__ y, int* __restrict__ count,
    int rows, int cols)
{
    const int stride = blockDim.x * gridDim.x;
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += stride) {
        const int base = row * cols;
        if (row_argmax(p + base, cols) == row_argmax(y + base, cols)) atomicAdd(count, 1);
    }
}
