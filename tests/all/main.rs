//! The gradlab crate's integration tests: the command line, the trainer, the fixtures runner, PyTorch interop, and the engine end to end.
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject. (`cuda_lenet.rs` keeps a binary of its own:
//! the GPU bundle runs it on a CUDA machine.)

mod backends;
mod bench_reports;
mod fixtures_edges;
mod fixtures_errors;
mod fixtures_robustness;
mod fixtures_torch;
mod gradcheck_cli;
mod gradcheck_sizes;
mod interop_torch;
mod properties;
mod support;
mod train_cifar;
mod train_errors;
mod train_fashion_mnist;
mod train_lenet_fixture;
mod train_robustness;
mod train_runs;
