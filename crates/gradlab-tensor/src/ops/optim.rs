//! Optimizer updates: in-place steps on a parameter and its state, outside
//! any graph, with `torch.optim`'s rules (see [`gradlab_cpu::optim`]).

use crate::optim::{AdamConfig, SgdConfig};
use crate::{Result, Tensor, TensorError};

impl Tensor {
    fn check_update(&self, op: &'static str, other: &Tensor, what: &str) -> Result<()> {
        self.check_same_kind(op, other)?;
        if self.shape() != other.shape() {
            return Err(TensorError::shape(
                op,
                format!(
                    "parameter {} and {what} {} differ in shape",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        Ok(())
    }

    /// One SGD step of `self` by `grad`, in place. `momentum` is the
    /// momentum buffer (required when `config.momentum != 0`) and whether
    /// this is its first step, which fills it with the gradient instead of
    /// reading it. Shared or strided storage is copied first, so no other
    /// tensor observes the change.
    pub fn sgd_step_(
        &mut self,
        grad: &Tensor,
        momentum: Option<(&mut Tensor, bool)>,
        config: &SgdConfig,
    ) -> Result<()> {
        const OP: &str = "sgd_step";
        self.check_float(OP)?;
        self.check_update(OP, grad, "gradient")?;
        if let Some((buf, _)) = &momentum {
            self.check_update(OP, buf, "momentum buffer")?;
        }
        if config.momentum != 0.0 && momentum.is_none() {
            return Err(TensorError::invalid(
                OP,
                "a momentum != 0 needs a momentum buffer",
            ));
        }
        self.backend().sgd_step(self, grad, momentum, config)
    }

    /// One Adam(W) step of `self` by `grad` and of its moments, in place;
    /// `step` counts this step (1 on the first). Copy-on-write as
    /// [`Tensor::sgd_step_`].
    pub fn adam_step_(
        &mut self,
        grad: &Tensor,
        exp_avg: &mut Tensor,
        exp_avg_sq: &mut Tensor,
        step: u64,
        config: &AdamConfig,
    ) -> Result<()> {
        const OP: &str = "adam_step";
        self.check_float(OP)?;
        self.check_update(OP, grad, "gradient")?;
        self.check_update(OP, exp_avg, "exp_avg")?;
        self.check_update(OP, exp_avg_sq, "exp_avg_sq")?;
        if step == 0 {
            return Err(TensorError::invalid(OP, "steps count from 1"));
        }
        self.backend()
            .adam_step(self, grad, exp_avg, exp_avg_sq, step, config)
    }
}
