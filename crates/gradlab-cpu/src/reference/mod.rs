//! Plain reference kernels: direct loops that follow the definitions.
//!
//! They are the twins every fast kernel is tested against, so they stay
//! simple and obviously right; speed is not their job.

mod conv;
mod elementwise;
mod gemm;
mod norm;
mod pool;
pub mod winograd;

pub use conv::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward};
pub use elementwise::{
    bias_add_channels, relu_backward, relu_forward, softmax_cross_entropy,
    softmax_cross_entropy_backward,
};
pub use gemm::gemm;
pub use norm::{batch_norm2d_backward, batch_norm2d_inference, batch_norm2d_train_forward};
pub use pool::{max_pool2d_backward, max_pool2d_forward};
