//! The `cpu` backend: the fast kernels of [`gradlab_cpu`] (SIMD micro-kernels,
//! packed GEMM, rayon over large problems), and fast paths for strided and
//! broadcast operands. Every result matches the [`reference`](super::reference)
//! backend up to floating-point reassociation, and does not depend on the
//! number of threads.

mod elementwise;
mod par_map;
mod products;
mod reduce;

pub(crate) use elementwise::gather;

use super::host::{self, dense, dense_opt, tensor};
use super::recycle;
use super::reference::{adam_on_host, kernel_rows, pool_output_shape, sgd_on_host};
use super::{Backend, CrossEntropyRows, Primitive};
use crate::ops::reduce::split_at_dim;
use crate::storage::CpuStorage;
use crate::{with_float, DType, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::optim::{AdamConfig, SgdConfig};
use gradlab_cpu::{BatchNormShape, BinaryOp, Conv2dShape, Pool2dShape, UnaryOp};
use std::borrow::Cow;

/// The fast kernels (see the module docs).
pub struct Cpu;

/// The argmax entries as a slice, each checked to be `-1` (no winner) or
/// an index within a plane of `plane` elements: they may come from a user.
fn checked_argmax<'a>(
    op: &'static str,
    argmax: &'a Tensor,
    plane: usize,
) -> Result<Cow<'a, [i64]>> {
    let arg = argmax.contiguous_slice::<i64>(op)?;
    // A branch-free pass (the compiler vectorises it); the error path finds the culprit.
    let valid = arg
        .iter()
        .fold(true, |ok, &a| ok & (a >= -1) & (a < plane as i64));
    if !valid {
        let (at, bad) = arg
            .iter()
            .enumerate()
            .find(|(_, &a)| a < -1 || a >= plane as i64)
            .map(|(i, &a)| (i, a))
            .unwrap_or((0, 0));
        return Err(TensorError::invalid(
            op,
            format!("argmax entry {bad} at flat index {at} is outside its plane of {plane} elements (or -1)"),
        ));
    }
    Ok(arg)
}

fn label_error(op: &'static str) -> impl Fn(gradlab_cpu::LabelOutOfRange) -> TensorError {
    move |e| TensorError::invalid(op, e.to_string())
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn gaps(&self) -> &'static [(Primitive, &'static str)] {
        &[]
    }

    fn full(&self, shape: &Shape, value: f64, dtype: DType) -> Result<Tensor> {
        let n = shape.numel();
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(host::filled("full", n, value as f32)?),
            DType::F64 => CpuStorage::F64(host::filled("full", n, value)?),
            DType::I64 => CpuStorage::I64(host::filled("full", n, value as i64)?),
        };
        Ok(Tensor::from_cpu(
            storage,
            Layout::contiguous(shape.clone(), 0),
        ))
    }

    fn copy(&self, x: &Tensor) -> Result<Tensor> {
        let shape = x.shape().clone();
        host::any_dtype(
            x,
            "copy",
            |v| tensor(gather(v, x.layout())?, shape.clone()),
            |v| tensor(gather(v, x.layout())?, shape.clone()),
            |v| tensor(gather(v, x.layout())?, shape.clone()),
        )?
    }

    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        Ok(host::from_f64(x.to_vec_f64()?, x.shape().clone(), dtype))
    }

    fn assemble(&self, shape: &Shape, dtype: DType, parts: &[(&Tensor, Layout)]) -> Result<Tensor> {
        match dtype {
            DType::F32 => host::assemble::<f32>("assemble", shape, parts),
            DType::F64 => host::assemble::<f64>("assemble", shape, parts),
            DType::I64 => host::assemble::<i64>("assemble", shape, parts),
        }
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        with_float!(x.dtype(), op.name(), |T| elementwise::unary::<T>(x, op))
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, shape: &Shape) -> Result<Tensor> {
        with_float!(a.dtype(), op.name(), |T| elementwise::binary::<T>(
            a, b, op, shape
        ))
    }

    fn sum(&self, x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
        with_float!(x.dtype(), "sum", |T| reduce::sum::<T>(x, dims, scale))
    }

    fn max_along(&self, x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
        with_float!(x.dtype(), "max_dim", |T| reduce::max_along::<T>(x, dim))
    }

    fn gather_along(&self, x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor> {
        with_float!(x.dtype(), "gather_along", |T| reduce::gather_along::<T>(
            x, dim, index
        ))
    }

    fn scatter_add_along(
        &self,
        src: &Tensor,
        dim: usize,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor> {
        with_float!(src.dtype(), "scatter_add_along", |T| {
            reduce::scatter_add_along::<T>(src, dim, index, shape)
        })
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
        with_float!(a.dtype(), "matmul", |T| products::matmul::<T>(a, b, batch))
    }

    fn conv2d(
        &self,
        s: &Conv2dShape,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> Result<Tensor> {
        with_float!(x.dtype(), "conv2d", |T| products::conv2d::<T>(s, x, w, b))
    }

    fn conv2d_backward_data(&self, s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor> {
        with_float!(grad.dtype(), "conv2d_backward_data", |T| {
            products::conv2d_backward_data::<T>(s, grad, w)
        })
    }

    fn conv2d_backward_weight(&self, s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor> {
        with_float!(grad.dtype(), "conv2d_backward_weight", |T| {
            products::conv2d_backward_weight::<T>(s, grad, x)
        })
    }

    fn max_pool2d(&self, s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let op = "max_pool2d";
        let shape = pool_output_shape(s);
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let mut out = recycle::output::<T>(op, s.output_len())?;
            let mut arg = recycle::output::<i64>(op, s.output_len())?;
            gradlab_cpu::max_pool2d_forward(s, &xs, &mut out, &mut arg);
            Ok((tensor(out, shape.clone())?, tensor(arg, shape.clone())?))
        })
    }

    fn max_pool2d_backward(
        &self,
        s: &Pool2dShape,
        grad: &Tensor,
        argmax: &Tensor,
    ) -> Result<Tensor> {
        let op = "max_pool2d_backward";
        // Checked by the scatter itself: an argmax may come from a user.
        let arg = argmax.contiguous_slice::<i64>(op)?;
        with_float!(grad.dtype(), op, |T| {
            let g = dense::<T>(op, grad)?;
            // A recycled buffer, cleared by the kernel's own parallel tasks:
            // a fresh zeroed one of this size costs a page fault per 4 KiB
            // on first touch, which for the convnet's first pooling layer
            // took longer than the scatter itself.
            let mut out = recycle::output::<T>(op, s.input_len())?;
            gradlab_cpu::try_max_pool2d_backward(s, &g, &arg, &mut out)
                .map_err(|e| TensorError::invalid(op, e.to_string()))?;
            tensor(out, [s.batch, s.channels, s.in_h, s.in_w])
        })
    }

    fn max_pool2d_gather(&self, s: &Pool2dShape, x: &Tensor, argmax: &Tensor) -> Result<Tensor> {
        let op = "max_pool2d_gather";
        let plane = s.in_h * s.in_w;
        let arg = checked_argmax(op, argmax, plane)?;
        let out_plane = s.out_h() * s.out_w();
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let out: Vec<T> = arg
                .iter()
                .enumerate()
                .map(|(o, &a)| match usize::try_from(a) {
                    Ok(a) => xs[(o / out_plane) * plane + a],
                    Err(_) => gradlab_cpu::Float::ZERO,
                })
                .collect();
            tensor(out, pool_output_shape(s))
        })
    }

    fn batch_norm2d_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_train";
        with_float!(x.dtype(), op, |T| {
            let y = recycle::output::<T>(op, s.len())?;
            let kernel: host::NormTrainKernel<T> = gradlab_cpu::batch_norm2d_train_forward;
            host::batch_norm_train(op, s, x, weight, bias, eps, y, kernel)
        })
    }

    fn batch_norm2d_inference(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "batch_norm2d_inference";
        with_float!(x.dtype(), op, |T| {
            let (xs, m, v) = (
                dense::<T>(op, x)?,
                dense::<T>(op, mean)?,
                dense::<T>(op, var)?,
            );
            let (w, b) = (dense_opt::<T>(op, weight)?, dense_opt::<T>(op, bias)?);
            let mut y = recycle::output::<T>(op, s.len())?;
            gradlab_cpu::batch_norm2d_inference(
                s,
                &xs,
                &m,
                &v,
                w.as_deref(),
                b.as_deref(),
                eps,
                &mut y,
            );
            tensor(y, x.shape().clone())
        })
    }

    fn batch_norm2d_backward(
        &self,
        s: BatchNormShape,
        grad: &Tensor,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_backward";
        with_float!(x.dtype(), op, |T| {
            let dx = recycle::output::<T>(op, s.len())?;
            // Plain batch norm has no bias in its gradient.
            let kernel: host::NormBackwardKernel<T> =
                |s, dy, x, m, v, w, _bias, eps, dx, dw, db| {
                    gradlab_cpu::batch_norm2d_backward(s, dy, x, m, v, w, eps, dx, dw, db)
                };
            host::batch_norm_backward(op, s, grad, x, (mean, var), weight, None, eps, dx, kernel)
        })
    }

    fn batch_norm2d_relu_train(
        &self,
        s: BatchNormShape,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_relu_train";
        with_float!(x.dtype(), op, |T| {
            let y = recycle::output::<T>(op, s.len())?;
            let kernel: host::NormTrainKernel<T> = gradlab_cpu::batch_norm2d_relu_train_forward;
            host::batch_norm_train(op, s, x, weight, bias, eps, y, kernel)
        })
    }

    fn batch_norm2d_relu_backward(
        &self,
        s: BatchNormShape,
        grad: &Tensor,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_relu_backward";
        with_float!(x.dtype(), op, |T| {
            let dx = recycle::output::<T>(op, s.len())?;
            let kernel: host::NormBackwardKernel<T> = gradlab_cpu::batch_norm2d_relu_backward;
            host::batch_norm_backward(op, s, grad, x, (mean, var), weight, bias, eps, dx, kernel)
        })
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        let (outer, len, inner) = split_at_dim(x.dims(), dim);
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let mut out = recycle::output::<T>(op, xs.len())?;
            // No faster kernel exists for softmax: the sizes the engine
            // sees (class logits) are small, and the loop is memory-bound.
            gradlab_cpu::reference::softmax(&xs, outer, len, inner, log, &mut out);
            tensor(out, x.shape().clone())
        })
    }

    fn cross_entropy(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
    ) -> Result<(Tensor, Tensor)> {
        let op = "cross_entropy";
        let (n, classes) = (logits.dims()[0], logits.dims()[1]);
        let t = dense::<i64>(op, target)?;
        with_float!(logits.dtype(), op, |T| {
            let x = dense::<T>(op, logits)?;
            let w = dense_opt::<T>(op, rows.weight)?;
            // Every row is written (an ignored one with 0).
            let mut losses = recycle::output::<T>(op, n)?;
            let total = gradlab_cpu::cross_entropy_forward(
                &x,
                &t,
                &kernel_rows(classes, rows, &w),
                &mut losses,
            )
            .map_err(label_error(op))?;
            Ok((tensor(losses, [n])?, Tensor::scalar(total)))
        })
    }

    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        target: &Tensor,
        rows: &CrossEntropyRows,
        grad: &Tensor,
    ) -> Result<Tensor> {
        let op = "cross_entropy_backward";
        let classes = logits.dims()[1];
        let t = dense::<i64>(op, target)?;
        with_float!(logits.dtype(), op, |T| {
            let (x, g) = (dense::<T>(op, logits)?, dense::<T>(op, grad)?);
            let w = dense_opt::<T>(op, rows.weight)?;
            // Every row is written (an ignored one with 0).
            let mut out = recycle::output::<T>(op, x.len())?;
            gradlab_cpu::cross_entropy_backward(
                &x,
                &t,
                &kernel_rows(classes, rows, &w),
                &g,
                &mut out,
            )
            .map_err(label_error(op))?;
            tensor(out, logits.shape().clone())
        })
    }

    fn one_hot(
        &self,
        target: &Tensor,
        classes: usize,
        dtype: DType,
        ignore_index: Option<i64>,
    ) -> Result<Tensor> {
        super::reference::Reference.one_hot(target, classes, dtype, ignore_index)
    }

    fn sgd_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        momentum: Option<(&mut Tensor, bool)>,
        config: &SgdConfig,
    ) -> Result<()> {
        sgd_on_host(param, grad, momentum, config)
    }

    fn adam_step(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        exp_avg: &mut Tensor,
        exp_avg_sq: &mut Tensor,
        step: u64,
        config: &AdamConfig,
    ) -> Result<()> {
        adam_on_host(param, grad, exp_avg, exp_avg_sq, step, config)
    }
}
