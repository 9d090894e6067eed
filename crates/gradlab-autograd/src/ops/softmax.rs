//! softmax, log_softmax and cross-entropy.

use crate::graph::OpSite;
use crate::graph::{is_grad_enabled, record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::ops::check_cross_entropy;
use gradlab_tensor::{Reduction, Tensor};

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

/// `dx = y * (g - Σ g·y)` along the dim: elementwise products and a sum
/// ([`gradlab_tensor::kernels::reference::binary`], [`gradlab_tensor::kernels::reference::sum`]) on the saved output (the forward:
/// [`gradlab_tensor::kernels::reference::softmax`]).
struct SoftmaxBackward {
    dim: usize,
    output: Tensor,
}

impl BackwardOp for SoftmaxBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.output.clone()]
    }
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

/// `dx = g - exp(y) * Σ g` along the dim ([`gradlab_tensor::kernels::reference::unary`],
/// [`gradlab_tensor::kernels::reference::binary`], [`gradlab_tensor::kernels::reference::sum`]; the forward: [`gradlab_tensor::kernels::reference::softmax`]).
struct LogSoftmaxBackward {
    dim: usize,
    output: Tensor,
}

impl BackwardOp for LogSoftmaxBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.output.clone()]
    }
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
///
/// A plain backward runs the backend's fused `cross_entropy_backward`
/// primitive (plain loop:
/// [`gradlab_tensor::kernels::reference::cross_entropy_backward`]); when
/// the backward pass is itself recorded, it is written with differentiable
/// ops (softmax minus the target distribution), so that second derivatives
/// flow through it.
struct CrossEntropyBackward {
    target: Tensor,
    label_smoothing: f64,
    scale: f64,
}

impl BackwardOp for CrossEntropyBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.target.clone()]
    }
    fn name(&self) -> &'static str {
        "CrossEntropyBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let logits = &inputs[0];
        let rows = logits.dims()[0];
        if !is_grad_enabled() {
            // Each row's loss gradient: the upstream scalar times the reduction's scale.
            let per_row = g.data().mul_scalar(self.scale)?.broadcast_to([rows])?;
            let grad = logits.data().cross_entropy_backward(
                &self.target,
                self.label_smoothing,
                &per_row,
            )?;
            return Ok(vec![Some(Var::constant(grad))]);
        }
        let q = Tensor::cross_entropy_target(
            &self.target,
            logits.dims()[1],
            self.label_smoothing,
            logits.dtype(),
        )?;
        let d = logits.softmax(1)?.sub(&Var::constant(q))?;
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
        let loss = Tensor::cross_entropy_target(
            &self.target,
            logits.dims()[1],
            self.label_smoothing,
            logits.dtype(),
        )
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
        let loc = OpSite::caller();
        let out = self.data().softmax(dim)?;
        let op = SoftmaxBackward {
            dim,
            output: out.clone(),
        };
        record(out, &[self], op, loc)
    }

    #[track_caller]
    pub fn log_softmax(&self, dim: usize) -> Result<Var> {
        let loc = OpSite::caller();
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
        let loc = OpSite::caller();
        let logits = self.data();
        check_cross_entropy(&logits, target, label_smoothing)?;
        let out = logits.cross_entropy(target, reduction, label_smoothing)?;
        let n = logits.dims()[0];
        let op = CrossEntropyBackward {
            target: target.clone(),
            label_smoothing,
            scale: match reduction {
                Reduction::Mean => 1.0 / n as f64,
                Reduction::Sum => 1.0,
            },
        };
        record(out, &[self], op, loc)
    }
}
