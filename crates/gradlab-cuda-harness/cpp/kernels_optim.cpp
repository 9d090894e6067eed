// kernels/optim.cu on the CPU: the file itself, then its table of kernels.
#include "cuda_shim.h"
#include "optim.cu"
#include "registry.h"

HARNESS_TABLE(optim,
              HARNESS_KERNEL(sgd_step),
              HARNESS_KERNEL(adam_step));
