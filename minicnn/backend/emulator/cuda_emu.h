// ============================================================================
// cuda_emu.h -- runs CUDA kernel source on the CPU (the minicnn emulator).
//
// g++ -std=c++20 -O2 -include cuda_emu.h -x c++ kernels/foo.cu: the CUDA
// built-ins the kernels use become plain C++, and the runtime that launches
// a grid (fibers, scheduler, checks) is compiled into the same library.
// Only g++ reads this header; nvcc and NVRTC never see it.
// ============================================================================
#pragma once

#include "emu_builtins.h"    // keywords, vector types, threadIdx & co.
#include "emu_math.h"        // device math and bit intrinsics
#include "emu_fiber.h"       // user-mode fibers and their stacks
#include "emu_state.h"       // per-thread records, errors, yielding
#include "emu_sync.h"        // barriers, warp intrinsics, atomics
#include "emu_sched.h"       // runs one block, checks every sync point
#include "emu_launch.h"      // runs a grid, catches faults and hangs
#include "emu_trampoline.h"  // glue for the generated per-kernel entry points
