// ============================================================================
// emu_builtins.h -- CUDA keywords, vector types and the index variables,
// mapped onto plain C++ for the CPU emulator (g++ only; nvcc never sees this).
// ============================================================================
#pragma once

#include <stddef.h>
#include <stdint.h>

// ----------------------------------------------------------------------------
// Function and variable qualifiers
// ----------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// A __shared__ variable is one copy per block. Blocks run one at a time, so a
// function-local static is exactly that. The section lets the launcher find
// every such variable (between __start_emu_shared and __stop_emu_shared) and
// fill it with NaN at each block start.
#define __shared__ static __attribute__((section("emu_shared")))

// `extern __shared__ T name[];` (dynamic shared memory) cannot use the macro
// above (extern + static). The Python builder rewrites those two words into
// this one; it also aliases every such name to __emu_dyn_shared (below) so
// that, as in CUDA, all of them start at the same address.
#define __emu_extern_shared extern

#define warpSize 32
#define MINICNN_EMULATOR 1

// ----------------------------------------------------------------------------
// Vector types (same alignment as CUDA's, so float4 loads behave alike)
// ----------------------------------------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define EMU_VEC2(T, N, A) struct __attribute__((aligned(A))) N { T x, y; }; \
    static inline N make_##N(T x, T y) { return N{x, y}; }
#define EMU_VEC3(T, N) struct N { T x, y, z; }; \
    static inline N make_##N(T x, T y, T z) { return N{x, y, z}; }
#define EMU_VEC4(T, N, A) struct __attribute__((aligned(A))) N { T x, y, z, w; }; \
    static inline N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }

EMU_VEC2(float, float2, 8)
EMU_VEC3(float, float3)
EMU_VEC4(float, float4, 16)
EMU_VEC2(int, int2, 8)
EMU_VEC3(int, int3)
EMU_VEC4(int, int4, 16)
EMU_VEC2(unsigned int, uint2, 8)
EMU_VEC4(unsigned int, uint4, 16)
EMU_VEC2(double, double2, 16)
EMU_VEC4(unsigned char, uchar4, 4)
EMU_VEC4(signed char, char4, 4)
static inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }

#undef EMU_VEC2
#undef EMU_VEC3
#undef EMU_VEC4

// ----------------------------------------------------------------------------
// Index variables. One set per process: the scheduler writes threadIdx before
// it switches to a thread, and blockIdx before each block.
// ----------------------------------------------------------------------------
static uint3 threadIdx;
static uint3 blockIdx;
static dim3 blockDim;
static dim3 gridDim;

// Dynamic shared memory: 48 KiB (CUDA's default limit), page aligned so the
// launcher can make the pages past `shared_mem` inaccessible.
#define EMU_DYN_SHARED_BYTES 49152
// The asm label fixes the symbol name the generated aliases refer to.
__attribute__((aligned(4096), used))
static unsigned char __emu_dyn_shared[EMU_DYN_SHARED_BYTES] asm("__emu_dyn_shared");

// One byte in the section so that __start/__stop_emu_shared always exist.
__attribute__((section("emu_shared"), used)) static unsigned char __emu_shared_anchor;
extern "C" unsigned char __start_emu_shared[] __attribute__((visibility("hidden")));
extern "C" unsigned char __stop_emu_shared[] __attribute__((visibility("hidden")));
