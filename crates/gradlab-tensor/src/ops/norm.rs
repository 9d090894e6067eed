//! Batch normalisation of `[N, C, H, W]` tensors as single primitives
//! (training forward, evaluation forward, backward).

use crate::{Result, Tensor, TensorError};
use gradlab_cpu::BatchNormShape;

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
    pub fn batch_norm2d_train(
        &self,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "batch_norm2d_train";
        let s = problem(op, self, &[("weight", weight), ("bias", bias)], true)?;
        self.backend()
            .batch_norm2d_train(s, self, weight, bias, eps)
    }

    /// Evaluation-mode batch norm of `self` (`[N, C, H, W]`) with given
    /// per-channel statistics (shape `[C]`, usually the running ones):
    /// `(x - mean) / sqrt(var + eps) * weight + bias`, in one pass.
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
        self.backend()
            .batch_norm2d_inference(s, self, mean, var, weight, bias, eps)
    }

    /// The gradients of [`Tensor::batch_norm2d_train`] from the output
    /// gradient `self`, given its input `x` and the `mean` and `var` it
    /// returned: `(dx, dweight, dbias)`.
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
        self.backend()
            .batch_norm2d_backward(s, self, x, mean, var, weight, eps)
    }
}
