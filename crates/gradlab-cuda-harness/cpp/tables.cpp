// Finds a kernel by file and name among the tables of the kernel files.
#include "registry.h"

#include <cstring>

#define HARNESS_DECLARE(stem)                                     \
    extern const harness::KernelEntry harness_kernels_##stem[]; \
    extern const std::size_t harness_count_##stem

HARNESS_DECLARE(matmul);
HARNESS_DECLARE(conv);
HARNESS_DECLARE(pool);
HARNESS_DECLARE(elementwise);
HARNESS_DECLARE(reduce);
HARNESS_DECLARE(optim);

namespace harness {

const KernelEntry* kernels_of(const char* file, std::size_t* count) {
    struct File {
        const char* name;
        const KernelEntry* table;
        std::size_t count;
    };
    const File files[] = {
        {"matmul.cu", harness_kernels_matmul, harness_count_matmul},
        {"conv.cu", harness_kernels_conv, harness_count_conv},
        {"pool.cu", harness_kernels_pool, harness_count_pool},
        {"elementwise.cu", harness_kernels_elementwise, harness_count_elementwise},
        {"reduce.cu", harness_kernels_reduce, harness_count_reduce},
        {"optim.cu", harness_kernels_optim, harness_count_optim},
    };
    for (const File& f : files) {
        if (std::strcmp(f.name, file) == 0) {
            *count = f.count;
            return f.table;
        }
    }
    *count = 0;
    return nullptr;
}

const KernelEntry* find_kernel(const char* file, const char* name) {
    std::size_t n = 0;
    const KernelEntry* table = kernels_of(file, &n);
    for (std::size_t i = 0; i < n; ++i) {
        if (std::strcmp(table[i].name, name) == 0) return &table[i];
    }
    return nullptr;
}

}  // namespace harness
