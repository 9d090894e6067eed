//! gradlab-cpu's kernels against their reference twins.
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod common;

mod conv;
mod gemm;
mod norm;
mod pool;
