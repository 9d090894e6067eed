//! The one error type of the layer, optimizer and checkpoint code.

use gradlab_autograd::AutogradError;
use gradlab_tensor::TensorError;
use std::path::PathBuf;
use thiserror::Error;

/// Why a layer, optimizer, schedule or checkpoint call failed.
#[derive(Debug, Error)]
pub enum NnError {
    #[error(transparent)]
    Autograd(#[from] AutogradError),

    #[error(transparent)]
    Tensor(#[from] TensorError),

    /// A hyper-parameter or argument that cannot work (the message names it).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },

    /// A checkpoint that cannot be read, or that does not fit the model or
    /// optimizer it is loaded into.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },

    /// The operating system refused a read or write.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl NnError {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        NnError::Invalid {
            op,
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = NnError> = std::result::Result<T, E>;

impl From<gradlab_tensor::optim::InvalidHyperParameter> for NnError {
    fn from(e: gradlab_tensor::optim::InvalidHyperParameter) -> Self {
        NnError::Invalid {
            op: e.optimizer,
            msg: e.message,
        }
    }
}
