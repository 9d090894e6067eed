use crate::Float;

/// Same contract as [`crate::loss::cross_entropy_forward`], in f64: for
/// each row, `-Σ_c q_c log_softmax(x)_c` with `q = (1 - eps) one_hot(t) + eps / C`.
/// Targets must be in `0..classes` (the caller checks).
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    classes: usize,
    targets: &[i64],
    eps: f64,
    losses: &mut [T],
) {
    for (r, loss) in losses.iter_mut().enumerate() {
        let x: Vec<f64> = logits[r * classes..(r + 1) * classes]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let lse = max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let mut total = 0.0;
        for (c, &v) in x.iter().enumerate() {
            let q = if c as i64 == targets[r] {
                1.0 - eps
            } else {
                0.0
            } + eps / classes as f64;
            total -= q * (v - lse);
        }
        *loss = T::from_f64(total);
    }
}

/// Same contract as [`crate::loss::cross_entropy_backward`], in f64:
/// `(softmax(x)_c - q_c) * g` for each row.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    classes: usize,
    targets: &[i64],
    eps: f64,
    grad_losses: &[T],
    grad_logits: &mut [T],
) {
    for (r, &g) in grad_losses.iter().enumerate() {
        let row = r * classes..(r + 1) * classes;
        let x: Vec<f64> = logits[row.clone()].iter().map(|v| v.to_f64()).collect();
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = x.iter().map(|v| (v - max).exp()).sum();
        for (c, (&v, out)) in x.iter().zip(&mut grad_logits[row.clone()]).enumerate() {
            let q = if c as i64 == targets[r] {
                1.0 - eps
            } else {
                0.0
            } + eps / classes as f64;
            *out = T::from_f64(((v - max).exp() / sum - q) * g.to_f64());
        }
    }
}

/// `[rows, classes]` rows holding `on` at each target's class and `off`
/// elsewhere. Targets must be in `0..classes`.
pub fn one_hot<T: Float>(targets: &[i64], classes: usize, on: T, off: T, out: &mut [T]) {
    for (r, &t) in targets.iter().enumerate() {
        for c in 0..classes {
            out[r * classes + c] = if c as i64 == t { on } else { off };
        }
    }
}
