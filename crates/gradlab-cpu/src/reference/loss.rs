use crate::loss::CrossEntropyRows;
use crate::Float;

/// The weighted, smoothed target distribution of a row with target `t`:
/// `q_c = w_c * ((1 - eps) * [c == t] + eps / classes)`.
fn target_distribution<T: Float>(t: i64, p: &CrossEntropyRows<T>) -> Vec<f64> {
    let eps = p.label_smoothing;
    (0..p.classes)
        .map(|c| {
            let w = p.weight.map_or(1.0, |w| w[c].to_f64());
            let one = if c as i64 == t { 1.0 } else { 0.0 };
            w * ((1.0 - eps) * one + eps / p.classes as f64)
        })
        .collect()
}

/// Same contract as [`crate::loss::cross_entropy_forward`], in f64: for
/// each row that is not ignored, `Σ_c q_c (lse(x) - x_c)` with the row's
/// weighted target distribution `q`; 0 for an ignored row. Returns the
/// total weight of the rows that count. Targets must be in `0..classes`
/// or the ignored index (the caller checks).
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    targets: &[i64],
    p: &CrossEntropyRows<T>,
    losses: &mut [T],
) -> T {
    let classes = p.classes;
    let mut total_weight = 0.0;
    for (r, loss) in losses.iter_mut().enumerate() {
        if targets[r] == p.ignore_index {
            *loss = T::ZERO;
            continue;
        }
        let x: Vec<f64> = logits[r * classes..(r + 1) * classes]
            .iter()
            .map(|v| v.to_f64())
            .collect();
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let lse = max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let q = target_distribution(targets[r], p);
        let mut total = 0.0;
        for (c, &v) in x.iter().enumerate() {
            total += q[c] * (lse - v);
        }
        *loss = T::from_f64(total);
        total_weight += p.weight.map_or(1.0, |w| w[targets[r] as usize].to_f64());
    }
    T::from_f64(total_weight)
}

/// Same contract as [`crate::loss::cross_entropy_backward`], in f64:
/// `(softmax(x)_c Σ_k q_k - q_c) * g` for each row, 0 for an ignored row.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    targets: &[i64],
    p: &CrossEntropyRows<T>,
    grad_losses: &[T],
    grad_logits: &mut [T],
) {
    let classes = p.classes;
    for (r, &g) in grad_losses.iter().enumerate() {
        let row = r * classes..(r + 1) * classes;
        if targets[r] == p.ignore_index {
            grad_logits[row].iter_mut().for_each(|v| *v = T::ZERO);
            continue;
        }
        let x: Vec<f64> = logits[row.clone()].iter().map(|v| v.to_f64()).collect();
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = x.iter().map(|v| (v - max).exp()).sum();
        let q = target_distribution(targets[r], p);
        let mass: f64 = q.iter().sum();
        for (c, (&v, out)) in x.iter().zip(&mut grad_logits[row.clone()]).enumerate() {
            *out = T::from_f64(((v - max).exp() / sum * mass - q[c]) * g.to_f64());
        }
    }
}

/// `[rows, classes]` rows holding `on` at each target's class and `off`
/// elsewhere; a target outside `0..classes` gives a row of `off`.
pub fn one_hot<T: Float>(targets: &[i64], classes: usize, on: T, off: T, out: &mut [T]) {
    for (r, &t) in targets.iter().enumerate() {
        for c in 0..classes {
            out[r * classes + c] = if c as i64 == t { on } else { off };
        }
    }
}
