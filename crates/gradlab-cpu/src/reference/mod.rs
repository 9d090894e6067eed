//! Plain reference kernels: direct loops that follow the definitions.
//!
//! They are the twins every fast kernel is tested against, so they stay
//! simple and obviously right; speed is not their job.

mod conv;
mod gemm;
mod pool;

pub use conv::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward};
pub use gemm::gemm;
pub use pool::{max_pool2d_backward, max_pool2d_forward};
