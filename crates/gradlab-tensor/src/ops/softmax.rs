//! Softmax, log-softmax and cross-entropy on class indices.

use super::reduce::split_at_dim;
use crate::{with_float, DType, Element, Result, Shape, Tensor, TensorError};

/// How `cross_entropy` combines the per-sample losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Mean,
    Sum,
}

impl std::str::FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(format!("unknown reduction '{s}' (expected mean or sum)")),
        }
    }
}

/// Softmax (or its log) along `dim`, stabilised by the row maximum.
fn softmax_impl<T: Element>(x: &Tensor, dim: usize, log: bool) -> Result<Tensor> {
    let data = x.contiguous_slice::<T>("softmax")?;
    let (outer, len, inner) = split_at_dim(x.dims(), dim);
    let mut out = vec![T::ZERO; data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len)
                .map(|j| data[at(j)])
                .fold(T::NEG_INFINITY, |m, v| m.max(v));
            let sum: T = (0..len).map(|j| (data[at(j)] - max).exp()).sum();
            if log {
                let log_sum = sum.ln();
                (0..len).for_each(|j| out[at(j)] = data[at(j)] - max - log_sum);
            } else {
                (0..len).for_each(|j| out[at(j)] = (data[at(j)] - max).exp() / sum);
            }
        }
    }
    Tensor::from_vec(out, x.shape().clone())
}

impl Tensor {
    pub fn softmax(&self, dim: usize) -> Result<Tensor> {
        self.shape().check_dim("softmax", dim)?;
        if self.is_cuda() {
            self.check_float("softmax")?;
            return crate::cuda::softmax(self, dim, false);
        }
        with_float!(self.dtype(), "softmax", |T| softmax_impl::<T>(
            self, dim, false
        ))
    }

    pub fn log_softmax(&self, dim: usize) -> Result<Tensor> {
        self.shape().check_dim("log_softmax", dim)?;
        if self.is_cuda() {
            self.check_float("log_softmax")?;
            return crate::cuda::softmax(self, dim, true);
        }
        with_float!(self.dtype(), "log_softmax", |T| softmax_impl::<T>(
            self, dim, true
        ))
    }

    /// The target distribution of cross-entropy for class indices `target`
    /// (shape `[N]`, i64) over `classes` classes with label smoothing `eps`:
    /// `(1 - eps) * one_hot + eps / classes`, shape `[N, classes]`.
    pub fn cross_entropy_target(
        target: &Tensor,
        classes: usize,
        eps: f64,
        dtype: DType,
    ) -> Result<Tensor> {
        let op = "cross_entropy";
        if target.is_cuda() {
            return crate::cuda::cross_entropy_target(target, classes, eps, dtype);
        }
        let t = target.contiguous_slice::<i64>(op)?;
        let mut q = vec![eps / classes as f64; t.len() * classes];
        for (row, &c) in t.iter().enumerate() {
            if c < 0 || c as usize >= classes {
                return Err(TensorError::invalid(
                    op,
                    format!("target {c} at position {row} is out of range for {classes} classes"),
                ));
            }
            q[row * classes + c as usize] += 1.0 - eps;
        }
        Ok(Tensor::from_f64_values(
            q,
            Shape::new([t.len(), classes]),
            dtype,
        ))
    }

    /// `torch.nn.functional.cross_entropy(self, target, reduction, label_smoothing)`
    /// for logits `[N, C]` and class indices `[N]` (i64). Returns a scalar.
    pub fn cross_entropy(
        &self,
        target: &Tensor,
        reduction: Reduction,
        label_smoothing: f64,
    ) -> Result<Tensor> {
        let op = "cross_entropy";
        check_cross_entropy(self, target, label_smoothing)?;
        if self.is_cuda() {
            return crate::cuda::cross_entropy(self, target, reduction, label_smoothing);
        }
        let q =
            Tensor::cross_entropy_target(target, self.dims()[1], label_smoothing, self.dtype())?;
        let per_sample = self
            .log_softmax(1)?
            .mul(&q)?
            .sum(Some(&[1]), false)?
            .neg()?;
        match reduction {
            Reduction::Sum => per_sample.sum_all(),
            Reduction::Mean => {
                if self.dims()[0] == 0 {
                    return Err(TensorError::shape(op, "mean over an empty batch"));
                }
                per_sample.mean(None, false)
            }
        }
    }
}

/// Shape, dtype and parameter checks of `cross_entropy`.
pub fn check_cross_entropy(logits: &Tensor, target: &Tensor, label_smoothing: f64) -> Result<()> {
    let op = "cross_entropy";
    logits.check_float(op)?;
    if target.dtype() != DType::I64 {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype: target.dtype(),
            expected: "i64 class indices as target",
        });
    }
    if logits.rank() != 2 || target.rank() != 1 || target.dims()[0] != logits.dims()[0] {
        return Err(TensorError::shape(
            op,
            format!(
                "expects logits [N, C] and class indices [N], got {} and {}",
                logits.shape(),
                target.shape()
            ),
        ));
    }
    logits.check_same_device(op, target)?;
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(TensorError::invalid(
            op,
            format!("label_smoothing {label_smoothing} must be in [0, 1]"),
        ));
    }
    Ok(())
}
