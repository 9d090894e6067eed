//! gradlab-cpu's kernels against their reference twins.
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod common;
mod conv;
mod cost;
mod gemm;
mod moments;
mod norm;
mod norm_relu;
mod pool;
mod winograd;
