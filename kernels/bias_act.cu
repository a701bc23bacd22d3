// ============================================================================
// bias_act.cu -- bias + activation, fused, and its backward (minicnn/ops/bias_act.py)
//
// Arrays are seen as a (rows, cols) matrix with cols = the last axis (the
// channel / unit axis the bias runs along): element idx is in column
// idx % cols, row idx / cols.
//
//   bias_act_forward       z = act(z + b) in place, one thread per element
//   act_backward           dz = da * act'(a), from the OUTPUT a
//   bias_softmax_rows      z = softmax(z + b) per row, one block per row
//   softmax_backward_rows  dz = a * (da - sum(da * a)) per row
//   column_sum_partials    the bias gradient db = column sums of dz, pass 1
//   column_sum_finish      ... pass 2 (deterministic: no float atomics)
//   act_backward_column_partials  act_backward and pass 1 in one launch
//
// Activation codes (must match ACT_CODES in minicnn/ops/bias_act.py):
//   0 linear, 1 relu, 2 sigmoid, 3 tanh.   (softmax has its own row kernels)
//
// Index arithmetic is 32-bit: the host checks every element count < 2^31.
// ============================================================================

#define ACT_LINEAR  0
#define ACT_RELU    1
#define ACT_SIGMOID 2
#define ACT_TANH    3


// ----------------------------------------------------------------------------
// bias_act_forward
// Contract: z[idx] = act(z[idx] + b[idx % cols]) in place (bias skipped when
// has_bias == 0; b is then not read). One thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void bias_act_forward(
    float* __restrict__ z, const float* __restrict__ b,
    int total, int cols, int has_bias, int act)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        float v = z[idx];
        if (has_bias) v += b[idx % cols];
        if (act == ACT_RELU) {
            // fmaxf would turn NaN into 0; the reference (np.maximum) keeps it
            v = (v > 0.0f || v != v) ? v : 0.0f;
        } else if (act == ACT_SIGMOID) {
            // 1/(1+exp(-v)) overflows exp for v << 0; the tanh form, as in the
            // reference, is stable everywhere
            v = (tanhf(v * 0.5f) + 1.0f) * 0.5f;
        } else if (act == ACT_TANH) {
            v = tanhf(v);
        }
        z[idx] = v;
    }
}


// ----------------------------------------------------------------------------
// act_backward
// Contract: dz = da * act'(.) written from the OUTPUT a (the input is not
// kept): relu' = [a > 0], sigmoid' = a(1-a), tanh' = 1-a^2; linear copies da.
// One thread per element.
// ----------------------------------------------------------------------------
// g * act'(.) from the output y; act_backward and act_backward_column_partials share it
__device__ __forceinline__ float act_grad(float g, float y, int act)
{
    // Parenthesised in the reference's evaluation order (left to right)
    if (act == ACT_RELU)    return g * (y > 0.0f ? 1.0f : 0.0f);
    if (act == ACT_SIGMOID) return (g * y) * (1.0f - y);
    if (act == ACT_TANH)    return g * (1.0f - y * y);
    return g;
}

extern "C" __global__ void act_backward(
    const float* __restrict__ da, const float* __restrict__ a, float* __restrict__ dz,
    int total, int act)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        dz[idx] = act_grad(da[idx], a[idx], act);
    }
}


// ============================================================================
// Row kernels (softmax): ONE BLOCK PER ROW, grid-stride over rows, so every
// thread of a block works on the same row and reaches the same
// __syncthreads. The host launches blockDim.x = a power of two in
// [32, MAX_BLOCK] (_row_block in bias_act.py).
//
// Reductions use a shared-memory tree in a fixed order: results depend only
// on the shape and the block size, never on timing (no float atomics).
// ============================================================================

#define MAX_BLOCK 256  // size of the reduction buffer; the host never launches more

// Sum of v over the block (all threads must call it together).
// red: MAX_BLOCK floats of shared memory.
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

// Max of v over the block (NaN is ignored here; it still poisons the row
// through exp(NaN - m), as in the reference).
__device__ __forceinline__ float block_max(float v, float* red)
{
    const int tid = threadIdx.x;
    red[tid] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
        __syncthreads();
    }
    const float m = red[0];
    __syncthreads();
    return m;
}


// ----------------------------------------------------------------------------
// bias_softmax_rows
// Contract: z[row] = softmax(z[row] + b) in place, shifted by the row max so
// exp never overflows (b skipped when has_bias == 0). One block per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void bias_softmax_rows(
    float* __restrict__ z, const float* __restrict__ b,
    int rows, int cols, int has_bias)
{
    __shared__ float red[MAX_BLOCK];
    const float neg_inf = -1.0f / 0.0f;  // no INFINITY macro under NVRTC
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        float* zr = z + row * cols;
        // Each thread owns columns tid, tid+blockDim, ...: it alone writes
        // them, so no barrier is needed between its own passes.
        float m = neg_inf;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            float v = zr[j];
            if (has_bias) { v += b[j]; zr[j] = v; }
            m = fmaxf(m, v);
        }
        m = block_max(m, red);
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const float e = expf(zr[j] - m);
            zr[j] = e;
            s += e;
        }
        s = block_sum(s, red);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) zr[j] = zr[j] / s;
    }
}


// ----------------------------------------------------------------------------
// softmax_backward_rows
// Contract: dz[row] = a * (da - sum(da * a)) -- softmax's Jacobian-vector
// product written from the output a. One block per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void softmax_backward_rows(
    const float* __restrict__ da, const float* __restrict__ a, float* __restrict__ dz,
    int rows, int cols)
{
    __shared__ float red[MAX_BLOCK];
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const int base = row * cols;
        float t = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) t += da[base + j] * a[base + j];
        t = block_sum(t, red);
        for (int j = threadIdx.x; j < cols; j += blockDim.x)
            dz[base + j] = a[base + j] * (da[base + j] - t);
    }
}


// ============================================================================
// Column sums (bias gradient), deterministic in two passes:
//   pass 1: block (32, 8) sums a 32-column strip over one chunk of rows into
//           partial[chunk, col] (the 8 row-lanes combined in a fixed order);
//   pass 2: one thread per column adds its chunk partials in chunk order.
// No float atomics: the result depends only on the shape, never on timing.
// ============================================================================

#define CS_COLS 32   // columns per block: one warp along x reads 32 neighbours
#define CS_LANES 8   // row lanes per block (blockDim.y)

// ----------------------------------------------------------------------------
// column_sum_partials
// Contract: partial[blockIdx.y, col] = sum of a[r, col] over the rows
// r in [blockIdx.y*rows_per_chunk, min(rows, (blockIdx.y+1)*rows_per_chunk)).
// Launch: block (CS_COLS, CS_LANES), grid (ceil(cols/CS_COLS), nchunks).
// ----------------------------------------------------------------------------
extern "C" __global__ void column_sum_partials(
    const float* __restrict__ a, float* __restrict__ partial,
    int rows, int cols, int rows_per_chunk)
{
    __shared__ float lane_sum[CS_LANES][CS_COLS + 1];  // +1: no bank conflicts
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * CS_COLS + tx;
    const int r0 = blockIdx.y * rows_per_chunk;
    const int r1 = (r0 + rows_per_chunk < rows) ? r0 + rows_per_chunk : rows;
    float s = 0.0f;
    if (col < cols) {
        // lane ty takes rows r0+ty, r0+ty+8, ...: each step a warp reads 32
        // consecutive floats of one row
        for (int r = r0 + ty; r < r1; r += CS_LANES) s += a[r * cols + col];
    }
    lane_sum[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && col < cols) {
        float total = 0.0f;
        for (int l = 0; l < CS_LANES; ++l) total += lane_sum[l][tx];
        partial[blockIdx.y * cols + col] = total;
    }
}


// ----------------------------------------------------------------------------
// act_backward_column_partials
// Contract: act_backward and column_sum_partials in one pass (one launch less
// per layer with a bias): each thread writes dz[r, col] = act_grad(da, a) for
// the rows column_sum_partials's thread reads, and sums them in its order, so
// dz and partial hold the same bits as the two kernels give. Launch as
// column_sum_partials; the chunks cover every row, the strips every column.
// ----------------------------------------------------------------------------
extern "C" __global__ void act_backward_column_partials(
    const float* __restrict__ da, const float* __restrict__ a, float* __restrict__ dz,
    float* __restrict__ partial, int rows, int cols, int rows_per_chunk, int act)
{
    __shared__ float lane_sum[CS_LANES][CS_COLS + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * CS_COLS + tx;
    const int r0 = blockIdx.y * rows_per_chunk;
    const int r1 = (r0 + rows_per_chunk < rows) ? r0 + rows_per_chunk : rows;
    float s = 0.0f;
    if (col < cols) {
        for (int r = r0 + ty; r < r1; r += CS_LANES) {
            const float d = act_grad(da[r * cols + col], a[r * cols + col], act);
            dz[r * cols + col] = d;
            s += d;
        }
    }
    lane_sum[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && col < cols) {
        float total = 0.0f;
        for (int l = 0; l < CS_LANES; ++l) total += lane_sum[l][tx];
        partial[blockIdx.y * cols + col] = total;
    }
}


// ----------------------------------------------------------------------------
// column_sum_finish
// Contract: out[col] = sum over chunk of partial[chunk, col], chunk order.
// One thread per column.
// ----------------------------------------------------------------------------
extern "C" __global__ void column_sum_finish(
    const float* __restrict__ partial, float* __restrict__ out,
    int nchunks, int cols)
{
    const int stride = blockDim.x * gridDim.x;
    for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < cols; col += stride) {
        float s = 0.0f;
        for (int k = 0; k < nchunks; ++k) s += partial[k * cols + col];
        out[col] = s;
    }
}
