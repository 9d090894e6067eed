//! Training-mode batch normalisation of `[N, C, H, W]` tensors as single
//! kernels (see [`gradlab_cpu::norm`]), forward and backward.

use crate::{with_float, Element, Result, Shape, Tensor, TensorError};
use gradlab_cpu::{BatchNormShape, Float};

/// The batch and the per-channel parameters checked together.
fn problem(
    op: &'static str,
    x: &Tensor,
    per_channel: &[(&str, Option<&Tensor>)],
    batch_statistics: bool,
) -> Result<BatchNormShape> {
    let d = x.dims();
    if d.len() != 4 {
        return Err(TensorError::shape(
            op,
            format!("expects a 4-D input [N, C, H, W], got {}", x.shape()),
        ));
    }
    x.check_float(op)?;
    if x.is_cuda() {
        return Err(crate::cuda::unsupported(op, x.device()));
    }
    let s = BatchNormShape {
        batch: d[0],
        channels: d[1],
        plane: d[2] * d[3],
    };
    for (what, t) in per_channel {
        let Some(t) = t else { continue };
        if t.dims() != [s.channels] {
            return Err(TensorError::shape(
                op,
                format!("{what} must have shape [{}], got {}", s.channels, t.shape()),
            ));
        }
        if t.dtype() != x.dtype() {
            return Err(TensorError::DTypeMismatch {
                op,
                lhs: x.dtype(),
                rhs: t.dtype(),
            });
        }
        x.check_same_device(op, t)?;
    }
    if batch_statistics && s.count() < 2 && s.channels > 0 {
        return Err(TensorError::shape(
            op,
            format!(
                "training needs more than 1 value per channel, got input {}",
                x.shape()
            ),
        ));
    }
    Ok(s)
}

impl Tensor {
    /// Training-mode batch norm of `self` (`[N, C, H, W]`): returns
    /// `(y, mean, var)` with the batch's per-channel mean and biased
    /// variance (shape `[C]`) and
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias`.
    /// CPU only.
    pub fn batch_norm2d_train(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_train";
        let s = problem(op, self, &[("weight", weight), ("bias", bias)], true)?;
        with_float!(self.dtype(), op, |T| forward::<T>(
            op, s, self, weight, bias, eps
        ))
    }

    /// Evaluation-mode batch norm of `self` (`[N, C, H, W]`) with given
    /// per-channel statistics (shape `[C]`, usually the running ones):
    /// `(x - mean) / sqrt(var + eps) * weight + bias`, in one pass. CPU only.
    pub fn batch_norm2d_inference(
        &self,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "batch_norm2d_inference";
        let s = problem(
            op,
            self,
            &[
                ("mean", Some(mean)),
                ("var", Some(var)),
                ("weight", weight),
                ("bias", bias),
            ],
            false,
        )?;
        with_float!(self.dtype(), op, |T| {
            let xs = self.contiguous_slice::<T>(op)?;
            let (m, v) = (
                mean.contiguous_slice::<T>(op)?,
                var.contiguous_slice::<T>(op)?,
            );
            let w = weight.map(|w| w.contiguous_slice::<T>(op)).transpose()?;
            let b = bias.map(|b| b.contiguous_slice::<T>(op)).transpose()?;
            let mut y = vec![T::ZERO; s.len()];
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
            Tensor::from_vec(y, self.shape().clone())
        })
    }

    /// The gradients of [`Tensor::batch_norm2d_train`] from the output
    /// gradient `self`, given its input `x` and the `mean` and `var` it
    /// returned: `(dx, dweight, dbias)`. CPU only.
    pub fn batch_norm2d_backward(
        &self,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_backward";
        let s = problem(
            op,
            x,
            &[("mean", Some(mean)), ("var", Some(var)), ("weight", weight)],
            true,
        )?;
        if self.shape() != x.shape() || self.dtype() != x.dtype() {
            return Err(TensorError::shape(
                op,
                format!(
                    "the gradient ({} {}) must match the input ({} {})",
                    self.shape(),
                    self.dtype(),
                    x.shape(),
                    x.dtype()
                ),
            ));
        }
        with_float!(self.dtype(), op, |T| {
            let (dy, xs) = (
                self.contiguous_slice::<T>(op)?,
                x.contiguous_slice::<T>(op)?,
            );
            let (m, v) = (
                mean.contiguous_slice::<T>(op)?,
                var.contiguous_slice::<T>(op)?,
            );
            let w = weight.map(|w| w.contiguous_slice::<T>(op)).transpose()?;
            let mut dx = vec![T::ZERO; s.len()];
            let (mut dw, mut db) = (vec![T::ZERO; s.channels], vec![T::ZERO; s.channels]);
            gradlab_cpu::batch_norm2d_backward(
                s,
                &dy,
                &xs,
                &m,
                &v,
                w.as_deref(),
                eps,
                &mut dx,
                &mut dw,
                &mut db,
            );
            Ok((
                Tensor::from_vec(dx, x.shape().clone())?,
                Tensor::from_vec(dw, [s.channels])?,
                Tensor::from_vec(db, [s.channels])?,
            ))
        })
    }
}

fn forward<T: Element>(
    op: &'static str,
    s: BatchNormShape,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let xs = x.contiguous_slice::<T>(op)?;
    let w = weight.map(|w| w.contiguous_slice::<T>(op)).transpose()?;
    let b = bias.map(|b| b.contiguous_slice::<T>(op)).transpose()?;
    let mut y = vec![T::ZERO; s.len()];
    let (mut mean, mut var) = (vec![T::ZERO; s.channels], vec![T::ZERO; s.channels]);
    gradlab_cpu::batch_norm2d_train_forward(
        s,
        &xs,
        w.as_deref(),
        b.as_deref(),
        eps,
        &mut y,
        &mut mean,
        &mut var,
    );
    let channels = Shape::new([s.channels]);
    Ok((
        Tensor::from_vec(y, x.shape().clone())?,
        Tensor::from_vec(mean, channels.clone())?,
        Tensor::from_vec(var, channels)?,
    ))
}
