//! Batch normalisation.
//!
//! In training mode it is one recorded op over the backend's batch-norm
//! primitives (`NativeBatchNormBackward`, as PyTorch names it): a handful
//! of passes over the activation instead of the twenty or so of its
//! composed form. Its backward runs the fused primitive too, except when the
//! backward pass itself is being recorded (`create_graph`): then it is
//! written with differentiable ops, so that gradients of gradients stay
//! exact. Evaluation with running statistics inside a graph is composed
//! from differentiable ops ([`batch_norm2d`]).
//!
//! Batch norm followed by ReLU can be one recorded op too
//! ([`batch_norm2d_relu_train`], node `BatchNormReluBackward`): it keeps
//! only its input, and its backward recomputes ReLU's mask from it inside
//! batch norm's gradient. It computes what `batch_norm2d_train(..)?.relu()`
//! computes, which stays the reference.

use crate::graph::OpSite;
use crate::graph::{is_grad_enabled, record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::{BinaryOp, Tensor, TensorError};

/// Batch statistics of a `[N, C, H, W]` var: per-channel mean and biased
/// variance, each shaped `[1, C, 1, 1]`.
#[track_caller]
pub fn batch_stats2d(x: &Var) -> Result<(Var, Var)> {
    if x.rank() != 4 {
        return Err(TensorError::shape(
            "batch_norm2d",
            format!("expects a 4-D input [N, C, H, W], got {}", x.shape()),
        )
        .into());
    }
    let mean = x.mean(Some(&[0, 2, 3]), true)?;
    let centered = x.sub(&mean)?;
    let var = centered.mul(&centered)?.mean(Some(&[0, 2, 3]), true)?;
    Ok((mean, var))
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` with per-channel
/// statistics shaped `[1, C, 1, 1]` and affine parameters shaped `[C]`.
#[track_caller]
pub fn batch_norm2d(
    x: &Var,
    mean: &Var,
    var: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    let channels = x.dims().get(1).copied().unwrap_or(0);
    let mut y = x.sub(mean)?.div(&var.add_scalar(eps)?.sqrt()?)?;
    if let Some(w) = weight {
        y = y.mul(&w.reshape([1, channels, 1, 1])?)?;
    }
    if let Some(b) = bias {
        y = y.add(&b.reshape([1, channels, 1, 1])?)?;
    }
    Ok(y)
}

/// Batch norm in training mode: normalises with the batch's own statistics.
#[track_caller]
pub fn batch_norm2d_train(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    let location = OpSite::caller();
    Ok(train_at(x, weight, bias, eps, location)?.0)
}

/// [`batch_norm2d_train`], also returning the batch's per-channel mean and
/// biased variance (shape `[C]`, outside the graph) for running statistics.
#[track_caller]
pub fn batch_norm2d_train_with_stats(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<(Var, Tensor, Tensor)> {
    train_at(x, weight, bias, eps, OpSite::caller())
}

fn train_at(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
    location: OpSite,
) -> Result<(Var, Tensor, Tensor)> {
    let (w, b) = (weight.map(Var::data), bias.map(Var::data));
    let (y, mean, var) = x.data().batch_norm2d_train(w.as_ref(), b.as_ref(), eps)?;
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let op = NativeBatchNormBackward {
        mean: mean.clone(),
        var: var.clone(),
        eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    Ok((record(y, &inputs, op, location)?, mean, var))
}

/// Batch norm in training mode followed by ReLU, as one recorded op
/// (`BatchNormReluBackward`): `relu(batch_norm2d_train(x, ..))`.
#[track_caller]
pub fn batch_norm2d_relu_train(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    Ok(relu_train_at(x, weight, bias, eps, OpSite::caller())?.0)
}

/// [`batch_norm2d_relu_train`], also returning the batch's per-channel
/// mean and biased variance (shape `[C]`, outside the graph) for running
/// statistics.
#[track_caller]
pub fn batch_norm2d_relu_train_with_stats(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
) -> Result<(Var, Tensor, Tensor)> {
    relu_train_at(x, weight, bias, eps, OpSite::caller())
}

fn relu_train_at(
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f64,
    location: OpSite,
) -> Result<(Var, Tensor, Tensor)> {
    let (w, b) = (weight.map(Var::data), bias.map(Var::data));
    let (y, mean, var) = x
        .data()
        .batch_norm2d_relu_train(w.as_ref(), b.as_ref(), eps)?;
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let op = BatchNormReluBackward {
        mean: mean.clone(),
        var: var.clone(),
        eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    Ok((record(y, &inputs, op, location)?, mean, var))
}

/// Inputs `(x, weight?, bias?)`; keeps the batch statistics of the forward pass.
///
/// The gradient is the backend's `batch_norm2d_backward` primitive; its
/// plain loop is [`gradlab_tensor::kernels::reference::batch_norm2d_backward`]
/// (the forward: [`gradlab_tensor::kernels::reference::batch_norm2d_train_forward`]).
struct NativeBatchNormBackward {
    mean: Tensor,
    var: Tensor,
    eps: f64,
    has_weight: bool,
    has_bias: bool,
}

impl BackwardOp for NativeBatchNormBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.mean.clone(), self.var.clone()]
    }
    fn name(&self) -> &'static str {
        "NativeBatchNormBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let x = &inputs[0];
        let weight = self.has_weight.then(|| &inputs[1]);
        let (dx, dw, db) = if is_grad_enabled() {
            differentiable_backward(x, weight, g, self.eps)?
        } else {
            let w = weight.map(Var::data);
            let (dx, dw, db) = g.data().batch_norm2d_backward(
                &x.data(),
                &self.mean,
                &self.var,
                w.as_ref(),
                self.eps,
            )?;
            (Var::constant(dx), Var::constant(dw), Var::constant(db))
        };
        let mut grads = vec![x.requires_grad().then_some(dx)];
        if let Some(w) = weight {
            grads.push(w.requires_grad().then_some(dw));
        }
        if self.has_bias {
            let b = &inputs[inputs.len() - 1];
            grads.push(b.requires_grad().then_some(db));
        }
        Ok(grads)
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        // The batch statistics are recomputed from the (perturbed) input:
        // they are part of the function training-mode batch norm computes.
        let weight = self.has_weight.then(|| &inputs[1]);
        let bias = self.has_bias.then(|| &inputs[inputs.len() - 1]);
        crate::graph::replay(
            inputs[0]
                .batch_norm2d_train(weight, bias, self.eps)
                .map(|(y, _, _)| y),
        )
    }
}

/// Inputs `(x, weight?, bias?)` of batch norm followed by ReLU; keeps the
/// batch statistics of the forward pass, not its output: ReLU's mask is
/// recomputed from `x` in the backward.
///
/// The gradient is the backend's `batch_norm2d_relu_backward` primitive;
/// its plain loop is
/// [`gradlab_tensor::kernels::reference::batch_norm2d_relu_backward`],
/// which is the reference ReLU backward followed by the reference batch
/// norm backward.
struct BatchNormReluBackward {
    mean: Tensor,
    var: Tensor,
    eps: f64,
    has_weight: bool,
    has_bias: bool,
}

impl BatchNormReluBackward {
    fn weight_bias<'a, T>(&self, inputs: &'a [T]) -> (Option<&'a T>, Option<&'a T>) {
        (
            self.has_weight.then(|| &inputs[1]),
            self.has_bias.then(|| &inputs[inputs.len() - 1]),
        )
    }
}

impl BackwardOp for BatchNormReluBackward {
    fn name(&self) -> &'static str {
        "BatchNormReluBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let x = &inputs[0];
        let (weight, bias) = self.weight_bias(inputs);
        let (w, b) = (weight.map(Var::data), bias.map(Var::data));
        let (dx, dw, db) = if is_grad_enabled() {
            // ReLU's mask is piecewise constant: the gradient reaching batch
            // norm is `g` masked by the (recomputed) normalised values, and
            // only batch norm's part needs recording.
            let z = x.data().batch_norm2d_inference(
                &self.mean,
                &self.var,
                w.as_ref(),
                b.as_ref(),
                self.eps,
            )?;
            let g = g.binary(&Var::constant(z), BinaryOp::ReluBackward)?;
            differentiable_backward(x, weight, &g, self.eps)?
        } else {
            let (dx, dw, db) = g.data().batch_norm2d_relu_backward(
                &x.data(),
                &self.mean,
                &self.var,
                w.as_ref(),
                b.as_ref(),
                self.eps,
            )?;
            (Var::constant(dx), Var::constant(dw), Var::constant(db))
        };
        let mut grads = vec![x.requires_grad().then_some(dx)];
        if let Some(w) = weight {
            grads.push(w.requires_grad().then_some(dw));
        }
        if let Some(b) = bias {
            grads.push(b.requires_grad().then_some(db));
        }
        Ok(grads)
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &gradlab_tensor::Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        // The batch statistics are recomputed from the (perturbed) input.
        let (weight, bias) = self.weight_bias(inputs);
        crate::graph::replay(
            inputs[0]
                .batch_norm2d_relu_train(weight, bias, self.eps)
                .map(|(y, _, _)| y),
        )
    }
}

/// The fused backward written with differentiable ops (the statistics are
/// recomputed from `x`, so that their dependence on it is recorded too):
/// `dx = w·invstd·(g - mean(g) - x̂·mean(g·x̂))`, `dw = Σ g·x̂`, `db = Σ g`.
fn differentiable_backward(
    x: &Var,
    weight: Option<&Var>,
    g: &Var,
    eps: f64,
) -> Result<(Var, Var, Var)> {
    let channels = x.dims()[1];
    let dims: &[isize] = &[0, 2, 3];
    let (mean, var) = batch_stats2d(x)?;
    let invstd = var.add_scalar(eps)?.powf(-0.5)?;
    let xhat = x.sub(&mean)?.mul(&invstd)?;
    let g_xhat = g.mul(&xhat)?;
    let centred = g
        .sub(&g.mean(Some(dims), true)?)?
        .sub(&xhat.mul(&g_xhat.mean(Some(dims), true)?)?)?;
    let mut scale = invstd;
    if let Some(w) = weight {
        scale = scale.mul(&w.reshape([1, channels, 1, 1])?)?;
    }
    let dx = centred.mul(&scale)?;
    let dw = g_xhat.sum(Some(dims), false)?;
    let db = g.sum(Some(dims), false)?;
    Ok((dx, dw, db))
}
