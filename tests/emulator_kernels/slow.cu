// ============================================================================
// slow.cu -- long-running toy kernels for tests/test_faults_emulator.py
// (Ctrl-C during a launch), plus a quick one to check the next launch.
// Plain CUDA: also compiles with nvcc -cubin -arch=sm_90.
// ============================================================================

// ----------------------------------------------------------------------------
// Meets at __syncthreads() `iters` times: between two barriers the emulator's
// scheduler runs, so it can notice a pending interrupt at every thread switch.
// out[blockIdx.x] = iters.
// ----------------------------------------------------------------------------
extern "C" __global__ void barrier_loop(int* out, int iters)
{
    __shared__ int count;
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    for (int i = 0; i < iters; ++i) {
        if (threadIdx.x == 0) count += 1;
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = count;
}

// ----------------------------------------------------------------------------
// Thread 0 busy-waits on a flag nobody sets before it is done: it never
// reaches a sync point, so the scheduler never runs again (a hang on the GPU
// too). Only a jump out of the kernel code ends it.
// ----------------------------------------------------------------------------
extern "C" __global__ void spin(int* out)
{
    __shared__ volatile int flag;
    if (threadIdx.x == 0) flag = 0;
    __syncthreads();
    if (threadIdx.x == 0) while (flag == 0) { }
    if (threadIdx.x == blockDim.x - 1) flag = 1;
    out[threadIdx.x] = 1;
}

// ----------------------------------------------------------------------------
// y = a * x (a quick launch: does the runtime still work?)
// ----------------------------------------------------------------------------
extern "C" __global__ void scale(const float* __restrict__ x, float* __restrict__ y, float a, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}
