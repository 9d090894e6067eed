//! Optimizer updates on device buffers.

use super::{check_len, same_gpu};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;

/// Hyper-parameters of SGD, as `torch.optim.SGD` names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// One in-place SGD step on `param` with PyTorch's semantics. `momentum_buf`
/// (same length) is required when `momentum != 0`; on the `first_step` it is
/// initialised to the (decayed) gradient instead of being read.
pub fn sgd_step(
    cfg: &SgdConfig,
    param: &mut DeviceBuffer<f32>,
    grad: &DeviceBuffer<f32>,
    momentum_buf: Option<&mut DeviceBuffer<f32>>,
    first_step: bool,
) -> Result<()> {
    const OP: &str = "sgd_step";
    let mut gpus = vec![param.gpu(), grad.gpu()];
    check_len(OP, "grad", grad, param.len())?;
    if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
        return Err(CudaError::invalid(
            OP,
            format!("nesterov needs momentum > 0 and dampening = 0, got {cfg:?}"),
        ));
    }
    let buf_ptr = match (cfg.momentum != 0.0, &momentum_buf) {
        (true, None) => {
            return Err(CudaError::invalid(
                OP,
                "momentum != 0 needs a momentum buffer",
            ));
        }
        (true, Some(b)) => {
            check_len(OP, "momentum buffer", b, param.len())?;
            gpus.push(b.gpu());
            b.device_ptr()
        }
        (false, _) => 0,
    };
    let gpu = same_gpu(OP, &gpus)?.clone();
    if param.is_empty() {
        return Ok(());
    }
    let args = [
        Arg::Ptr(param.device_ptr()),
        Arg::Ptr(grad.device_ptr()),
        Arg::Ptr(buf_ptr),
        Arg::I64(param.len() as i64),
        Arg::F32(cfg.lr),
        Arg::F32(cfg.momentum),
        Arg::F32(cfg.dampening),
        Arg::F32(cfg.weight_decay),
        Arg::I32(cfg.nesterov as i32),
        Arg::I32(first_step as i32),
    ];
    gpu.launch(
        KernelFile::Optim,
        "sgd_step",
        gpu.elementwise_config(param.len()),
        &args,
    )
}
