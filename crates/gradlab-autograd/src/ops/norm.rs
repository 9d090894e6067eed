//! Batch normalisation, composed from differentiable ops (so its gradient,
//! and the gradient of that, are exact).

use crate::{Result, Var};
use gradlab_tensor::TensorError;

/// Batch statistics of a `[N, C, H, W]` var: per-channel mean and biased
/// variance, each shaped `[1, C, 1, 1]`.
#[track_caller]
pub fn batch_stats2d(x: &Var) -> Result<(Var, Var)> {
    if x.rank() != 4 {
        return Err(TensorError::shape(
            "batch_norm2d",
            format!("expects a 4-D input [N, C, H, W], got {}", x.shape()),
        )
        .into());
    }
    let mean = x.mean(Some(&[0, 2, 3]), true)?;
    let centered = x.sub(&mean)?;
    let var = centered.mul(&centered)?.mean(Some(&[0, 2, 3]), true)?;
    Ok((mean, var))
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` with per-channel
/// statistics shaped `[1, C, 1, 1]` and affine parameters shaped `[C]`.
#[track_caller]
pub fn batch_norm2d(
    x: &Var,
    mean: &Var,
    var: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    let channels = x.dims().get(1).copied().unwrap_or(0);
    let mut y = x.sub(mean)?.div(&var.add_scalar(eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(&w.reshape([1, channels, 1, 1])?)?;
    }
    if let Some(b) = bias {
        y = y.add(&b.reshape([1, channels, 1, 1])?)?;
    }
    Ok(y)
}

/// Batch norm in training mode: normalises with the batch's own statistics.
#[track_caller]
pub fn batch_norm2d_train(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    let (mean, var) = batch_stats2d(x)?;
    batch_norm2d(x, &mean, &var, weight, bias, eps)
}
