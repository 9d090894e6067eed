//! gradlab-nn's integration tests.
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod batch_norm_relu;
mod fuzz_checkpoint;
