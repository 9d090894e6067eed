// kernels/reduce.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "reduce.cu"
#include "registry.h"

HARNESS_TABLE(reduce,
              HARNESS_KERNEL(reduce_rows),
              HARNESS_KERNEL(reduce_middle),
              HARNESS_KERNEL(softmax_rows),
              HARNESS_KERNEL(cross_entropy_rows),
              HARNESS_KERNEL(cross_entropy_reduce),
              HARNESS_KERNEL(cross_entropy_backward));
