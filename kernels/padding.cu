// ============================================================================
// padding.cu -- the kernels of minicnn/ops/padding.py (NHWC layout)
//
// Zero padding and cropping along H and W: pure data movement, one thread
// per OUTPUT element (each writes its own cell: no races, any grid size).
//   x (N, H, W, C) -> y (N, OH, OW, C); PT, PL: the top and left margins.
// The bottom and right margins follow from the sizes.
//
// Index arithmetic is 32-bit: the host checks every element count < 2^31.
// ============================================================================


// Contract: y[n, r, q, ch] = x[n, r - PT, q - PL, ch] where that cell exists,
// else 0 (the frame). OH = PT + H + bottom, OW = PL + W + right.
extern "C" __global__ void pad2d_nhwc(
    const float* __restrict__ x, float* __restrict__ y,
    int N, int H, int W, int C, int OH, int OW, int PT, int PL)
{
    const int total = N * OH * OW * C;
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        int t = idx;
        const int ch = t % C;  t /= C;
        const int q  = t % OW; t /= OW;
        const int r  = t % OH;
        const int n  = t / OH;
        const int h = r - PT;            // the input cell this output cell shows
        const int w = q - PL;
        y[idx] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * H + h) * W + w) * C + ch] : 0.0f;
    }
}


// Contract: y[n, r, q, ch] = x[n, r + PT, q + PL, ch] (the host checks the
// crop leaves OH, OW >= 1 inside x).
extern "C" __global__ void crop2d_nhwc(
    const float* __restrict__ x, float* __restrict__ y,
    int N, int H, int W, int C, int OH, int OW, int PT, int PL)
{
    const int total = N * OH * OW * C;
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        int t = idx;
        const int ch = t % C;  t /= C;
        const int q  = t % OW; t /= OW;
        const int r  = t % OH;
        const int n  = t / OH;
        y[idx] = x[((n * H + r + PT) * W + q + PL) * C + ch];
    }
}
