// ============================================================================
// leaky_relu.cu -- the kernels of minicnn/ops/leaky_relu.py
//
// y = x where x > 0, else slope * x; its gradient dx = dy where x > 0, else
// slope * dy. One thread per element, grid-stride (any grid size is correct).
// ============================================================================


// Contract: y[i] = x[i] > 0 ? x[i] : slope * x[i], for i < total.
// NaN fails the comparison and gives slope * NaN = NaN, as in the reference.
extern "C" __global__ void leaky_relu_forward(
    const float* __restrict__ x, float* __restrict__ y, int total, float slope)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : slope * v;
    }
}


// Contract: dx[i] = x[i] > 0 ? dy[i] : slope * dy[i], for i < total.
extern "C" __global__ void leaky_relu_backward(
    const float* __restrict__ dy, const float* __restrict__ x, float* __restrict__ dx,
    int total, float slope)
{
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        dx[i] = x[i] > 0.0f ? dy[i] : slope * dy[i];
}
