// ============================================================================
// optimizers.cu -- the kernels of minicnn/ops/optimizers.py
//
// One fused update per parameter array: each kernel reads the gradient once
// and updates the parameter and the optimizer's state in place, one thread
// per element, grid-stride (any grid size is correct). No atomics: every
// element is written by exactly one thread.
//
// The float operations come in Keras 3's order (see the ops module), with
// the scalars rounded by the host exactly as the NumPy reference rounds them
// (e.g. one_minus_rho = float32(1 - rho) computed in double). On a GPU,
// NVRTC may fuse a*b + c into one fma (one rounding instead of two), so a GPU
// can differ from the reference in the last bit; the emulator computes each
// operation on its own.
//
// The learning rate arrives through a pointer, lr[0]: the optimizer's
// per-step values (minicnn/backend/step_values.py), a small device buffer at a
// fixed address that the host writes before each step. A schedule or a changed
// rate then needs no other launch arguments, so a recorded step replays it
// (a by-value rate would be replayed stale). Every thread reads the same word.
//
// A slot an optimizer does not use (SGD's velocity without momentum,
// RMSprop's mean gradient when not centered) arrives as a pointer to the
// parameter, and its flag keeps the kernel from touching it: those pointers
// are not __restrict__.
// ============================================================================


// ----------------------------------------------------------------------------
// sgd_update
// Contract (Keras 3 SGD), lr = lr_at[0]: use_m == 0: param -= g*lr.  Else m = m*momentum -
// g*lr, then param += m, or with nesterov param += m*momentum - g*lr.
// ----------------------------------------------------------------------------
extern "C" __global__ void sgd_update(
    float* param, const float* __restrict__ grad, float* m,
    int total, const float* __restrict__ lr_at, float momentum, int use_m, int nesterov)
{
    const float lr = lr_at[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float step = grad[i] * lr;
        if (!use_m) {
            param[i] -= step;
            continue;
        }
        const float mi = m[i] * momentum - step;
        m[i] = mi;
        param[i] += nesterov ? mi * momentum - step : mi;
    }
}


// ----------------------------------------------------------------------------
// rmsprop_update
// Contract (Keras 3 RMSprop), lr = lr_at[0]: v = rho*v + (1-rho)*(g*g); centered:
// avg = rho*avg + (1-rho)*g and d = (v - avg*avg) + eps, else d = v + eps;
// inc = (lr*g) / sqrt(d); use_m: m = momentum*m + inc, param -= m; else
// param -= inc.
// ----------------------------------------------------------------------------
extern "C" __global__ void rmsprop_update(
    float* param, const float* __restrict__ grad, float* v, float* avg, float* m,
    int total, const float* __restrict__ lr_at, float rho, float one_minus_rho, float eps,
    float momentum, int centered, int use_m)
{
    const float lr = lr_at[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float vi = rho * v[i] + one_minus_rho * (g * g);
        v[i] = vi;
        float d;
        if (centered) {   // the variance of g, not its mean square
            const float a = rho * avg[i] + one_minus_rho * g;
            avg[i] = a;
            // __fmul_rn: never fused into an fma, whose single rounding would
            // change v - a*a most exactly where the two nearly cancel
            d = (vi - __fmul_rn(a, a)) + eps;
        } else {
            d = vi + eps;   // epsilon INSIDE the square root (Keras 3)
        }
        const float inc = (lr * g) / sqrtf(d);
        if (use_m) {
            const float mi = momentum * m[i] + inc;
            m[i] = mi;
            param[i] -= mi;
        } else {
            param[i] -= inc;
        }
    }
}


// ----------------------------------------------------------------------------
// adagrad_update
// Contract (Keras 3 Adagrad), lr = lr_at[0]: acc += g*g; param -= (lr*g) / sqrt(acc + eps).
// ----------------------------------------------------------------------------
extern "C" __global__ void adagrad_update(
    float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ acc,
    int total, const float* __restrict__ lr_at, float eps)
{
    const float lr = lr_at[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float a = acc[i] + g * g;
        acc[i] = a;
        param[i] -= (lr * g) / sqrtf(a + eps);
    }
}


// ----------------------------------------------------------------------------
// adadelta_update
// Contract (Keras 3 Adadelta), lr = lr_at[0]: ag = rho*ag + (1-rho)*(g*g);
// delta = -((sqrt(ad + eps) * g) / sqrt(ag + eps));
// ad = rho*ad + (1-rho)*(delta*delta); param += lr*delta.
// ----------------------------------------------------------------------------
extern "C" __global__ void adadelta_update(
    float* __restrict__ param, const float* __restrict__ grad,
    float* __restrict__ acc_grad, float* __restrict__ acc_delta,
    int total, const float* __restrict__ lr_at, float rho, float one_minus_rho, float eps)
{
    const float lr = lr_at[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const float g = grad[i];
        const float ag = rho * acc_grad[i] + one_minus_rho * (g * g);
        acc_grad[i] = ag;
        const float ad = acc_delta[i];
        // the step's unit: the running RMS of past steps over that of the gradients
        const float delta = -((sqrtf(ad + eps) * g) / sqrtf(ag + eps));
        acc_delta[i] = rho * ad + one_minus_rho * (delta * delta);
        param[i] += lr * delta;
    }
}


// ----------------------------------------------------------------------------
// weight_decay
// Contract (Keras 3 base optimizer, before the update), lr = lr_at[0]:
// param -= (param*wd)*lr.
// ----------------------------------------------------------------------------
extern "C" __global__ void weight_decay(
    float* __restrict__ param, int total, const float* __restrict__ lr_at, float wd)
{
    const float lr = lr_at[0];
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        param[i] -= (param[i] * wd) * lr;
}
