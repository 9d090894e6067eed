//! Optimizer updates on device buffers, with the rules and hyper-parameters
//! of [`gradlab_cpu::optim`] (computed in f32 on the device).

use super::{check_len, same_gpu};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
pub use gradlab_cpu::optim::{AdamConfig, SgdConfig};

/// One in-place SGD step on `param` (see [`gradlab_cpu::optim::sgd_update`]).
/// `momentum_buf` (same length) is required when `momentum != 0`; on the
/// `first_step` it is initialised to the (decayed) gradient instead of being read.
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
    cfg.validate()
        .map_err(|e| CudaError::invalid(OP, e.to_string()))?;
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
        Arg::F32(cfg.lr as f32),
        Arg::F32(cfg.momentum as f32),
        Arg::F32(cfg.dampening as f32),
        Arg::F32(cfg.weight_decay as f32),
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

/// One in-place Adam(W) step on `param` and its moments `exp_avg` and
/// `exp_avg_sq`, `step` counting this step from 1 (see
/// [`gradlab_cpu::optim::adam_update`]; the bias corrections are computed
/// here in f64, as the CPU does).
pub fn adam_step(
    cfg: &AdamConfig,
    param: &mut DeviceBuffer<f32>,
    grad: &DeviceBuffer<f32>,
    exp_avg: &mut DeviceBuffer<f32>,
    exp_avg_sq: &mut DeviceBuffer<f32>,
    step: u64,
) -> Result<()> {
    const OP: &str = "adam_step";
    check_len(OP, "grad", grad, param.len())?;
    check_len(OP, "exp_avg", exp_avg, param.len())?;
    check_len(OP, "exp_avg_sq", exp_avg_sq, param.len())?;
    cfg.validate()
        .map_err(|e| CudaError::invalid(OP, e.to_string()))?;
    let step = i32::try_from(step)
        .ok()
        .filter(|&s| s >= 1)
        .ok_or_else(|| CudaError::invalid(OP, format!("step {step} is outside 1..2^31")))?;
    let gpu = same_gpu(
        OP,
        &[param.gpu(), grad.gpu(), exp_avg.gpu(), exp_avg_sq.gpu()],
    )?
    .clone();
    if param.is_empty() {
        return Ok(());
    }
    let step_size = cfg.lr / (1.0 - cfg.beta1.powi(step));
    let bc2_sqrt = (1.0 - cfg.beta2.powi(step)).sqrt();
    let args = [
        Arg::Ptr(param.device_ptr()),
        Arg::Ptr(grad.device_ptr()),
        Arg::Ptr(exp_avg.device_ptr()),
        Arg::Ptr(exp_avg_sq.device_ptr()),
        Arg::I64(param.len() as i64),
        Arg::F32(step_size as f32),
        Arg::F32(cfg.beta1 as f32),
        Arg::F32(cfg.beta2 as f32),
        Arg::F32(bc2_sqrt as f32),
        Arg::F32(cfg.eps as f32),
        Arg::F32(cfg.lr as f32),
        Arg::F32(cfg.weight_decay as f32),
        Arg::I32(cfg.decoupled as i32),
    ];
    gpu.launch(
        KernelFile::Optim,
        "adam_step",
        gpu.elementwise_config(param.len()),
        &args,
    )
}
