//! Plain reference kernels: direct loops that follow the definitions.
//!
//! They are the twins every fast kernel is tested against, so they stay
//! simple and obviously right; speed is not their job. They are also a
//! backend of their own: `--kernels reference` (or `GRADLAB_KERNELS=reference`)
//! runs the whole engine on these loops, so that a reader can step from a
//! backward rule into the arithmetic in a debugger.

mod conv;
mod elementwise;
mod gemm;
mod loss;
mod norm;
mod pool;
mod reduce;
pub mod winograd;

pub use conv::{conv2d_backward_data, conv2d_backward_weight, conv2d_forward};
pub use elementwise::{binary, unary};
pub use gemm::gemm;
pub use loss::{cross_entropy_backward, cross_entropy_forward, one_hot};
pub use norm::{
    batch_norm2d_backward, batch_norm2d_inference, batch_norm2d_relu_backward,
    batch_norm2d_relu_train_forward, batch_norm2d_train_forward,
};
pub use pool::{max_pool2d_backward, max_pool2d_forward, max_pool2d_gather};
pub use reduce::{gather_along, max_along, scatter_add_along, softmax, sum};
