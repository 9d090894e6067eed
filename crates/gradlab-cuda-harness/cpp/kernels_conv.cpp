// kernels/conv.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "conv.cu"
#include "registry.h"

HARNESS_TABLE(conv,
              HARNESS_KERNEL(conv2d_forward_m32),
              HARNESS_KERNEL(conv2d_forward_m64),
              HARNESS_KERNEL(conv2d_forward_m128),
              HARNESS_KERNEL(conv2d_backward_data_m32),
              HARNESS_KERNEL(conv2d_backward_data_m64),
              HARNESS_KERNEL(conv2d_backward_data_m128),
              HARNESS_KERNEL(conv2d_backward_weight_m32),
              HARNESS_KERNEL(conv2d_backward_weight_m64),
              HARNESS_KERNEL(conv2d_backward_weight_m128),
              HARNESS_KERNEL(conv2d_sum_splits));
