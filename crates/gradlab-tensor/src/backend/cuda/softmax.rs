//! Softmax over a dim, per-row cross-entropy and its gradient, one-hot rows.

use super::{alloc, backend, dense, dense_index, from_f32, gpu_of, move_dim_last};
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

/// Per-row cross-entropy of logits `[R, C]` against CUDA class indices
/// `[R]`, with label smoothing `eps`:
/// `(1 - eps) * (lse - x_t) + eps / C * (C * lse - Σ x) = (1 - eps) * ce - eps / C * Σ log_softmax`.
/// A target outside `0..C` gives a NaN loss (checking it would need the
/// targets on the host).
pub(super) fn cross_entropy(logits: &Tensor, target: &Tensor, eps: f64) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let (rows, cols) = (logits.dims()[0], logits.dims()[1]);
    let x = dense(OP, logits)?;
    let t = dense_index(OP, target)?;
    let mut losses = alloc(OP, logits, rows)?;
    cu::cross_entropy_forward(&x, &t, rows, cols, &mut losses).map_err(backend(OP))?;
    let per_row = from_f32(losses, Shape::new([rows]));
    if eps == 0.0 {
        return Ok(per_row);
    }
    let smooth = logits
        .log_softmax(1)?
        .sum(Some(&[1]), false)?
        .mul_scalar(-eps / cols as f64)?;
    per_row.mul_scalar(1.0 - eps)?.add(&smooth)
}

/// `(softmax(x) - q) * g` per row: the fused kernel gives
/// `(softmax(x) - one_hot) * g`, and smoothing adds `eps * (one_hot - 1/C) * g`.
pub(super) fn cross_entropy_backward(
    logits: &Tensor,
    target: &Tensor,
    eps: f64,
    grad: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_backward";
    let (rows, cols) = (logits.dims()[0], logits.dims()[1]);
    let x = dense(OP, logits)?;
    let t = dense_index(OP, target)?;
    let g = dense(OP, grad)?;
    let mut out = alloc(OP, logits, rows * cols)?;
    cu::cross_entropy_backward(&x, &t, &g, 1, 1.0, rows, cols, &mut out).map_err(backend(OP))?;
    let base = from_f32(out, logits.shape().clone());
    if eps == 0.0 {
        return Ok(base);
    }
    let g_rows = grad.reshape([rows, 1])?;
    let correction = one_hot(target, cols, DType::F32)?
        .add_scalar(-1.0 / cols as f64)?
        .mul(&g_rows)?
        .mul_scalar(eps)?;
    base.add(&correction)
}

/// One-hot rows on the device. They are a max-pool backward: one window
/// per row, whose argmax is the target, routing a gradient of 1 there. A
/// target out of range gives a row without its one.
pub(super) fn one_hot(target: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
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
    Ok(from_f32(rows_out, shape))
}
