//! Batch normalisation of NCHW tensors in training mode, forward and
//! backward, as single kernels.
//!
//! Composed of generic ops (mean, subtract, square, mean, add, square root,
//! divide, scale, shift, and the reductions their gradients need), batch
//! norm makes some twenty passes over an activation that can be tens of
//! megabytes; these make two forward (one for the statistics, see
//! [`crate::moments`], one to normalise) and two backward. Per-channel sums
//! run in `f64`, each channel in a fixed order (image by image, position by
//! position), so results do not depend on the thread count.
//!
//! Batch norm followed by ReLU, as one op, is in [`crate::norm_relu`].
//!
//! In evaluation mode (running statistics) batch norm is one affine map per
//! channel, [`batch_norm2d_inference`]: one pass.
//!
//! Reference twins: [`crate::reference::batch_norm2d_train_forward`],
//! [`crate::reference::batch_norm2d_backward`] and
//! [`crate::reference::batch_norm2d_inference`].

use crate::moments::moments_of_runs_at;
use crate::parallel::{for_each_chunk, map_indices};
use crate::simd::per_simd_level;
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

pub(crate) fn check(op: &str, what: &str, got: usize, want: usize) {
    assert!(got >= want, "{op}: {what} has {got} elements, needs {want}");
}

/// The length checks every batch-norm kernel makes: each of `full` holds
/// the shape's values, each given one of `per_channel` (`None`: an absent
/// optional parameter) one value per channel.
pub(crate) fn check_lengths(
    op: &str,
    s: BatchNormShape,
    full: &[(&str, usize)],
    per_channel: &[(&str, Option<usize>)],
) {
    for &(what, len) in full {
        check(op, what, len, s.len());
    }
    for &(what, len) in per_channel {
        if let Some(len) = len {
            check(op, what, len, s.channels);
        }
    }
}

/// Channel `c`'s runs of `x`: one `plane`-long slice per image.
pub(crate) fn channel_runs<T>(x: &[T], s: BatchNormShape, c: usize) -> impl Iterator<Item = &[T]> {
    (0..s.batch).map(move |n| &x[(n * s.channels + c) * s.plane..][..s.plane])
}

/// Whether a pass over `len` values is worth splitting over threads.
pub(crate) fn parallel(len: usize) -> bool {
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
    batch_norm2d_inference(s, x, mean, var, weight, bias, eps, y);
}

/// Each channel's batch mean and biased variance into `mean` and `var`,
/// from one read of `x` ([`crate::moments::moments_of_runs`]).
pub(crate) fn batch_statistics<T: Float>(
    s: BatchNormShape,
    x: &[T],
    mean: &mut [T],
    var: &mut [T],
) {
    let level = crate::simd::simd_level();
    let stats = |c: usize| moments_of_runs_at(level, channel_runs(x, s, c));
    for (c, m) in map_indices(s.channels, parallel(s.len()), stats)
        .into_iter()
        .enumerate()
    {
        mean[c] = T::from_f64(m.mean);
        var[c] = T::from_f64(m.variance());
    }
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
        ],
    );
    assert!(s.count() > 0, "{op}: no values per channel in {s:?}");
    gated_backward(s, dy, x, mean, var, weight, eps, None, dx, dweight, dbias);
}

/// Lanes of independent partial sums in the gradient's reductions.
const LANES: usize = 8;

per_simd_level! {
    /// `(Σ g, Σ g · (x - mean))` over channel `c`, with `g = gate(dy, x)`
    /// the gradient reaching batch norm's output (`dy` itself, or `dy`
    /// where the ReLU after it let the value through), summed in `f64`
    /// lanes: the same sums at every level, in wider vectors where the CPU
    /// has them.
    fn gradient_sums<T: Float>(
        s: BatchNormShape,
        dy: &[T],
        x: &[T],
        c: usize,
        mean: T,
        gate: impl Fn(T, T) -> T,
    ) -> (f64, f64) => gradient_sums_any
}

#[inline(always)]
fn gradient_sums_any<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    c: usize,
    mean: T,
    gate: impl Fn(T, T) -> T,
) -> (f64, f64) {
    let m = mean.to_f64();
    // Lanes indexed only by constants, so that each array stays one vector
    // register: a run's tail goes through the same code, padded with
    // gradient 0 at the mean (which adds exactly 0 to both sums).
    let mut sums = ([0.0f64; LANES], [0.0f64; LANES]);
    // A function rather than a closure: closures do not inherit the
    // caller's target features, and this must inline into each level's code.
    #[inline(always)]
    fn add<T: Float>(
        (sum_g, sum_g_xc): &mut ([f64; LANES], [f64; LANES]),
        g: &[T],
        v: &[T],
        m: f64,
        gate: &impl Fn(T, T) -> T,
    ) {
        let (g, v) = (&g[..LANES], &v[..LANES]);
        for l in 0..LANES {
            let gl = gate(g[l], v[l]).to_f64();
            sum_g[l] += gl;
            sum_g_xc[l] += gl * (v[l].to_f64() - m);
        }
    }
    for (g, v) in channel_runs(dy, s, c).zip(channel_runs(x, s, c)) {
        let (gs, vs) = (g.chunks_exact(LANES), v.chunks_exact(LANES));
        let (g_rest, v_rest) = (gs.remainder(), vs.remainder());
        for (g, v) in gs.zip(vs) {
            add(&mut sums, g, v, m, &gate);
        }
        if !g_rest.is_empty() {
            let (mut g, mut v) = ([T::ZERO; LANES], [mean; LANES]);
            g[..g_rest.len()].copy_from_slice(g_rest);
            v[..v_rest.len()].copy_from_slice(v_rest);
            add(&mut sums, &g, &v, m, &gate);
        }
    }
    (sums.0.iter().sum(), sums.1.iter().sum())
}

/// The backward of batch norm, and of batch norm followed by ReLU when
/// `relu` holds the forward's [`affine_maps`]: then the gradient reaching
/// batch norm is `dy` where the recomputed normalised value
/// `(x - mean) * scale + bias` is positive and 0 elsewhere, applied inside
/// both passes instead of written out first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gated_backward<T: Float>(
    s: BatchNormShape,
    dy: &[T],
    x: &[T],
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    eps: f64,
    relu: Option<&[(T, T, T)]>,
    dx: &mut [T],
    dweight: &mut [T],
    dbias: &mut [T],
) {
    // Read once here: the passes run on worker threads.
    let level = crate::simd::simd_level();
    let count = s.count() as f64;
    let invstd: Vec<f64> = var
        .iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect();
    // (Σ g, Σ g · x̂) per channel.
    let sums = |c: usize| {
        let (sum_g, sum_g_xc) = match relu {
            None => gradient_sums(level, s, dy, x, c, mean[c], |g, _| g),
            Some(maps) => gradient_sums(level, s, dy, x, c, mean[c], relu_gate(maps[c])),
        };
        (sum_g, sum_g_xc * invstd[c])
    };
    let sums = map_indices(s.channels, parallel(s.len()), sums);
    // dx = a·g + b·(x - mean) + d per channel, with x̂ = (x - mean)·invstd.
    let coefficients: Vec<(T, T, T)> = sums
        .iter()
        .enumerate()
        .map(|(c, &(sum_g, sum_g_xhat))| {
            let k = weight.map_or(1.0, |w| w[c].to_f64()) * invstd[c];
            let b = -k * invstd[c] * sum_g_xhat / count;
            let d = -k * sum_g / count;
            (T::from_f64(k), T::from_f64(b), T::from_f64(d))
        })
        .collect();
    for (c, &(sum_g, sum_g_xhat)) in sums.iter().enumerate() {
        dbias[c] = T::from_f64(sum_g);
        dweight[c] = T::from_f64(sum_g_xhat);
    }
    per_simd_level! {
        fn write<T: Float>(
            out: &mut [T],
            dy: &[T],
            x: &[T],
            abd: (T, T, T),
            m: T,
            gate: impl Fn(T, T) -> T,
        ) => write_any
    }
    #[inline(always)]
    fn write_any<T: Float>(
        out: &mut [T],
        dy: &[T],
        x: &[T],
        (a, b, d): (T, T, T),
        m: T,
        gate: impl Fn(T, T) -> T,
    ) {
        for ((o, &g), &v) in out.iter_mut().zip(dy).zip(x) {
            *o = a * gate(g, v) + b * (v - m) + d;
        }
    }
    let input_grad = |i: usize, out: &mut [T]| {
        let c = i % s.channels;
        let g = &dy[i * s.plane..][..s.plane];
        let v = &x[i * s.plane..][..s.plane];
        match relu {
            None => write(level, out, g, v, coefficients[c], mean[c], |g, _| g),
            Some(maps) => write(
                level,
                out,
                g,
                v,
                coefficients[c],
                mean[c],
                relu_gate(maps[c]),
            ),
        }
    };
    for_each_chunk(&mut dx[..s.len()], s.plane, parallel(s.len()), input_grad);
}

/// `dy` where the normalised value of `x` under `(mean, scale, bias)` is
/// positive, else 0: ReLU's mask recomputed from batch norm's input, with
/// the forward's rounding (so the same values pass).
#[inline(always)]
pub(crate) fn relu_gate<T: Float>((m, scale, b): (T, T, T)) -> impl Fn(T, T) -> T {
    move |g, v| {
        if (v - m) * scale + b > T::ZERO {
            g
        } else {
            T::ZERO
        }
    }
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
    let affine = affine_maps(s.channels, mean, var, weight, bias, eps);
    normalise_planes(s, x, &affine, |z| z, y);
}

/// `y = then((x - mean) * scale + bias)` plane by plane with each
/// channel's map from `affine`, in vectors as wide as the CPU has.
pub(crate) fn normalise_planes<T: Float>(
    s: BatchNormShape,
    x: &[T],
    affine: &[(T, T, T)],
    then: impl Fn(T) -> T + Sync + Send + Copy,
    y: &mut [T],
) {
    per_simd_level! {
        fn plane<T: Float>(out: &mut [T], x: &[T], map: (T, T, T), then: impl Fn(T) -> T) => plane_any
    }
    #[inline(always)]
    fn plane_any<T: Float>(
        out: &mut [T],
        x: &[T],
        (m, scale, b): (T, T, T),
        then: impl Fn(T) -> T,
    ) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = then((v - m) * scale + b);
        }
    }
    let level = crate::simd::simd_level();
    let normalise = |i: usize, out: &mut [T]| {
        let x = &x[i * s.plane..][..s.plane];
        plane(level, out, x, affine[i % s.channels], then);
    };
    for_each_chunk(&mut y[..s.len()], s.plane, parallel(s.len()), normalise);
}

/// Per channel `(mean, scale, bias)` with `y = (x - mean) * scale + bias`
/// the normalisation and affine map (centring first keeps the precision
/// when the mean is large against the spread). Every kernel that
/// normalises, or recomputes a normalised value, goes through this one
/// rounding, so that they agree to the bit.
pub(crate) fn affine_maps<T: Float>(
    channels: usize,
    mean: &[T],
    var: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f64,
) -> Vec<(T, T, T)> {
    (0..channels)
        .map(|c| {
            let w = weight.map_or(1.0, |w| w[c].to_f64());
            let b = bias.map_or(0.0, |b| b[c].to_f64());
            let scale = w / (var[c].to_f64() + eps).sqrt();
            (mean[c], T::from_f64(scale), T::from_f64(b))
        })
        .collect()
}
