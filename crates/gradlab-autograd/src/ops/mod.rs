//! Differentiable ops: each file keeps an op's forward and its backward rule
//! side by side.

mod conv;
mod elementwise;
mod matmul;
pub mod norm;
pub mod operators;
mod pool;
mod reduce;
mod shape;
mod softmax;
