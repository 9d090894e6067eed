//! Cross-entropy of class logits against class indices, row by row, as
//! PyTorch's `cross_entropy(logits, target, weight, ignore_index,
//! label_smoothing)` defines it.
//!
//! A row is one sample's (or one pixel's) `classes` logits `x` and its
//! target class `t`. With class weights `w` (all 1 without them) and label
//! smoothing `eps`, the row's weighted target distribution is
//!
//! ```text
//! q_c = w_c * ((1 - eps) * [c == t] + eps / classes)
//! loss = Σ_c q_c (lse(x) - x_c)           (lse = log Σ exp x)
//!      = (1 - eps) w_t (lse - x_t) + eps / classes * Σ_c w_c (lse - x_c)
//! d loss / d x_c = softmax(x)_c * Σ_k q_k - q_c
//! ```
//!
//! A row whose target is `ignore_index` counts for nothing: its loss and
//! gradient are 0 and it adds nothing to the total weight, `Σ w_t` over the
//! other rows, which a mean divides by (PyTorch's `total_weight`; the count
//! of rows without weights). Any other target outside `0..classes` is an
//! error.
//!
//! Rows are independent: large batches split across threads, and each row
//! is computed in the same order on any thread count. The plain twins are
//! [`crate::reference::cross_entropy_forward`] and
//! [`crate::reference::cross_entropy_backward`].

use crate::parallel::worth_parallel_elems;
use crate::Float;
use rayon::prelude::*;

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// A class index outside `0..classes` (and not the ignored index).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {label} at position {row} is out of range for {classes} classes (ignore_index is {ignore_index})")]
pub struct LabelOutOfRange {
    pub row: usize,
    pub label: i64,
    pub classes: usize,
    pub ignore_index: i64,
}

/// What a batch of cross-entropy rows is computed with (besides the logits
/// and targets): the number of classes, the ignored target, optional class
/// weights (`classes` of them) and the label smoothing.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyRows<'a, T> {
    pub classes: usize,
    pub ignore_index: i64,
    pub weight: Option<&'a [T]>,
    pub label_smoothing: f64,
}

impl<'a, T: Float> CrossEntropyRows<'a, T> {
    /// Plain rows: no weights, no smoothing, PyTorch's ignore index.
    pub fn plain(classes: usize) -> Self {
        CrossEntropyRows {
            classes,
            ignore_index: DEFAULT_IGNORE_INDEX,
            weight: None,
            label_smoothing: 0.0,
        }
    }

    /// The weight of class `c` (1 without weights).
    #[inline]
    fn w(&self, c: usize) -> T {
        self.weight.map_or(T::ONE, |w| w[c])
    }

    /// `Σ_c w_c`.
    fn weight_total(&self) -> T {
        match self.weight {
            Some(w) => w.iter().copied().sum(),
            None => T::from_f64(self.classes as f64),
        }
    }
}

/// The first target that is neither in `0..classes` nor `ignore_index`.
pub fn check_targets(
    targets: &[i64],
    classes: usize,
    ignore_index: i64,
) -> Result<(), LabelOutOfRange> {
    match targets
        .iter()
        .position(|&t| t != ignore_index && (t < 0 || t as u64 >= classes as u64))
    {
        Some(row) => Err(LabelOutOfRange {
            row,
            label: targets[row],
            classes,
            ignore_index,
        }),
        None => Ok(()),
    }
}

fn check_lens<T>(op: &str, logits: usize, targets: usize, other: usize, p: &CrossEntropyRows<T>) {
    assert!(
        logits == targets * p.classes && other == targets,
        "{op}: {logits} logits, {targets} targets and {other} row values do not fit {} classes",
        p.classes
    );
    if let Some(w) = p.weight {
        assert_eq!(w.len(), p.classes, "{op}: one weight per class");
    }
}

/// `log Σ exp(x)`, stabilised by the maximum.
#[inline]
fn log_sum_exp<T: Float>(x: &[T]) -> T {
    let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    let sum: T = x.iter().map(|&v| (v - max).exp()).sum();
    max + sum.ln()
}

fn row_loss<T: Float>(x: &[T], target: usize, p: &CrossEntropyRows<T>, weight_total: T) -> T {
    let lse = log_sum_exp(x);
    let eps = p.label_smoothing;
    let mut loss = T::from_f64(1.0 - eps) * p.w(target) * (lse - x[target]);
    if eps != 0.0 {
        // Σ_c w_c (lse - x_c) = W lse - Σ_c w_c x_c
        let weighted: T = match p.weight {
            Some(w) => x.iter().zip(w).map(|(&v, &wc)| wc * v).sum(),
            None => x.iter().copied().sum(),
        };
        loss += T::from_f64(eps / p.classes as f64) * (weight_total * lse - weighted);
    }
    loss
}

fn row_grad<T: Float>(
    x: &[T],
    target: usize,
    p: &CrossEntropyRows<T>,
    weight_total: T,
    g: T,
    out: &mut [T],
) {
    let lse = log_sum_exp(x);
    let eps = p.label_smoothing;
    let on = T::from_f64(1.0 - eps) * p.w(target);
    let uniform = T::from_f64(eps / p.classes as f64);
    // Σ_k q_k: the mass the softmax term carries.
    let mass = on + uniform * weight_total;
    for (c, (o, &v)) in out.iter_mut().zip(x).enumerate() {
        *o = ((v - lse).exp() * mass - uniform * p.w(c)) * g;
    }
    out[target] -= on * g;
}

/// Per-row losses of `logits` (`targets.len()` rows of `p.classes`) into
/// `losses` (0 for an ignored row); returns the total weight of the rows
/// that count (what a mean divides by).
///
/// # Panics
/// If the slice lengths do not fit `p.classes`.
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    targets: &[i64],
    p: &CrossEntropyRows<T>,
    losses: &mut [T],
) -> Result<T, LabelOutOfRange> {
    check_lens(
        "cross_entropy_forward",
        logits.len(),
        targets.len(),
        losses.len(),
        p,
    );
    check_targets(targets, p.classes, p.ignore_index)?;
    let classes = p.classes;
    let weight_total = p.weight_total();
    let row = |(r, loss): (usize, &mut T)| {
        *loss = match targets[r] {
            t if t == p.ignore_index => T::ZERO,
            t => row_loss(
                &logits[r * classes..(r + 1) * classes],
                t as usize,
                p,
                weight_total,
            ),
        };
    };
    if worth_parallel_elems(logits.len()) {
        losses.par_iter_mut().enumerate().for_each(row);
    } else {
        losses.iter_mut().enumerate().for_each(row);
    }
    // In row order, so the total is the same on any thread count.
    Ok(targets
        .iter()
        .filter(|&&t| t != p.ignore_index)
        .map(|&t| p.w(t as usize))
        .sum())
}

/// The logits' gradient given each row's loss gradient `grad_losses`
/// (already scaled by the reduction): `(softmax(x) Σ q - q) * g` per row,
/// 0 for an ignored row, into `grad_logits`.
///
/// # Panics
/// If the slice lengths do not fit `p.classes`.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    targets: &[i64],
    p: &CrossEntropyRows<T>,
    grad_losses: &[T],
    grad_logits: &mut [T],
) -> Result<(), LabelOutOfRange> {
    check_lens(
        "cross_entropy_backward",
        logits.len(),
        targets.len(),
        grad_losses.len(),
        p,
    );
    assert_eq!(
        grad_logits.len(),
        logits.len(),
        "cross_entropy_backward: output length"
    );
    check_targets(targets, p.classes, p.ignore_index)?;
    let classes = p.classes;
    if classes == 0 {
        return Ok(());
    }
    let weight_total = p.weight_total();
    let row = |(r, out): (usize, &mut [T])| match targets[r] {
        t if t == p.ignore_index => out.fill(T::ZERO),
        t => {
            let x = &logits[r * classes..(r + 1) * classes];
            row_grad(x, t as usize, p, weight_total, grad_losses[r], out);
        }
    };
    if worth_parallel_elems(logits.len()) {
        grad_logits
            .par_chunks_mut(classes)
            .enumerate()
            .for_each(row);
    } else {
        grad_logits.chunks_mut(classes).enumerate().for_each(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::Rng;

    /// A batch of rows with every feature on: weights, smoothing, an ignored
    /// row, and enough rows to run on threads.
    fn problem(rows: usize, classes: usize, seed: u64) -> (Vec<f64>, Vec<i64>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let logits = (0..rows * classes).map(|_| rng.normal() * 3.0).collect();
        let targets = (0..rows)
            .map(|r| {
                if r % 5 == 2 {
                    -100
                } else {
                    (rng.next_f64() * classes as f64) as i64 % classes as i64
                }
            })
            .collect();
        let weight = (0..classes).map(|_| rng.uniform(0.1, 2.0)).collect();
        let grad = (0..rows).map(|_| rng.normal()).collect();
        (logits, targets, weight, grad)
    }

    #[test]
    fn fast_rows_match_the_reference_loops() {
        for (rows, classes) in [(1, 1), (3, 4), (7, 10), (4096, 10)] {
            let (x, t, w, g) = problem(rows, classes, rows as u64);
            for weight in [None, Some(&w[..])] {
                for eps in [0.0, 0.1, 1.0] {
                    let p = CrossEntropyRows {
                        classes,
                        ignore_index: -100,
                        weight,
                        label_smoothing: eps,
                    };
                    let (mut fast, mut plain) = (vec![0.0; rows], vec![0.0; rows]);
                    let total = cross_entropy_forward(&x, &t, &p, &mut fast).unwrap();
                    let plain_total = reference::cross_entropy_forward(&x, &t, &p, &mut plain);
                    assert!((total - plain_total).abs() < 1e-9);
                    for (a, b) in fast.iter().zip(&plain) {
                        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
                    }
                    let (mut fast, mut plain) =
                        (vec![0.0; rows * classes], vec![0.0; rows * classes]);
                    cross_entropy_backward(&x, &t, &p, &g, &mut fast).unwrap();
                    reference::cross_entropy_backward(&x, &t, &p, &g, &mut plain);
                    for (a, b) in fast.iter().zip(&plain) {
                        assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
                    }
                }
            }
        }
    }

    /// Two rows worked by hand: the weighted, smoothed loss is
    /// `Σ_c q_c (lse - x_c)`, and an ignored row counts for nothing.
    #[test]
    fn weights_smoothing_and_ignored_rows_by_hand() {
        let x = [1.0f64, 2.0, 0.5, 0.0, 0.0, 0.0];
        let t = [1, 7];
        let w = [0.5, 2.0, 1.0];
        let p = CrossEntropyRows {
            classes: 3,
            ignore_index: 7,
            weight: Some(&w[..]),
            label_smoothing: 0.3,
        };
        let mut losses = [9.0; 2];
        let total = cross_entropy_forward(&x, &t, &p, &mut losses).unwrap();
        let lse = (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln();
        let q = [0.5 * 0.1, 2.0 * (0.7 + 0.1), 1.0 * 0.1];
        let want: f64 = (0..3).map(|c| q[c] * (lse - x[c])).sum();
        assert!((losses[0] - want).abs() < 1e-12, "{} vs {want}", losses[0]);
        assert_eq!(losses[1], 0.0);
        assert_eq!(total, 2.0);
        let mut grad = [9.0; 6];
        cross_entropy_backward(&x, &t, &p, &[1.0, 1.0], &mut grad).unwrap();
        let mass: f64 = q.iter().sum();
        for c in 0..3 {
            let want = (x[c] - lse).exp() * mass - q[c];
            assert!((grad[c] - want).abs() < 1e-12);
        }
        assert_eq!(&grad[3..], &[0.0; 3]);
    }

    #[test]
    fn targets_out_of_range_are_errors_unless_ignored() {
        let p = CrossEntropyRows::<f64>::plain(3);
        let mut losses = [0.0; 2];
        let err = cross_entropy_forward(&[0.0; 6], &[0, 3], &p, &mut losses).unwrap_err();
        assert_eq!((err.row, err.label), (1, 3));
        assert!(cross_entropy_forward(&[0.0; 6], &[-100, 2], &p, &mut losses).is_ok());
        let err = cross_entropy_forward(&[0.0; 6], &[-1, 2], &p, &mut losses).unwrap_err();
        assert!(err.to_string().contains("target -1 at position 0"), "{err}");
    }
}
