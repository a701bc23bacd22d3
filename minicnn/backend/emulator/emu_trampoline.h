// ============================================================================
// emu_trampoline.h -- the glue the Python builder generates per kernel uses:
// unpack a void* argument array into a call, and describe the parameters.
//
// For `extern "C" __global__ void k(P0, P1, ...)` the builder appends
//     EMU_KERNEL(k)
// which defines __emu_kernel_k(void** args), calling k(*(P0*)args[0], ...),
// and __emu_params_k(), a table the Python side checks arguments against.
// The compiler, not a parser, decides the types: typedefs and macros in
// parameter lists are handled exactly.
// ============================================================================
#pragma once

#include <type_traits>
#include <utility>

namespace emu {

// ----------------------------------------------------------------------------
// Calling
// ----------------------------------------------------------------------------
template <class... P, size_t... I>
inline void call_with(void (*k)(P...), void** args, std::index_sequence<I...>)
{
    // args[i] points at the i-th value: a device pointer for pointer
    // parameters, the scalar itself otherwise.
    k(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <class... P>
inline void call(void (*k)(P...), void** args)
{
    call_with(k, args, std::index_sequence_for<P...>{});
}

// ----------------------------------------------------------------------------
// Describing. Codes (mirrored in build.py): 0 other, 1 bool, 2 int8, 3 uint8,
// 4 int16, 5 uint16, 6 int32, 7 uint32, 8 int64, 9 uint64, 10 float32,
// 11 float64, 12 void.
// ----------------------------------------------------------------------------
template <class T>
constexpr long type_code()
{
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_void_v<U>) return 12;
    else if constexpr (std::is_same_v<U, bool>) return 1;
    else if constexpr (std::is_integral_v<U>) {
        constexpr long log2size = sizeof(U) == 1 ? 0 : sizeof(U) == 2 ? 1 : sizeof(U) == 4 ? 2 : 3;
        return 2 + 2 * log2size + (std::is_unsigned_v<U> ? 1 : 0);
    }
    else if constexpr (std::is_same_v<U, float>) return 10;
    else if constexpr (std::is_same_v<U, double>) return 11;
    else return 0;
}

template <class T>
constexpr long size_of()
{
    if constexpr (std::is_void_v<T>) return 0;
    else return (long)sizeof(T);
}

// Three numbers per parameter: kind (0 value, 1 pointer, 2 pointer to
// const), type code (of the pointee for pointers), size in bytes (ditto).
template <class P>
constexpr long kind()
{
    using U = std::remove_cv_t<P>;
    if constexpr (!std::is_pointer_v<U>) return 0;
    else return std::is_const_v<std::remove_pointer_t<U>> ? 2 : 1;
}

template <class P>
using Target = std::conditional_t<std::is_pointer_v<std::remove_cv_t<P>>,
                                  std::remove_pointer_t<std::remove_cv_t<P>>, std::remove_cv_t<P>>;

template <class... P>
inline const long* describe(void (*)(P...))
{
    static const long table[] = {(long)sizeof...(P), 0,
                                 kind<P>()..., type_code<Target<P>>()..., size_of<Target<P>>()...};
    return table;  // {n, 0, kinds[n], codes[n], sizes[n]}
}

}  // namespace emu

#define EMU_KERNEL(name)                                                              \
    extern "C" __attribute__((visibility("default"))) void __emu_kernel_##name(void** a) \
    {                                                                                 \
        emu::call(&name, a);                                                          \
    }                                                                                 \
    extern "C" __attribute__((visibility("default"))) const long* __emu_params_##name()  \
    {                                                                                 \
        return emu::describe(&name);                                                  \
    }
