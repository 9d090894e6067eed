//! gradlab: a from-scratch tensor and reverse-mode autodiff engine.
//!
//! This facade re-exports the workspace crates so that users depend on one
//! crate, and holds the command-line tools of the `gradlab` binary as
//! library modules (so that tests can drive them).
pub use gradlab_autograd as autograd;
pub use gradlab_cpu as cpu;
pub use gradlab_cuda as cuda;
pub use gradlab_data as data;
pub use gradlab_nn as nn;
pub use gradlab_tensor as tensor;

pub mod bench;
pub mod fixtures;
pub mod introspect;
pub mod plot;
pub mod profile;
pub mod threads;
pub mod train;
