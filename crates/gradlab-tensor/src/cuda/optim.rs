//! In-place optimizer updates of CUDA tensors.

use super::{backend, dense, is_dense};
use crate::storage::{CudaStorage, Storage};
use crate::{Result, Tensor, TensorError};
use gradlab_cuda as cu;
use std::sync::Arc;

/// Makes `t` the sole owner of a dense buffer (copy-on-write, as `update_`
/// does on the CPU) and returns that buffer.
fn unique_buffer<'a>(op: &'static str, t: &'a mut Tensor) -> Result<&'a mut cu::DeviceBuffer<f32>> {
    if !is_dense(t) || Arc::get_mut(t.storage_mut()).is_none() {
        *t = t.copy()?;
    }
    let device = t.device();
    match Arc::get_mut(t.storage_mut()) {
        Some(Storage::Cuda(CudaStorage::F32(b))) => Ok(b),
        _ => Err(TensorError::Backend {
            op,
            msg: format!("needs an f32 tensor on CUDA, got one on {device}"),
        }),
    }
}

/// One SGD step on `param` in place (see `Tensor::cuda_sgd_step_`).
pub(crate) fn sgd_step(
    param: &mut Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&mut Tensor>,
    first_step: bool,
    config: &cu::SgdConfig,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let g = dense(OP, grad)?;
    let p = unique_buffer(OP, param)?;
    let buf = match momentum_buffer {
        Some(b) => Some(unique_buffer(OP, b)?),
        None => None,
    };
    cu::sgd_step(config, p, &g, buf, first_step).map_err(backend(OP))
}
