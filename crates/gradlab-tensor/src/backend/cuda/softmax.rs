//! Softmax over a dim, per-row cross-entropy and its gradient, one-hot rows.

use super::{alloc, backend, dense, dense_index, from_f32, gpu_of, move_dim_last};
use crate::backend::CrossEntropyRows;
use crate::{DType, Result, Shape, Tensor, TensorError};
use gradlab_cpu::Pool2dShape;
use gradlab_cuda as cu;

/// Softmax (or log-softmax) along `dim`; the kernels work on rows, so
/// another dim is moved last and back (two copies).
pub(super) fn softmax(x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    let last = dim + 1 == x.rank();
    let (perm, inverse) = move_dim_last(x.rank(), dim);
    let rows_view = if last { x.clone() } else { x.permute(&perm)? };
    let cols = x.dims()[dim];
    let rows = x.numel().checked_div(cols).unwrap_or(0);
    let src = dense(op, &rows_view)?;
    let mut out = alloc(op, x, x.numel())?;
    let launch = if log {
        cu::log_softmax_rows
    } else {
        cu::softmax_rows
    };
    launch(&src, rows, cols, &mut out).map_err(backend(op))?;
    let y = from_f32(out, rows_view.shape().clone());
    if last {
        Ok(y)
    } else {
        y.permute(&inverse)?.contiguous()
    }
}

/// The options of gradlab-cuda's fused loss for `rows`, one loss per row.
fn fused_options(rows: &CrossEntropyRows, label_smoothing: f64) -> cu::CrossEntropyOptions {
    cu::CrossEntropyOptions {
        ignore_index: rows.ignore_index,
        label_smoothing: label_smoothing as f32,
        reduction: cu::LossReduction::None,
    }
}

/// Per-row cross-entropy of logits `[R, C]` against CUDA class indices
/// `[R]` and the total weight of the rows that count. Without class
/// weights this is gradlab-cuda's fused kernel (ignore index and smoothing
/// included). With weights, the fused kernel's unsmoothed rows
/// `lse - x_t` (which also check the targets) are scaled by `w_t`, and the
/// smoothing term `Σ_c w_c (lse - x_c) = -Σ_c w_c log_softmax(x)_c` is
/// composed of tensor ops on the device. A target outside `0..C` that is
/// not ignored gives a NaN loss, and the next synchronisation reports it.
pub(super) fn cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    rows: &CrossEntropyRows,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "cross_entropy";
    let (n, cols) = (logits.dims()[0], logits.dims()[1]);
    let eps = rows.label_smoothing;
    let fused_eps = if rows.weight.is_some() { 0.0 } else { eps };
    let x = dense(OP, logits)?;
    let t = dense_index(OP, target)?;
    let mut losses = alloc(OP, logits, n)?;
    let mut total = alloc(OP, logits, 1)?;
    cu::cross_entropy_loss(
        &x,
        &t,
        n,
        cols,
        &fused_options(rows, fused_eps),
        &mut losses,
        &mut total,
    )
    .map_err(backend(OP))?;
    let losses = from_f32(losses, Shape::new([n]));
    let Some(weight) = rows.weight else {
        return Ok((losses, from_f32(total, Shape::scalar())));
    };
    // q: the one-hot rows of the counted targets; w_t = Σ_c q_c w_c.
    let q = one_hot(target, cols, DType::F32, Some(rows.ignore_index))?;
    let w = weight.reshape([1, cols])?;
    let w_t = q.mul(&w)?.sum(Some(&[1]), false)?;
    let mut loss = losses.mul(&w_t)?.mul_scalar(1.0 - eps)?;
    if eps != 0.0 {
        let counted = q.sum(Some(&[1]), false)?;
        let smooth = logits
            .log_softmax(1)?
            .mul(&w)?
            .sum(Some(&[1]), false)?
            .mul(&counted)?
            .mul_scalar(-eps / cols as f64)?;
        loss = loss.add(&smooth)?;
    }
    Ok((loss, w_t.sum_all()?))
}

/// `(softmax(x) Σ q - q) * g` per row: gradlab-cuda's fused kernel without
/// class weights; with them, the weighted target rows `q` are built on the
/// device and the gradient composed of tensor ops.
pub(super) fn cross_entropy_backward(
    logits: &Tensor,
    target: &Tensor,
    rows: &CrossEntropyRows,
    grad: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_backward";
    let (n, cols) = (logits.dims()[0], logits.dims()[1]);
    if rows.weight.is_some() {
        let opts = crate::ops::CrossEntropyOptions {
            ignore_index: rows.ignore_index,
            label_smoothing: rows.label_smoothing,
            weight: rows.weight.cloned(),
            ..Default::default()
        };
        let q = Tensor::cross_entropy_target(target, cols, &opts, DType::F32)?;
        let mass = q.sum(Some(&[1]), true)?;
        return logits
            .softmax(1)?
            .mul(&mass)?
            .sub(&q)?
            .mul(&grad.reshape([n, 1])?);
    }
    let x = dense(OP, logits)?;
    let t = dense_index(OP, target)?;
    let g = dense(OP, grad)?;
    // One loss per row: the total weight is not read, but must exist.
    let unused_total = alloc(OP, logits, 1)?;
    let mut out = alloc(OP, logits, n * cols)?;
    cu::cross_entropy_loss_backward(
        &x,
        &t,
        n,
        cols,
        &fused_options(rows, rows.label_smoothing),
        &g,
        &unused_total,
        &mut out,
    )
    .map_err(backend(OP))?;
    Ok(from_f32(out, logits.shape().clone()))
}

/// One-hot rows on the device. They are a max-pool backward: one window
/// per row, whose argmax is the target, routing a gradient of 1 there. A
/// target outside `0..classes` (the ignored index among them) gives a row
/// without its one; an ignored index that is a class has its column zeroed.
pub(super) fn one_hot(
    target: &Tensor,
    classes: usize,
    dtype: DType,
    ignore_index: Option<i64>,
) -> Result<Tensor> {
    const OP: &str = "one_hot";
    if dtype != DType::F32 {
        return Err(TensorError::UnsupportedDType {
            op: OP,
            dtype,
            expected: "f32 on CUDA",
        });
    }
    let rows = target.numel();
    let shape = Shape::new([rows, classes]);
    if rows == 0 || classes == 0 {
        return super::transfer::full(shape, 0.0, dtype, target.device());
    }
    let idx = dense_index(OP, target)?;
    let gpu = gpu_of(OP, target)?;
    let mut ones = cu::DeviceBuffer::uninit(&gpu, rows).map_err(backend(OP))?;
    cu::fill(&mut ones, 1.0).map_err(backend(OP))?;
    let mut rows_out = cu::DeviceBuffer::uninit(&gpu, rows * classes).map_err(backend(OP))?;
    let rows_as_windows = Pool2dShape {
        batch: rows,
        channels: 1,
        in_h: 1,
        in_w: classes,
        kernel: (1, classes),
        stride: (1, classes),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    };
    cu::max_pool2d_backward(&rows_as_windows, &ones, &idx, &mut rows_out).map_err(backend(OP))?;
    let q = from_f32(rows_out, shape);
    match ignore_index.and_then(|i| usize::try_from(i).ok()) {
        // The ignored class is no target: every one in its column marks an ignored row.
        Some(ignored) if ignored < classes => {
            let mut keep = vec![1.0f32; classes];
            keep[ignored] = 0.0;
            q.mul(&Tensor::from_vec(keep, [1, classes])?.to_device(target.device())?)
        }
        _ => Ok(q),
    }
}
