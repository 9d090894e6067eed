//! Launch wrappers: device buffers, sizes and strides in, kernels enqueued.
//!
//! Every wrapper checks that the problem fits the buffers it was given (so a
//! kernel never reads out of bounds because of a caller's mistake) and that
//! all buffers live on the same device, then enqueues work and returns without
//! waiting.

pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;

use crate::device::Gpu;
use crate::error::{CudaError, Result};
use crate::memory::{DeviceBuffer, DeviceElem};
use std::sync::Arc;

/// The device shared by all buffers of one call.
pub(crate) fn same_gpu<'a>(op: &'static str, gpus: &[&'a Arc<Gpu>]) -> Result<&'a Arc<Gpu>> {
    let first = gpus[0];
    if gpus.iter().any(|g| !Arc::ptr_eq(g, first)) {
        return Err(CudaError::invalid(op, "buffers live on different devices"));
    }
    Ok(first)
}

/// Checks that a buffer holds exactly `expected` elements.
pub(crate) fn check_len<T: DeviceElem>(
    op: &'static str,
    what: &str,
    buf: &DeviceBuffer<T>,
    expected: usize,
) -> Result<()> {
    if buf.len() != expected {
        return Err(CudaError::invalid(
            op,
            format!(
                "{what} buffer has {} {} elements, the problem needs {expected}",
                buf.len(),
                T::NAME
            ),
        ));
    }
    Ok(())
}

/// Converts a size to the kernels' 32-bit int, or says which one is too large.
pub(crate) fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| CudaError::invalid(op, format!("{what} = {v} exceeds 2^31 - 1")))
}

pub(crate) fn to_i64(op: &'static str, what: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| CudaError::invalid(op, format!("{what} = {v} exceeds 2^63 - 1")))
}
