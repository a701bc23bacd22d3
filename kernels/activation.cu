// ============================================================================
// activation.cu -- the kernels of minicnn/ops/activation.py
//
// The element-wise activations whose derivative reads the pre-activation u
// (elu, gelu, silu, ...; the formulas are listed in activation.py, each one
// once: act_value is f, act_slope is f'). bias + activation is fused:
//
//   activation_forward    u = z + b (kept in z), a = f(u)
//   activation_backward   dz = da * f'(u)
//
// Arrays are seen as (rows, cols) with cols = the last axis, the one the bias
// runs along: element idx has bias b[idx % cols]. One thread per element,
// grid-stride (any grid size is correct). 32-bit indexing: the host checks
// every element count < 2^31.
//
// Activation codes (must match the codes in minicnn/ops/activation.py); the
// arguments p0, p1, p2 are unused by the activations that take none:
//   1 relu (p0 negative_slope, p1 max_value or +inf for None, p2 threshold;
//     leaky_relu and relu6 are relu with arguments), 2 elu (p0 alpha), 3 selu,
//   4 gelu, 5 gelu_tanh (gelu approximate=True), 6 softplus, 7 softsign,
//   8 silu, 9 hard_sigmoid, 10 hard_silu, 11 exponential, 12 mish.
// ============================================================================

#define ACT_RELU          1
#define ACT_ELU           2
#define ACT_SELU          3
#define ACT_GELU          4
#define ACT_GELU_TANH     5
#define ACT_SOFTPLUS      6
#define ACT_SOFTSIGN      7
#define ACT_SILU          8
#define ACT_HARD_SIGMOID  9
#define ACT_HARD_SILU     10
#define ACT_EXPONENTIAL   11
#define ACT_MISH          12

#define SELU_SCALE        1.0507009873554805f
#define SELU_SCALE_ALPHA  1.7580993408473766f   // scale * alpha
#define SQRT_2            1.4142135623730951f
#define INV_SQRT_2PI      0.3989422804014327f
#define GELU_C            0.7978845608028654f   // sqrt(2 / pi)
#define GELU_K            0.044715f
#define FLT_BIG           3.402823466e+38f      // FLT_MAX: a max_value of +inf means None


// sigmoid(u) from e = exp(-|u|), in (0, 1]: exp never overflows
__device__ __forceinline__ float sigmoid_from(float u, float e)
{
    return u >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// softplus(u) = log(1 + exp(u)) = max(u, 0) + log1p(exp(-|u|)), stable everywhere
__device__ __forceinline__ float softplus(float u)
{
    return fmaxf(u, 0.0f) + log1pf(expf(-fabsf(u)));
}

// max(v, 0) and clip(v, lo, hi) as NumPy computes them: a NaN stays NaN (fmaxf and
// fminf return the other operand, which would turn a diverged model's NaN into a number)
__device__ __forceinline__ float max0_keep_nan(float v)
{
    return v != v ? v : fmaxf(v, 0.0f);
}

__device__ __forceinline__ float clip_keep_nan(float v, float lo, float hi)
{
    return v != v ? v : fminf(fmaxf(v, lo), hi);
}

// relu6(u + 3) / 6
__device__ __forceinline__ float hard_sigmoid(float u)
{
    return clip_keep_nan(u + 3.0f, 0.0f, 6.0f) / 6.0f;
}


// f(u)
__device__ __forceinline__ float act_value(int act, float u, float p0, float p1, float p2)
{
    switch (act) {
    case ACT_RELU: {
        // g = u above the threshold, else 0; clipped to [0, max_value] when given
        float g = u > p2 ? u : 0.0f;
        if (p1 <= FLT_BIG) g = fminf(fmaxf(g, 0.0f), p1);   // g is never NaN
        return g - p0 * max0_keep_nan(p2 - u);                 // a NaN u: NaN (even when p0 = 0)
    }
    case ACT_ELU:          return u > 0.0f ? u : p0 * (expf(u) - 1.0f);   // exp - 1 as TensorFlow
    case ACT_SELU:         return u > 0.0f ? SELU_SCALE * u : SELU_SCALE_ALPHA * (expf(u) - 1.0f);
    case ACT_GELU:         return 0.5f * u * (1.0f + erff(u / SQRT_2));
    case ACT_GELU_TANH:    return 0.5f * u * (1.0f + tanhf(GELU_C * (u + GELU_K * u * u * u)));
    case ACT_SOFTPLUS:     return softplus(u);
    case ACT_SOFTSIGN:     return u / (1.0f + fabsf(u));
    case ACT_SILU:         return u * sigmoid_from(u, expf(-fabsf(u)));
    case ACT_HARD_SIGMOID: return hard_sigmoid(u);
    case ACT_HARD_SILU:    return u * hard_sigmoid(u);
    case ACT_EXPONENTIAL:  return expf(u);
    default:               return u * tanhf(softplus(u));                // ACT_MISH
    }
}


// f'(u); at a kink, the value of TensorFlow's gradient (see activation.py)
__device__ __forceinline__ float act_slope(int act, float u, float p0, float p1, float p2)
{
    const bool inside = u > -3.0f && u < 3.0f;   // hard_sigmoid's slope is 1/6 there
    switch (act) {
    case ACT_RELU:
        if (u <= p2) return p0;                                   // below the threshold
        if (p1 <= FLT_BIG) return (u > 0.0f && u < p1) ? 1.0f : 0.0f;   // clipped (a NaN: 0)
        return 1.0f;
    case ACT_ELU:          return u > 0.0f ? 1.0f : p0 * expf(u);
    case ACT_SELU:         return u >= 0.0f ? SELU_SCALE : SELU_SCALE_ALPHA * expf(u);
    case ACT_GELU:
        return 0.5f * (1.0f + erff(u / SQRT_2)) + u * expf(-0.5f * u * u) * INV_SQRT_2PI;
    case ACT_GELU_TANH: {
        const float t = tanhf(GELU_C * (u + GELU_K * u * u * u));
        return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_K * u * u);
    }
    case ACT_SOFTPLUS:     return sigmoid_from(u, expf(-fabsf(u)));
    case ACT_SOFTSIGN: {
        const float q = 1.0f + fabsf(u);
        return 1.0f / (q * q);
    }
    case ACT_SILU: {
        const float s = sigmoid_from(u, expf(-fabsf(u)));
        return s * (1.0f + u * (1.0f - s));
    }
    case ACT_HARD_SIGMOID: return inside ? 1.0f / 6.0f : 0.0f;
    case ACT_HARD_SILU:    return hard_sigmoid(u) + (inside ? u / 6.0f : 0.0f);
    case ACT_EXPONENTIAL:  return expf(u);
    default: {                                                    // ACT_MISH
        const float t = tanhf(softplus(u));
        return t + u * (1.0f - t * t) * sigmoid_from(u, expf(-fabsf(u)));
    }
    }
}


// ----------------------------------------------------------------------------
// activation_forward
// Contract: u = z[idx] + b[idx % cols] (b skipped and z never written when
// has_bias == 0); z[idx] = u; a[idx] = f(u). a may be z itself (inference: in
// place), so neither carries __restrict__ and the two stores keep this order.
// ----------------------------------------------------------------------------
extern "C" __global__ void activation_forward(
    float* z, const float* __restrict__ b, float* a,
    int total, int cols, int has_bias, int act, float p0, float p1, float p2)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        float u = z[idx];
        if (has_bias) {
            u += b[idx % cols];
            z[idx] = u;
        }
        a[idx] = act_value(act, u, p0, p1, p2);
    }
}


// ----------------------------------------------------------------------------
// activation_backward
// Contract: dz[idx] = da[idx] * f'(u[idx]), for idx < total.
// ----------------------------------------------------------------------------
extern "C" __global__ void activation_backward(
    const float* __restrict__ da, const float* __restrict__ u, float* __restrict__ dz,
    int total, int act, float p0, float p1, float p2)
{
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride)
        dz[idx] = da[idx] * act_slope(act, u[idx], p0, p1, p2);
}
