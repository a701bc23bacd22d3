// ============================================================================
// optimizers.cu -- fused parameter updates, one launch per parameter array
//
// Each kernel reads the gradient once and updates the parameter (and the
// optimizer state) in place: no temporaries, one pass over memory.
// Scalars arrive as float32 already rounded by the host exactly as the NumPy
// reference rounds them (e.g. one_minus_rho = float32(1 - rho) computed in
// double), so the two backends agree up to the order of float operations.
// ============================================================================


// ----------------------------------------------------------------------------
// rmsprop_update
// Contract (Keras 3 RMSprop): v = rho*v + (1-rho)*g^2;
// param -= lr * g / sqrt(v + eps). In place on param and v; one thread per
// element.
// ----------------------------------------------------------------------------
extern "C" __global__ void rmsprop_update(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ v,
    int total, float lr, float rho, float one_minus_rho, float eps)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const float g = grad[idx];
        // Same grouping as the reference: (rho*v) + ((1-rho)*g)*g, then
        // (lr*g) / sqrt(v + eps).
        const float vn = v[idx] * rho + (one_minus_rho * g) * g;
        v[idx] = vn;
        param[idx] -= (lr * g) / sqrtf(vn + eps);
    }
}


// ----------------------------------------------------------------------------
// sgd_update
// Contract: param -= lr * grad, in place; one thread per element.
// ----------------------------------------------------------------------------
extern "C" __global__ void sgd_update(
    float* __restrict__ param, const float* __restrict__ grad, int total, float lr)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride)
        param[idx] -= lr * grad[idx];
}
