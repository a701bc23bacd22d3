// ============================================================================
// pooling.cu -- max pooling forward (with argmax) and backward (NHWC layout)
//
// Output cell (r, c) pools the PH x PW window whose top-left padded cell is
// (r*SH, c*SW); in unpadded coordinates row r*SH + i - PT, column
// c*SW + j - PL for window offset (i, j). Padded cells count as -inf: they
// never win, exactly as TensorFlow's SAME pooling ignores them.
//
// argmax holds the window offset i*PW + j of the FIRST maximum (row-major scan,
// strict '>' so ties keep the earlier offset), matching the NumPy reference.
// The backward pass needs only argmax, not x.
//
// Index arithmetic is 32-bit: the host checks every element count < 2^31.
// ============================================================================


// ----------------------------------------------------------------------------
// maxpool_forward_nhwc
// Contract: y[n,r,c,ch] = max of the window, argmax[n,r,c,ch] = its offset
// i*PW+j (first maximum; padded cells -inf). One thread per output element.
// ----------------------------------------------------------------------------
extern "C" __global__ void maxpool_forward_nhwc(
    const float* __restrict__ x, float* __restrict__ y, int* __restrict__ argmax,
    int N, int H, int W, int C, int PH, int PW, int SH, int SW,
    int PT, int PL, int OH, int OW)
{
    const float neg_inf = -1.0f / 0.0f;  // no INFINITY macro under NVRTC
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
        // The reference seeds the running max with offset (0, 0) -- -inf if
        // padded -- then replaces it only on a strict '>'. Doing the same keeps
        // NaN and -inf inputs bit-identical with it.
        float best = neg_inf;
        int best_k = 0;
        for (int i = 0; i < PH; ++i) {
            const int h = h0 + i;
            if (h < 0 || h >= H) continue;           // padded row: -inf, never wins
            for (int j = 0; j < PW; ++j) {
                const int w = w0 + j;
                if (w < 0 || w >= W) continue;       // padded column
                const float v = x[((n * H + h) * W + w) * C + ch];
                const int k = i * PW + j;
                if (k == 0 || v > best) { best = v; best_k = k; }
            }
        }
        y[idx] = best;
        argmax[idx] = best_k;
    }
}


// ----------------------------------------------------------------------------
// maxpool_backward_nhwc
// Contract: dx[n,h,w,ch] = sum of dy over the output cells whose window covers
// (h, w) and whose argmax points at it. One thread per dx element GATHERS (no
// atomics; order i, j as in the NumPy reference), so overlapping windows
// (stride < pool) add up deterministically.
// ----------------------------------------------------------------------------
extern "C" __global__ void maxpool_backward_nhwc(
    const float* __restrict__ dy, const int* __restrict__ argmax, float* __restrict__ dx,
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
            for (int j = 0; j < PW; ++j) {
                const int dc = wp - j;
                if (dc < 0 || dc % SW != 0) continue;
                const int c = dc / SW;
                if (c >= OW) continue;
                const int o = ((n * OH + r) * OW + c) * C + ch;
                if (argmax[o] == i * PW + j) sum += dy[o];
            }
        }
        dx[idx] = sum;
    }
}
