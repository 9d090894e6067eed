//! gradlab-tensor's integration tests. (`cuda_ops.rs` keeps a binary of its own: the GPU bundle runs it on a CUDA machine.)
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod contract;
mod cuda_no_driver;
mod sizes;
mod user_errors;
