//! In-place optimizer updates of CUDA tensors.

use super::{backend, dense};
use crate::storage::{CudaStorage, Storage};
use crate::{Result, Tensor, TensorError};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cuda as cu;
use std::sync::Arc;

/// Makes `t` the sole owner of a dense buffer (copy-on-write, as the host
/// backends do) and returns that buffer.
fn unique_buffer<'a>(op: &'static str, t: &'a mut Tensor) -> Result<&'a mut cu::DeviceBuffer<f32>> {
    if !t.is_dense() || Arc::get_mut(t.storage_mut()).is_none() {
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

/// One SGD step on `param` in place, in f32 on the device.
pub(super) fn sgd_step(
    param: &mut Tensor,
    grad: &Tensor,
    momentum: Option<(&mut Tensor, bool)>,
    config: &SgdConfig,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let g = dense(OP, grad)?;
    let p = unique_buffer(OP, param)?;
    let (buf, first) = match momentum {
        Some((b, first)) => (Some(unique_buffer(OP, b)?), first),
        None => (None, false),
    };
    cu::sgd_step(config, p, &g, buf, first).map_err(backend(OP))
}

/// One Adam(W) step on `param` and its moments in place, in f32 on the device.
pub(super) fn adam_step(
    param: &mut Tensor,
    grad: &Tensor,
    exp_avg: &mut Tensor,
    exp_avg_sq: &mut Tensor,
    step: u64,
    config: &AdamConfig,
) -> Result<()> {
    const OP: &str = "adam_step";
    let g = dense(OP, grad)?;
    let p = unique_buffer(OP, param)?;
    let m = unique_buffer(OP, exp_avg)?;
    let v = unique_buffer(OP, exp_avg_sq)?;
    cu::adam_step(config, p, &g, m, v, step).map_err(backend(OP))
}
