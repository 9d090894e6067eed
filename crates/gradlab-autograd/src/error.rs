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
