//! Softmax over a dim, fused cross-entropy and its target distribution on CUDA.

use super::{alloc, backend, dense, dense_index, from_f32, gpu_of, move_dim_last};
use crate::ops::{Reduction, UnaryOp};
use crate::{DType, Result, Shape, Tensor, TensorError};
use gradlab_cpu::Pool2dShape;
use gradlab_cuda as cu;

/// Softmax (or log-softmax) along `dim`; the kernels work on rows, so
/// another dim is moved last and back (two copies).
pub(crate) fn softmax(x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
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

/// Mean or summed cross-entropy of logits `[N, C]` against CUDA class
/// indices `[N]`, with label smoothing `eps`:
/// `(1 - eps) * (lse - x_t) + eps / C * (C * lse - Σ x) = (1 - eps) * ce - eps / C * Σ log_softmax`.
/// A target outside `0..C` gives a NaN loss (checking it would need the
/// targets on the host).
pub(crate) fn cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    reduction: Reduction,
    eps: f64,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
    let (rows, cols) = (logits.dims()[0], logits.dims()[1]);
    if reduction == Reduction::Mean && rows == 0 {
        return Err(TensorError::shape(OP, "mean over an empty batch"));
    }
    let x = dense(OP, logits)?;
    let t = dense_index(OP, target)?;
    let mut losses = alloc(OP, logits, rows)?;
    cu::cross_entropy_forward(&x, &t, rows, cols, &mut losses).map_err(backend(OP))?;
    let mut per_sample = from_f32(losses, Shape::new([rows]));
    if eps != 0.0 {
        let smooth = logits
            .log_softmax(1)?
            .sum(Some(&[1]), false)?
            .mul_scalar(-eps / cols as f64)?;
        per_sample = per_sample.mul_scalar(1.0 - eps)?.add(&smooth)?;
    }
    match reduction {
        Reduction::Sum => per_sample.sum_all(),
        Reduction::Mean => per_sample.mean(None, false),
    }
}

/// `(1 - eps) * one_hot(target) + eps / classes` on the device. The one-hot
/// rows are a max-pool backward: one window per row, whose argmax is the
/// target, routing a gradient of 1 there. A target out of range gives a row
/// without its one.
pub(crate) fn cross_entropy_target(
    target: &Tensor,
    classes: usize,
    eps: f64,
    dtype: DType,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy";
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
        return Tensor::zeros_on(shape, dtype, target.device());
    }
    let idx = dense_index(OP, target)?;
    let gpu = gpu_of(OP, target)?;
    let mut ones = cu::DeviceBuffer::uninit(&gpu, rows).map_err(backend(OP))?;
    cu::fill(&mut ones, 1.0).map_err(backend(OP))?;
    let mut one_hot = cu::DeviceBuffer::uninit(&gpu, rows * classes).map_err(backend(OP))?;
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
    cu::max_pool2d_backward(&rows_as_windows, &ones, &idx, &mut one_hot).map_err(backend(OP))?;
    let q = from_f32(one_hot, shape);
    if eps == 0.0 {
        return Ok(q);
    }
    q.unary(UnaryOp::MulScalar(1.0 - eps))?
        .unary(UnaryOp::AddScalar(eps / classes as f64))
}
