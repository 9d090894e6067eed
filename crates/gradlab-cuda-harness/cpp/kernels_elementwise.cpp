// kernels/elementwise.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "elementwise.cu"
#include "registry.h"

HARNESS_TABLE(elementwise,
              HARNESS_KERNEL(binary_strided),
              HARNESS_KERNEL(binary_strided_i32),
              HARNESS_KERNEL(binary_contiguous),
              HARNESS_KERNEL(unary_contiguous),
              HARNESS_KERNEL(fill_f32),
              HARNESS_KERNEL(copy_strided),
              HARNESS_KERNEL(copy_strided_i32));
