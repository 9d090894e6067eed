//! The `Module` trait: a layer or a network with named parameters.

use crate::Result;
use gradlab_autograd::Var;

/// A differentiable function with named state, like `torch.nn.Module`.
///
/// Names are PyTorch's dotted paths (`conv1.weight`, `bn1.running_mean`), so
/// that checkpoints line up with a PyTorch `state_dict`. Modules take `&self`
/// in `forward`: state that changes while running (batch-norm statistics,
/// the train/eval switch) sits behind interior mutability.
pub trait Module: Send + Sync {
    /// Applies the module to a batch.
    fn forward(&self, x: &Var) -> Result<Var>;

    /// True when this module followed by ReLU runs as one op on `x` now (its
    /// mode, the kernels in use): then [`Module::forward_relu`] gives the
    /// pair's output. [`Sequential`](crate::layers::Sequential) asks when a
    /// [`ReLU`](crate::layers::ReLU) comes next.
    fn fuses_relu(&self, _x: &Var) -> bool {
        false
    }

    /// This module followed by ReLU, as one op; only called where
    /// [`Module::fuses_relu`] says so. By default the two one after the other.
    fn forward_relu(&self, x: &Var) -> Result<Var> {
        Ok(self.forward(x)?.relu()?)
    }

    /// True for an elementwise ReLU with no state, which a container may
    /// fold into the module before it ([`Module::fuses_relu`]).
    fn is_relu(&self) -> bool {
        false
    }

    /// Trainable parameters (vars that require grad), in registration order.
    fn parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// State that is saved but not trained (running statistics), as
    /// constant vars whose data is replaced in place.
    fn buffers(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// Switches between training behaviour (batch statistics, dropout) and
    /// evaluation behaviour (running statistics, no dropout).
    fn set_training(&self, _training: bool) {}

    /// True in training mode.
    fn is_training(&self) -> bool {
        false
    }

    /// Forgets the gradients of all parameters.
    fn zero_grad(&self) {
        for (_, p) in self.parameters() {
            p.zero_grad();
        }
    }

    /// Parameters and buffers: everything a checkpoint of the module holds.
    fn state(&self) -> Vec<(String, Var)> {
        let mut all = self.parameters();
        all.extend(self.buffers());
        all
    }

    /// Number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .map(|(_, p)| p.data().numel())
            .sum()
    }
}

/// Prefixes each name with `prefix.` (how containers name their children's state).
pub fn prefixed(prefix: &str, named: Vec<(String, Var)>) -> Vec<(String, Var)> {
    named
        .into_iter()
        .map(|(name, var)| (format!("{prefix}.{name}"), var))
        .collect()
}
