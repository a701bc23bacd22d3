// ============================================================================
// accuracy_counts.cu -- the kernels of minicnn/ops/accuracy_counts.py: counts behind Keras's
// binary and top-k accuracies. (The categorical accuracy count is in
// softmax_xent.cu.)
//
// Arrays are (rows, cols) matrices, one sample per row. Each kernel adds to a
// single int32 counter (zeroed by the host) with integer atomics: the count
// is exact and the same whatever order the threads run in.
// ============================================================================


// ----------------------------------------------------------------------------
// binary_match_count
// Contract: *count += the number of elements with y == (p > threshold ? 1 : 0)
// (Keras's binary_accuracy: a NaN prediction counts as 0). One thread per
// element.
// ----------------------------------------------------------------------------
extern "C" __global__ void binary_match_count(
    const float* __restrict__ p, const float* __restrict__ y, int* __restrict__ count,
    int total, float threshold)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const float predicted = p[idx] > threshold ? 1.0f : 0.0f;
        if (y[idx] == predicted) atomicAdd(count, 1);
    }
}


// ----------------------------------------------------------------------------
// top_k_count
// Contract: *count += the number of rows whose target class t = argmax(y)
// (the first maximum) is among the k largest predictions: fewer than k
// classes have p[j] > p[t] (ties at the boundary count as in, as TensorFlow's
// in_top_k; a NaN p[t] never does). One thread per row.
// ----------------------------------------------------------------------------
extern "C" __global__ void top_k_count(
    const float* __restrict__ p, const float* __restrict__ y, int* __restrict__ count,
    int rows, int cols, int k)
{
    const int stride = blockDim.x * gridDim.x;
    for (int row = blockIdx.x * blockDim.x + threadIdx.x; row < rows; row += stride) {
        const float* pr = p + row * cols;
        const float* yr = y + row * cols;
        int t = 0;                                  // numpy.argmax: the first maximum
        for (int j = 1; j < cols; ++j) if (yr[j] > yr[t]) t = j;
        const float target = pr[t];
        int above = 0;
        for (int j = 0; j < cols; ++j) above += pr[j] > target ? 1 : 0;
        if (target == target && above < k) atomicAdd(count, 1);
    }
}
