// The table of kernels each kernels/*.cu file contributes to the harness,
// and the typed trampoline that unpacks launch parameters into a call.
#pragma once

#include "cuda_shim.h"

#include <cstddef>
#include <functional>
#include <string>
#include <tuple>
#include <utility>

namespace harness {

int run_grid(dim3 grid, dim3 block, const std::function<void()>& body, std::string& err);

using LaunchFn = int (*)(dim3 grid, dim3 block, const void* const* params,
                         const std::size_t* sizes, int count, std::string& err);

struct KernelEntry {
    const char* name;
    LaunchFn launch;
};

// Checks the parameters against the kernel's signature (count and sizes, a
// check the CUDA driver does not make) and runs the grid.
template <class... Args, std::size_t... I>
int launch_typed(void (*kernel)(Args...), dim3 grid, dim3 block, const void* const* params,
                 const std::size_t* sizes, int count, std::string& err,
                 std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(Args);
    if ((std::size_t)count != n) {
        err = "passed " + std::to_string(count) + " parameters, the kernel takes " + std::to_string(n);
        return 1;
    }
    const std::size_t expected[] = {sizeof(std::decay_t<Args>)..., 0};
    for (std::size_t i = 0; i < n; ++i) {
        if (sizes[i] != expected[i]) {
            err = "parameter " + std::to_string(i) + " has " + std::to_string(sizes[i]) +
                  " bytes, the kernel expects " + std::to_string(expected[i]);
            return 1;
        }
    }
    // Each thread gets its own copy of the parameters, as on the GPU.
    return run_grid(grid, block, [&] { kernel(*static_cast<const std::decay_t<Args>*>(params[I])...); }, err);
}

template <class... Args>
int launch_any(void (*kernel)(Args...), dim3 grid, dim3 block, const void* const* params,
               const std::size_t* sizes, int count, std::string& err) {
    return launch_typed(kernel, grid, block, params, sizes, count, err,
                        std::index_sequence_for<Args...>{});
}

const KernelEntry* find_kernel(const char* file, const char* name);
const KernelEntry* kernels_of(const char* file, std::size_t* count);

}  // namespace harness

#define HARNESS_KERNEL(k)                                                                        \
    harness::KernelEntry {                                                                       \
        #k, [](dim3 g, dim3 b, const void* const* p, const std::size_t* s, int n, std::string& e) { \
            return harness::launch_any(k, g, b, p, s, n, e);                                     \
        }                                                                                        \
    }

// Defines the table of one kernel file (looked up by tables.cpp):
// HARNESS_TABLE(matmul, HARNESS_KERNEL(matmul_naive), ...)
#define HARNESS_TABLE(stem, ...)                                                          \
    extern const harness::KernelEntry harness_kernels_##stem[];                           \
    extern const std::size_t harness_count_##stem;                                        \
    const harness::KernelEntry harness_kernels_##stem[] = {__VA_ARGS__};                  \
    const std::size_t harness_count_##stem = sizeof(harness_kernels_##stem) / sizeof(harness::KernelEntry)
