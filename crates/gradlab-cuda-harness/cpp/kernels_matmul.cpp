// kernels/matmul.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "matmul.cu"
#include "registry.h"

HARNESS_TABLE(matmul,
              HARNESS_KERNEL(matmul_naive),
              HARNESS_KERNEL(matmul_shared_tiled),
              HARNESS_KERNEL(matmul_register_blocked),
              HARNESS_KERNEL(matmul_vectorized_nn),
              HARNESS_KERNEL(matmul_vectorized_nt),
              HARNESS_KERNEL(matmul_vectorized_tn),
              HARNESS_KERNEL(matmul_vectorized_tt),
              HARNESS_KERNEL(matmul_warp_tiled_nn),
              HARNESS_KERNEL(matmul_warp_tiled_nt),
              HARNESS_KERNEL(matmul_warp_tiled_tn),
              HARNESS_KERNEL(matmul_warp_tiled_tt));
