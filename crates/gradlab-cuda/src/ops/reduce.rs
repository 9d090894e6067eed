//! Reductions, softmax and cross-entropy over rows.

use super::{check_len, same_gpu, to_i64};
use crate::compile::KernelFile;
use crate::device::{Arg, Gpu};
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

impl ReduceOp {
    /// The op that combines partial results (a mean's partials are sums).
    fn partial(self) -> ReduceOp {
        if self == ReduceOp::Mean {
            ReduceOp::Sum
        } else {
            self
        }
    }
}

/// One 256-thread block per row (grid-stride over rows beyond the grid).
fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Most chunks one axis is cut into (the second pass reads them serially).
const MAX_CHUNKS: usize = 1024;

/// How many chunks to cut a reduced axis of `len` into when `outputs`
/// results are wanted: enough independent pieces of work to fill a GPU
/// (`work_items` blocks or threads), each piece at least `min_chunk` long.
/// Depends on the shape only, so a shape always reduces in the same order.
pub fn reduction_chunks(outputs: usize, len: usize, work_items: usize, min_chunk: usize) -> usize {
    let by_length = len / min_chunk.max(1);
    let wanted = work_items.div_ceil(outputs.max(1));
    by_length.min(wanted).clamp(1, MAX_CHUNKS)
}

/// Rows are cut into chunks of at least 4096 elements until about 256
/// blocks are busy; columns into chunks of at least 64 until about 64K
/// threads are.
const ROW_BLOCKS: usize = 256;
const ROW_MIN_CHUNK: usize = 4096;
const COLUMN_THREADS: usize = 1 << 16;
const COLUMN_MIN_CHUNK: usize = 64;

/// Reduces the middle axis of `x` viewed as contiguous `[outer, len, inner]`
/// into `out` `[outer, inner]`. Any contiguous run of dimensions can be
/// reduced this way (e.g. the last axis: `inner = 1`; a column sum:
/// `outer = 1`). A long axis with few outputs (a whole tensor, a bias
/// gradient) is cut into chunks reduced by many blocks, then the chunk
/// results are combined in chunk order: deterministic, the same bits every
/// run for a given shape.
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
    let chunks = if inner == 1 {
        reduction_chunks(outer, len, ROW_BLOCKS, ROW_MIN_CHUNK)
    } else {
        reduction_chunks(outer * inner, len, COLUMN_THREADS, COLUMN_MIN_CHUNK)
    };
    if chunks == 1 {
        return reduce_pass(
            &gpu,
            op,
            x.device_ptr(),
            out.device_ptr(),
            [outer, len, inner],
            1,
            len,
        );
    }
    // Pass 1: [outer, chunks, inner] partials; pass 2 reduces the chunk axis.
    let partials = DeviceBuffer::<f32>::uninit(&gpu, outer * chunks * inner)?;
    let shape = [outer, len, inner];
    reduce_pass(
        &gpu,
        op.partial(),
        x.device_ptr(),
        partials.device_ptr(),
        shape,
        chunks,
        len,
    )?;
    let combined = [outer, chunks, inner];
    reduce_pass(
        &gpu,
        op,
        partials.device_ptr(),
        out.device_ptr(),
        combined,
        1,
        len,
    )
}

/// One launch: `[outer, len, inner]` at `x` -> `[outer, chunks, inner]` at
/// `out`; a mean divides by `count`.
fn reduce_pass(
    gpu: &Gpu,
    op: ReduceOp,
    x: u64,
    out: u64,
    [outer, len, inner]: [usize; 3],
    chunks: usize,
    count: usize,
) -> Result<()> {
    const OP: &str = "reduce";
    let chunk = len.div_ceil(chunks).max(1);
    let i = |what: &str, v: usize| to_i64(OP, what, v).map(Arg::I64);
    if inner == 1 {
        let cfg = LaunchConfig {
            grid_dim: (chunks as u32, outer.clamp(1, 65_535) as u32, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let args = [
            Arg::I32(op as i32),
            Arg::Ptr(x),
            Arg::Ptr(out),
            i("outer", outer)?,
            i("len", len)?,
            i("chunk", chunk)?,
            i("count", count)?,
        ];
        gpu.launch(KernelFile::Reduce, "reduce_rows", cfg, &args)
    } else {
        let args = [
            Arg::I32(op as i32),
            Arg::Ptr(x),
            Arg::Ptr(out),
            i("outer", outer)?,
            i("len", len)?,
            i("inner", inner)?,
            i("chunks", chunks)?,
            i("chunk", chunk)?,
            i("count", count)?,
        ];
        let cfg = gpu.elementwise_config(outer * chunks * inner);
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

// ------------------------------------------------------------ cross-entropy --

/// How a loss combines its per-row values, as PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LossReduction {
    /// One loss per row.
    None,
    /// The sum over rows.
    Sum,
    /// The mean over the rows whose target is not `ignore_index`.
    #[default]
    Mean,
}

/// Options of [`cross_entropy_loss`], with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// A target equal to this counts for nothing (loss 0, gradient 0, not in
    /// the mean's denominator). PyTorch's default is -100.
    pub ignore_index: i64,
    /// Weight `eps` of the uniform distribution in the target:
    /// `(1 - eps) * onehot + eps / classes`.
    pub label_smoothing: f32,
    pub reduction: LossReduction,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: LossReduction::Mean,
        }
    }
}

fn check_options(op: &'static str, opts: &CrossEntropyOptions) -> Result<()> {
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(CudaError::invalid(
            op,
            format!("label_smoothing {} must be in [0, 1]", opts.label_smoothing),
        ));
    }
    Ok(())
}

/// Per-row losses into `losses` (all rows, 0 for ignored ones).
#[allow(clippy::too_many_arguments)]
fn cross_entropy_rows(
    gpu: &Gpu,
    logits: &DeviceBuffer<f32>,
    targets: u64,
    rows: usize,
    cols: usize,
    ignore_index: i64,
    smoothing: f32,
    losses: u64,
) -> Result<()> {
    const OP: &str = "cross_entropy";
    let args = [
        Arg::Ptr(logits.device_ptr()),
        Arg::Ptr(targets),
        Arg::I64(to_i64(OP, "rows", rows)?),
        Arg::I64(to_i64(OP, "cols", cols)?),
        Arg::I64(ignore_index),
        Arg::F32(smoothing),
        Arg::Ptr(losses),
        Arg::Ptr(gpu.status_block()),
    ];
    gpu.launch(
        KernelFile::Reduce,
        "cross_entropy_rows",
        rows_config(rows),
        &args,
    )?;
    gpu.check_status_later();
    Ok(())
}

/// PyTorch's `cross_entropy(logits, targets, ignore_index, label_smoothing,
/// reduction)` for logits `[rows, cols]` and i64 class indices `[rows]`.
///
/// Writes `out` (`rows` losses for [`LossReduction::None`], else one value)
/// and `total_weight[0]`, the number of rows whose target is not
/// `ignore_index` (what [`cross_entropy_loss_backward`] needs for a mean; a
/// mean over no counted row is NaN, as in PyTorch). A target outside
/// `0..cols` other than `ignore_index` is an error: the kernel records it on
/// the device, and the next [`Gpu::synchronize`] (or `to_host`) on this
/// device returns it, naming the row and the value; that row's loss is NaN.
/// Deterministic: the sum runs in a fixed order.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_loss(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<i64>,
    rows: usize,
    cols: usize,
    opts: &CrossEntropyOptions,
    out: &mut DeviceBuffer<f32>,
    total_weight: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy";
    let gpu = same_gpu(
        OP,
        &[logits.gpu(), targets.gpu(), out.gpu(), total_weight.gpu()],
    )?
    .clone();
    check_options(OP, opts)?;
    check_len(OP, "logits", logits, rows * cols)?;
    check_len(OP, "targets", targets, rows)?;
    let out_len = if opts.reduction == LossReduction::None {
        rows
    } else {
        1
    };
    check_len(OP, "output", out, out_len)?;
    check_len(OP, "total_weight", total_weight, 1)?;
    if rows > 0 && cols == 0 {
        return Err(CudaError::invalid(OP, "logits have no classes"));
    }
    let rows_into = |losses: u64| {
        if rows == 0 {
            return Ok(());
        }
        cross_entropy_rows(
            &gpu,
            logits,
            targets.device_ptr(),
            rows,
            cols,
            opts.ignore_index,
            opts.label_smoothing,
            losses,
        )
    };
    // Sums the row losses (a mean divides by the counted rows) into `value`,
    // and writes total_weight.
    let finish = |losses: u64, mean: bool, value: u64| {
        let args = [
            Arg::Ptr(losses),
            Arg::Ptr(targets.device_ptr()),
            Arg::I64(to_i64(OP, "rows", rows)?),
            Arg::I64(opts.ignore_index),
            Arg::I32(mean as i32),
            Arg::Ptr(value),
            Arg::Ptr(total_weight.device_ptr()),
        ];
        gpu.launch(
            KernelFile::Reduce,
            "cross_entropy_reduce",
            rows_config(1),
            &args,
        )
    };
    match opts.reduction {
        LossReduction::None => {
            rows_into(out.device_ptr())?;
            // total_weight still counts the rows, for a caller that averages later.
            let sum = DeviceBuffer::<f32>::uninit(&gpu, 1)?;
            finish(out.device_ptr(), false, sum.device_ptr())
        }
        reduction => {
            let losses = DeviceBuffer::<f32>::uninit(&gpu, rows.max(1))?;
            rows_into(losses.device_ptr())?;
            finish(
                losses.device_ptr(),
                reduction == LossReduction::Mean,
                out.device_ptr(),
            )
        }
    }
}

/// Gradient of [`cross_entropy_loss`] with respect to the logits, in one
/// kernel:
///
/// `grad_logits[r, c] = (softmax(logits[r])[c] - (1 - eps)·[c == t_r] - eps / cols) · g_r`
///
/// with `g_r = grad_out[r]` for [`LossReduction::None`], `grad_out[0]` for
/// `Sum`, `grad_out[0] / total_weight[0]` for `Mean`; rows whose target is
/// `ignore_index` get 0. A target out of range is reported as in
/// [`cross_entropy_loss`] (the row's gradient is NaN).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_loss_backward(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<i64>,
    rows: usize,
    cols: usize,
    opts: &CrossEntropyOptions,
    grad_out: &DeviceBuffer<f32>,
    total_weight: &DeviceBuffer<f32>,
    grad_logits: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_backward";
    let gpu = same_gpu(
        OP,
        &[
            logits.gpu(),
            targets.gpu(),
            grad_out.gpu(),
            total_weight.gpu(),
            grad_logits.gpu(),
        ],
    )?
    .clone();
    check_options(OP, opts)?;
    check_len(OP, "logits", logits, rows * cols)?;
    check_len(OP, "targets", targets, rows)?;
    check_len(OP, "grad_logits", grad_logits, rows * cols)?;
    check_len(OP, "total_weight", total_weight, 1)?;
    let (stride, weight) = match opts.reduction {
        LossReduction::None => {
            check_len(OP, "grad_out", grad_out, rows)?;
            (1, 0)
        }
        LossReduction::Sum => {
            check_len(OP, "grad_out", grad_out, 1)?;
            (0, 0)
        }
        LossReduction::Mean => {
            check_len(OP, "grad_out", grad_out, 1)?;
            (0, total_weight.device_ptr())
        }
    };
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    backward_launch(
        &gpu,
        logits,
        targets.device_ptr(),
        rows,
        cols,
        opts,
        grad_out.device_ptr(),
        stride,
        1.0,
        weight,
        grad_logits,
    )
}

#[allow(clippy::too_many_arguments)]
fn backward_launch(
    gpu: &Gpu,
    logits: &DeviceBuffer<f32>,
    targets: u64,
    rows: usize,
    cols: usize,
    opts: &CrossEntropyOptions,
    grad: u64,
    grad_stride: usize,
    scale: f32,
    total_weight: u64,
    grad_logits: &mut DeviceBuffer<f32>,
) -> Result<()> {
    const OP: &str = "cross_entropy_backward";
    let args = [
        Arg::Ptr(logits.device_ptr()),
        Arg::Ptr(targets),
        Arg::I64(to_i64(OP, "rows", rows)?),
        Arg::I64(to_i64(OP, "cols", cols)?),
        Arg::I64(opts.ignore_index),
        Arg::F32(opts.label_smoothing),
        Arg::Ptr(grad),
        Arg::I64(to_i64(OP, "grad stride", grad_stride)?),
        Arg::F32(scale),
        Arg::Ptr(total_weight),
        Arg::Ptr(grad_logits.device_ptr()),
        Arg::Ptr(gpu.status_block()),
    ];
    gpu.launch(
        KernelFile::Reduce,
        "cross_entropy_backward",
        rows_config(rows),
        &args,
    )?;
    gpu.check_status_later();
    Ok(())
}

/// Per-row cross-entropy of `logits` `[rows, cols]` against i64 class
/// indices: `losses[r] =
/// logsumexp(logits[r]) - logits[r, targets[r]]`, with no ignored index. A
/// target outside `0..cols` is reported as in [`cross_entropy_loss`].
/// Prefer [`cross_entropy_loss`], which has PyTorch's full semantics.
pub fn cross_entropy_forward(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<i64>,
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
    let t = targets.device_ptr();
    cross_entropy_rows(
        &gpu,
        logits,
        t,
        rows,
        cols,
        i64::MIN,
        0.0,
        losses.device_ptr(),
    )
}

/// Gradient of the per-row cross-entropy with respect to the logits:
/// `grad_logits[r, c] = (softmax(logits[r])[c] - [c == targets[r]]) * grad_loss[r * grad_stride] * scale`.
/// Use `grad_stride = 0` with a one-element `grad_loss` for a reduced loss,
/// and `scale = 1 / rows` for a mean. One kernel. Prefer
/// [`cross_entropy_loss_backward`], which has PyTorch's full semantics.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    logits: &DeviceBuffer<f32>,
    targets: &DeviceBuffer<i64>,
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
    let t = targets.device_ptr();
    let opts = CrossEntropyOptions {
        ignore_index: i64::MIN,
        label_smoothing: 0.0,
        reduction: LossReduction::None,
    };
    backward_launch(
        &gpu,
        logits,
        t,
        rows,
        cols,
        &opts,
        grad_loss.device_ptr(),
        grad_stride,
        scale,
        0,
        grad_logits,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_axes_with_few_outputs_are_cut_into_chunks() {
        // A whole 10M-element tensor: many blocks, each chunk >= 4096.
        let c = reduction_chunks(1, 10_000_000, ROW_BLOCKS, ROW_MIN_CHUNK);
        assert_eq!(c, 256);
        // Many rows already fill the device: one pass.
        assert_eq!(reduction_chunks(10_000, 1000, ROW_BLOCKS, ROW_MIN_CHUNK), 1);
        // Short rows are never cut.
        assert_eq!(reduction_chunks(1, 4095, ROW_BLOCKS, ROW_MIN_CHUNK), 1);
        // A bias gradient: 10 columns of a 100000-row matrix.
        let c = reduction_chunks(10, 100_000, COLUMN_THREADS, COLUMN_MIN_CHUNK);
        assert!(c > 1 && c <= MAX_CHUNKS, "{c}");
        assert_eq!(ReduceOp::Mean.partial(), ReduceOp::Sum);
        assert_eq!(ReduceOp::Max.partial(), ReduceOp::Max);
    }

    #[test]
    fn cross_entropy_defaults_are_pytorchs() {
        let o = CrossEntropyOptions::default();
        assert_eq!(o.ignore_index, -100);
        assert_eq!(o.label_smoothing, 0.0);
        assert_eq!(o.reduction, LossReduction::Mean);
        assert!(check_options(
            "t",
            &CrossEntropyOptions {
                label_smoothing: 1.5,
                ..o
            }
        )
        .is_err());
    }
}
