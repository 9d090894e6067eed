// kernels/pool.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "pool.cu"
#include "registry.h"

HARNESS_TABLE(pool,
              HARNESS_KERNEL(max_pool2d_forward),
              HARNESS_KERNEL(max_pool2d_backward));
