//! gradlab-autograd's integration tests. (Anomaly mode is a process-wide
//! switch, so its tests keep a binary of their own:
//! `introspection_anomaly.rs`.)
//!
//! One test binary for the crate (one link instead of one per file);
//! each module is one subject.

mod batch_norm;
mod batch_norm_relu;
mod engine;
mod gradcheck_localize;
mod gradcheck_modes;
mod inplace_versions;
mod introspection_gradcheck;
mod introspection_graph;
mod profile;
mod properties;
mod properties_edges;
mod testing_helpers;
