// ============================================================================
// adam.cu -- the kernels of minicnn/ops/adam.py: Adam (AdamW), Adamax, Nadam
//
// One fused update per parameter array, one thread per element, grid-stride,
// no atomics. The step-dependent factors (bias corrections, Nadam's momentum
// schedule, the learning rate) are computed on the host and arrive through a
// pointer, step[]: the optimizer's per-step values, a small device buffer at a
// fixed address written before each step (minicnn/backend/step_values.py), so
// a recorded step replays with each step's factors. The float
// operations come in Keras 3's order (see the ops module). As in
// optimizers.cu, NVRTC may fuse a*b + c into an fma on a GPU.
//
// Adam's vhat (AMSGrad only) arrives as a pointer to the parameter when not
// used; the amsgrad flag keeps the kernel from touching it.
// ============================================================================


// max as np.maximum computes it: a NaN in either operand wins (fmaxf would
// drop it and hide a broken step).
__device__ __forceinline__ float nan_max(float a, float b)
{
    return (a != a || a > b) ? a : b;
}


// ----------------------------------------------------------------------------
// adam_update
// Contract (Keras 3 Adam): m += (g - m)*(1-b1); v += (g*g - v)*(1-b2);
// amsgrad: vhat = max(vhat, v), used for v below;
// param -= (m*alpha) / (sqrt(v) + eps), alpha = step[0] = lr*sqrt(1-b2^t)/(1-b1^t).
// ----------------------------------------------------------------------------
extern "C" __global__ void adam_update(
    float* param, const float* __restrict__ grad, float* __restrict__ m,
    float* __restrict__ v, float* vhat,
    int total, const float* __restrict__ step, float one_minus_b1, float one_minus_b2, float eps,
    int amsgrad)
{
    const float alpha = step[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float mi = m[i] + (g - m[i]) * one_minus_b1;
        m[i] = mi;
        float vi = v[i] + (g * g - v[i]) * one_minus_b2;
        v[i] = vi;
        if (amsgrad) {
            vi = nan_max(vhat[i], vi);
            vhat[i] = vi;
        }
        param[i] -= (mi * alpha) / (sqrtf(vi) + eps);   // epsilon OUTSIDE the root
    }
}


// ----------------------------------------------------------------------------
// adamax_update
// Contract (Keras 3 Adamax): m += (g - m)*(1-b1); u = max(b2*u, |g|);
// param -= (lr*m) / ((1 - b1^t) * (u + eps)), with step[] = {lr, 1 - b1^t}.
// ----------------------------------------------------------------------------
extern "C" __global__ void adamax_update(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
    float* __restrict__ u,
    int total, const float* __restrict__ step, float one_minus_b1, float beta_2, float eps)
{
    const float lr = step[0], one_minus_b1_power = step[1];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float mi = m[i] + (g - m[i]) * one_minus_b1;
        m[i] = mi;
        const float ui = nan_max(beta_2 * u[i], fabsf(g));
        u[i] = ui;
        param[i] -= (lr * mi) / (one_minus_b1_power * (ui + eps));
    }
}


// ----------------------------------------------------------------------------
// nadam_update
// Contract (Keras 3 Nadam): m, v as Adam's;
// m_hat = (mu_next*m) / (1 - prod_next) + ((1 - mu)*g) / (1 - prod);
// param -= (m_hat*lr) / (sqrt(v / (1 - b2^t)) + eps),
// with step[] = {lr, mu_next, 1 - prod_next, 1 - mu, 1 - prod, 1 - b2^t}.
// ----------------------------------------------------------------------------
extern "C" __global__ void nadam_update(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
    float* __restrict__ v,
    int total, const float* __restrict__ step, float one_minus_b1, float one_minus_b2, float eps)
{
    const float lr = step[0], mu_next = step[1], one_minus_prod_next = step[2];
    const float one_minus_mu = step[3], one_minus_prod = step[4], one_minus_b2_power = step[5];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float mi = m[i] + (g - m[i]) * one_minus_b1;
        m[i] = mi;
        const float vi = v[i] + (g * g - v[i]) * one_minus_b2;
        v[i] = vi;
        // Nesterov: the next step's momentum on m, this step's on the fresh g
        const float m_hat = (mu_next * mi) / one_minus_prod_next + (one_minus_mu * g) / one_minus_prod;
        param[i] -= (m_hat * lr) / (sqrtf(vi / one_minus_b2_power) + eps);
    }
}
