//! softmax, log_softmax and cross-entropy.

use crate::graph::{is_grad_enabled, record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::ops::check_cross_entropy;
use gradlab_tensor::{Reduction, Tensor};
use std::panic::Location;

/// The op's output for its backward rule: the saved value in a plain
/// backward, recomputed from the input (so that it is differentiable) when
/// the backward pass is itself recorded.
fn output_for_backward(saved: &Tensor, recompute: impl FnOnce() -> Result<Var>) -> Result<Var> {
    if is_grad_enabled() {
        recompute()
    } else {
        Ok(Var::constant(saved.clone()))
    }
}

struct SoftmaxBackward {
    dim: usize,
    output: Tensor,
}

impl BackwardOp for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "SoftmaxBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let y = output_for_backward(&self.output, || inputs[0].softmax(self.dim))?;
        // dx = y * (g - sum(g * y))
        let dot = g.mul(&y)?.sum(Some(&[self.dim]), true)?;
        Ok(vec![Some(y.mul(&g.sub(&dot)?)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].softmax(self.dim))
    }
}

struct LogSoftmaxBackward {
    dim: usize,
    output: Tensor,
}

impl BackwardOp for LogSoftmaxBackward {
    fn name(&self) -> &'static str {
        "LogSoftmaxBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let y = output_for_backward(&self.output, || inputs[0].log_softmax(self.dim))?;
        // dx = g - softmax * sum(g)
        let total = g.sum(Some(&[self.dim]), true)?;
        Ok(vec![Some(g.sub(&y.exp()?.mul(&total)?)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].log_softmax(self.dim))
    }
}

/// Cross-entropy of logits against a (smoothed) one-hot target `q`:
/// `d loss / d logits = (softmax(logits) - q) * scale`.
struct CrossEntropyBackward {
    target_dist: Tensor,
    scale: f64,
}

impl BackwardOp for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "CrossEntropyBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let p = inputs[0].softmax(1)?;
        let d = p.sub(&Var::constant(self.target_dist.clone()))?;
        Ok(vec![Some(d.mul(g)?.mul_scalar(self.scale)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        // -scale * sum(q * log_softmax(logits)), with the (smoothed)
        // one-hot targets q and the reduction's scale the node keeps.
        let logits = &inputs[0];
        let loss = self
            .target_dist
            .to_dtype(logits.dtype())
            .and_then(|q| logits.log_softmax(1)?.mul(&q))
            .and_then(|terms| terms.sum_all())
            .and_then(|total| total.mul_scalar(-self.scale))
            .and_then(|loss| loss.reshape(output_shape.clone()));
        crate::graph::replay(loss)
    }
}

impl Var {
    #[track_caller]
    pub fn softmax(&self, dim: usize) -> Result<Var> {
        let loc = Location::caller();
        let out = self.data().softmax(dim)?;
        let op = SoftmaxBackward {
            dim,
            output: out.clone(),
        };
        record(out, &[self], op, loc)
    }

    #[track_caller]
    pub fn log_softmax(&self, dim: usize) -> Result<Var> {
        let loc = Location::caller();
        let out = self.data().log_softmax(dim)?;
        let op = LogSoftmaxBackward {
            dim,
            output: out.clone(),
        };
        record(out, &[self], op, loc)
    }

    /// `torch.nn.functional.cross_entropy` of logits `[N, C]` against class
    /// indices `[N]` (i64), with reduction and label smoothing.
    #[track_caller]
    pub fn cross_entropy(
        &self,
        target: &Tensor,
        reduction: Reduction,
        label_smoothing: f64,
    ) -> Result<Var> {
        let loc = Location::caller();
        let logits = self.data();
        check_cross_entropy(&logits, target, label_smoothing)?;
        let out = logits.cross_entropy(target, reduction, label_smoothing)?;
        let (n, classes) = (logits.dims()[0], logits.dims()[1]);
        let op = CrossEntropyBackward {
            target_dist: Tensor::cross_entropy_target(
                target,
                classes,
                label_smoothing,
                logits.dtype(),
            )?,
            scale: match reduction {
                Reduction::Mean => 1.0 / n as f64,
                Reduction::Sum => 1.0,
            },
        };
        record(out, &[self], op, loc)
    }
}
