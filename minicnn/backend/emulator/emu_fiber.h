// ============================================================================
// emu_fiber.h -- user-mode fibers: one per CUDA thread of the running block.
//
// The threads of a block must all be "in flight" at once so that they can
// meet at __syncthreads(). Each runs on its own stack; switching between them
// is a handful of instructions on x86-64 (a ucontext fallback elsewhere, or
// with -DEMU_UCONTEXT). Fibers only switch at sync points (cooperative), so
// ordinary loads and stores between two sync points need no locking.
// ============================================================================
#pragma once

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern "C" void __emu_fiber_main(void);

#if defined(__x86_64__) && !defined(EMU_UCONTEXT)

// ----------------------------------------------------------------------------
// x86-64 context switch
// A fiber's whole saved context is its stack pointer: __emu_switch pushes the
// six callee-saved registers (all the SysV ABI asks a call to preserve; the
// FP control words are never changed by kernels, so they are shared) onto the
// current stack, stores rsp in *from, loads `to` as rsp, pops the registers
// the other fiber pushed and returns into it.
// ----------------------------------------------------------------------------
extern "C" void __emu_switch(void** from, void* to);
extern "C" void __emu_fiber_start(void);

asm(R"(
    .text
    .globl __emu_switch
    .hidden __emu_switch
    .type __emu_switch, @function
__emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size __emu_switch, .-__emu_switch

    .globl __emu_fiber_start
    .hidden __emu_fiber_start
    .type __emu_fiber_start, @function
__emu_fiber_start:
    andq $-16, %rsp          # the ABI wants rsp % 16 == 0 at a call
    call __emu_fiber_main    # never returns
    ud2
    .size __emu_fiber_start, .-__emu_fiber_start
)");

struct EmuContext { void* sp; };

// Lay out a fresh stack so that the first switch to it "returns" into
// __emu_fiber_start: six zero registers for the pops, then the return address.
static inline void emu_context_init(EmuContext* c, char* stack_top, size_t /*stack_bytes*/)
{
    void** sp = (void**)stack_top - 8;
    for (int i = 0; i < 6; ++i) sp[i] = nullptr;
    sp[6] = (void*)&__emu_fiber_start;
    sp[7] = nullptr;
    c->sp = sp;
}

static inline void emu_context_switch(EmuContext* from, EmuContext* to)
{
    __emu_switch(&from->sp, to->sp);
}

#else

// ----------------------------------------------------------------------------
// Portable fallback: ucontext (a sigprocmask system call per switch, ~7x slower)
// ----------------------------------------------------------------------------
#include <ucontext.h>

struct EmuContext { ucontext_t uc; };

static inline void emu_context_init(EmuContext* c, char* stack_top, size_t stack_bytes)
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack_top - stack_bytes;
    c->uc.uc_stack.ss_size = stack_bytes;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, (void (*)())__emu_fiber_main, 0);
}

static inline void emu_context_switch(EmuContext* from, EmuContext* to)
{
    swapcontext(&from->uc, &to->uc);
}
#endif

// ----------------------------------------------------------------------------
// Stack pool: one stack per thread slot, each above an inaccessible guard
// page so that a stack overflow faults (and is reported) instead of
// silently overwriting the neighbouring thread's stack.
// ----------------------------------------------------------------------------
#ifndef EMU_STACK_BYTES
#define EMU_STACK_BYTES (64 * 1024)
#endif

static char* g_stack_pool = nullptr;   // slot i: [guard page][stack]
static size_t g_stack_slots = 0;
static size_t g_page_bytes = 0;

static inline size_t emu_page_bytes()
{
    if (!g_page_bytes) g_page_bytes = (size_t)sysconf(_SC_PAGESIZE);
    return g_page_bytes;
}

static inline size_t emu_slot_bytes() { return emu_page_bytes() + EMU_STACK_BYTES; }

// Make sure at least n stacks exist. Returns false when memory runs out.
static bool emu_stacks_reserve(size_t n)
{
    if (n <= g_stack_slots) return true;
    if (g_stack_pool) munmap(g_stack_pool, g_stack_slots * emu_slot_bytes());
    g_stack_pool = nullptr;
    g_stack_slots = 0;
    // NORESERVE: only the pages a thread touches are ever committed.
    void* p = mmap(nullptr, n * emu_slot_bytes(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    g_stack_pool = (char*)p;
    g_stack_slots = n;
    for (size_t i = 0; i < n; ++i)
        mprotect(g_stack_pool + i * emu_slot_bytes(), emu_page_bytes(), PROT_NONE);
    return true;
}

// Stacks grow down from near the end of their slot. The tops are staggered
// by a few cache lines: slots are a whole number of pages apart, and tops
// with equal page offsets would all compete for the same cache sets.
static inline char* emu_stack_top(size_t i)
{
    return g_stack_pool + (i + 1) * emu_slot_bytes() - (i % 32) * 128;
}

// Which slot's guard page holds `addr` (-1 when none): names the thread
// whose stack overflowed.
static long emu_stack_guard_slot(const void* addr)
{
    const char* a = (const char*)addr;
    if (!g_stack_pool || a < g_stack_pool || a >= g_stack_pool + g_stack_slots * emu_slot_bytes())
        return -1;
    size_t off = (size_t)(a - g_stack_pool);
    return (off % emu_slot_bytes()) < emu_page_bytes() ? (long)(off / emu_slot_bytes()) : -1;
}
