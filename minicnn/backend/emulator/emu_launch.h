// ============================================================================
// emu_launch.h -- one kernel launch: the grid loop, shared memory set-up,
// and turning a crash or a hang inside the kernel into an error message.
//
// A kernel that reads past an array (the Python side puts each array right
// before an inaccessible page), overflows its stack, divides an integer by
// zero or spins forever would kill or hang Python. During a launch we catch
// those signals (and a watchdog timer's) on this thread, and jump back out
// of the kernel with siglongjmp: the launch returns an error code instead.
// A Ctrl-C (SIGINT) stops the launch too (see "Ctrl-C" below).
// ============================================================================
#pragma once

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>

#define EMU_API extern "C" __attribute__((visibility("default")))

enum EmuResult {
    EMU_OK = 0, EMU_KERNEL_ERROR = 1, EMU_FAULT = 2, EMU_TIMEOUT = 3, EMU_SETUP_ERROR = 4,
    EMU_INTERRUPTED = 5,  // SIGINT: the launch was abandoned; Python raises KeyboardInterrupt
};

// ----------------------------------------------------------------------------
// Shared memory: NaN at each block start, guard past the dynamic part
// ----------------------------------------------------------------------------
static size_t g_dyn_bytes = 0;  // the launch's shared_mem
static size_t g_dyn_open = 0;   // shared_mem rounded up to whole pages: stays accessible

static void emu_shared_guard(size_t dyn)
{
    size_t page = emu_page_bytes();
    g_dyn_bytes = dyn;
    g_dyn_open = (dyn + page - 1) / page * page;
    if (g_dyn_open < EMU_DYN_SHARED_BYTES)
        mprotect(__emu_dyn_shared + g_dyn_open, EMU_DYN_SHARED_BYTES - g_dyn_open, PROT_NONE);
}

static void emu_shared_unguard()
{
    mprotect(__emu_dyn_shared, EMU_DYN_SHARED_BYTES, PROT_READ | PROT_WRITE);
}

// 0xFF bytes read as NaN in float, double and half (and -1 as integers), so
// a read of shared memory nobody wrote in this block shows in the results.
static void emu_shared_fill()
{
    memset(__start_emu_shared, 0xFF, (size_t)(__stop_emu_shared - __start_emu_shared));
    memset(__emu_dyn_shared, 0xFF, g_dyn_open);
}

// The bytes between shared_mem and the page end must still be 0xFF: else the
// block wrote past its dynamic shared memory. Returns the first such byte or -1.
static long emu_shared_overrun()
{
    for (size_t i = g_dyn_bytes; i < g_dyn_open; ++i)
        if (__emu_dyn_shared[i] != 0xFF) return (long)i;
    return -1;
}

// ----------------------------------------------------------------------------
// Signals
// ----------------------------------------------------------------------------
static const int EMU_FAULT_SIGNALS[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define EMU_NSIG 6  // the fault signals + the watchdog's

static struct sigaction g_old_actions[EMU_NSIG];
static stack_t g_old_altstack;
// The handler needs a stack of its own: the faulting one may be a full fiber stack.
__attribute__((aligned(64))) static char g_altstack[64 * 1024];
static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_in_kernel = 0;  // the grid loop runs on g_launch_tid
static long g_launch_tid = 0;

struct EmuFault {
    int sig;
    void* addr;
    int is_write;
    void* pc;
    const EmuThread* thread;  // who ran (null: the scheduler itself)
};
static EmuFault g_fault;

static int emu_timer_signal() { return SIGRTMIN + 6; }

static int emu_signal_at(int i) { return i < EMU_NSIG - 1 ? EMU_FAULT_SIGNALS[i] : emu_timer_signal(); }

static void emu_on_signal(int sig, siginfo_t* info, void* uctx)
{
    if (!g_in_kernel || syscall(SYS_gettid) != g_launch_tid) {
        // Not from our kernel (another thread, or a late watchdog tick): put
        // the previous handler back; a fault then repeats and reaches it.
        for (int i = 0; i < EMU_NSIG - 1; ++i)
            if (emu_signal_at(i) == sig) sigaction(sig, &g_old_actions[i], nullptr);
        return;
    }
    g_fault.sig = sig;
    g_fault.addr = info->si_addr;
    g_fault.thread = g_cur;
#if defined(__x86_64__)
    const ucontext_t* uc = (const ucontext_t*)uctx;
    g_fault.is_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;  // page-fault error code: bit 1 = write
    g_fault.pc = (void*)uc->uc_mcontext.gregs[REG_RIP];
#else
    (void)uctx;
#endif
    g_in_kernel = 0;
    siglongjmp(g_jmp, 1);
}

static void emu_signals_install()
{
    stack_t ss = {};
    ss.ss_sp = g_altstack;
    ss.ss_size = sizeof g_altstack;
    sigaltstack(&ss, &g_old_altstack);
    struct sigaction sa = {};
    sa.sa_sigaction = emu_on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < EMU_NSIG; ++i) sigaction(emu_signal_at(i), &sa, &g_old_actions[i]);
}

static void emu_signals_restore()
{
    for (int i = 0; i < EMU_NSIG; ++i) sigaction(emu_signal_at(i), &g_old_actions[i], nullptr);
    sigaltstack(&g_old_altstack, nullptr);
}

// ----------------------------------------------------------------------------
// Watchdog: a one-shot timer that signals this very thread after timeout_s
// ----------------------------------------------------------------------------
static timer_t g_timer;
static volatile bool g_timer_on = false;  // read by the SIGINT handler

// (Re)arm the timer to fire once, `seconds` from now. Only timer_settime, which
// is async-signal-safe: the SIGINT handler calls this too.
static void emu_timer_arm(double seconds)
{
    if (!g_timer_on) return;
    if (seconds > 1e9) seconds = 1e9;  // 30 years; larger values overflow time_t's conversion
    struct itimerspec its = {};
    its.it_value.tv_sec = (time_t)seconds;
    its.it_value.tv_nsec = (long)((seconds - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;  // 0 disarms
    timer_settime(g_timer, 0, &its, nullptr);
}

// Create the timer when there is a time limit, or when a Ctrl-C may need it
// (interruptible), and arm it for the time limit (seconds <= 0: none).
static void emu_watchdog_start(double seconds, bool interruptible)
{
    g_timer_on = false;
    if (seconds <= 0 && !interruptible) return;
    struct sigevent sev = {};
    sev.sigev_notify = SIGEV_THREAD_ID;  // this very thread, whichever one handles a SIGINT
    sev.sigev_signo = emu_timer_signal();
    sev._sigev_un._tid = (pid_t)g_launch_tid;
    if (timer_create(CLOCK_MONOTONIC, &sev, &g_timer) != 0) return;
    g_timer_on = true;
    if (seconds > 0) emu_timer_arm(seconds);
}

static void emu_watchdog_stop()
{
    if (g_timer_on) timer_delete(g_timer);
    g_timer_on = false;
}

// ----------------------------------------------------------------------------
// Ctrl-C. Python's SIGINT handler only sets a flag that the interpreter
// checks between bytecodes, and this thread runs no bytecode until the launch
// returns: left alone, a Ctrl-C waits for the whole grid (or the time limit).
// So during an interruptible launch (Python's main thread, the default
// handler: the Python side decides) our handler takes SIGINT. It hands the
// signal on to Python's handler, which will raise KeyboardInterrupt as soon
// as we return, and it asks the launch to stop:
// - the scheduler polls g_interrupt at every thread switch and stops there,
//   between two sync points, with nothing half done;
// - kernel code that never reaches a sync point (a busy loop) never lets the
//   scheduler run, so the handler also re-arms the watchdog timer to fire
//   EMU_INTERRUPT_GRACE_S from now; its signal jumps out of the kernel as a
//   timeout does (the same caveat: a kernel stopped inside printf could
//   leave stdio's lock taken).
// Either way the launch returns EMU_INTERRUPTED after the usual clean-up, and
// the next launch starts from fresh state.
// ----------------------------------------------------------------------------
#define EMU_INTERRUPT_GRACE_S 0.2

static struct sigaction g_old_int;  // Python's SIGINT action, restored after the launch
static bool g_int_installed = false;

// Run the SIGINT action we displaced: Python's handler records the signal for
// the interpreter (and pokes its wakeup fd, for asyncio & co.).
static void emu_chain_interrupt(int sig, siginfo_t* info, void* uctx)
{
    if (g_old_int.sa_flags & SA_SIGINFO) {
        if (g_old_int.sa_sigaction) g_old_int.sa_sigaction(sig, info, uctx);
    } else if (g_old_int.sa_handler != SIG_DFL && g_old_int.sa_handler != SIG_IGN) {
        g_old_int.sa_handler(sig);
    }
}

// May run on any thread of the process (SIGINT goes to the process): it only
// sets a flag and re-arms a timer aimed at the launch thread.
static void emu_on_interrupt(int sig, siginfo_t* info, void* uctx)
{
    int saved_errno = errno;  // the code we interrupted may be about to read errno
    emu_chain_interrupt(sig, info, uctx);
    g_interrupt = 1;
    // Before g_in_kernel is set the grid loop sees the flag at its start.
    if (g_in_kernel) emu_timer_arm(EMU_INTERRUPT_GRACE_S);
    errno = saved_errno;
}

static void emu_interrupt_install(bool interruptible)
{
    g_interrupt = 0;
    g_int_installed = false;
    struct sigaction cur = {};
    sigaction(SIGINT, nullptr, &cur);
    // An ignored SIGINT stays ignored (a program run under nohup, say).
    if (!interruptible || (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN)) return;
    struct sigaction sa = {};
    sa.sa_sigaction = emu_on_interrupt;
    // SA_ONSTACK: the fiber stack we land on may be nearly full. SA_RESTART:
    // a system call of the kernel's (printf) must not fail with EINTR.
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    // The watchdog's siglongjmp must not cut this handler short.
    sigaddset(&sa.sa_mask, emu_timer_signal());
    sigaction(SIGINT, &sa, &g_old_int);
    g_int_installed = true;
}

static void emu_interrupt_restore()
{
    if (g_int_installed) sigaction(SIGINT, &g_old_int, nullptr);
    g_int_installed = false;
}

// The message of an interrupted launch; `where` names the block or thread.
static int emu_interrupted(const char* where)
{
    emu_set_error("interrupted by SIGINT (Ctrl-C) in %s; the launch was abandoned", where);
    return EMU_INTERRUPTED;
}

// ----------------------------------------------------------------------------
// The grid
// ----------------------------------------------------------------------------
static unsigned long long emu_gcd(unsigned long long a, unsigned long long b)
{
    while (b) { unsigned long long t = a % b; a = b; b = t; }
    return a;
}

// The scheduler noticed a Ctrl-C while it ran the current block.
static int emu_block_interrupted()
{
    char where[64];
    snprintf(where, sizeof where, "block (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z);
    return emu_interrupted(where);
}

// Blocks run one at a time; their order follows the thread order (forward,
// reverse, or k -> (a*k + c) mod n with gcd(a, n) = 1, a permutation that
// needs no memory even for huge grids), so a block that depends on another
// block's results of the same launch shows up too.
static int emu_run_grid()
{
    unsigned long long gx = gridDim.x, gxy = gx * gridDim.y, nb = gxy * gridDim.z;
    unsigned long long a = 1, c = 0;
    if (g_order == EMU_RANDOM && nb > 1) {
        do a = emu_rand() % nb; while (a == 0 || emu_gcd(a, nb) != 1);
        c = emu_rand() % nb;
    }
    for (unsigned long long k = 0; k < nb; ++k) {
        unsigned long long b = g_order == EMU_REVERSE ? nb - 1 - k
                             : (unsigned long long)(((unsigned __int128)a * k + c) % nb);
        blockIdx = uint3{(unsigned)(b % gx), (unsigned)((b / gx) % gridDim.y), (unsigned)(b / gxy)};
        if (g_interrupt) return emu_block_interrupted();
        emu_shared_fill();
        if (emu_run_block() != 0) return g_interrupt ? emu_block_interrupted() : EMU_KERNEL_ERROR;
        long over = emu_shared_overrun();
        if (over >= 0) {
            emu_set_error("block (%u,%u,%u) wrote dynamic shared memory at byte %ld, past the "
                          "shared_mem=%zu bytes of the launch", blockIdx.x, blockIdx.y, blockIdx.z,
                          over, g_dyn_bytes);
            return EMU_KERNEL_ERROR;
        }
    }
    return EMU_OK;
}

static const char* emu_signal_text(int sig)
{
    switch (sig) {
    case SIGSEGV: return "invalid memory access (SIGSEGV)";
    case SIGBUS: return "bus error (SIGBUS)";
    case SIGFPE: return "arithmetic fault (SIGFPE: integer division by zero?)";
    case SIGILL: return "illegal instruction (SIGILL)";
    case SIGABRT: return "abort() (SIGABRT: a failed assert()?)";
    default: return "signal";
    }
}

// The message for a caught signal (the Python side adds which array an
// address belongs to, and the source line of the faulting instruction).
static int emu_describe_fault(double timeout_s)
{
    char who[96] = "the scheduler";
    if (g_fault.thread) emu_who(g_fault.thread, who, sizeof who);
    if (g_interrupt) return emu_interrupted(who);  // the re-armed watchdog, or a fault after Ctrl-C
    if (g_fault.sig == emu_timer_signal()) {
        emu_set_error("time limit of %g s exceeded in %s: the kernel may spin-wait on another "
                      "thread or block (it would hang on the GPU too) or just be too slow for "
                      "the emulator (see MINICNN_EMU_TIMEOUT)", timeout_s, who);
        return EMU_TIMEOUT;
    }
    const char* a = (const char*)g_fault.addr;
    const char* rw = g_fault.is_write ? "write" : "read";
    long slot = emu_stack_guard_slot(a);
    if (g_fault.sig == SIGSEGV && slot >= 0)
        emu_set_error("stack overflow in %s: each emulated thread has %d KiB of stack (large local "
                      "arrays or deep recursion?)", who, EMU_STACK_BYTES / 1024);
    else if (g_fault.sig == SIGSEGV && a >= (const char*)__emu_dyn_shared &&
             a < (const char*)__emu_dyn_shared + EMU_DYN_SHARED_BYTES)
        emu_set_error("%s: invalid %s of dynamic shared memory at byte %ld, past the shared_mem=%zu "
                      "bytes of the launch", who, rw, (long)(a - (const char*)__emu_dyn_shared), g_dyn_bytes);
    else if (g_fault.sig == SIGSEGV || g_fault.sig == SIGBUS)
        emu_set_error("%s in %s: invalid %s at address %p", emu_signal_text(g_fault.sig), who, rw, g_fault.addr);
    else
        emu_set_error("%s in %s", emu_signal_text(g_fault.sig), who);
    return EMU_FAULT;
}

// ----------------------------------------------------------------------------
// The library's C interface (called through ctypes)
// ----------------------------------------------------------------------------
// Run kernel (a generated trampoline) over the grid. order: EmuOrder.
// interruptible: a SIGINT stops the launch (EMU_INTERRUPTED); else it waits
// for the launch's end, as any signal Python handles.
// Returns an EmuResult; on error emu_error() holds the message.
EMU_API int emu_launch(void (*kernel)(void**), void** args, const unsigned int* grid,
                       const unsigned int* block, unsigned long long shared_mem, int order,
                       unsigned long long seed, double timeout_s, int interruptible)
{
    g_err[0] = 0;
    g_fault = EmuFault{};
    gridDim = dim3(grid[0], grid[1], grid[2]);
    blockDim = dim3(block[0], block[1], block[2]);
    g_nthreads = block[0] * block[1] * block[2];
    if (!emu_threads_reserve(g_nthreads)) {
        emu_set_error("out of memory for %u thread stacks", g_nthreads);
        return EMU_SETUP_ERROR;
    }
    g_kernel = kernel;
    g_args = args;
    g_order = order;
    g_rng = seed * 0x9E3779B97F4A7C15ull + 1;  // never 0: xorshift would stay 0
    g_launch_tid = syscall(SYS_gettid);
    emu_shared_guard((size_t)shared_mem);
    emu_signals_install();
    emu_watchdog_start(timeout_s, interruptible != 0);
    emu_interrupt_install(interruptible != 0);
    volatile int rc = EMU_OK;
    if (sigsetjmp(g_jmp, 1) == 0) {
        g_in_kernel = 1;
        rc = emu_run_grid();
        g_in_kernel = 0;
    } else {
        rc = emu_describe_fault(timeout_s);
    }
    emu_interrupt_restore();  // first: no handler may re-arm the timer once it is gone
    emu_watchdog_stop();
    emu_signals_restore();
    emu_shared_unguard();
    g_cur = nullptr;
    return rc;
}

EMU_API const char* emu_error() { return g_err; }

// The last caught signal: {signal, address, is_write, pc offset in this
// library (0 when the pc lies elsewhere)}.
EMU_API void emu_fault(unsigned long long* out)
{
    Dl_info at_pc = {}, here = {};
    unsigned long long pc_off = 0;
    if (g_fault.pc && dladdr(g_fault.pc, &at_pc) && dladdr((void*)&emu_fault, &here) &&
        at_pc.dli_fbase == here.dli_fbase)
        pc_off = (unsigned long long)((const char*)g_fault.pc - (const char*)here.dli_fbase);
    out[0] = (unsigned long long)g_fault.sig;
    out[1] = (unsigned long long)g_fault.addr;
    out[2] = (unsigned long long)g_fault.is_write;
    out[3] = pc_off;
}

EMU_API unsigned long long emu_static_shared_bytes()
{
    return (unsigned long long)(__stop_emu_shared - __start_emu_shared) - 1;  // minus the anchor
}
