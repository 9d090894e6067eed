//! Cross-entropy of class logits against class indices, row by row.
//!
//! A row is one sample's `classes` logits `x` and its target class `t`;
//! with label smoothing `eps` the target distribution is
//! `q = (1 - eps) * one_hot(t) + eps / classes`, so that
//!
//! ```text
//! loss = -Σ q_c log_softmax(x)_c = lse(x) - (1 - eps) x_t - eps / classes Σ x_c
//! d loss / d x_c = softmax(x)_c - q_c
//! ```
//!
//! Rows are independent: large batches split across threads, and each row
//! is computed in the same order on any thread count. The plain twins are
//! [`crate::reference::cross_entropy_forward`] and
//! [`crate::reference::cross_entropy_backward`].

use crate::parallel::worth_parallel_elems;
use crate::Float;
use rayon::prelude::*;

/// A class index outside `0..classes`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {label} at position {row} is out of range for {classes} classes")]
pub struct LabelOutOfRange {
    pub row: usize,
    pub label: i64,
    pub classes: usize,
}

/// The first target outside `0..classes`, if any.
pub fn check_targets(targets: &[i64], classes: usize) -> Result<(), LabelOutOfRange> {
    match targets
        .iter()
        .position(|&t| t < 0 || t as u64 >= classes as u64)
    {
        Some(row) => Err(LabelOutOfRange {
            row,
            label: targets[row],
            classes,
        }),
        None => Ok(()),
    }
}

fn check_lens(op: &str, logits: usize, targets: usize, other: usize, classes: usize) {
    assert!(
        logits == targets * classes && other == targets,
        "{op}: {logits} logits, {targets} targets and {other} row values do not fit {classes} classes"
    );
}

/// `log Σ exp(x)`, stabilised by the maximum.
#[inline]
fn log_sum_exp<T: Float>(x: &[T]) -> (T, T) {
    let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    let sum: T = x.iter().map(|&v| (v - max).exp()).sum();
    (max, max + sum.ln())
}

fn row_loss<T: Float>(x: &[T], target: usize, eps: f64) -> T {
    let (_, lse) = log_sum_exp(x);
    let classes = x.len();
    let mut loss = lse - T::from_f64(1.0 - eps) * x[target];
    if eps != 0.0 {
        let total: T = x.iter().copied().sum();
        loss -= T::from_f64(eps / classes as f64) * total;
    }
    loss
}

fn row_grad<T: Float>(x: &[T], target: usize, eps: f64, g: T, out: &mut [T]) {
    let (_, lse) = log_sum_exp(x);
    let off = T::from_f64(eps / x.len() as f64);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ((v - lse).exp() - off) * g;
    }
    out[target] -= T::from_f64(1.0 - eps) * g;
}

/// Per-row losses of `logits` (`targets.len()` rows of `classes`) into
/// `losses`, with label smoothing `eps`.
///
/// # Panics
/// If the slice lengths do not fit `classes`.
pub fn cross_entropy_forward<T: Float>(
    logits: &[T],
    classes: usize,
    targets: &[i64],
    eps: f64,
    losses: &mut [T],
) -> Result<(), LabelOutOfRange> {
    check_lens(
        "cross_entropy_forward",
        logits.len(),
        targets.len(),
        losses.len(),
        classes,
    );
    check_targets(targets, classes)?;
    let row = |(r, loss): (usize, &mut T)| {
        *loss = row_loss(
            &logits[r * classes..(r + 1) * classes],
            targets[r] as usize,
            eps,
        );
    };
    if worth_parallel_elems(logits.len()) {
        losses.par_iter_mut().enumerate().for_each(row);
    } else {
        losses.iter_mut().enumerate().for_each(row);
    }
    Ok(())
}

/// The logits' gradient given each row's loss gradient `grad_losses`:
/// `(softmax(x) - q) * g` per row, into `grad_logits`.
///
/// # Panics
/// If the slice lengths do not fit `classes`.
pub fn cross_entropy_backward<T: Float>(
    logits: &[T],
    classes: usize,
    targets: &[i64],
    eps: f64,
    grad_losses: &[T],
    grad_logits: &mut [T],
) -> Result<(), LabelOutOfRange> {
    check_lens(
        "cross_entropy_backward",
        logits.len(),
        targets.len(),
        grad_losses.len(),
        classes,
    );
    assert_eq!(
        grad_logits.len(),
        logits.len(),
        "cross_entropy_backward: output length"
    );
    check_targets(targets, classes)?;
    if classes == 0 {
        return Ok(());
    }
    let row = |(r, out): (usize, &mut [T])| {
        let x = &logits[r * classes..(r + 1) * classes];
        row_grad(x, targets[r] as usize, eps, grad_losses[r], out);
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
