//! gradlab-cuda: the GPU side of gradlab.
//!
//! A device ([`Gpu`]) with one stream and a caching allocator, typed device
//! buffers ([`DeviceBuffer`]), CUDA C kernels from `kernels/*.cu` compiled at
//! run time by NVRTC, and launch wrappers on buffers, sizes and strides. Like
//! gradlab-cpu it knows nothing of tensors, so every kernel can be tested
//! against its CPU reference and benchmarked alone.
//!
//! ```no_run
//! use gradlab_cuda::{Gpu, DeviceBuffer, matmul, MatmulVariant};
//! # fn main() -> gradlab_cuda::Result<()> {
//! let gpu = Gpu::global()?; // a clear error, not a panic, without a driver
//! let a = DeviceBuffer::from_host(&gpu, &[1.0f32, 2.0, 3.0, 4.0])?;
//! let b = DeviceBuffer::from_host(&gpu, &[1.0f32, 0.0, 0.0, 1.0])?;
//! let mut c = DeviceBuffer::zeros(&gpu, 4)?;
//! matmul(MatmulVariant::default(), 2, 2, 2, &a, false, &b, false, &mut c)?;
//! assert_eq!(c.to_host()?, vec![1.0, 2.0, 3.0, 4.0]);
//! # Ok(()) }
//! ```

pub mod bench;
pub mod compile;
pub mod device;
pub mod error;
pub mod memory;
pub mod ops;

pub use compile::{compile_all_kernels, compile_kernel_file, CompiledModule, KernelFile};
pub use device::{driver_available, Gpu, HostKernels};
pub use error::{CudaError, Result};
pub use memory::{DeviceBuffer, DeviceElem, MemoryStats};
pub use ops::conv::{
    conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, conv2d_forward,
};
pub use ops::elementwise::{
    binary, binary_contiguous, binary_inplace, contiguous_strides, copy_strided, fill, merge_dims,
    unary, unary_inplace, BinaryOp, UnaryOp, View, MAX_RANK,
};
pub use ops::matmul::{gemm, matmul, GemmProblem, MatmulVariant, MatrixLayout, OperandLayout};
pub use ops::optim::{adam_step, sgd_step, AdamConfig, SgdConfig};
pub use ops::pool::{max_pool2d_backward, max_pool2d_forward, NO_ARGMAX};
pub use ops::reduce::{
    cross_entropy_backward, cross_entropy_forward, cross_entropy_loss, cross_entropy_loss_backward,
    log_softmax_rows, reduce, reduction_chunks, softmax_rows, CrossEntropyOptions, LossReduction,
    ReduceOp,
};
