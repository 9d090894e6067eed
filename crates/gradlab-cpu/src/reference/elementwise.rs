use crate::Float;

/// `x[n, c, i] += bias[c]` for `x` laid out as `[batch, channels, plane]`.
pub fn bias_add_channels<T: Float>(x: &mut [T], bias: &[T], channels: usize, plane: usize) {
    for (i, v) in x.iter_mut().enumerate() {
        *v += bias[(i / plane) % channels];
    }
}

/// `out = max(x, 0)`; NaN stays NaN, as in PyTorch.
pub fn relu_forward<T: Float>(x: &[T], out: &mut [T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = if v < T::ZERO { T::ZERO } else { v };
    }
}

/// `grad_in = grad_out` where the forward input was positive, else 0.
pub fn relu_backward<T: Float>(x: &[T], grad_out: &[T], grad_in: &mut [T]) {
    for ((g, &v), &d) in grad_in.iter_mut().zip(x).zip(grad_out) {
        *g = if v > T::ZERO { d } else { T::ZERO };
    }
}

/// Row-wise softmax of `logits` (`rows × cols`) into `probs`, and the mean
/// cross-entropy of the rows against `labels`. Labels must be `< cols`.
pub fn softmax_cross_entropy<T: Float>(
    logits: &[T],
    rows: usize,
    cols: usize,
    labels: &[usize],
    probs: &mut [T],
) -> T {
    let mut total = T::ZERO;
    for r in 0..rows {
        let row = &logits[r * cols..(r + 1) * cols];
        let max = row.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        let sum: T = row.iter().map(|&v| (v - max).exp()).sum();
        for (p, &v) in probs[r * cols..(r + 1) * cols].iter_mut().zip(row) {
            *p = (v - max).exp() / sum;
        }
        total += sum.ln() + max - row[labels[r]];
    }
    total / T::from_usize(rows.max(1))
}

/// Gradient of the mean cross-entropy times `scale` with respect to the
/// logits: `(probs - onehot(labels)) · scale / rows`.
pub fn softmax_cross_entropy_backward<T: Float>(
    probs: &[T],
    rows: usize,
    cols: usize,
    labels: &[usize],
    scale: T,
    grad_logits: &mut [T],
) {
    let factor = scale / T::from_usize(rows.max(1));
    for r in 0..rows {
        for c in 0..cols {
            let target = if c == labels[r] { T::ONE } else { T::ZERO };
            grad_logits[r * cols + c] = (probs[r * cols + c] - target) * factor;
        }
    }
}
