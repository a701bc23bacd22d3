// ============================================================================
// emu_sync.h -- barriers, warp intrinsics, atomics and other device calls.
//
// A thread that reaches a sync point records what it waits for (op, operand,
// mask, source line) and yields; the scheduler (emu_sched.h) checks that the
// block or the warp agrees, computes every result and resumes the threads.
// The source location is a defaulted argument, so messages can say which
// line of the .cu each thread waits at.
// ============================================================================
#pragma once

#include <type_traits>

using EmuLoc = std::source_location;

// ----------------------------------------------------------------------------
// Waiting at a sync point
// ----------------------------------------------------------------------------
static unsigned long long emu_wait(unsigned char state, unsigned char op, unsigned long long value,
                                   const EmuLoc& loc)
{
    EmuThread* t = g_cur;
    t->state = state;
    t->op = op;
    t->value = value;
    t->file = loc.file_name();
    t->line = loc.line();
    // The switch is an opaque call already; the clobbers also stop g++ from
    // keeping shared (static) data in registers across the sync point.
    asm volatile("" ::: "memory");
    emu_yield();
    asm volatile("" ::: "memory");
    return t->result;
}

// ----------------------------------------------------------------------------
// Block barriers
// ----------------------------------------------------------------------------
static inline void __syncthreads(const EmuLoc& loc = EmuLoc::current())
{
    emu_wait(EMU_AT_BARRIER, OP_SYNCTHREADS, 0, loc);
}
static inline int __syncthreads_count(int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_wait(EMU_AT_BARRIER, OP_SYNC_COUNT, pred != 0, loc);
}
static inline int __syncthreads_and(int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_wait(EMU_AT_BARRIER, OP_SYNC_AND, pred != 0, loc);
}
static inline int __syncthreads_or(int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_wait(EMU_AT_BARRIER, OP_SYNC_OR, pred != 0, loc);
}

// ----------------------------------------------------------------------------
// Warp intrinsics
// ----------------------------------------------------------------------------
static unsigned long long emu_warp_op(unsigned char op, unsigned int mask, unsigned long long value,
                                      unsigned int arg, int width, const EmuLoc& loc)
{
    EmuThread* t = g_cur;
    unsigned int lane = t->linear % 32;
    char who[96];
    if (!((mask >> lane) & 1u))
        emu_fail("%s (lane %u) calls %s at %s:%u with mask 0x%08x, which does not include "
                 "its own lane", emu_who(t, who, sizeof who), lane, EMU_OP_NAMES[op],
                 loc.file_name(), loc.line(), mask);
    if (width < 1 || width > 32 || (width & (width - 1)))
        emu_fail("%s calls %s at %s:%u with width %d: width must be a power of two in [1, 32]",
                 emu_who(t, who, sizeof who), EMU_OP_NAMES[op], loc.file_name(), loc.line(), width);
    t->mask = mask;
    t->arg = arg;
    t->width = width;
    return emu_wait(EMU_AT_WARP, op, value, loc);
}

// Values travel as the low bytes of a 64-bit word (x86-64 is little endian).
template <class T> static inline unsigned long long emu_to_bits(T v)
{
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>,
                  "warp shuffles move values of at most 8 bytes");
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <class T> static inline T emu_from_bits(unsigned long long b)
{
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

template <class T>
static inline T __shfl_sync(unsigned int mask, T var, int src_lane, int width = warpSize,
                            const EmuLoc& loc = EmuLoc::current())
{
    return emu_from_bits<T>(emu_warp_op(OP_SHFL_IDX, mask, emu_to_bits(var), (unsigned)src_lane, width, loc));
}
template <class T>
static inline T __shfl_up_sync(unsigned int mask, T var, unsigned int delta, int width = warpSize,
                               const EmuLoc& loc = EmuLoc::current())
{
    return emu_from_bits<T>(emu_warp_op(OP_SHFL_UP, mask, emu_to_bits(var), delta, width, loc));
}
template <class T>
static inline T __shfl_down_sync(unsigned int mask, T var, unsigned int delta, int width = warpSize,
                                 const EmuLoc& loc = EmuLoc::current())
{
    return emu_from_bits<T>(emu_warp_op(OP_SHFL_DOWN, mask, emu_to_bits(var), delta, width, loc));
}
template <class T>
static inline T __shfl_xor_sync(unsigned int mask, T var, int lane_mask, int width = warpSize,
                                const EmuLoc& loc = EmuLoc::current())
{
    return emu_from_bits<T>(emu_warp_op(OP_SHFL_XOR, mask, emu_to_bits(var), (unsigned)lane_mask, width, loc));
}
static inline unsigned int __ballot_sync(unsigned int mask, int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (unsigned int)emu_warp_op(OP_BALLOT, mask, pred != 0, 0, 32, loc);
}
static inline int __any_sync(unsigned int mask, int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_warp_op(OP_ANY, mask, pred != 0, 0, 32, loc);
}
static inline int __all_sync(unsigned int mask, int pred, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_warp_op(OP_ALL, mask, pred != 0, 0, 32, loc);
}
static inline void __syncwarp(unsigned int mask = 0xffffffffu, const EmuLoc& loc = EmuLoc::current())
{
    emu_warp_op(OP_SYNCWARP, mask, 0, 0, 32, loc);
}
static inline unsigned int __reduce_add_sync(unsigned int mask, unsigned int v, const EmuLoc& loc = EmuLoc::current())
{
    return (unsigned int)emu_warp_op(OP_REDUCE_ADD, mask, v, 0, 32, loc);
}
static inline int __reduce_add_sync(unsigned int mask, int v, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_warp_op(OP_REDUCE_ADD, mask, (unsigned int)v, 1, 32, loc);
}
static inline unsigned int __reduce_min_sync(unsigned int mask, unsigned int v, const EmuLoc& loc = EmuLoc::current())
{
    return (unsigned int)emu_warp_op(OP_REDUCE_MIN, mask, v, 0, 32, loc);
}
static inline int __reduce_min_sync(unsigned int mask, int v, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_warp_op(OP_REDUCE_MIN, mask, (unsigned int)v, 1, 32, loc);
}
static inline unsigned int __reduce_max_sync(unsigned int mask, unsigned int v, const EmuLoc& loc = EmuLoc::current())
{
    return (unsigned int)emu_warp_op(OP_REDUCE_MAX, mask, v, 0, 32, loc);
}
static inline int __reduce_max_sync(unsigned int mask, int v, const EmuLoc& loc = EmuLoc::current())
{
    return (int)emu_warp_op(OP_REDUCE_MAX, mask, (unsigned int)v, 1, 32, loc);
}

// The lanes of this thread's warp that have not returned.
static inline unsigned int __activemask()
{
    unsigned int base = g_cur->linear & ~31u, m = 0;
    for (unsigned int l = 0; l < 32 && base + l < g_nthreads; ++l)
        if (g_threads[base + l].state != EMU_EXITED) m |= 1u << l;
    return m;
}

// ----------------------------------------------------------------------------
// Atomics. Threads switch only at sync points and blocks run one at a time,
// so a plain read-modify-write is atomic here. The operand is a
// non-deduced type so that atomicAdd(float_ptr, 1) converts 1 as CUDA does.
// ----------------------------------------------------------------------------
template <class T> using EmuSame = std::type_identity_t<T>;

template <class T> static inline T atomicAdd(T* p, EmuSame<T> v) { T old = *p; *p = old + v; return old; }
template <class T> static inline T atomicSub(T* p, EmuSame<T> v) { T old = *p; *p = old - v; return old; }
template <class T> static inline T atomicExch(T* p, EmuSame<T> v) { T old = *p; *p = v; return old; }
template <class T> static inline T atomicMax(T* p, EmuSame<T> v) { T old = *p; *p = old < v ? v : old; return old; }
template <class T> static inline T atomicMin(T* p, EmuSame<T> v) { T old = *p; *p = v < old ? v : old; return old; }
template <class T> static inline T atomicAnd(T* p, EmuSame<T> v) { T old = *p; *p = old & v; return old; }
template <class T> static inline T atomicOr(T* p, EmuSame<T> v) { T old = *p; *p = old | v; return old; }
template <class T> static inline T atomicXor(T* p, EmuSame<T> v) { T old = *p; *p = old ^ v; return old; }
template <class T> static inline T atomicCAS(T* p, EmuSame<T> cmp, EmuSame<T> v)
{
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}
static inline unsigned int atomicInc(unsigned int* p, unsigned int limit)
{
    unsigned int old = *p;
    *p = old >= limit ? 0u : old + 1u;
    return old;
}
static inline unsigned int atomicDec(unsigned int* p, unsigned int limit)
{
    unsigned int old = *p;
    *p = (old == 0u || old > limit) ? limit : old - 1u;
    return old;
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

// ----------------------------------------------------------------------------
// Fences, clocks, sleeping, traps (clock() is the C library's)
// ----------------------------------------------------------------------------
static inline void __threadfence() { asm volatile("" ::: "memory"); }
static inline void __threadfence_block() { asm volatile("" ::: "memory"); }
static inline void __threadfence_system() { asm volatile("" ::: "memory"); }

static unsigned long long g_clock = 0;
static inline long long clock64() { return (long long)++g_clock; }

// Sleeping lets the other threads run: a spin-wait that sleeps in its loop
// (the CUDA idiom) can make progress here instead of hanging.
static inline void __nanosleep(unsigned int) { emu_yield(); }

__attribute__((noreturn))
static inline void __trap(const EmuLoc& loc = EmuLoc::current())
{
    char who[96];
    emu_fail("%s called __trap() at %s:%u", emu_who(g_cur, who, sizeof who), loc.file_name(), loc.line());
}

__attribute__((noreturn))
static void __emu_assert_fail(const char* expr, const char* file, unsigned int line)
{
    char who[96];
    emu_fail("%s: assertion failed at %s:%u: %s", emu_who(g_cur, who, sizeof who), file, line, expr);
}
#ifndef assert
#define assert(e) ((e) ? (void)0 : __emu_assert_fail(#e, __FILE__, __LINE__))
#endif
