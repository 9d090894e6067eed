//! Training-mode batch norm followed by ReLU, as one op.
//!
//! A convolutional block is conv, batch norm, ReLU. Run apart, batch norm
//! writes its output `z`, ReLU reads it and writes `relu(z)`, and in the
//! backward ReLU reads `z` again to mask the gradient and writes the masked
//! gradient that batch norm's backward then reads twice. Fused:
//!
//! - forward: the statistics in one read of `x`, then one pass that writes
//!   `max((x - mean) * scale + bias, 0)`; `z` is never stored;
//! - backward: ReLU's mask is recomputed from `x` and the statistics (a
//!   subtract, a multiply and an add per value, with the forward's rounding,
//!   so exactly the forward's values pass) inside batch norm's two backward
//!   passes. Keeping `x` alone, rather than `x` and `z` or a mask, saves an
//!   activation's memory, and the passes read nothing more than batch
//!   norm's own backward.
//!
//! The reference twins ([`crate::reference::batch_norm2d_relu_train_forward`],
//! [`crate::reference::batch_norm2d_relu_backward`]) are the unfused
//! reference kernels one after the other.

use crate::norm::{
    affine_maps, batch_statistics, check_lengths, gated_backward, normalise_planes, BatchNormShape,
};
use crate::Float;

/// `y = max((x - mean) / sqrt(var + eps) * weight + bias, 0)` with the
/// batch's statistics, which go to `mean` and `var` (biased) as in
/// [`crate::batch_norm2d_train_forward`]. NaN propagates, as in ReLU.
///
/// # Panics
/// If a slice is shorter than the shape needs or the shape has no values per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_relu_train_forward<T: Float>(
    s: BatchNormShape,
    x: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    var: &mut [T],
) {
    let op = "batch_norm2d_relu_train_forward";
    check_lengths(
        op,
        s,
        &[("x", x.len()), ("y", y.len())],
        &[
            ("mean", Some(mean.len())),
            ("var", Some(var.len())),
            ("weight", weight.map(<[T]>::len)),
            ("bias", bias.map(<[T]>::len)),
        ],
    );
    assert!(s.count() > 0, "{op}: no values per channel in {s:?}");
    batch_statistics(s, x, mean, var);
    let affine = affine_maps(s.channels, mean, var, weight, bias, eps);
    // ReLU's definition (`UnaryOp::Relu`): NaN passes through.
    let relu = |z: T| if z < T::ZERO { T::ZERO } else { z };
    normalise_planes(s, x, &affine, relu, y);
}

/// Gradients of [`batch_norm2d_relu_train_forward`] from the output
/// gradient `dy`, given its input `x`, the `mean` and `var` it returned and
/// the same `weight`, `bias` and `eps`: batch norm's gradients
/// ([`crate::batch_norm2d_backward`]) of `dy` masked where the normalised
/// value was not positive.
///
/// # Panics
/// If a slice is shorter than the shape needs or the shape has no values per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_relu_backward<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let op = "batch_norm2d_relu_backward";
    check_lengths(
        op,
        s,
        &[("dy", dy.len()), ("x", x.len()), ("dx", dx.len())],
        &[
            ("mean", Some(mean.len())),
            ("var", Some(var.len())),
            ("dweight", Some(dweight.len())),
            ("dbias", Some(dbias.len())),
            ("weight", weight.map(<[T]>::len)),
            ("bias", bias.map(<[T]>::len)),
        ],
    );
    assert!(s.count() > 0, "{op}: no values per channel in {s:?}");
    let affine = affine_maps(s.channels, mean, var, weight, bias, eps);
    let relu = Some(affine.as_slice());
    gated_backward(s, dy, x, mean, var, weight, eps, relu, dx, dweight, dbias);
}
