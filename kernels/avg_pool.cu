// ============================================================================
// avg_pool.cu -- the kernels of minicnn/ops/avg_pool.py (NHWC layout)
//
// Output cell (r, c) averages the PH x PW window whose top-left padded cell
// is (r*SH, c*SW): unpadded row r*SH + i - PT, column c*SW + j - PL for
// window offset (i, j). Padded cells are skipped and not counted: the mean
// is over the window's real cells (TensorFlow's avg_pool), so
//   count(r, c) = (real rows of the window) * (real columns of the window).
// Sums run over (i, j) in row-major order from 0.0f, then one division by
// the count: the order of the NumPy reference, hence its bits.
//
// Index arithmetic is 32-bit: the host checks every element count < 2^31.
// Grid-stride loops: any grid size is correct.
// ============================================================================


// The number of real cells a window starting at unpadded cell `start` covers
// along an axis of `size` cells: [start, start + k) clipped to [0, size).
__device__ __forceinline__ int real_cells(int start, int k, int size)
{
    return min(start + k, size) - max(start, 0);
}


// ----------------------------------------------------------------------------
// avgpool_forward_nhwc
// Contract: y[n,r,c,ch] = (sum of x over the real cells of window (r, c)) / count(r, c).
// One thread per output element.
// ----------------------------------------------------------------------------
extern "C" __global__ void avgpool_forward_nhwc(
    const float* __restrict__ x, float* __restrict__ y,
    int N, int H, int W, int C, int PH, int PW, int SH, int SW,
    int PT, int PL, int OH, int OW)
{
    const int total = N * OH * OW * C;
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        // ch is the fastest axis of y, so neighbouring threads read
        // neighbouring floats of x (coalesced).
        int t = idx;
        const int ch = t % C;  t /= C;
        const int c  = t % OW; t /= OW;
        const int r  = t % OH;
        const int n  = t / OH;
        const int h0 = r * SH - PT;      // unpadded row of window offset i = 0
        const int w0 = c * SW - PL;      // unpadded column of offset j = 0
        float sum = 0.0f;
        for (int i = 0; i < PH; ++i) {
            const int h = h0 + i;
            if (h < 0 || h >= H) continue;           // padded row: not averaged
            for (int j = 0; j < PW; ++j) {
                const int w = w0 + j;
                if (w < 0 || w >= W) continue;       // padded column
                sum += x[((n * H + h) * W + w) * C + ch];
            }
        }
        y[idx] = sum / (float)(real_cells(h0, PH, H) * real_cells(w0, PW, W));
    }
}


// ----------------------------------------------------------------------------
// avgpool_backward_nhwc
// Contract: dx[n,h,w,ch] = sum over the windows (r, c) covering (h, w) of
// dy[n,r,c,ch] / count(r, c). One thread per dx element GATHERS (no atomics;
// offsets i, j in order, as the NumPy reference adds them).
// ----------------------------------------------------------------------------
extern "C" __global__ void avgpool_backward_nhwc(
    const float* __restrict__ dy, float* __restrict__ dx,
    int N, int H, int W, int C, int PH, int PW, int SH, int SW,
    int PT, int PL, int OH, int OW)
{
    const int total = N * H * W * C;
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        int t = idx;
        const int ch = t % C; t /= C;
        const int w  = t % W; t /= W;
        const int h  = t % H;
        const int n  = t / H;
        const int hp = h + PT;           // padded coordinates of this cell
        const int wp = w + PL;
        float sum = 0.0f;
        for (int i = 0; i < PH; ++i) {
            // Offset i of output row r lands on padded row r*SH + i: this cell
            // is offset i of row r = (hp - i) / SH when that divides exactly.
            const int dr = hp - i;
            if (dr < 0 || dr % SH != 0) continue;
            const int r = dr / SH;
            if (r >= OH) continue;
            const int rows = real_cells(r * SH - PT, PH, H);
            for (int j = 0; j < PW; ++j) {
                const int dc = wp - j;
                if (dc < 0 || dc % SW != 0) continue;
                const int c = dc / SW;
                if (c >= OW) continue;
                const float count = (float)(rows * real_cells(c * SW - PL, PW, W));
                sum += dy[((n * OH + r) * OW + c) * C + ch] / count;
            }
        }
        dx[idx] = sum;
    }
}
