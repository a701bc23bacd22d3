// ============================================================================
// emu_sched.h -- runs the threads of one block as fibers, phase by phase.
//
// A phase: every runnable thread runs (in forward, reverse or random order)
// until it returns or waits at a sync point. Then the scheduler looks at
// what they wait for: warps whose lanes all arrived get their results; a
// barrier reached by every thread of the block, from the same line, opens.
// Anything else is an error the GPU would turn into a hang or garbage.
// ============================================================================
#pragma once

#include <signal.h>

// Set by the SIGINT handler (emu_launch.h), possibly on another OS thread;
// polled each time a thread hands control back, so a Ctrl-C stops the launch
// at a sync point, where nothing is half done. volatile sig_atomic_t: the one
// type a handler may write; every poll reloads it.
static volatile sig_atomic_t g_interrupt = 0;

enum EmuOrder { EMU_FORWARD = 0, EMU_REVERSE = 1, EMU_RANDOM = 2 };

static int g_order = EMU_FORWARD;
static unsigned long long g_rng = 1;
static unsigned int* g_perm = nullptr;  // run order of the current phase

// xorshift64*: small, fast, and reproducible from the launch's seed.
static unsigned long long emu_rand()
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

// ----------------------------------------------------------------------------
// Block set-up
// ----------------------------------------------------------------------------
// Room for n thread records and n stacks. False when out of memory.
static bool emu_threads_reserve(unsigned int n)
{
    if (n > g_threads_cap) {
        free(g_threads);
        free(g_perm);
        g_threads = (EmuThread*)calloc(n, sizeof(EmuThread));
        g_perm = (unsigned int*)calloc(n, sizeof(unsigned int));
        g_threads_cap = (g_threads && g_perm) ? n : 0;
        if (!g_threads_cap) return false;
    }
    return emu_stacks_reserve(n);
}

// Fresh records and fresh stacks for every thread of the block.
static void emu_threads_reset()
{
    uint3 idx = {0, 0, 0};  // counts x fastest, then y, then z (CUDA's linear order)
    for (unsigned int i = 0; i < g_nthreads; ++i) {
        EmuThread* t = &g_threads[i];
        t->idx = idx;
        t->linear = i;
        t->state = EMU_READY;
        emu_context_init(&t->ctx, emu_stack_top(i), EMU_STACK_BYTES);
        if (++idx.x == blockDim.x) {
            idx.x = 0;
            if (++idx.y == blockDim.y) { idx.y = 0; ++idx.z; }
        }
    }
}

static void emu_make_order()
{
    unsigned int n = g_nthreads;
    for (unsigned int i = 0; i < n; ++i) g_perm[i] = (g_order == EMU_REVERSE) ? n - 1 - i : i;
    if (g_order == EMU_RANDOM)
        for (unsigned int i = n - 1; i > 0; --i) {  // Fisher-Yates
            unsigned int j = (unsigned int)(emu_rand() % (i + 1));
            unsigned int tmp = g_perm[i]; g_perm[i] = g_perm[j]; g_perm[j] = tmp;
        }
}

// ----------------------------------------------------------------------------
// Warps: results of a warp intrinsic, once all lanes of its mask are there
// ----------------------------------------------------------------------------
// Which lane `lane` reads in a shuffle (itself when the source is outside
// its width-segment, as on the GPU).
static unsigned int emu_shfl_source(const EmuThread* t, unsigned int lane)
{
    unsigned int w = (unsigned int)t->width, seg = lane & ~(w - 1), off = lane - seg;
    switch (t->op) {
    case OP_SHFL_IDX: return seg + (t->arg & (w - 1));
    case OP_SHFL_UP: return off < t->arg ? lane : lane - t->arg;
    case OP_SHFL_DOWN: return off + t->arg >= w ? lane : lane + t->arg;
    default: {  // OP_SHFL_XOR: later segments are out of reach
        unsigned int s = lane ^ t->arg;
        return s >= seg + w ? lane : s;
    }
    }
}

static unsigned long long emu_reduce(const EmuThread* lanes, unsigned int mask, unsigned char op, bool is_signed)
{
    bool first = true;
    unsigned int acc = 0;
    for (unsigned int l = 0; l < 32; ++l) {
        if (!((mask >> l) & 1u)) continue;
        unsigned int v = (unsigned int)lanes[l].value;
        if (first) { acc = v; first = false; continue; }
        if (op == OP_REDUCE_ADD) acc += v;
        else if (is_signed) {
            int a = (int)acc, b = (int)v;
            acc = (unsigned int)(op == OP_REDUCE_MIN ? (b < a ? b : a) : (b > a ? b : a));
        } else acc = op == OP_REDUCE_MIN ? (v < acc ? v : acc) : (v > acc ? v : acc);
    }
    return acc;
}

// All lanes of `mask` (lanes[] = the warp's first thread) wait at the same
// intrinsic: compute what each gets back. False on an error.
static bool emu_warp_complete(EmuThread* lanes, unsigned int mask)
{
    const EmuThread* t0 = &lanes[__builtin_ctz(mask)];
    unsigned long long common = 0;
    for (unsigned int l = 0; l < 32; ++l)
        if ((mask >> l) & 1u) {
            bool p = lanes[l].value != 0;
            if (t0->op == OP_BALLOT && p) common |= 1ull << l;
            if (t0->op == OP_ANY && p) common = 1;
        }
    if (t0->op == OP_ALL) {
        common = 1;
        for (unsigned int l = 0; l < 32; ++l)
            if (((mask >> l) & 1u) && lanes[l].value == 0) common = 0;
    }
    if (t0->op >= OP_REDUCE_ADD) common = emu_reduce(lanes, mask, t0->op, t0->arg == 1);
    for (unsigned int l = 0; l < 32; ++l) {
        if (!((mask >> l) & 1u)) continue;
        EmuThread* t = &lanes[l];
        t->result = common;
        if (t->op >= OP_SHFL_IDX && t->op <= OP_SHFL_XOR) {
            unsigned int s = emu_shfl_source(t, l);
            if (s != l && !((mask >> s) & 1u)) {
                char who[96];
                emu_set_error("%s (lane %u) reads lane %u in %s at %s:%u, but lane %u is not in "
                              "the mask 0x%08x (the GPU returns an undefined value)",
                              emu_who(t, who, sizeof who), l, s, EMU_OP_NAMES[t->op], t->file, t->line,
                              s, mask);
                return false;
            }
            t->result = lanes[s].value;
        }
        t->state = EMU_READY;
    }
    return true;
}

// Whether lane `l` of the warp at `lanes` can complete its intrinsic now:
// 1 yes, 0 not yet (a lane of its mask waits elsewhere), -1 error.
static int emu_warp_ready(EmuThread* lanes, unsigned int present, unsigned int l)
{
    EmuThread* t = &lanes[l];
    char who[96], who2[96];
    if (t->mask & ~present) {
        emu_set_error("%s calls %s at %s:%u with mask 0x%08x, but its warp only has lanes 0x%08x "
                      "(the block has %u threads)", emu_who(t, who, sizeof who), EMU_OP_NAMES[t->op],
                      t->file, t->line, t->mask, present, g_nthreads);
        return -1;
    }
    int ready = 1;
    for (unsigned int j = 0; j < 32; ++j) {
        if (!((t->mask >> j) & 1u)) continue;
        EmuThread* u = &lanes[j];
        if (u->state == EMU_EXITED) {
            emu_set_error("%s waits in %s at %s:%u for lane %u (mask 0x%08x), but %s already "
                          "returned", emu_who(t, who, sizeof who), EMU_OP_NAMES[t->op], t->file,
                          t->line, j, t->mask, emu_who(u, who2, sizeof who2));
            return -1;
        }
        if (u->state == EMU_AT_BARRIER) ready = 0;
        if (u->state == EMU_AT_WARP &&
            (u->mask != t->mask || u->op != t->op || u->width != t->width)) {
            emu_set_error("lanes of one warp disagree: %s is in %s at %s:%u with mask 0x%08x, "
                          "%s is in %s at %s:%u with mask 0x%08x", emu_who(t, who, sizeof who),
                          EMU_OP_NAMES[t->op], t->file, t->line, t->mask, emu_who(u, who2, sizeof who2),
                          EMU_OP_NAMES[u->op], u->file, u->line, u->mask);
            return -1;
        }
    }
    return ready;
}

// Complete every warp intrinsic whose lanes are all there.
// Returns how many groups completed, or -1 on an error.
static int emu_resolve_warps()
{
    int done = 0;
    for (unsigned int base = 0; base < g_nthreads; base += 32) {
        EmuThread* lanes = &g_threads[base];
        unsigned int count = g_nthreads - base < 32 ? g_nthreads - base : 32;
        unsigned int present = count == 32 ? 0xffffffffu : (1u << count) - 1u;
        for (unsigned int l = 0; l < count; ++l) {
            if (lanes[l].state != EMU_AT_WARP) continue;
            int r = emu_warp_ready(lanes, present, l);
            if (r < 0) return -1;
            if (r == 0) continue;
            if (!emu_warp_complete(lanes, lanes[l].mask)) return -1;
            ++done;
        }
    }
    return done;
}

// ----------------------------------------------------------------------------
// Barriers
// ----------------------------------------------------------------------------
// No thread can run and no warp can complete: explain why.
static void emu_report_stuck()
{
    char who[96], who2[96];
    const EmuThread *waiter = nullptr, *exited = nullptr, *other = nullptr;
    for (unsigned int i = 0; i < g_nthreads; ++i) {
        const EmuThread* t = &g_threads[i];
        if (t->state == EMU_EXITED && !exited) exited = t;
        if (t->state == EMU_AT_BARRIER || t->state == EMU_AT_WARP) {
            if (!waiter) waiter = t;
            else if (!other && (t->file != waiter->file || t->line != waiter->line || t->op != waiter->op)) other = t;
        }
    }
    if (waiter && waiter->state == EMU_AT_WARP && other)
        emu_set_error("deadlock: %s waits in %s at %s:%u while %s waits in %s at %s:%u; neither "
                      "can go on", emu_who(waiter, who, sizeof who), EMU_OP_NAMES[waiter->op],
                      waiter->file, waiter->line, emu_who(other, who2, sizeof who2),
                      EMU_OP_NAMES[other->op], other->file, other->line);
    else if (other)
        emu_set_error("divergent barrier: threads of one block wait at different sync points: %s "
                      "at %s:%u (%s), %s at %s:%u (%s); every thread must reach the same "
                      "__syncthreads()", emu_who(waiter, who, sizeof who), waiter->file, waiter->line,
                      EMU_OP_NAMES[waiter->op], emu_who(other, who2, sizeof who2), other->file,
                      other->line, EMU_OP_NAMES[other->op]);
    else if (exited)
        emu_set_error("divergent barrier: %s waits in %s at %s:%u, but %s already returned; every "
                      "thread of a block must reach each __syncthreads() (deadlock or undefined "
                      "behaviour on the GPU)", emu_who(waiter, who, sizeof who), EMU_OP_NAMES[waiter->op],
                      waiter->file, waiter->line, emu_who(exited, who2, sizeof who2));
    else
        emu_set_error("deadlock: %s waits in %s at %s:%u and nothing can go on",
                      emu_who(waiter, who, sizeof who), EMU_OP_NAMES[waiter->op], waiter->file, waiter->line);
}

// Every live thread waits at the same barrier: compute results and open it.
static void emu_open_barrier()
{
    unsigned long long count = 0, all = 1;
    for (unsigned int i = 0; i < g_nthreads; ++i) {
        count += g_threads[i].value != 0;
        all &= g_threads[i].value != 0;
    }
    for (unsigned int i = 0; i < g_nthreads; ++i) {
        EmuThread* t = &g_threads[i];
        t->result = t->op == OP_SYNC_COUNT ? count : t->op == OP_SYNC_AND ? all : (count != 0);
        t->state = EMU_READY;
    }
}

// A barrier opens only when every thread of the block waits at it, from the
// same source line (same op). True when it opened.
static bool emu_barrier_ready()
{
    const EmuThread* t0 = &g_threads[0];
    for (unsigned int i = 0; i < g_nthreads; ++i) {
        const EmuThread* t = &g_threads[i];
        if (t->state != EMU_AT_BARRIER) return false;
        if (t->line != t0->line || t->op != t0->op) return false;
        if (t->file != t0->file && strcmp(t->file, t0->file) != 0) return false;
    }
    return true;
}

// ----------------------------------------------------------------------------
// One block
// ----------------------------------------------------------------------------
// Run one phase: every runnable thread until it waits or returns.
// Returns false when a thread failed or the launch was interrupted.
static bool emu_run_phase()
{
    bool again = true;
    while (again) {  // a thread that slept (__nanosleep) is runnable again
        again = false;
        emu_make_order();
        for (unsigned int k = 0; k < g_nthreads; ++k) {
            EmuThread* t = &g_threads[g_perm[k]];
            if (t->state != EMU_READY) continue;
            g_cur = t;
            threadIdx = t->idx;
            emu_context_switch(&g_sched_ctx, &t->ctx);
            g_cur = nullptr;
            if (t->state == EMU_FAILED || g_interrupt) return false;
            if (t->state == EMU_READY) again = true;
        }
    }
    return true;
}

// Run the current block (blockIdx set) to its end. 0 ok, -1 error in g_err
// or interrupted (g_interrupt).
static int emu_run_block()
{
    emu_threads_reset();
    for (;;) {
        if (!emu_run_phase()) return -1;
        int completed = emu_resolve_warps();
        if (completed < 0) return -1;
        if (completed > 0) continue;
        bool all_exited = true;
        for (unsigned int i = 0; i < g_nthreads && all_exited; ++i)
            all_exited = g_threads[i].state == EMU_EXITED;
        if (all_exited) return 0;
        if (!emu_barrier_ready()) {
            emu_report_stuck();
            return -1;
        }
        emu_open_barrier();
    }
}
