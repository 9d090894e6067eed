//! Batch normalisation on CUDA, composed of tensor ops that run on the
//! device (there is no batch-norm kernel): the formulas of the reference
//! twins in `gradlab_cpu::reference`, written with sums and broadcasts.

use crate::{Result, Tensor};
use gradlab_cpu::BatchNormShape;

const DIMS: &[isize] = &[0, 2, 3];

/// `[C]` as `[1, C, 1, 1]`, to broadcast over `[N, C, H, W]`.
fn per_channel(t: &Tensor, s: BatchNormShape) -> Result<Tensor> {
    t.reshape([1, s.channels, 1, 1])
}

fn normalise(
    s: BatchNormShape,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let invstd = per_channel(&var.add_scalar(eps)?.powf(-0.5)?, s)?;
    let mut y = x.sub(&per_channel(mean, s)?)?.mul(&invstd)?;
    if let Some(w) = weight {
        y = y.mul(&per_channel(w, s)?)?;
    }
    if let Some(b) = bias {
        y = y.add(&per_channel(b, s)?)?;
    }
    Ok(y)
}

pub(super) fn train(
    s: BatchNormShape,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (mean, var) = statistics(s, x)?;
    let y = normalise(s, x, &mean, &var, weight, bias, eps)?;
    Ok((y, mean, var))
}

/// Per-channel mean and biased variance (`[C]`), in two passes.
fn statistics(s: BatchNormShape, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mean = x.mean(Some(DIMS), false)?;
    let centred = x.sub(&per_channel(&mean, s)?)?;
    let var = centred.mul(&centred)?.mean(Some(DIMS), false)?;
    Ok((mean, var))
}

pub(super) fn inference(
    s: BatchNormShape,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    normalise(s, x, mean, var, weight, bias, eps)
}

/// `dx = w·invstd·(g - mean(g) - x̂·mean(g·x̂))`, `dw = Σ g·x̂`, `db = Σ g`.
pub(super) fn backward(
    s: BatchNormShape,
    g: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let invstd = per_channel(&var.add_scalar(eps)?.powf(-0.5)?, s)?;
    let xhat = x.sub(&per_channel(mean, s)?)?.mul(&invstd)?;
    let g_xhat = g.mul(&xhat)?;
    let centred = g
        .sub(&g.mean(Some(DIMS), true)?)?
        .sub(&xhat.mul(&g_xhat.mean(Some(DIMS), true)?)?)?;
    let scale = match weight {
        Some(w) => invstd.mul(&per_channel(w, s)?)?,
        None => invstd,
    };
    Ok((
        centred.mul(&scale)?,
        g_xhat.sum(Some(DIMS), false)?,
        g.sum(Some(DIMS), false)?,
    ))
}

/// Batch norm then ReLU, unfused: the two device ops one after the other.
pub(super) fn train_relu(
    s: BatchNormShape,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (mean, var) = statistics(s, x)?;
    let y = normalise(s, x, &mean, &var, weight, bias, eps)?.relu()?;
    Ok((y, mean, var))
}

/// Batch norm's output recomputed, ReLU's backward on it, then batch
/// norm's backward: the unfused ops on the device.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_relu(
    s: BatchNormShape,
    g: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let z = normalise(s, x, mean, var, weight, bias, eps)?;
    backward(s, &g.relu_backward(&z)?, x, mean, var, weight, eps)
}
