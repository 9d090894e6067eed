//! Optimizers with PyTorch's update rules, applied in place outside the graph.
//!
//! An optimizer owns the list of named parameters it updates (as
//! `torch.optim` does) and keeps per-parameter state that checkpoints save
//! under `<param>.<key>` (`fc1.weight.momentum_buffer`, `fc1.weight.exp_avg`).
//! Each step goes through the device contract (`Tensor::sgd_step_`,
//! `Tensor::adam_step_`), so parameters on any device update in place; the
//! arithmetic every backend follows is [`sgd_update`] and [`adam_update`].

mod adam;
mod sgd;

pub use adam::{adam_step_tensor, adam_update, Adam, AdamConfig, AdamState};
pub use sgd::{sgd_step_tensor, sgd_update, Sgd, SgdConfig};

use crate::{NnError, Result};
use gradlab_autograd::Var;
use gradlab_tensor::Tensor;

/// What the training loop needs from any optimizer.
pub trait Optimizer: Send {
    /// `"sgd"`, `"adam"` or `"adamw"`.
    fn name(&self) -> &'static str;

    /// Updates every parameter that has a gradient (parameters without one are skipped, as in PyTorch).
    fn step(&mut self) -> Result<()>;

    /// The named parameters this optimizer updates.
    fn params(&self) -> &[(String, Var)];

    /// Forgets the gradients of all parameters.
    fn zero_grad(&self) {
        for (_, p) in self.params() {
            p.zero_grad();
        }
    }

    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);

    /// The momentum (SGD) or beta1 (Adam), which a one-cycle schedule may vary.
    fn momentum(&self) -> f64;
    fn set_momentum(&mut self, momentum: f64);

    /// Hyper-parameters by name, for checkpoint metadata and logs.
    fn hyper_parameters(&self) -> Vec<(&'static str, f64)>;

    /// Per-parameter state as `<param>.<key>` tensors (empty before the first step).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores state saved by [`state`](Self::state). Every tensor must name
    /// one of this optimizer's parameters and a key it keeps, with the
    /// parameter's shape and dtype.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;

    /// The state this optimizer keeps for every parameter once it has
    /// stepped, but does not hold now, as `<param>.<key>` names (SGD with
    /// momentum: each `momentum_buffer`; Adam: each `step`, `exp_avg`,
    /// `exp_avg_sq`). After loading a checkpoint written after some steps,
    /// anything listed here would silently restart from zero.
    fn missing_state(&self) -> Vec<String>;
}

/// Splits `<param>.<key>` into the index of the parameter and the key,
/// checking that the parameter exists and the key is one of `keys`.
pub(crate) fn locate_state<'a>(
    op: &'static str,
    params: &[(String, Var)],
    name: &'a str,
    keys: &[&str],
) -> Result<(usize, &'a str)> {
    for key in keys {
        if let Some(param) = name.strip_suffix(key).and_then(|p| p.strip_suffix('.')) {
            if let Some(i) = params.iter().position(|(n, _)| n == param) {
                return Ok((i, key_str(name, key)));
            }
            return Err(NnError::invalid(
                op,
                format!("state '{name}' names no parameter of this model ('{param}')"),
            ));
        }
    }
    Err(NnError::invalid(
        op,
        format!(
            "state '{name}' is not one of this optimizer's keys ({})",
            keys.join(", ")
        ),
    ))
}

fn key_str<'a>(name: &'a str, key: &str) -> &'a str {
    &name[name.len() - key.len()..]
}

/// Checks that a saved state tensor fits its parameter.
pub(crate) fn check_state_fits(
    op: &'static str,
    name: &str,
    state: &Tensor,
    param: &Var,
) -> Result<()> {
    let p = param.data();
    if state.shape() != p.shape() || state.dtype() != p.dtype() {
        return Err(NnError::invalid(
            op,
            format!(
                "state '{name}' is {} {} but the parameter is {} {}",
                state.dtype(),
                state.shape(),
                p.dtype(),
                p.shape()
            ),
        ));
    }
    Ok(())
}

/// The gradient of `param` as a contiguous tensor of the parameter's dtype and shape.
pub(crate) fn checked_grad(op: &'static str, name: &str, param: &Var) -> Result<Option<Tensor>> {
    let Some(grad) = param.grad() else {
        return Ok(None);
    };
    let p = param.data();
    if grad.shape() != p.shape() || grad.dtype() != p.dtype() {
        return Err(NnError::invalid(
            op,
            format!(
                "gradient of '{name}' is {} {} but the parameter is {} {}",
                grad.dtype(),
                grad.shape(),
                p.dtype(),
                p.shape()
            ),
        ));
    }
    Ok(Some(grad.contiguous()?))
}
