//! `MaxPool2d`.

use crate::{Module, Result};
use gradlab_autograd::Var;
use gradlab_tensor::MaxPool2dParams;

/// Max pooling, as `torch.nn.MaxPool2d`.
pub struct MaxPool2d {
    pub params: MaxPool2dParams,
}

impl MaxPool2d {
    /// A `k x k` window moving by `k` (PyTorch's default stride).
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d {
            params: MaxPool2dParams::square(kernel),
        }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.max_pool2d(self.params)?)
    }
}
