//! Errors of tensor operations: each names the op and what was wrong with its inputs.

use crate::{DType, Device, Shape};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// Shapes that the op cannot combine; the message says how they fail.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },

    #[error("{op}: dtype mismatch: {lhs} and {rhs} (convert one with .to_dtype())")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },

    #[error("{op}: dtype {dtype} is not supported here ({expected})")]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        expected: &'static str,
    },

    /// A dimension index outside `[low, high]`, named as the caller gave it
    /// (see [`crate::Dim`]).
    #[error(
        "{op}: dimension {dim} is out of range for a tensor of shape {shape} (expected to be in range of [{low}, {high}])"
    )]
    DimOutOfRange {
        op: &'static str,
        dim: isize,
        shape: Shape,
        low: isize,
        high: isize,
    },

    #[error(
        "{op}: tensors are on different devices: {lhs} and {rhs} (move one with .to_device())"
    )]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },

    /// Any other invalid argument (a bad parameter value, an index out of range, ...).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },

    /// A buffer the op needs cannot be allocated (the message names the op,
    /// the element count and the bytes).
    #[error(transparent)]
    Alloc(#[from] gradlab_cpu::AllocError),

    /// The CUDA backend failed.
    #[error("{op}: {msg}")]
    Backend { op: &'static str, msg: String },

    /// A device that cannot be opened (no driver, no such ordinal).
    #[error("{device}: {msg}")]
    Device { device: Device, msg: String },

    /// A primitive of the device contract that this backend does not
    /// implement (see [`crate::backend::coverage`]).
    #[error("{primitive}: not supported by the {backend} backend ({reason})")]
    Unsupported {
        primitive: &'static str,
        backend: &'static str,
        reason: &'static str,
    },
}

impl TensorError {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        TensorError::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        TensorError::Invalid {
            op,
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = TensorError> = std::result::Result<T, E>;
