//! Softmax, log-softmax and cross-entropy on class indices.

use crate::{DType, Result, Tensor, TensorError};

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

impl Tensor {
    pub fn softmax(&self, dim: usize) -> Result<Tensor> {
        self.shape().check_dim("softmax", dim)?;
        self.check_float("softmax")?;
        self.backend().softmax(self, dim, false)
    }

    pub fn log_softmax(&self, dim: usize) -> Result<Tensor> {
        self.shape().check_dim("log_softmax", dim)?;
        self.check_float("log_softmax")?;
        self.backend().softmax(self, dim, true)
    }

    /// One-hot rows `[N, classes]` of `dtype` for class indices `target`
    /// (`[N]`, i64): 1 at each target's class, 0 elsewhere. A class outside
    /// `0..classes` is an error.
    pub fn one_hot(target: &Tensor, classes: usize, dtype: DType) -> Result<Tensor> {
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
        target.backend().one_hot(target, classes, dtype)
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
        let q = Tensor::one_hot(target, classes, dtype)?;
        if eps == 0.0 {
            return Ok(q);
        }
        q.mul_scalar(1.0 - eps)?.add_scalar(eps / classes as f64)
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
        if reduction == Reduction::Mean && self.dims()[0] == 0 {
            return Err(TensorError::shape(op, "mean over an empty batch"));
        }
        let per_sample = self
            .backend()
            .cross_entropy(self, target, label_smoothing)?;
        match reduction {
            Reduction::Sum => per_sample.sum_all(),
            Reduction::Mean => per_sample.mean(None, false),
        }
    }

    /// The gradient of the logits `self` of [`Tensor::cross_entropy`]
    /// given each sample's loss gradient `grad` (`[N]`):
    /// `(softmax(logits) - q) * grad` row by row, in one pass.
    pub fn cross_entropy_backward(
        &self,
        target: &Tensor,
        label_smoothing: f64,
        grad: &Tensor,
    ) -> Result<Tensor> {
        let op = "cross_entropy_backward";
        check_cross_entropy(self, target, label_smoothing)?;
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
            .cross_entropy_backward(self, target, label_smoothing, grad)
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
