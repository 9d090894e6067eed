//! Forward operations on tensors, one file per op family. Each checks its
//! operands once and calls one primitive of the [`Backend`](crate::backend::Backend)
//! that owns them.

mod cat;
mod conv;
pub mod elementwise;
pub mod loss;
mod matmul;
mod norm;
pub mod operators;
mod optim;
mod pool;
pub mod reduce;
mod softmax;

pub use conv::Conv2dParams;
pub use elementwise::{BinaryOp, UnaryOp};
pub use loss::{check_cross_entropy, CrossEntropyOptions, Reduction};
pub use pool::MaxPool2dParams;
