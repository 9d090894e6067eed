//! Layers without parameters: `ReLU` and `Flatten`.

use crate::{Module, Result};
use gradlab_autograd::Var;

/// `max(x, 0)` elementwise.
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.relu()?)
    }

    fn is_relu(&self) -> bool {
        true
    }
}

/// Merges dims `start_dim..` into one (`torch.nn.Flatten` uses `start_dim = 1`).
pub struct Flatten {
    pub start_dim: usize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1 }
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.flatten(self.start_dim)?)
    }
}
