// ============================================================================
// emu_math.h -- CUDA device math and bit intrinsics on the CPU.
// Numerics: plain IEEE float (no FMA contraction, no fast-math), so results
// can differ from the GPU in the last bits: compare with tolerances.
// ============================================================================
#pragma once

#include <float.h>
#include <math.h>
#include <string.h>
#include <type_traits>

// ----------------------------------------------------------------------------
// min / max (CUDA overloads them for every arithmetic type; for floats they
// are fminf/fmaxf, which ignore a NaN operand)
// ----------------------------------------------------------------------------
template <class A, class B>
static inline std::common_type_t<A, B> min(A a, B b)
{
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<T>) return fmin(T(a), T(b));
    else return T(a) < T(b) ? T(a) : T(b);
}

template <class A, class B>
static inline std::common_type_t<A, B> max(A a, B b)
{
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point_v<T>) return fmax(T(a), T(b));
    else return T(a) < T(b) ? T(b) : T(a);
}

// ----------------------------------------------------------------------------
// Fast-math intrinsics: exact versions here (the GPU ones are approximations)
// ----------------------------------------------------------------------------
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
// glibc declares __expf & co. itself (as internals), so these are macros.
#define __expf(x) expf(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __powf(x, y) powf(x, y)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x > 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }
static inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }

// ----------------------------------------------------------------------------
// Conversions and bit casts
// ----------------------------------------------------------------------------
template <class To, class From>
static inline To __emu_bits(From v)
{
    static_assert(sizeof(To) == sizeof(From), "bit cast between different sizes");
    To out;
    memcpy(&out, &v, sizeof out);
    return out;
}
static inline int __float_as_int(float x) { return __emu_bits<int>(x); }
static inline unsigned int __float_as_uint(float x) { return __emu_bits<unsigned int>(x); }
static inline float __int_as_float(int x) { return __emu_bits<float>(x); }
static inline float __uint_as_float(unsigned int x) { return __emu_bits<float>(x); }
static inline long long __double_as_longlong(double x) { return __emu_bits<long long>(x); }
static inline double __longlong_as_double(long long x) { return __emu_bits<double>(x); }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline float __int2float_rn(int x) { return (float)x; }

// ----------------------------------------------------------------------------
// Integer bit intrinsics
// ----------------------------------------------------------------------------
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x)
{
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
static inline int __mul24(int a, int b) { return a * b; }
static inline unsigned int __umul24(unsigned int a, unsigned int b) { return a * b; }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned int __umulhi(unsigned int a, unsigned int b)
{
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}

// Read-only cache load: an ordinary load here.
template <class T> static inline T __ldg(const T* p) { return *p; }
