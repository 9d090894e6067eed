//! Forward operations on tensors, one file per op family.

mod cat;
mod conv;
pub mod elementwise;
pub(crate) mod iter;
mod matmul;
mod norm;
mod par_map;
mod pool;
pub mod reduce;
mod softmax;

pub use conv::Conv2dParams;
pub use elementwise::{BinaryOp, UnaryOp};
pub use pool::MaxPool2dParams;
pub use softmax::{check_cross_entropy, Reduction};
