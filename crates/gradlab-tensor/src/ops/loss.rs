//! Cross-entropy on class indices, as `torch.nn.functional.cross_entropy`
//! defines it: class weights, an ignored target index, label smoothing,
//! and the accepted shapes
//!
//! | logits | target | one loss per |
//! | --- | --- | --- |
//! | `[C]` | `[]` | the one unbatched sample |
//! | `[N, C]` | `[N]` | sample |
//! | `[N, C, d1, ..., dk]` | `[N, d1, ..., dk]` | sample and position (per-pixel classification) |
//!
//! Every shape is computed as rows: the class dim moved last and the rest
//! flattened, logits `[R, C]` against targets `[R]` (see
//! [`class_rows_permutation`]); the backends' row primitives do the work.

use crate::backend::CrossEntropyRows;
use crate::{DType, Result, Shape, Tensor, TensorError};

/// How `cross_entropy` combines the losses of the rows (PyTorch's
/// `reduction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// One loss per target position, shaped like the target.
    None,
    /// The weighted mean: the sum of the losses divided by the total
    /// weight of the targets that count (their number without class
    /// weights). NaN when no target counts, as in PyTorch.
    #[default]
    Mean,
    /// The sum of the losses.
    Sum,
}

impl std::str::FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(format!(
                "unknown reduction '{s}' (expected none, mean or sum)"
            )),
        }
    }
}

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = gradlab_cpu::DEFAULT_IGNORE_INDEX;

/// The options of [`Tensor::cross_entropy_with`], with PyTorch's defaults
/// (`Default`): mean, no smoothing, `ignore_index` -100, no weights.
#[derive(Clone, Debug)]
pub struct CrossEntropyOptions {
    pub reduction: Reduction,
    /// `eps` in `[0, 1]`: the target distribution puts `eps / C` on every
    /// class and `1 - eps` more on the target class.
    pub label_smoothing: f64,
    /// A target equal to this counts for nothing: no loss, no gradient, no
    /// weight in a mean. Any other target must be a class in `0..C`.
    pub ignore_index: i64,
    /// One weight per class (`[C]`, the logits' dtype and device).
    pub weight: Option<Tensor>,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
            ignore_index: DEFAULT_IGNORE_INDEX,
            weight: None,
        }
    }
}

impl CrossEntropyOptions {
    /// What the row primitives need.
    pub fn rows(&self) -> CrossEntropyRows<'_> {
        CrossEntropyRows {
            ignore_index: self.ignore_index,
            weight: self.weight.as_ref(),
            label_smoothing: self.label_smoothing,
        }
    }
}

/// The checked shape of a cross-entropy problem: how many rows and classes,
/// and the target's shape (the shape of the losses before a reduction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossEntropyShape {
    pub rows: usize,
    pub classes: usize,
    pub target: Shape,
}

/// The permutation that moves the class dim (1, or 0 for unbatched `[C]`
/// logits) of logits of `rank` last: `[0, 2, 3, ..., rank - 1, 1]`. Its
/// inverse puts a row gradient back in the logits' layout.
pub fn class_rows_permutation(rank: usize) -> Vec<usize> {
    if rank <= 2 {
        return (0..rank).collect();
    }
    let mut p = vec![0];
    p.extend(2..rank);
    p.push(1);
    p
}

/// The inverse of [`class_rows_permutation`]: `[0, rank - 1, 1, ..., rank - 2]`.
pub fn class_rows_inverse(rank: usize) -> Vec<usize> {
    if rank <= 2 {
        return (0..rank).collect();
    }
    let mut p = vec![0, rank - 1];
    p.extend(1..rank - 1);
    p
}

/// Shape, dtype, device and parameter checks of `cross_entropy` (see the
/// module docs for the accepted shapes).
pub fn check_cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<CrossEntropyShape> {
    let op = "cross_entropy";
    logits.check_float(op)?;
    if target.dtype() != DType::I64 {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype: target.dtype(),
            expected: "i64 class indices as target",
        });
    }
    let (l, t) = (logits.dims(), target.dims());
    let fits = match l.len() {
        0 => false,
        1 => t.is_empty(),
        _ => t.len() + 1 == l.len() && t[0] == l[0] && t[1..] == l[2..],
    };
    if !fits {
        return Err(TensorError::shape(
            op,
            format!(
                "expects logits [C], [N, C] or [N, C, d1, ..., dk] and class indices [], [N] or [N, d1, ..., dk], got {} and {}",
                logits.shape(),
                target.shape()
            ),
        ));
    }
    logits.check_same_device(op, target)?;
    if !(0.0..=1.0).contains(&opts.label_smoothing) {
        return Err(TensorError::invalid(
            op,
            format!("label_smoothing {} must be in [0, 1]", opts.label_smoothing),
        ));
    }
    let classes = if l.len() == 1 { l[0] } else { l[1] };
    if let Some(w) = &opts.weight {
        logits.check_same_kind(op, w)?;
        if w.dims() != [classes] {
            return Err(TensorError::shape(
                op,
                format!(
                    "weight must hold one value per class, shape [{classes}], got {}",
                    w.shape()
                ),
            ));
        }
    }
    Ok(CrossEntropyShape {
        rows: target.numel(),
        classes,
        target: target.shape().clone(),
    })
}

impl Tensor {
    /// One-hot rows `[N, classes]` of `dtype` for class indices `target`
    /// (`[N]`, i64): 1 at each target's class, 0 elsewhere. A class outside
    /// `0..classes` is an error.
    pub fn one_hot(target: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
        one_hot_rows(target, classes, dtype, None)
    }

    /// The weighted target distribution of cross-entropy for class indices
    /// `target` (`[R]`, i64) over `classes` classes, `[R, classes]`:
    /// `q_c = w_c ((1 - eps) [c == t] + eps / classes)`, and a row of 0 for
    /// an ignored target. Row `r`'s loss is `Σ_c q_rc (lse(x_r) - x_rc)`.
    pub fn cross_entropy_target(
        target: &Tensor,
        classes: usize,
        opts: &CrossEntropyOptions,
        dtype: DType,
    ) -> Result<Tensor> {
        let hot = one_hot_rows(target, classes, dtype, Some(opts.ignore_index))?;
        let eps = opts.label_smoothing;
        let mut q = hot.clone();
        if eps != 0.0 {
            // 1 on a row that counts, 0 on an ignored one.
            let counted = hot.sum(Some(&[1]), true)?;
            q = hot
                .mul_scalar(1.0 - eps)?
                .add(&counted.mul_scalar(eps / classes as f64)?)?;
        }
        match &opts.weight {
            Some(w) => q.mul(&w.reshape([1, classes])?),
            None => Ok(q),
        }
    }

    /// `torch.nn.functional.cross_entropy(self, target, reduction=...,
    /// label_smoothing=...)` with the other options at their defaults.
    pub fn cross_entropy(
        &self,
        target: &Tensor,
        reduction: Reduction,
        label_smoothing: f64,
    ) -> Result<Tensor> {
        self.cross_entropy_with(
            target,
            &CrossEntropyOptions {
                reduction,
                label_smoothing,
                ..Default::default()
            },
        )
    }

    /// `torch.nn.functional.cross_entropy(self, target, weight,
    /// ignore_index=..., reduction=..., label_smoothing=...)` for logits
    /// `[C]`, `[N, C]` or `[N, C, d1, ..., dk]` and class indices of the
    /// matching shape (see the module docs). A scalar for `Mean` and `Sum`;
    /// the target's shape for `None`.
    pub fn cross_entropy_with(
        &self,
        target: &Tensor,
        opts: &CrossEntropyOptions,
    ) -> Result<Tensor> {
        let s = check_cross_entropy(self, target, opts)?;
        let (logits, target_rows) = as_rows(self, target, &s)?;
        let (losses, total_weight) =
            self.backend()
                .cross_entropy(&logits, &target_rows, &opts.rows())?;
        match opts.reduction {
            Reduction::None => losses.reshape(s.target),
            Reduction::Sum => losses.sum_all(),
            Reduction::Mean => losses.sum_all()?.div(&total_weight),
        }
    }

    /// The per-row cross-entropy of logits `self` (`[R, C]`) against
    /// targets `[R]`, and the total weight of the rows that count (`[]`,
    /// what a mean divides by): the primitive the reductions are built on.
    pub fn cross_entropy_rows(
        &self,
        target: &Tensor,
        opts: &CrossEntropyOptions,
    ) -> Result<(Tensor, Tensor)> {
        check_rows("cross_entropy", self, target, opts)?;
        self.backend().cross_entropy(self, target, &opts.rows())
    }

    /// The gradient of logits rows `self` (`[R, C]`) given each row's loss
    /// gradient `grad` (`[R]`, the reduction's scaling included):
    /// `(softmax(x) Σ q - q) * g` row by row, in one pass; 0 for an ignored
    /// row.
    pub fn cross_entropy_backward(
        &self,
        target: &Tensor,
        opts: &CrossEntropyOptions,
        grad: &Tensor,
    ) -> Result<Tensor> {
        let op = "cross_entropy_backward";
        check_rows(op, self, target, opts)?;
        self.check_same_kind(op, grad)?;
        if grad.dims() != [self.dims()[0]] {
            return Err(TensorError::shape(
                op,
                format!(
                    "the loss gradient must have shape [{}], got {}",
                    self.dims()[0],
                    grad.shape()
                ),
            ));
        }
        self.backend()
            .cross_entropy_backward(self, target, &opts.rows(), grad)
    }
}

/// Checks of the row primitives: logits `[R, C]`, targets `[R]`.
fn check_rows(
    op: &'static str,
    logits: &Tensor,
    target: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<()> {
    if logits.rank() != 2 {
        return Err(TensorError::shape(
            op,
            format!("expects logits rows [R, C], got {}", logits.shape()),
        ));
    }
    check_cross_entropy(logits, target, opts).map(|_| ())
}

/// Logits `[R, C]` and targets `[R]` of a checked problem `s`.
fn as_rows(logits: &Tensor, target: &Tensor, s: &CrossEntropyShape) -> Result<(Tensor, Tensor)> {
    let rows = logits
        .permute(&class_rows_permutation(logits.rank()))?
        .reshape([s.rows, s.classes])?;
    Ok((rows, target.reshape([s.rows])?))
}

/// One-hot rows; a target equal to `ignore_index` gives a row of 0.
fn one_hot_rows(
    target: &Tensor,
    classes: usize,
    dtype: DType,
    ignore_index: Option<i64>,
) -> Result<Tensor> {
    let op = "one_hot";
    if target.dtype() != DType::I64 || target.rank() != 1 {
        return Err(TensorError::shape(
            op,
            format!(
                "expects class indices [N] (i64), got {} {}",
                target.dtype(),
                target.shape()
            ),
        ));
    }
    if !dtype.is_float() {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype,
            expected: "a float result (f32 or f64)",
        });
    }
    target
        .backend()
        .one_hot(target, classes, dtype, ignore_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_permutation_and_its_inverse_compose_to_the_identity() {
        for rank in 1..6 {
            let (p, inv) = (class_rows_permutation(rank), class_rows_inverse(rank));
            let composed: Vec<usize> = inv.iter().map(|&i| p[i]).collect();
            assert_eq!(composed, (0..rank).collect::<Vec<_>>(), "rank {rank}");
        }
        assert_eq!(class_rows_permutation(4), vec![0, 2, 3, 1]);
    }
}
