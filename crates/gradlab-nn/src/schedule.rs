//! Learning-rate schedules as closed forms of the optimizer step.
//!
//! A schedule maps the number of optimizer steps already taken to the
//! learning rate of the next one, so that a resumed run only needs the step
//! count to continue exactly.

use crate::{NnError, Result};
use std::f64::consts::PI;

/// How the learning rate moves over a run of `total_steps` optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// `base * gamma^(step / step_size)`: `torch.optim.lr_scheduler.StepLR`
    /// (with `step_size` counted in optimizer steps).
    Step { step_size: usize, gamma: f64 },
    /// `min + (base - min) * (1 + cos(pi * step / total_steps)) / 2`:
    /// `CosineAnnealingLR` with `T_max = total_steps`, stepped every batch.
    Cosine { total_steps: usize, min_lr: f64 },
    /// `torch.optim.lr_scheduler.OneCycleLR` (two phases, cosine annealing),
    /// whose maximum rate is the base rate.
    OneCycle(OneCycle),
}

/// `OneCycleLR`'s parameters; [`OneCycle::new`] gives PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    pub total_steps: usize,
    /// Fraction of the steps spent warming up.
    pub pct_start: f64,
    /// The first rate is `max_lr / div_factor`.
    pub div_factor: f64,
    /// The last rate is `max_lr / div_factor / final_div_factor`.
    pub final_div_factor: f64,
    /// Vary the momentum (SGD) or beta1 (Adam) inversely to the rate.
    pub cycle_momentum: bool,
    pub base_momentum: f64,
    pub max_momentum: f64,
}

impl OneCycle {
    /// PyTorch's defaults: pct_start 0.3, div_factor 25, final_div_factor 1e4,
    /// momentum cycled between 0.85 and 0.95.
    pub fn new(total_steps: usize) -> OneCycle {
        OneCycle {
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            cycle_momentum: true,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }

    /// The phase boundaries `(end of warm-up, last step)` as PyTorch computes them.
    fn phase_ends(&self) -> (f64, f64) {
        (
            self.pct_start * self.total_steps as f64 - 1.0,
            self.total_steps as f64 - 1.0,
        )
    }

    /// Where `step` lies: (start value index 0/1, fraction through its phase).
    fn position(&self, step: usize) -> (bool, f64) {
        let (warm_end, last) = self.phase_ends();
        let step = (step as f64).min(last);
        if step <= warm_end {
            (true, if warm_end > 0.0 { step / warm_end } else { 1.0 })
        } else {
            (false, (step - warm_end) / (last - warm_end))
        }
    }
}

/// Cosine interpolation from `start` (pct 0) to `end` (pct 1).
fn cosine_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}

impl LrSchedule {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(NnError::invalid("LrSchedule", msg));
        match *self {
            LrSchedule::Constant => Ok(()),
            LrSchedule::Step { step_size, gamma }
                if step_size == 0 || !(gamma > 0.0 && gamma.is_finite()) =>
            {
                bad(format!(
                    "step schedule needs step_size >= 1 and gamma > 0, got {step_size} and {gamma}"
                ))
            }
            LrSchedule::Cosine { total_steps: 0, .. } => {
                bad("cosine schedule needs total_steps >= 1".into())
            }
            LrSchedule::OneCycle(c)
                if c.total_steps < 2 || !(c.pct_start > 0.0 && c.pct_start < 1.0) =>
            {
                bad(format!(
                "one-cycle schedule needs total_steps >= 2 and pct_start in (0, 1), got {} and {}",
                c.total_steps, c.pct_start
            ))
            }
            _ => Ok(()),
        }
    }

    /// The rate of optimizer step `step` (0 for the first) for base rate `base_lr`.
    pub fn lr(&self, base_lr: f64, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base_lr,
            LrSchedule::Step { step_size, gamma } => {
                base_lr * gamma.powi((step / step_size.max(1)) as i32)
            }
            LrSchedule::Cosine {
                total_steps,
                min_lr,
            } => {
                let pct = step.min(total_steps) as f64 / total_steps.max(1) as f64;
                cosine_anneal(base_lr, min_lr, pct)
            }
            LrSchedule::OneCycle(c) => {
                let initial = base_lr / c.div_factor;
                let min = initial / c.final_div_factor;
                match c.position(step) {
                    (true, pct) => cosine_anneal(initial, base_lr, pct),
                    (false, pct) => cosine_anneal(base_lr, min, pct),
                }
            }
        }
    }

    /// The momentum (or beta1) of step `step`, for schedules that cycle it.
    pub fn momentum(&self, step: usize) -> Option<f64> {
        match *self {
            LrSchedule::OneCycle(c) if c.cycle_momentum => Some(match c.position(step) {
                (true, pct) => cosine_anneal(c.max_momentum, c.base_momentum, pct),
                (false, pct) => cosine_anneal(c.base_momentum, c.max_momentum, pct),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300), "{a} vs {b}");
    }

    #[test]
    fn step_and_cosine_by_hand() {
        let s = LrSchedule::Step {
            step_size: 10,
            gamma: 0.5,
        };
        close(s.lr(0.4, 0), 0.4);
        close(s.lr(0.4, 9), 0.4);
        close(s.lr(0.4, 10), 0.2);
        close(s.lr(0.4, 25), 0.1);
        let c = LrSchedule::Cosine {
            total_steps: 100,
            min_lr: 0.0,
        };
        close(c.lr(0.1, 0), 0.1);
        close(c.lr(0.1, 50), 0.05);
        close(c.lr(0.1, 25), 0.1 * (1.0 + (PI / 4.0).cos()) / 2.0);
        assert!(c.lr(0.1, 100).abs() < 1e-18);
        assert_eq!(LrSchedule::Constant.lr(0.3, 12345), 0.3);
        assert_eq!(LrSchedule::Constant.momentum(3), None);
    }

    #[test]
    fn one_cycle_follows_pytorch() {
        // OneCycleLR(max_lr=1, total_steps=100): warm-up ends at step
        // float(0.3 * 100) - 1 = 29, the last step is 99.
        let s = LrSchedule::OneCycle(OneCycle::new(100));
        close(s.lr(1.0, 0), 0.04);
        close(s.lr(1.0, 29), 1.0);
        close(s.lr(1.0, 99), 4e-6);
        // Half-way through each phase the rate is the mean of its ends.
        close(s.lr(1.0, 64), (1.0 + 4e-6) / 2.0);
        close(s.lr(2.0, 14), 2.0 * cosine_anneal(0.04, 1.0, 14.0 / 29.0));
        close(
            s.lr(1.0, 14),
            0.04 + (1.0 - 0.04) * (1.0 - (PI * 14.0 / 29.0).cos()) / 2.0,
        );
        // Momentum moves the other way: 0.95 -> 0.85 -> 0.95.
        close(s.momentum(0).unwrap(), 0.95);
        close(s.momentum(29).unwrap(), 0.85);
        close(s.momentum(64).unwrap(), 0.9);
        close(s.momentum(99).unwrap(), 0.95);
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = LrSchedule::Step {
            step_size: 0,
            gamma: 0.1,
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "LrSchedule: step schedule needs step_size >= 1 and gamma > 0, got 0 and 0.1"
        );
        assert!(LrSchedule::OneCycle(OneCycle::new(1)).validate().is_err());
        assert!(LrSchedule::Cosine {
            total_steps: 0,
            min_lr: 0.0
        }
        .validate()
        .is_err());
        assert!(LrSchedule::OneCycle(OneCycle::new(10)).validate().is_ok());
    }
}
