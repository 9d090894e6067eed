//! gradlab-tensor: n-dimensional tensors and their forward operations.
//!
//! A [`Tensor`] is a value: shared storage plus a [`Layout`] (shape, strides,
//! offset). Views never copy; [`Tensor::contiguous`] copies when a kernel
//! needs dense data. Operations follow PyTorch's semantics and return
//! [`TensorError`]s that name the op, shapes and dtypes instead of panicking.
//!
//! Tensors live on the CPU or on CUDA ([`Tensor::to_device`]). On CUDA, f32
//! values and i64 indices (stored as u32) exist, every op of a training step
//! runs on the device without copying to the host, ops without a CUDA path
//! say so in their error, and mixing devices in one op is a
//! [`TensorError::DeviceMismatch`].
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

mod cuda;
mod dtype;
mod error;
mod layout;
pub mod ops;
mod shape;
pub mod storage;
mod tensor;

pub use dtype::{DType, Device, Element};
pub use error::{Result, TensorError};
pub use gradlab_cpu::{Float, Rng};
/// SGD hyper-parameters of [`Tensor::cuda_sgd_step_`].
pub use gradlab_cuda::SgdConfig as CudaSgdConfig;
pub use layout::Layout;
pub use ops::{BinaryOp, Conv2dParams, MaxPool2dParams, Reduction, UnaryOp};
pub use shape::Shape;
pub use tensor::Tensor;
