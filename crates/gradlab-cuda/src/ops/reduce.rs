//! Reductions, softmax and cross-entropy over rows.

use super::{check_len, same_gpu, to_i64};
use crate::compile::KernelFile;
use crate::device::Arg;
use crate::error::{CudaError, Result};
use crate::memory::DeviceBuffer;
use cudarc::driver::LaunchConfig;

/// Reduction ops; codes match `RED_*` in `kernels/reduce.cu`. Max and Min
/// propagate NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

/// One 256-thread block per row (grid-stride over rows beyond the grid).
fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Reduces the middle axis of `x` viewed as contiguous `[outer, len, inner]`
/// into `out` `[outer, inner]`. Any contiguous run of dimensions can be
/// reduced this way (e.g. the last axis: `inner = 1`; a column sum:
/// `outer = 1`). Deterministic: a fixed order for a given shape.
pub fn reduce(
    op: ReduceOp,
    x: &DeviceBuffer<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "reduce";
    let gpu = same_gpu(OP, &[x.gpu(), out.gpu()])?.clone();
    let total = outer
        .checked_mul(len)
        .and_then(|v| v.checked_mul(inner))
        .ok_or_else(|| CudaError::invalid(OP, "shape overflows"))?;
    check_len(OP, "input", x, total)?;
    check_len(OP, "output", out, outer * inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    if len == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min | ReduceOp::Mean) {
        return Err(CudaError::invalid(
            OP,
            format!("{op:?} over an empty axis (outer {outer}, inner {inner})"),
        ));
    }
    let code = Arg::I32(op as i32);
    if inner == 1 {
        let args = [
            code,
            Arg::Ptr(x.device_ptr()),
            Arg::Ptr(out.device_ptr()),
            Arg::I64(to_i64(OP, "outer", outer)?),
            Arg::I64(to_i64(OP, "len", len)?),
        ];
        gpu.launch(KernelFile::Reduce, "reduce_rows", rows_config(outer), &args)
    } else {
        let args = [
            code,
            Arg::Ptr(x.device_ptr()),
            Arg::Ptr(out.device_ptr()),
            Arg::I64(to_i64(OP, "outer", outer)?),
            Arg::I64(to_i64(OP, "len", len)?),
            Arg::I64(to_i64(OP, "inner", inner)?),
        ];
        let cfg = gpu.elementwise_config(outer * inner);
        gpu.launch(KernelFile::Reduce, "reduce_middle", cfg, &args)
    }
}

fn softmax_impl(
    op: &'static str,
    take_log: bool,
    x: &DeviceBuffer<f32>,
    rows: usize,
    cols: usize,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    let gpu = same_gpu(op, &[x.gpu(), out.gpu()])?.clone();
    check_len(op, "input", x, rows * cols)?;
    check_len(op, "output", out, rows * cols)?;
    if rows * cols == 0 {
        return Ok(());
    }
    let args = [
        Arg::Ptr(x.device_ptr()),
        Arg::Ptr(out.device_ptr()),
        Arg::I64(to_i64(op, "rows", rows)?),
        Arg::I64(to_i64(op, "cols", cols)?),
        Arg::I32(take_log as i32),
    ];
    gpu.launch(KernelFile::Reduce, "softmax_rows", rows_config(rows), &args)
}

/// Softmax of every row of `x` `[rows, cols]` (max-subtracted, stable).
pub fn softmax_rows(
    x: &DeviceBuffer<f32>,
    rows: usize,
    cols: usize,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    softmax_impl("softmax", false, x, rows, cols, out)
}

/// Log-softmax of every row of `x` `[rows, cols]`: `x - logsumexp(x)`.
pub fn log_softmax_rows(
    x: &DeviceBuffer<f32>,
    rows: usize,
    cols: usize,
    out: &mut DeviceBuffer<f32>,
) -> Result<()> {
    softmax_impl("log_softmax", true, x, rows, cols, out)
}

/// Per-row cross-entropy of `logits` `[rows, cols]` against class indices:
/// `losses[r] = logsumexp(logits[r]) - logits[r, targets[r]]`. A target
/// outside `0..cols` yields NaN for that row.
pub fn cross_entropy_forward(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<u32>,
    rows: usize,
    cols: usize,
    losses: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_forward";
    let gpu = same_gpu(OP, &[logits.gpu(), targets.gpu(), losses.gpu()])?.clone();
    check_len(OP, "logits", logits, rows * cols)?;
    check_len(OP, "targets", targets, rows)?;
    check_len(OP, "losses", losses, rows)?;
    if rows == 0 {
        return Ok(());
    }
    if cols == 0 {
        return Err(CudaError::invalid(OP, "logits have no classes"));
    }
    let args = [
        Arg::Ptr(logits.device_ptr()),
        Arg::Ptr(targets.device_ptr()),
        Arg::Ptr(losses.device_ptr()),
        Arg::I64(to_i64(OP, "rows", rows)?),
        Arg::I64(to_i64(OP, "cols", cols)?),
    ];
    gpu.launch(
        KernelFile::Reduce,
        "cross_entropy_forward",
        rows_config(rows),
        &args,
    )
}

/// Gradient of the cross-entropy with respect to the logits:
/// `grad_logits[r, c] = (softmax(logits[r])[c] - [c == targets[r]]) * grad_loss[r * grad_stride] * scale`.
/// Use `grad_stride = 0` with a one-element `grad_loss` for a reduced loss,
/// and `scale = 1 / rows` for a mean.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<u32>,
    grad_loss: &DeviceBuffer<f32>,
    grad_stride: usize,
    scale: f32,
    rows: usize,
    cols: usize,
    grad_logits: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_backward";
    let gpu = same_gpu(
        OP,
        &[
            logits.gpu(),
            targets.gpu(),
            grad_loss.gpu(),
            grad_logits.gpu(),
        ],
    )?
    .clone();
    check_len(OP, "logits", logits, rows * cols)?;
    check_len(OP, "targets", targets, rows)?;
    check_len(OP, "grad_logits", grad_logits, rows * cols)?;
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let needed = (rows - 1) * grad_stride + 1;
    if grad_loss.len() < needed {
        return Err(CudaError::invalid(
            OP,
            format!(
                "grad_loss has {} elements, {rows} rows with stride {grad_stride} need {needed}",
                grad_loss.len()
            ),
        ));
    }
    let args = [
        Arg::Ptr(logits.device_ptr()),
        Arg::Ptr(targets.device_ptr()),
        Arg::Ptr(grad_loss.device_ptr()),
        Arg::I64(to_i64(OP, "grad stride", grad_stride)?),
        Arg::F32(scale),
        Arg::Ptr(grad_logits.device_ptr()),
        Arg::I64(to_i64(OP, "rows", rows)?),
        Arg::I64(to_i64(OP, "cols", cols)?),
    ];
    gpu.launch(
        KernelFile::Reduce,
        "cross_entropy_backward",
        rows_config(rows),
        &args,
    )
}
