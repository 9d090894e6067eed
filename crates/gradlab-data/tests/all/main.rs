//! gradlab-data's readers on real and damaged files.
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod fuzz_readers;
mod real_data;
