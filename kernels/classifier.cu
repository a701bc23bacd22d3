// ============================================================================
// classifier.cu -- the kernel of minicnn/ops/classifier.py: one training
// step's classifier head in ONE launch. From the softmax probabilities p and
// the targets y, (rows, cols) matrices with one sample per row:
//
//   dz[r, j] = (p[r, j] - y[r, j]) / n             the gradient w.r.t. the logits
//   sums[0] += sum_r loss_r                        Keras's categorical cross-entropy
//   sums[1] += #{r : argmax p[r] == argmax y[r]}   the accuracy count
//
// sums holds the epoch's running sums on the device; nothing goes to the host.
//
// Launch: ONE block of BLOCK threads (the grid is 1: the whole batch is
// reduced inside the block, so there is no second pass and no float atomic).
// The block is cut into groups of `group` consecutive threads, group = the
// block size xent_loss_rows (softmax_xent.cu) runs one row with (a power of
// two in [32, 256]), and each group computes one row exactly as that kernel
// does: thread `lane` strides over the classes j = lane, lane + group, ...,
// then a tree in shared memory adds the group's partial sums. So each row's
// loss has xent_loss_rows's bits, and dz has softmax_xent_backward's.
//
// The groups walk the rows together: in round k, group g takes row
// k * groups + g. Every thread runs the same number of rounds (a group past
// the last row computes nothing but still meets each __syncthreads()).
// Lane 0 of group g adds its rows' losses, in row order, into its own running
// sum; at the end a tree over the groups adds those, and thread 0 adds the
// two totals into sums. The order depends only on (rows, cols): the same
// bits on every run.
// ============================================================================

#define BLOCK 256            // threads of the one block; the host launches exactly this
#define MAX_GROUPS (BLOCK / 32)

// clip(v, lo, hi) as np.clip computes it: a NaN stays NaN (see softmax_xent.cu:
// fminf/fmaxf would turn a diverged model's NaN into a finite loss).
__device__ __forceinline__ float clip_keep_nan(float v, float lo, float hi)
{
    return v != v ? v : fminf(fmaxf(v, lo), hi);
}

// numpy.argmax's order: does class j with value v come before the current
// choice (best, at)? A NaN beats every number (the first NaN wins), else the
// larger value, and on a tie the smaller index. The "nothing yet" choice is
// (-inf, cols): any real class beats it, and it beats nothing.
__device__ __forceinline__ bool beats(float v, int j, float best, int at)
{
    const bool v_nan = v != v, best_nan = best != best;
    if (v_nan || best_nan) return v_nan && (!best_nan || j < at);
    return v > best || (v == best && j < at);
}

// Per-group tree sum of v (all BLOCK threads call it together). red: BLOCK
// floats; group g owns red[g * group, (g + 1) * group). The pairs added are
// xent_loss_rows's block_sum's, with lane in place of threadIdx.x.
__device__ __forceinline__ float group_sum(float v, float* red, int group, int lane, int first)
{
    red[first + lane] = v;
    __syncthreads();
    for (int s = group / 2; s > 0; s >>= 1) {   // group is a power of 2
        if (lane < s) red[first + lane] += red[first + lane + s];
        __syncthreads();
    }
    const float total = red[first];
    __syncthreads();  // all have read it before the next call overwrites it
    return total;
}


// ----------------------------------------------------------------------------
// softmax_xent_step
// Contract: see the header. p, y, dz: rows x cols; sums: 2 floats, added to.
// lo, hi: the clip bounds (eps, 1 - eps); n: the batch size as a float.
// ----------------------------------------------------------------------------
extern "C" __global__ void softmax_xent_step(
    const float* __restrict__ p, const float* __restrict__ y, float* __restrict__ dz,
    float* __restrict__ sums, int rows, int cols, int group, float lo, float hi, float n)
{
    __shared__ float red[BLOCK];              // row sums, loss terms, then group losses
    __shared__ float best_p[BLOCK], best_y[BLOCK];   // argmax values ...
    __shared__ int at_p[BLOCK], at_y[BLOCK];         // ... and their class indices
    __shared__ int group_hits[MAX_GROUPS];

    const float neg_inf = -1.0f / 0.0f;       // no INFINITY macro under NVRTC
    const int groups = BLOCK / group;
    const int g = threadIdx.x / group;        // this thread's group ...
    const int lane = threadIdx.x % group;     // ... and its place in it
    const int first = g * group;              // the group's slice of the shared arrays

    float loss_sum = 0.0f;                    // lane 0: the group's rows, in order
    int hits = 0;
    for (int round = 0; round * groups < rows; ++round) {
        const int row = round * groups + g;
        const bool live = row < rows;
        const int base = live ? row * cols : 0;   // row r starts at r * cols

        // pass 1: s = sum_j p[row, j]
        float s = 0.0f;
        if (live) for (int j = lane; j < cols; j += group) s += p[base + j];
        s = group_sum(s, red, group, lane, first);

        // pass 2: the loss terms y log(clip(p / s)), dz, and each lane's
        // argmax of p and y over its classes (visited in increasing j)
        float t = 0.0f;
        float bp = neg_inf, by = neg_inf;
        int ap = cols, ay = cols;
        if (live) {
            for (int j = lane; j < cols; j += group) {
                const float pj = p[base + j], yj = y[base + j];
                t += yj * logf(clip_keep_nan(pj / s, lo, hi));
                dz[base + j] = (pj - yj) / n;
                if (beats(pj, j, bp, ap)) { bp = pj; ap = j; }
                if (beats(yj, j, by, ay)) { by = yj; ay = j; }
            }
        }
        // one tree for the three reductions (one set of barriers)
        red[first + lane] = t;
        best_p[first + lane] = bp; at_p[first + lane] = ap;
        best_y[first + lane] = by; at_y[first + lane] = ay;
        __syncthreads();
        for (int h = group / 2; h > 0; h >>= 1) {
            if (lane < h) {
                const int me = first + lane, other = me + h;
                red[me] += red[other];
                if (beats(best_p[other], at_p[other], best_p[me], at_p[me])) {
                    best_p[me] = best_p[other]; at_p[me] = at_p[other];
                }
                if (beats(best_y[other], at_y[other], best_y[me], at_y[me])) {
                    best_y[me] = best_y[other]; at_y[me] = at_y[other];
                }
            }
            __syncthreads();
        }
        // (no barrier needed before the next round: only lane 0 reads the
        // slice's first entries here, and only lane 0 writes them next)
        if (live && lane == 0) {
            loss_sum += -red[first];          // the row's loss, xent_loss_rows's bits
            hits += at_p[first] == at_y[first] ? 1 : 0;
        }
    }

    // the groups' totals: group g's at red[g], then a tree over the groups
    // (red[g], g > 0, was last read in a tree step above, before a barrier)
    if (lane == 0) { red[g] = loss_sum; group_hits[g] = hits; }
    __syncthreads();
    for (int h = groups / 2; h > 0; h >>= 1) {   // groups is a power of 2
        if (threadIdx.x < h) {
            red[threadIdx.x] += red[threadIdx.x + h];
            group_hits[threadIdx.x] += group_hits[threadIdx.x + h];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        sums[0] += red[0];
        sums[1] += (float)group_hits[0];      // exact while the epoch's count < 2^24
    }
}
