//! gradlab-cuda: the GPU side of gradlab.
//!
//! A device ([`Gpu`]) with one stream and a caching allocator, typed device
//! buffers ([`DeviceBuffer`]), CUDA C kernels from `kernels/*.cu` compiled at
//! run time by NVRTC, and launch wrappers on buffers, sizes and strides. Like
//! gradlab-cpu it knows nothing of tensors, so every kernel can be tested
//! against its CPU reference and benchmarked alone.

pub mod compile;
pub mod error;

pub use compile::{compile_all_kernels, compile_kernel_file, CompiledModule, KernelFile};
pub use error::{CudaError, Result};
