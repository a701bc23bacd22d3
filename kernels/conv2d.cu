// ============================================================================
// conv2d.cu -- convolution as im2col + GEMM (NHWC layout)
//
// The GEMMs themselves go through xp.matmul (cuBLAS on a GPU); these kernels
// do the layout work around them:
//   forward : col = im2col(x);  y = col @ W
//   backward: dW = col^T @ dY;  dcol = dY @ W^T;  dx = col2im(dcol)
//
// Shapes (all row-major, C-contiguous):
//   x    (N, H, W, C)             input
//   col  (N*OH*OW, KH*KW*C)       one row per output cell, laid out (i, j, ch)
//                                 so that col @ W.reshape(KH*KW*C, F) is the
//                                 convolution with W of shape (KH, KW, C, F)
// Output cell (r, c) reads, for kernel tap (i, j), padded input row
// r*SH + i*DH and column c*SW + j*DW, i.e. unpadded row r*SH + i*DH - PT and
// column c*SW + j*DW - PL. (DH, DW) is the dilation: 1 for an ordinary
// convolution, d > 1 leaves d-1 cells between neighbouring taps.
//
// Index arithmetic is 32-bit: the host checks every element count < 2^31.
// Grid-stride loops: any grid size is correct; the host caps the grid.
// ============================================================================


// ----------------------------------------------------------------------------
// im2col_nhwc
// Contract: col[(n,r,c), (i,j,ch)] = x[n, r*SH+i*DH-PT, c*SW+j*DW-PL, ch], or 0
// where that cell lies in the zero padding. One thread per col element.
// ----------------------------------------------------------------------------
extern "C" __global__ void im2col_nhwc(
    const float* __restrict__ x, float* __restrict__ col,
    int N, int H, int W, int C, int KH, int KW, int SH, int SW, int DH, int DW,
    int PT, int PL, int OH, int OW)
{
    const int total = N * OH * OW * KH * KW * C;
    const int stride = blockDim.x * gridDim.x;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        // Peel the flat col index from its fastest axis outward: ch (contiguous
        // in both x and col, so neighbouring threads read neighbouring floats),
        // then the window offset (i, j), then the output cell (n, r, c).
        int t = idx;
        const int ch = t % C;  t /= C;
        const int j  = t % KW; t /= KW;
        const int i  = t % KH; t /= KH;
        const int c  = t % OW; t /= OW;
        const int r  = t % OH;
        const int n  = t / OH;
        const int h = r * SH + i * DH - PT;   // unpadded input row
        const int w = c * SW + j * DW - PL;   // unpadded input column
        float v = 0.0f;                  // zero padding
        if (h >= 0 && h < H && w >= 0 && w < W)
            v = x[((n * H + h) * W + w) * C + ch];
        col[idx] = v;
    }
}


// ----------------------------------------------------------------------------
// col2im_nhwc
// Contract: dx[n,h,w,ch] = sum over the (r, c, i, j) with r*SH+i*DH-PT == h and
// c*SW+j*DW-PL == w of dcol[(n,r,c), (i,j,ch)] -- the adjoint of im2col.
// One thread per dx element GATHERS its terms (no atomics, fixed order i, j:
// deterministic, and the same summation order as the NumPy reference).
// ----------------------------------------------------------------------------
extern "C" __global__ void col2im_nhwc(
    const float* __restrict__ dcol, float* __restrict__ dx,
    int N, int H, int W, int C, int KH, int KW, int SH, int SW, int DH, int DW,
    int PT, int PL, int OH, int OW)
{
    const int total = N * H * W * C;
    const int stride = blockDim.x * gridDim.x;
    const int row_len = KH * KW * C;     // length of one col row
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        int t = idx;
        const int ch = t % C; t /= C;
        const int w  = t % W; t /= W;
        const int h  = t % H;
        const int n  = t / H;
        const int hp = h + PT;           // row in the padded input
        const int wp = w + PL;           // column in the padded input
        float sum = 0.0f;
        for (int i = 0; i < KH; ++i) {
            // Tap i covers padded row hp from output row r only if
            // r*SH + i*DH == hp, i.e. (hp - i*DH) is a non-negative multiple
            // of SH and the quotient is a real output row.
            const int dr = hp - i * DH;
            if (dr < 0 || dr % SH != 0) continue;
            const int r = dr / SH;
            if (r >= OH) continue;
            for (int j = 0; j < KW; ++j) {
                const int dc = wp - j * DW;
                if (dc < 0 || dc % SW != 0) continue;
                const int c = dc / SW;
                if (c >= OW) continue;
                sum += dcol[((n * OH + r) * OW + c) * row_len + (i * KW + j) * C + ch];
            }
        }
        dx[idx] = sum;
    }
}
