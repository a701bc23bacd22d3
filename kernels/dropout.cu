// ============================================================================
// dropout.cu -- the kernel of minicnn/ops/dropout.py
//
// Inverted dropout with a counter-based mask: element i's random bits are a
// pure function of (key, its noise index), so the mask needs no state and no
// storage, and backward rebuilds it by running this same kernel on dy.
// All mask arithmetic is unsigned 32-bit integer math: the same bits as the
// NumPy reference, the compiled CPU kernel and the emulator.
// One thread per element, grid-stride (any grid size is correct).
// ============================================================================

#define DROPOUT_ROUNDS 2   // ROUNDS of minicnn/ops/dropout.py


// lowbias32 (C. Wellons): xor-shift, multiply, twice; a bijection of 32 bits.
__device__ __forceinline__ unsigned int mix32(unsigned int h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}


// Contract: with n the noise index of element i (below),
//   y[i] = bits(n) >= threshold ? x[i] / keep_prob : 0,   for i < total,
// where bits(n) = DROPOUT_ROUNDS rounds of h = mix32(h + key) from h = n.
// The noise index: i's coordinates in dims[0..rank) (row-major, innermost
// last) weighted by strides[] (0 on the axes the mask is broadcast over);
// layout[] holds dims then strides.
// key and threshold are unsigned values passed in ints; the key through a
// pointer, key_at[0]: a dropout layer's key buffer, written by the host
// before each training step (minicnn/backend/step_values.py), so a recorded
// step replays with each step's key (a new mask every step).
extern "C" __global__ void dropout_apply(
    const float* __restrict__ x, float* __restrict__ y, int total, int rank,
    const int* __restrict__ layout, const int* __restrict__ key_at,
    int threshold_bits, float keep_prob)
{
    const int* dims = layout;
    const int* strides = layout + rank;
    const unsigned int key = (unsigned int)key_at[0];
    const unsigned int threshold = (unsigned int)threshold_bits;
    const int stride = blockDim.x * gridDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int rem = i;
        unsigned int n = 0;
        for (int d = rank - 1; d >= 0; --d) {   // peel coordinates, innermost first
            n += (unsigned int)((rem % dims[d]) * strides[d]);
            rem /= dims[d];
        }
        unsigned int h = n;
        for (int r = 0; r < DROPOUT_ROUNDS; ++r) h = mix32(h + key);
        y[i] = h >= threshold ? x[i] / keep_prob : 0.0f;
    }
}
