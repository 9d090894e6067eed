//! softmax, log_softmax and cross-entropy.

use crate::graph::OpSite;
use crate::graph::{is_grad_enabled, record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::ops::check_cross_entropy;
use gradlab_tensor::ops::loss::class_rows_permutation;
use gradlab_tensor::{CrossEntropyOptions, Dim, Reduction, Tensor};

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
        let dot = g.mul(&y)?.sum(Some(&[self.dim as isize]), true)?;
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
        let total = g.sum(Some(&[self.dim as isize]), true)?;
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

/// Cross-entropy of logits rows `[R, C]` against targets `[R]`, with the
/// row's weighted target distribution `q` (see
/// [`Tensor::cross_entropy_target`]):
/// `d loss / d logits = (softmax(logits) Σ q - q) * g_r`, where `g_r` is
/// each row's share of the upstream gradient (the reduction's scale
/// included: `1 / total_weight` for a mean).
///
/// A plain backward runs the backend's fused `cross_entropy_backward`
/// primitive (plain loop:
/// [`gradlab_tensor::kernels::reference::cross_entropy_backward`]); when
/// the backward pass is itself recorded, it is written with differentiable
/// ops (softmax minus the target distribution), so that second derivatives
/// flow through it.
struct CrossEntropyBackward {
    target: Tensor,
    opts: CrossEntropyOptions,
    /// What a mean divides by (`[]`, the logits' dtype and device).
    total_weight: Tensor,
}

impl CrossEntropyBackward {
    /// Each row's loss gradient `[R]` from the upstream gradient `g` (a
    /// scalar, or `[R]` without a reduction).
    fn row_grads(&self, g: &Var, rows: usize) -> Result<Var> {
        let g = match self.opts.reduction {
            Reduction::None => return Ok(g.clone()),
            Reduction::Sum => g.clone(),
            Reduction::Mean => g.div(&Var::constant(self.total_weight.clone()))?,
        };
        g.broadcast_to([rows])
    }
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
        let (rows, classes) = (logits.dims()[0], logits.dims()[1]);
        let per_row = self.row_grads(g, rows)?;
        if !is_grad_enabled() {
            let grad =
                logits
                    .data()
                    .cross_entropy_backward(&self.target, &self.opts, &per_row.data())?;
            return Ok(vec![Some(Var::constant(grad))]);
        }
        let q = Tensor::cross_entropy_target(&self.target, classes, &self.opts, logits.dtype())?;
        let mass = Var::constant(q.sum(Some(&[1]), true)?);
        let d = logits.softmax(1)?.mul(&mass)?.sub(&Var::constant(q))?;
        Ok(vec![Some(d.mul(&per_row.reshape([rows, 1])?)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        // Each row's Σ_c q_c (lse - x_c) = -Σ_c q_c log_softmax(x)_c, reduced.
        let logits = &inputs[0];
        let classes = logits.dims()[1];
        let losses =
            Tensor::cross_entropy_target(&self.target, classes, &self.opts, logits.dtype())
                .and_then(|q| logits.log_softmax(1)?.mul(&q))
                .and_then(|terms| terms.sum(Some(&[1]), false)?.neg());
        let loss = losses.and_then(|l| match self.opts.reduction {
            Reduction::None => Ok(l),
            Reduction::Sum => l.sum_all(),
            Reduction::Mean => l.sum_all()?.div(&self.total_weight),
        });
        crate::graph::replay(loss.and_then(|l| l.reshape(output_shape.clone())))
    }
}

impl Var {
    /// Softmax along `dim` (`-1`: the last dim).
    #[track_caller]
    pub fn softmax(&self, dim: impl Into<Dim>) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into();
        let out = x.softmax(dim)?;
        let dim = dim.index("softmax", x.shape())?;
        let op = SoftmaxBackward {
            dim,
            output: out.clone(),
        };
        record(out, &[self], op, loc)
    }

    /// Log-softmax along `dim` (`-1`: the last dim).
    #[track_caller]
    pub fn log_softmax(&self, dim: impl Into<Dim>) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into();
        let out = x.log_softmax(dim)?;
        let dim = dim.index("log_softmax", x.shape())?;
        let op = LogSoftmaxBackward {
            dim,
            output: out.clone(),
        };
        record(out, &[self], op, loc)
    }

    /// `torch.nn.functional.cross_entropy(self, target, reduction=...,
    /// label_smoothing=...)`, the other options at their defaults (see
    /// [`Var::cross_entropy_with`]).
    #[track_caller]
    pub fn cross_entropy(
        &self,
        target: &Tensor,
        reduction: Reduction,
        label_smoothing: f64,
    ) -> Result<Var> {
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
    /// `[C]`, `[N, C]` or `[N, C, d1, ..., dk]` against class indices `[]`,
    /// `[N]` or `[N, d1, ..., dk]` (i64). The logits are brought to rows
    /// `[R, C]` with recorded views (the class dim moved last, the rest
    /// flattened), so the graph shows one `CrossEntropyBackward` on rows.
    /// The class weights are constants (no gradient flows to them).
    #[track_caller]
    pub fn cross_entropy_with(&self, target: &Tensor, opts: &CrossEntropyOptions) -> Result<Var> {
        let loc = OpSite::caller();
        let logits = self.data();
        let s = check_cross_entropy(&logits, target, opts)?;
        let rows = if logits.rank() == 2 {
            self.clone()
        } else {
            self.permute(&class_rows_permutation(logits.rank()))?
                .reshape([s.rows, s.classes])?
        };
        let target = target.reshape([s.rows])?;
        let (losses, total_weight) = rows.data().cross_entropy_rows(&target, opts)?;
        let out = match opts.reduction {
            Reduction::None => losses,
            Reduction::Sum => losses.sum_all()?,
            Reduction::Mean => losses.sum_all()?.div(&total_weight)?,
        };
        let op = CrossEntropyBackward {
            target,
            opts: opts.clone(),
            total_weight,
        };
        let loss = record(out, &[&rows], op, loc)?;
        match opts.reduction {
            Reduction::None => loss.reshape(s.target),
            _ => Ok(loss),
        }
    }
}
