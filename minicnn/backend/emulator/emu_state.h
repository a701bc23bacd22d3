// ============================================================================
// emu_state.h -- what the scheduler knows about each thread of the running
// block, and how a thread reports an error or hands control back.
// ============================================================================
#pragma once

#include <source_location>
#include <stdarg.h>
#include <stdio.h>

// ----------------------------------------------------------------------------
// Thread records
// ----------------------------------------------------------------------------
enum EmuState : unsigned char {
    EMU_READY,       // runnable
    EMU_AT_BARRIER,  // waiting in a __syncthreads*() for the whole block
    EMU_AT_WARP,     // waiting in a warp intrinsic for the lanes of its mask
    EMU_EXITED,      // returned from the kernel
    EMU_FAILED,      // reported an error (g_err); the launch stops
};

// Every sync point a thread can wait at; the names are for messages.
enum EmuOp : unsigned char {
    OP_SYNCTHREADS, OP_SYNC_COUNT, OP_SYNC_AND, OP_SYNC_OR,
    OP_SHFL_IDX, OP_SHFL_UP, OP_SHFL_DOWN, OP_SHFL_XOR,
    OP_BALLOT, OP_ANY, OP_ALL, OP_SYNCWARP,
    OP_REDUCE_ADD, OP_REDUCE_MIN, OP_REDUCE_MAX,
};

static const char* const EMU_OP_NAMES[] = {
    "__syncthreads()", "__syncthreads_count()", "__syncthreads_and()", "__syncthreads_or()",
    "__shfl_sync()", "__shfl_up_sync()", "__shfl_down_sync()", "__shfl_xor_sync()",
    "__ballot_sync()", "__any_sync()", "__all_sync()", "__syncwarp()",
    "__reduce_add_sync()", "__reduce_min_sync()", "__reduce_max_sync()",
};

struct EmuThread {
    EmuContext ctx;
    uint3 idx;                 // threadIdx
    unsigned int linear;       // x + y*bx + z*bx*by: lane = linear % 32
    unsigned char state;       // EmuState
    unsigned char op;          // EmuOp of the sync point it waits at
    int width;                 // warp ops: the width argument
    unsigned int mask;         // warp ops: member mask
    unsigned int arg;          // srcLane / delta / laneMask; 1 = signed for reduce
    unsigned long long value;  // this thread's operand (bits)
    unsigned long long result; // what the sync point returns to it (bits)
    const char* file;          // where it waits
    unsigned int line;
};

static EmuThread* g_threads = nullptr;  // one per thread of the block
static unsigned int g_threads_cap = 0;
static unsigned int g_nthreads = 0;
static EmuThread* g_cur = nullptr;      // the thread now running (null: scheduler)
static EmuContext g_sched_ctx;          // the scheduler's own context

static void (*g_kernel)(void**) = nullptr;  // generated trampoline of the kernel
static void** g_args = nullptr;

// ----------------------------------------------------------------------------
// Errors: the message goes to g_err; Python adds the kernel name and config.
// ----------------------------------------------------------------------------
static char g_err[4096];

__attribute__((format(printf, 1, 2)))
static void emu_set_error(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}

// "block (1,0,0) thread (5,0,0)": most messages start by naming who.
static const char* emu_who(const EmuThread* t, char* buf, size_t n)
{
    snprintf(buf, n, "block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z,
             t->idx.x, t->idx.y, t->idx.z);
    return buf;
}

// Hand control back to the scheduler; returns when this thread is resumed.
static void emu_yield()
{
    EmuThread* t = g_cur;
    emu_context_switch(&t->ctx, &g_sched_ctx);
}

// Called from inside a thread: record the error and stop this thread for good.
__attribute__((format(printf, 1, 2), noreturn))
static void emu_fail(const char* fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    g_cur->state = EMU_FAILED;
    emu_yield();
    __builtin_unreachable();  // the scheduler never resumes a failed thread
}

// Entry point of every fiber (see __emu_fiber_start): run the kernel body as
// this thread, then report the exit.
extern "C" __attribute__((visibility("hidden"))) void __emu_fiber_main(void)
{
    g_kernel(g_args);
    g_cur->state = EMU_EXITED;
    emu_yield();
    __builtin_unreachable();
}
