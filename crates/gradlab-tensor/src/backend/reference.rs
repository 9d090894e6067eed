//! The `reference` backend: every primitive as the plain loops of
//! [`gradlab_cpu::reference`], on dense copies of the operands.
//!
//! Nothing here is fast, and nothing is clever: each method gathers its
//! operands into row-major order (broadcasting first where the op
//! broadcasts), allocates the result and calls one reference loop. It is
//! the backend to step through in a debugger, and the specification the
//! `cpu` and `cuda` backends are tested against. Select it with
//! `GRADLAB_KERNELS=reference`, `--kernels reference` or
//! [`crate::backend::with_kernels`].

use super::host::{self, dense, dense_opt, tensor, unique_mut, zeros};
use super::{Backend, CrossEntropyRows, Primitive};
use crate::ops::reduce::split_at_dim;
use crate::{with_float, DType, Element, Layout, Result, Shape, Tensor, TensorError};
use gradlab_cpu::optim::{adam_update, sgd_update, AdamConfig, SgdConfig};
use gradlab_cpu::reference as r;
use gradlab_cpu::{BatchNormShape, BinaryOp, Conv2dShape, Float, Pool2dShape, UnaryOp};

/// The plain loops (see the module docs).
pub struct Reference;

/// `x` broadcast to `shape` and gathered into row-major order.
fn broadcast_dense<T: Element>(op: &'static str, x: &Tensor, shape: &Shape) -> Result<Vec<T>> {
    Ok(x.broadcast_to(shape.clone())?
        .contiguous_slice::<T>(op)?
        .into_owned())
}

/// A pool's argmax as the reference twin's `usize` (-1 becomes `usize::MAX`).
fn argmax_usize(op: &'static str, argmax: &Tensor, plane: usize) -> Result<Vec<usize>> {
    dense::<i64>(op, argmax)?
        .iter()
        .map(|&a| match a {
            -1 => Ok(usize::MAX),
            a if a >= 0 && (a as usize) < plane => Ok(a as usize),
            a => Err(TensorError::invalid(
                op,
                format!("argmax entry {a} is outside its plane of {plane} elements (or -1)"),
            )),
        })
        .collect()
}

fn checked_indices(op: &'static str, index: &Tensor, len: usize) -> Result<Vec<i64>> {
    let idx = dense::<i64>(op, index)?.into_owned();
    if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as u64 >= len as u64) {
        return Err(TensorError::invalid(
            op,
            format!("index {bad} is out of range for a dimension of size {len}"),
        ));
    }
    Ok(idx)
}

/// The targets, each checked to be a class in `0..classes` or the ignored
/// index (none when `ignore_index` is `None`).
fn checked_targets(
    op: &'static str,
    target: &Tensor,
    classes: usize,
    ignore_index: Option<i64>,
) -> Result<Vec<i64>> {
    let t = dense::<i64>(op, target)?.into_owned();
    // With nothing ignored, a value no target can take stands in for it.
    gradlab_cpu::loss::check_targets(&t, classes, ignore_index.unwrap_or(i64::MIN))
        .map_err(|e| TensorError::invalid(op, e.to_string()))?;
    Ok(t)
}

/// The kernels' view of the cross-entropy rows (the weights as a slice).
pub(crate) fn kernel_rows<'a, T: Element>(
    classes: usize,
    rows: &CrossEntropyRows,
    weight: &'a Option<std::borrow::Cow<'a, [T]>>,
) -> gradlab_cpu::loss::CrossEntropyRows<'a, T> {
    gradlab_cpu::loss::CrossEntropyRows {
        classes,
        ignore_index: rows.ignore_index,
        weight: weight.as_deref(),
        label_smoothing: rows.label_smoothing,
    }
}

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn gaps(&self) -> &'static [(Primitive, &'static str)] {
        &[]
    }

    fn full(&self, shape: &Shape, value: f64, dtype: DType) -> Result<Tensor> {
        super::cpu::Cpu.full(shape, value, dtype)
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
        with_float!(x.dtype(), op.name(), |T| {
            let src = dense::<T>(op.name(), x)?;
            let mut out = zeros::<T>(op.name(), src.len())?;
            r::unary(op, &src, &mut out);
            tensor(out, x.shape().clone())
        })
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, shape: &Shape) -> Result<Tensor> {
        with_float!(a.dtype(), op.name(), |T| {
            let (da, db) = (
                broadcast_dense::<T>(op.name(), a, shape)?,
                broadcast_dense::<T>(op.name(), b, shape)?,
            );
            let mut out = zeros::<T>(op.name(), shape.numel())?;
            r::binary(op, &da, &db, &mut out);
            tensor(out, shape.clone())
        })
    }

    fn sum(&self, x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
        let kept = crate::ops::reduce::reduced_shape(x.shape(), dims, true);
        with_float!(x.dtype(), "sum", |T| {
            let src = dense::<T>("sum", x)?;
            let mut out = zeros::<T>("sum", kept.numel())?;
            r::sum(&src, x.dims(), dims, &mut out);
            if scale != 1.0 {
                out.iter_mut().for_each(|v| *v *= T::from_f64(scale));
            }
            tensor(out, kept.clone())
        })
    }

    fn max_along(&self, x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
        let kept = crate::ops::reduce::reduced_shape(x.shape(), &[dim], true);
        let (outer, len, inner) = split_at_dim(x.dims(), dim);
        with_float!(x.dtype(), "max_dim", |T| {
            let src = dense::<T>("max_dim", x)?;
            let mut values = zeros::<T>("max_dim", outer * inner)?;
            let mut indices = zeros::<i64>("max_dim", outer * inner)?;
            r::max_along(&src, outer, len, inner, &mut values, &mut indices);
            Ok((
                tensor(values, kept.clone())?,
                tensor(indices, kept.clone())?,
            ))
        })
    }

    fn gather_along(&self, x: &Tensor, dim: usize, index: &Tensor) -> Result<Tensor> {
        let op = "gather_along";
        let full = x.dims()[dim];
        let idx = checked_indices(op, index, full)?;
        let (outer, len, inner) = split_at_dim(index.dims(), dim);
        with_float!(x.dtype(), op, |T| {
            let src = dense::<T>(op, x)?;
            let mut out = zeros::<T>(op, index.numel())?;
            r::gather_along(&src, full, &idx, outer, len, inner, &mut out);
            tensor(out, index.shape().clone())
        })
    }

    fn scatter_add_along(
        &self,
        src: &Tensor,
        dim: usize,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor> {
        let op = "scatter_add_along";
        let full = shape.dims()[dim];
        let idx = checked_indices(op, index, full)?;
        let (outer, len, inner) = split_at_dim(src.dims(), dim);
        with_float!(src.dtype(), op, |T| {
            let s = dense::<T>(op, src)?;
            let mut out = zeros::<T>(op, shape.numel())?;
            r::scatter_add_along(&s, &idx, outer, len, inner, full, &mut out);
            tensor(out, shape.clone())
        })
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
        let (ma, mb) = (
            a.layout().matrix_batch(batch)?,
            b.layout().matrix_batch(batch)?,
        );
        let (m, k, n) = (ma.rows, ma.cols, mb.cols);
        let mut out_dims = batch.dims().to_vec();
        out_dims.extend([m, n]);
        with_float!(a.dtype(), "matmul", |T| {
            let (da, db) = (
                a.storage_slice::<T>("matmul")?,
                b.storage_slice::<T>("matmul")?,
            );
            let mut out = zeros::<T>("matmul", batch.numel() * m * n)?;
            // One product per matrix of the batch, read in place through
            // each operand's strides.
            for ((c, oa), ob) in out
                .chunks_mut((m * n).max(1))
                .zip(ma.offsets())
                .zip(mb.offsets())
            {
                r::gemm(
                    m,
                    k,
                    n,
                    T::ONE,
                    &da[oa..],
                    ma.row_stride,
                    ma.col_stride,
                    &db[ob..],
                    mb.row_stride,
                    mb.col_stride,
                    T::ZERO,
                    c,
                    n,
                    1,
                );
            }
            tensor(out, out_dims.clone())
        })
    }

    fn conv2d(
        &self,
        s: &Conv2dShape,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
    ) -> Result<Tensor> {
        let op = "conv2d";
        with_float!(x.dtype(), op, |T| {
            let (xs, ws, bs) = (
                dense::<T>(op, x)?,
                dense::<T>(op, w)?,
                dense_opt::<T>(op, b)?,
            );
            let mut out = zeros::<T>(op, s.output_len())?;
            r::conv2d_forward(s, &xs, &ws, bs.as_deref(), &mut out);
            tensor(out, conv_output_shape(s))
        })
    }

    fn conv2d_backward_data(&self, s: &Conv2dShape, grad: &Tensor, w: &Tensor) -> Result<Tensor> {
        let op = "conv2d_backward_data";
        with_float!(grad.dtype(), op, |T| {
            let (g, ws) = (dense::<T>(op, grad)?, dense::<T>(op, w)?);
            let mut out = zeros::<T>(op, s.input_len())?;
            r::conv2d_backward_data(s, &g, &ws, &mut out);
            tensor(out, [s.batch, s.in_channels, s.in_h, s.in_w])
        })
    }

    fn conv2d_backward_weight(&self, s: &Conv2dShape, grad: &Tensor, x: &Tensor) -> Result<Tensor> {
        let op = "conv2d_backward_weight";
        with_float!(grad.dtype(), op, |T| {
            let (g, xs) = (dense::<T>(op, grad)?, dense::<T>(op, x)?);
            let mut out = zeros::<T>(op, s.weight_len())?;
            r::conv2d_backward_weight(s, &xs, &g, &mut out);
            tensor(
                out,
                [s.out_channels, s.in_per_group(), s.kernel_h, s.kernel_w],
            )
        })
    }

    fn max_pool2d(&self, s: &Pool2dShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let op = "max_pool2d";
        let shape = pool_output_shape(s);
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let mut out = zeros::<T>(op, s.output_len())?;
            let mut arg = zeros::<usize>(op, s.output_len())?;
            r::max_pool2d_forward(s, &xs, &mut out, &mut arg);
            let arg: Vec<i64> = arg
                .into_iter()
                .map(|a| if a == usize::MAX { -1 } else { a as i64 })
                .collect();
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
        let arg = argmax_usize(op, argmax, s.in_h * s.in_w)?;
        with_float!(grad.dtype(), op, |T| {
            let g = dense::<T>(op, grad)?;
            let mut out = zeros::<T>(op, s.input_len())?;
            r::max_pool2d_backward(s, &g, &arg, &mut out);
            tensor(out, [s.batch, s.channels, s.in_h, s.in_w])
        })
    }

    fn max_pool2d_gather(&self, s: &Pool2dShape, x: &Tensor, argmax: &Tensor) -> Result<Tensor> {
        let op = "max_pool2d_gather";
        let plane = s.in_h * s.in_w;
        let arg = argmax_usize(op, argmax, plane)?;
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let mut out = zeros::<T>(op, s.output_len())?;
            r::max_pool2d_gather(s, &xs, &arg, &mut out);
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
            let y = zeros::<T>(op, s.len())?;
            let kernel: host::NormTrainKernel<T> = r::batch_norm2d_train_forward;
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
            let mut y = zeros::<T>(op, s.len())?;
            r::batch_norm2d_inference(s, &xs, &m, &v, w.as_deref(), b.as_deref(), eps, &mut y);
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
            let dx = zeros::<T>(op, s.len())?;
            // Plain batch norm has no bias in its gradient.
            let kernel: host::NormBackwardKernel<T> =
                |s, dy, x, m, v, w, _bias, eps, dx, dw, db| {
                    r::batch_norm2d_backward(s, dy, x, m, v, w, eps, dx, dw, db)
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
            let y = zeros::<T>(op, s.len())?;
            let kernel: host::NormTrainKernel<T> = r::batch_norm2d_relu_train_forward;
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
            let dx = zeros::<T>(op, s.len())?;
            let kernel: host::NormBackwardKernel<T> = r::batch_norm2d_relu_backward;
            host::batch_norm_backward(op, s, grad, x, (mean, var), weight, bias, eps, dx, kernel)
        })
    }

    fn softmax(&self, x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
        let op = if log { "log_softmax" } else { "softmax" };
        let (outer, len, inner) = split_at_dim(x.dims(), dim);
        with_float!(x.dtype(), op, |T| {
            let xs = dense::<T>(op, x)?;
            let mut out = zeros::<T>(op, xs.len())?;
            r::softmax(&xs, outer, len, inner, log, &mut out);
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
        let t = checked_targets(op, target, classes, Some(rows.ignore_index))?;
        with_float!(logits.dtype(), op, |T| {
            let x = dense::<T>(op, logits)?;
            let w = dense_opt::<T>(op, rows.weight)?;
            let mut losses = zeros::<T>(op, n)?;
            let total =
                r::cross_entropy_forward(&x, &t, &kernel_rows(classes, rows, &w), &mut losses);
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
        let t = checked_targets(op, target, classes, Some(rows.ignore_index))?;
        with_float!(logits.dtype(), op, |T| {
            let (x, g) = (dense::<T>(op, logits)?, dense::<T>(op, grad)?);
            let w = dense_opt::<T>(op, rows.weight)?;
            let mut out = zeros::<T>(op, x.len())?;
            r::cross_entropy_backward(&x, &t, &kernel_rows(classes, rows, &w), &g, &mut out);
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
        let op = "one_hot";
        let mut t = checked_targets(op, target, classes, ignore_index)?;
        if let Some(ignored) = ignore_index {
            // An ignored row gets no one, even when the ignored index is a class.
            t.iter_mut()
                .filter(|v| **v == ignored)
                .for_each(|v| *v = -1);
        }
        with_float!(dtype, op, |T| {
            let mut out = zeros::<T>(op, t.len() * classes)?;
            r::one_hot(&t, classes, T::ONE, T::ZERO, &mut out);
            tensor(out, [t.len(), classes])
        })
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

/// The elements of `data` at `layout`'s offsets, in row-major order.
fn gather<T: Copy>(data: &[T], layout: &Layout) -> Result<Vec<T>> {
    let mut out = gradlab_cpu::alloc::try_vec("copy", layout.numel())?;
    layout.for_each_offset(|o| out.push(data[o]));
    Ok(out)
}

pub(crate) fn conv_output_shape(s: &Conv2dShape) -> Shape {
    Shape::new([s.batch, s.out_channels, s.out_h(), s.out_w()])
}

pub(crate) fn pool_output_shape(s: &Pool2dShape) -> Shape {
    Shape::new([s.batch, s.channels, s.out_h(), s.out_w()])
}

/// The SGD step both host backends run: the plain loop of
/// [`gradlab_cpu::optim::sgd_update`] on unique buffers.
pub(crate) fn sgd_on_host(
    param: &mut Tensor,
    grad: &Tensor,
    momentum: Option<(&mut Tensor, bool)>,
    config: &SgdConfig,
) -> Result<()> {
    let op = "sgd_step";
    with_float!(param.dtype(), op, |T| {
        let g = dense::<T>(op, grad)?;
        let p = unique_mut::<T>(op, param)?;
        match momentum {
            Some((buf, first)) => {
                let b = unique_mut::<T>(op, buf)?;
                sgd_update(p, &g, Some((b, first)), config);
            }
            None => sgd_update(p, &g, None, config),
        }
        Ok(())
    })
}

/// The Adam(W) step both host backends run.
pub(crate) fn adam_on_host(
    param: &mut Tensor,
    grad: &Tensor,
    exp_avg: &mut Tensor,
    exp_avg_sq: &mut Tensor,
    step: u64,
    config: &AdamConfig,
) -> Result<()> {
    let op = "adam_step";
    with_float!(param.dtype(), op, |T| {
        let g = dense::<T>(op, grad)?;
        let p = unique_mut::<T>(op, param)?;
        let m = unique_mut::<T>(op, exp_avg)?;
        let v = unique_mut::<T>(op, exp_avg_sq)?;
        adam_update(p, &g, m, v, step, config);
        Ok(())
    })
}
