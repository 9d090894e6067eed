//! gradlab-tensor: n-dimensional tensors and their forward operations.
//!
//! A [`Tensor`] is a value: shared storage plus a [`Layout`] (shape, strides,
//! offset). Views never copy; [`Tensor::contiguous`] copies when a kernel
//! needs dense data. Operations follow PyTorch's semantics and return
//! [`TensorError`]s that name the op, shapes and dtypes instead of panicking.
//!
//! Every op checks its operands once and calls one primitive of a
//! [`backend::Backend`]: the device contract, written in one file. Host
//! tensors run on the fast `cpu` kernels, or on the plain `reference` loops
//! when asked for (`GRADLAB_KERNELS=reference`, [`backend::with_kernels`]);
//! tensors moved to CUDA ([`Tensor::to_device`]) run on the `cuda` backend,
//! where f32 values and i64 indices exist and every op of a training step
//! runs without copying to the host. A primitive a backend lacks is a
//! [`TensorError::Unsupported`] naming both, and mixing devices in one op
//! is a [`TensorError::DeviceMismatch`].
//!
//! ```
//! use gradlab_tensor::{DType, Tensor};
//! let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]).unwrap();
//! let b = Tensor::ones([3], DType::F64);
//! let c = a.add(&b).unwrap(); // broadcasting
//! assert_eq!(c.to_vec::<f64>().unwrap(), vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
//! let t = a.t().unwrap(); // a view: no copy
//! assert!(t.shares_storage_with(&a));
//! assert_eq!(t.matmul(&a).unwrap().dims(), &[3, 3]);
//! ```

pub mod backend;
pub mod dim;
mod dtype;
mod error;
mod layout;
pub mod ops;
mod shape;
pub mod storage;
mod tensor;

pub use dim::Dim;
pub use dtype::{DType, Device, Element};
pub use error::{Result, TensorError};
/// The kernel crate, for links from the docs of the layers above to the
/// loops that compute each op (`kernels::reference::conv2d_backward_data`).
pub use gradlab_cpu as kernels;
/// Optimizer hyper-parameters and the update rules every backend follows.
pub use gradlab_cpu::optim;
pub use gradlab_cpu::{Float, Rng};
pub use layout::{Layout, MatrixBatch, RunPair};
pub use ops::{BinaryOp, Conv2dParams, CrossEntropyOptions, MaxPool2dParams, Reduction, UnaryOp};
pub use shape::Shape;
pub use tensor::Tensor;
