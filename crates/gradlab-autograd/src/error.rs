//! Errors of the autograd layer.

use gradlab_tensor::TensorError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AutogradError {
    #[error(transparent)]
    Tensor(#[from] TensorError),

    /// `backward()` was misused (e.g. a non-scalar root without a gradient,
    /// a graph already freed).
    #[error("backward: {0}")]
    Backward(String),

    /// A value a node needs for its backward rule was changed in place
    /// (`set_data`, `update_data`, an optimizer step) after the node was
    /// recorded.
    #[error(
        "backward: one of the values needed for gradient computation has been modified in place: \
         input {index} of {op} (created at {location}), {input}, is at version {now}, \
         but {op} used it at version {saved}. Change it only after backward, \
         or run the forward pass again after changing it"
    )]
    ModifiedInPlace {
        op: &'static str,
        location: String,
        index: usize,
        input: String,
        saved: u64,
        now: u64,
    },

    /// Anomaly mode found a NaN or infinity.
    #[error("anomaly: {op} produced {what} in its {phase} (op created at {location})")]
    Anomaly {
        op: String,
        phase: &'static str,
        what: String,
        location: String,
    },

    /// gradcheck found analytic and numeric gradients that disagree.
    #[error("gradcheck failed:\n{0}")]
    Gradcheck(String),
}

pub type Result<T, E = AutogradError> = std::result::Result<T, E>;
