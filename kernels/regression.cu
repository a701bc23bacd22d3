// ============================================================================
// regression.cu -- the kernels of minicnn/ops/regression.py: the mean squared
// and mean absolute errors of Keras, per row (mean over the last axis), and
// their gradients.
//
// Arrays are (rows, cols) matrices: one sample per row, its cols outputs
// along the row.   squared: l = (p - y)^2      absolute: l = |p - y|
// ============================================================================

#define KIND_SQUARED  0   // the KINDS codes of minicnn/ops/regression.py
#define KIND_ABSOLUTE 1


// ----------------------------------------------------------------------------
// regression_loss_rows
// Contract: loss[row] = mean_j l(p[row, j] - y[row, j]). One thread per row,
// summing in index order (rows are short: a model's few outputs).
// ----------------------------------------------------------------------------
extern "C" __global__ void regression_loss_rows(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ loss,
    int rows, int cols, int kind)
{
    const int stride = blockDim.x * gridDim.x;
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += stride) {
        const int base = row * cols;
        float total = 0.0f;
        for (int j = 0; j < cols; ++j) {
            const float e = p[base + j] - y[base + j];
            total += kind == KIND_SQUARED ? e * e : fabsf(e);
        }
        loss[row] = total / (float)cols;
    }
}


// ----------------------------------------------------------------------------
// regression_backward
// Contract: dp = the gradient w.r.t. p of the MEAN of l over all n values
// (rows * cols of the whole batch), one thread per element:
//   squared: 2 (p - y) / n        absolute: sign(p - y) / n  (0 where p == y,
//   as TensorFlow's gradient of abs)
// ----------------------------------------------------------------------------
extern "C" __global__ void regression_backward(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ dp,
    int total, float n, int kind)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const float e = p[idx] - y[idx];
        float g;
        if (kind == KIND_SQUARED) g = 2.0f * e;
        else g = e > 0.0f ? 1.0f : (e < 0.0f ? -1.0f : e);   // e: keeps 0 and NaN
        dp[idx] = g / n;
    }
}
