//! The elementwise and row-wise steps a training step spends time in
//! between the big kernels: per-channel bias, ReLU, softmax with
//! cross-entropy. Each splits large inputs over threads in fixed chunks and
//! keeps every reduction in a fixed order, so results match the reference
//! twins in [`crate::reference`] and do not depend on the thread count.

use crate::Float;
use rayon::prelude::*;

/// Elements per parallel task; smaller inputs stay on the calling thread.
const CHUNK: usize = 1 << 15;

/// A label outside `0..classes`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("softmax_cross_entropy: label {label} of row {row} is out of range for {classes} classes")]
pub struct LabelOutOfRange {
    pub row: usize,
    pub label: usize,
    pub classes: usize,
}

fn check(op: &str, what: &str, got: usize, want: usize) {
    assert!(got >= want, "{op}: {what} has {got} elements, needs {want}");
}

/// `x[n, c, i] += bias[c]` for `x` laid out as `[batch, channels, plane]`.
///
/// # Panics
/// If `bias` has fewer than `channels` values or `x` is not whole planes.
pub fn bias_add_channels<T: Float>(x: &mut [T], bias: &[T], channels: usize, plane: usize) {
    check("bias_add_channels", "bias", bias.len(), channels);
    if plane == 0 || channels == 0 {
        return;
    }
    assert!(
        x.len().is_multiple_of(plane),
        "bias_add_channels: {} elements are not whole planes of {plane}",
        x.len()
    );
    let per_task = (CHUNK / plane).max(1) * plane;
    let add = |(t, chunk): (usize, &mut [T])| {
        let first_plane = t * per_task / plane;
        for (i, p) in chunk.chunks_exact_mut(plane).enumerate() {
            let b = bias[(first_plane + i) % channels];
            p.iter_mut().for_each(|v| *v += b);
        }
    };
    if x.len() > per_task {
        x.par_chunks_mut(per_task).enumerate().for_each(add);
    } else {
        add((0, x));
    }
}

/// `out = max(x, 0)`; NaN stays NaN, as in PyTorch.
pub fn relu_forward<T: Float>(x: &[T], out: &mut [T]) {
    check("relu_forward", "out", out.len(), x.len());
    let out = &mut out[..x.len()];
    let f = |(o, x): (&mut [T], &[T])| {
        for (o, &v) in o.iter_mut().zip(x) {
            *o = if v < T::ZERO { T::ZERO } else { v };
        }
    };
    if x.len() > CHUNK {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(f);
    } else {
        f((out, x));
    }
}

/// `grad_in = grad_out` where the forward input `x` was positive, else 0.
pub fn relu_backward<T: Float>(x: &[T], grad_out: &[T], grad_in: &mut [T]) {
    check("relu_backward", "grad_out", grad_out.len(), x.len());
    check("relu_backward", "grad_in", grad_in.len(), x.len());
    let grad_in = &mut grad_in[..x.len()];
    let f = |((g, x), d): ((&mut [T], &[T]), &[T])| {
        for ((g, &v), &d) in g.iter_mut().zip(x).zip(d) {
            *g = if v > T::ZERO { d } else { T::ZERO };
        }
    };
    if x.len() > CHUNK {
        grad_in
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(grad_out.par_chunks(CHUNK))
            .for_each(f);
    } else {
        f(((grad_in, x), grad_out));
    }
}

/// Row-wise softmax of `logits` (`rows × cols`) into `probs`, returning the
/// mean cross-entropy of the rows against `labels` (numerically stable:
/// the row maximum is subtracted before exponentiating).
///
/// # Panics
/// If a slice is shorter than the sizes need.
pub fn softmax_cross_entropy<T: Float>(
    logits: &[T],
    rows: usize,
    cols: usize,
    labels: &[usize],
    probs: &mut [T],
) -> Result<T, LabelOutOfRange> {
    let op = "softmax_cross_entropy";
    check(op, "logits", logits.len(), rows * cols);
    check(op, "labels", labels.len(), rows);
    check(op, "probs", probs.len(), rows * cols);
    if let Some((row, &label)) = labels[..rows].iter().enumerate().find(|(_, &l)| l >= cols) {
        return Err(LabelOutOfRange {
            row,
            label,
            classes: cols,
        });
    }
    if rows == 0 {
        return Ok(T::ZERO);
    }
    // One loss per row, summed in row order afterwards: the same total on any thread count.
    let mut losses = vec![T::ZERO; rows];
    let logits = &logits[..rows * cols];
    let row = |(r, (loss, p)): (usize, (&mut T, &mut [T]))| {
        let (x, label) = (&logits[r * cols..(r + 1) * cols], labels[r]);
        let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = T::ZERO;
        for (p, &v) in p.iter_mut().zip(x) {
            *p = (v - max).exp();
            sum += *p;
        }
        let inv = T::ONE / sum;
        p.iter_mut().for_each(|p| *p *= inv);
        *loss = sum.ln() + max - x[label];
    };
    let probs = &mut probs[..rows * cols];
    if rows * cols > CHUNK && cols > 0 {
        losses
            .par_iter_mut()
            .zip(probs.par_chunks_mut(cols))
            .enumerate()
            .for_each(row);
    } else if cols > 0 {
        losses
            .iter_mut()
            .zip(probs.chunks_mut(cols))
            .enumerate()
            .for_each(row);
    }
    let total: T = losses.iter().fold(T::ZERO, |a, &l| a + l);
    Ok(total / T::from_usize(rows))
}

/// Gradient of `scale ·` the mean cross-entropy with respect to the logits:
/// `(probs - onehot(labels)) · scale / rows`.
///
/// # Panics
/// If a slice is shorter than the sizes need or a label is `>= cols`
/// (the forward call has already rejected such labels).
pub fn softmax_cross_entropy_backward<T: Float>(
    probs: &[T],
    rows: usize,
    cols: usize,
    labels: &[usize],
    scale: T,
    grad_logits: &mut [T],
) {
    let op = "softmax_cross_entropy_backward";
    check(op, "probs", probs.len(), rows * cols);
    check(op, "labels", labels.len(), rows);
    check(op, "grad_logits", grad_logits.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return;
    }
    let factor = scale / T::from_usize(rows);
    for (r, (g, p)) in grad_logits[..rows * cols]
        .chunks_exact_mut(cols)
        .zip(probs.chunks_exact(cols))
        .enumerate()
    {
        for (g, &p) in g.iter_mut().zip(p) {
            *g = p * factor;
        }
        assert!(
            labels[r] < cols,
            "{op}: label {} of row {r} is out of range for {cols} classes",
            labels[r]
        );
        g[labels[r]] = (p[labels[r]] - T::ONE) * factor;
    }
}
