// ============================================================================
// binary_xent.cu -- the kernels of minicnn/ops/binary_xent.py: Keras's binary
// cross-entropy, per row (mean over the last axis), and its gradients.
//
// Arrays are (rows, cols) matrices: one sample per row, its cols outputs
// (one per label; usually 1) along the row.
//   on probabilities: q = clip(p, lo, hi),  l = -(y log q + (1 - y) log(1 - q))
//   on logits z:      l = max(z, 0) - z y + log1p(exp(-|z|))   (TensorFlow's
//                     sigmoid_cross_entropy_with_logits: exp never overflows)
// ============================================================================

#define MODE_PROBABILITIES 0   // the MODE_* codes of minicnn/ops/binary_xent.py
#define MODE_SIGMOID       1
#define MODE_LOGITS        2


// sigmoid as bias_act.cu computes it: the tanh form is stable for any v
__device__ __forceinline__ float stable_sigmoid(float v)
{
    return (tanhf(v * 0.5f) + 1.0f) * 0.5f;
}


// ----------------------------------------------------------------------------
// binary_xent_loss_rows
// Contract: loss[row] = mean_j l(p[row, j], y[row, j]), l as above, on
// probabilities (from_logits == 0; clipped to [lo, hi]) or on logits.
// One thread per row: rows are short (a few labels), and each thread sums
// its row in index order, so the result never depends on timing.
// ----------------------------------------------------------------------------
// clip(v, lo, hi) as np.clip computes it: a NaN stays NaN. (fminf/fmaxf return
// the other operand when one is NaN, which would turn a diverged model's NaN
// probabilities into a finite loss, and fit could no longer say it diverged.)
__device__ __forceinline__ float clip_keep_nan(float v, float lo, float hi)
{
    return v != v ? v : fminf(fmaxf(v, lo), hi);
}


extern "C" __global__ void binary_xent_loss_rows(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ loss,
    int rows, int cols, float lo, float hi, int from_logits)
{
    const int stride = blockDim.x * gridDim.x;
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += stride) {
        const int base = row * cols;
        float total = 0.0f;
        for (int j = 0; j < cols; ++j) {
            const float v = p[base + j];
            const float t = y[base + j];
            if (from_logits) {
                total += fmaxf(v, 0.0f) - v * t + log1pf(expf(-fabsf(v)));
            } else {
                const float q = clip_keep_nan(v, lo, hi);
                total += -(t * logf(q) + (1.0f - t) * logf(1.0f - q));
            }
        }
        loss[row] = total / (float)cols;
    }
}


// ----------------------------------------------------------------------------
// binary_xent_backward
// Contract: d = the gradient of the MEAN of l over all n values (n = rows *
// cols of the whole batch), one thread per element:
//   MODE_PROBABILITIES  w.r.t. p:  (-y / p + (1 - y) / (1 - p)) / n where
//                       lo <= p <= hi, 0 where the clip was active;
//   MODE_SIGMOID        w.r.t. the logits of p = sigmoid(z): (p - y) / n;
//   MODE_LOGITS         w.r.t. the logits z given:    (sigmoid(z) - y) / n.
// ----------------------------------------------------------------------------
extern "C" __global__ void binary_xent_backward(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ d,
    int total, float n, float lo, float hi, int mode)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const float v = p[idx];
        const float t = y[idx];
        float g;
        if (mode == MODE_PROBABILITIES) {
            const bool inside = v >= lo && v <= hi;   // where the clip is the identity
            g = inside ? (-t / v + (1.0f - t) / (1.0f - v)) : 0.0f;
        } else if (mode == MODE_SIGMOID) {
            g = v - t;
        } else {
            g = stable_sigmoid(v) - t;
        }
        d[idx] = g / n;
    }
}
