//! Batch normalisation of NCHW tensors in training mode, forward and
//! backward, as single kernels.
//!
//! Composed of generic ops (mean, subtract, square, mean, add, square root,
//! divide, scale, shift, and the reductions their gradients need), batch
//! norm makes some twenty passes over an activation that can be tens of
//! megabytes; these make three forward (two for the statistics, one to
//! normalise) and two backward. Per-channel sums run in `f64`, each channel
//! in a fixed order (image by image, position by position), so results do
//! not depend on the thread count.
//!
//! In evaluation mode (running statistics) batch norm is one affine map per
//! channel, [`batch_norm2d_inference`]: one pass.
//!
//! Reference twins: [`crate::reference::batch_norm2d_train_forward`],
//! [`crate::reference::batch_norm2d_backward`] and
//! [`crate::reference::batch_norm2d_inference`].

use crate::parallel::{for_each_chunk, map_indices};
use crate::Float;

/// Sizes of an NCHW batch: `batch` images of `channels` planes of `plane` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    pub batch: usize,
    pub channels: usize,
    pub plane: usize,
}

impl BatchNormShape {
    /// Values per channel (the count the statistics are taken over).
    pub fn count(&self) -> usize {
        self.batch * self.plane
    }
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check(op: &str, what: &str, got: usize, want: usize) {
    assert!(got >= want, "{op}: {what} has {got} elements, needs {want}");
}

/// Channel `c`'s runs of `x`: one `plane`-long slice per image.
fn channel_runs<T>(x: &[T], s: BatchNormShape, c: usize) -> impl Iterator<Item = &[T]> {
    (0..s.batch).map(move |n| &x[(n * s.channels + c) * s.plane..][..s.plane])
}

/// Whether a pass over `len` values is worth splitting over threads.
fn parallel(len: usize) -> bool {
    crate::parallel::worth_parallel_elems(len)
}

/// Training-mode batch norm: `mean` and `var` get each channel's batch mean
/// and biased variance, and
/// `y = (x - mean) / sqrt(var + eps) * weight + bias` (weight 1 and bias 0
/// when absent).
///
/// # Panics
/// If a slice is shorter than the shape needs or the shape has no values per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_train_forward<T: Float>(
    s: BatchNormShape,
    x: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
    mean: &mut [T],
    var: &mut [T],
) {
    let op = "batch_norm2d_train_forward";
    check(op, "x", x.len(), s.len());
    check(op, "y", y.len(), s.len());
    check(op, "mean", mean.len(), s.channels);
    check(op, "var", var.len(), s.channels);
    for (what, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            check(op, what, v.len(), s.channels);
        }
    }
    assert!(s.count() > 0, "{op}: no values per channel in {s:?}");
    let count = s.count() as f64;
    let stats = |c: usize| {
        let sum: f64 = channel_runs(x, s, c)
            .map(|run| run.iter().map(|v| v.to_f64()).sum::<f64>())
            .sum();
        let m = sum / count;
        let squares: f64 = channel_runs(x, s, c)
            .map(|run| run.iter().map(|v| (v.to_f64() - m).powi(2)).sum::<f64>())
            .sum();
        (m, squares / count)
    };
    for (c, (m, v)) in map_indices(s.channels, parallel(s.len()), stats)
        .into_iter()
        .enumerate()
    {
        mean[c] = T::from_f64(m);
        var[c] = T::from_f64(v);
    }
    batch_norm2d_inference(s, x, mean, var, weight, bias, eps, y);
}

/// Gradients of [`batch_norm2d_train_forward`] (whose statistics depend on
/// `x`) from the output gradient `dy`, given the forward's `mean` and
/// biased `var`:
/// `dx = weight / sqrt(var + eps) · (dy - mean(dy) - x̂ · mean(dy · x̂))`,
/// `dweight = Σ dy · x̂`, `dbias = Σ dy`, with `x̂ = (x - mean) / sqrt(var + eps)`.
///
/// # Panics
/// If a slice is shorter than the shape needs or the shape has no values per channel.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_backward<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    eps: f64,
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    let op = "batch_norm2d_backward";
    check(op, "dy", dy.len(), s.len());
    check(op, "x", x.len(), s.len());
    check(op, "dx", dx.len(), s.len());
    for (what, len) in [
        ("mean", mean.len()),
        ("var", var.len()),
        ("dweight", dweight.len()),
        ("dbias", dbias.len()),
    ] {
        check(op, what, len, s.channels);
    }
    if let Some(w) = weight {
        check(op, "weight", w.len(), s.channels);
    }
    assert!(s.count() > 0, "{op}: no values per channel in {s:?}");
    let count = s.count() as f64;
    let invstd: Vec<f64> = var
        .iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect();
    // (Σ dy, Σ dy · x̂) per channel.
    let sums = |c: usize| {
        let m = mean[c].to_f64();
        let (mut sum_dy, mut sum_dy_xc) = (0.0f64, 0.0f64);
        for (g, v) in channel_runs(dy, s, c).zip(channel_runs(x, s, c)) {
            for (&g, &v) in g.iter().zip(v) {
                let g = g.to_f64();
                sum_dy += g;
                sum_dy_xc += g * (v.to_f64() - m);
            }
        }
        (sum_dy, sum_dy_xc * invstd[c])
    };
    let sums = map_indices(s.channels, parallel(s.len()), sums);
    // dx = a·dy + b·(x - mean) + d per channel, with x̂ = (x - mean)·invstd.
    let coefficients: Vec<(T, T, T)> = sums
        .iter()
        .enumerate()
        .map(|(c, &(sum_dy, sum_dy_xhat))| {
            let k = weight.map_or(1.0, |w| w[c].to_f64()) * invstd[c];
            let b = -k * invstd[c] * sum_dy_xhat / count;
            let d = -k * sum_dy / count;
            (T::from_f64(k), T::from_f64(b), T::from_f64(d))
        })
        .collect();
    for (c, &(sum_dy, sum_dy_xhat)) in sums.iter().enumerate() {
        dbias[c] = T::from_f64(sum_dy);
        dweight[c] = T::from_f64(sum_dy_xhat);
    }
    let input_grad = |i: usize, out: &mut [T]| {
        let c = i % s.channels;
        let (a, b, d) = coefficients[c];
        let m = mean[c];
        let g = &dy[i * s.plane..][..s.plane];
        let v = &x[i * s.plane..][..s.plane];
        for ((o, &g), &v) in out.iter_mut().zip(g).zip(v) {
            *o = a * g + b * (v - m) + d;
        }
    };
    for_each_chunk(&mut dx[..s.len()], s.plane, parallel(s.len()), input_grad);
}

/// Evaluation-mode batch norm with given (running) statistics:
/// `y = (x - mean) / sqrt(var + eps) * weight + bias` per channel.
///
/// # Panics
/// If a slice is shorter than the shape needs.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm2d_inference<T: Float>(
    s: BatchNormShape,
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
    y: &mut [T],
) {
    let op = "batch_norm2d_inference";
    check(op, "x", x.len(), s.len());
    check(op, "y", y.len(), s.len());
    for (what, len) in [("mean", mean.len()), ("var", var.len())] {
        check(op, what, len, s.channels);
    }
    for (what, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            check(op, what, v.len(), s.channels);
        }
    }
    // y = (x - mean) * scale + bias, per channel (centring first keeps the
    // precision when the mean is large against the spread).
    let affine: Vec<(T, T, T)> = (0..s.channels)
        .map(|c| {
            let w = weight.map_or(1.0, |w| w[c].to_f64());
            let b = bias.map_or(0.0, |b| b[c].to_f64());
            let scale = w / (var[c].to_f64() + eps).sqrt();
            (mean[c], T::from_f64(scale), T::from_f64(b))
        })
        .collect();
    let normalise = |i: usize, out: &mut [T]| {
        let (m, scale, b) = affine[i % s.channels];
        let x = &x[i * s.plane..][..s.plane];
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v - m) * scale + b;
        }
    };
    for_each_chunk(&mut y[..s.len()], s.plane, parallel(s.len()), normalise);
}
