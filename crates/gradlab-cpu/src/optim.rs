//! Optimizer updates on raw slices, with `torch.optim`'s rules.
//!
//! Each update is one plain loop over a parameter's elements, written once
//! for f32 and f64. The hyper-parameters carry PyTorch's names and defaults;
//! every backend (these loops on the CPU, a kernel on CUDA) follows the
//! formulas written on [`sgd_update`] and [`adam_update`].

use crate::Float;

/// A hyper-parameter that cannot work, as PyTorch's constructors reject it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{optimizer}: {message}")]
pub struct InvalidHyperParameter {
    pub optimizer: &'static str,
    pub message: String,
}

fn check_hyper(
    optimizer: &'static str,
    name: &str,
    value: f64,
    min: f64,
) -> Result<(), InvalidHyperParameter> {
    if !value.is_finite() || value < min {
        return Err(InvalidHyperParameter {
            optimizer,
            message: format!("{name} must be a finite number >= {min}, got {value}"),
        });
    }
    Ok(())
}

/// SGD hyper-parameters, with PyTorch's names and defaults (all but `lr` zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }

    pub fn with_momentum(self, momentum: f64) -> SgdConfig {
        SgdConfig { momentum, ..self }
    }

    pub fn with_weight_decay(self, weight_decay: f64) -> SgdConfig {
        SgdConfig {
            weight_decay,
            ..self
        }
    }

    /// Checks the values as PyTorch's constructor does.
    pub fn validate(&self) -> Result<(), InvalidHyperParameter> {
        check_hyper("SGD", "lr", self.lr, 0.0)?;
        check_hyper("SGD", "momentum", self.momentum, 0.0)?;
        check_hyper("SGD", "weight_decay", self.weight_decay, 0.0)?;
        check_hyper("SGD", "dampening", self.dampening, f64::NEG_INFINITY)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(InvalidHyperParameter {
                optimizer: "SGD",
                message: "Nesterov momentum requires a momentum and zero dampening".into(),
            });
        }
        Ok(())
    }
}

/// One SGD update of `param` by `grad`, in place. `momentum_buffer` is the
/// buffer of earlier steps with a flag saying whether this is the first step
/// (which fills it with the gradient instead of reading it, as PyTorch does):
///
/// ```text
/// d = grad + weight_decay * param
/// buf = d                                   (first step)
/// buf = momentum * buf + (1 - dampening) * d (later steps)
/// d = nesterov ? d + momentum * buf : buf   (when momentum != 0)
/// param -= lr * d
/// ```
pub fn sgd_update<T: Float>(
    param: &mut [T],
    grad: &[T],
    momentum_buffer: Option<(&mut [T], bool)>,
    config: &SgdConfig,
) {
    let lr = T::from_f64(config.lr);
    let wd = T::from_f64(config.weight_decay);
    let momentum = T::from_f64(config.momentum);
    let keep = T::from_f64(1.0 - config.dampening);
    match momentum_buffer {
        Some((buf, first)) if config.momentum != 0.0 => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(buf.iter_mut()) {
                let d = if config.weight_decay != 0.0 {
                    g + wd * *p
                } else {
                    g
                };
                *b = if first { d } else { momentum * *b + keep * d };
                let d = if config.nesterov {
                    d + momentum * *b
                } else {
                    *b
                };
                *p -= lr * d;
            }
        }
        _ => {
            for (p, &g) in param.iter_mut().zip(grad) {
                let d = if config.weight_decay != 0.0 {
                    g + wd * *p
                } else {
                    g
                };
                *p -= lr * d;
            }
        }
    }
}

/// Adam hyper-parameters. `decoupled` selects AdamW's weight decay
/// (`param *= 1 - lr * weight_decay`) over Adam's L2 term (`grad += weight_decay * param`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled: bool,
}

impl AdamConfig {
    /// `torch.optim.Adam`'s defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam(lr: f64) -> AdamConfig {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// `torch.optim.AdamW`'s defaults: as Adam with decoupled weight decay 0.01.
    pub fn adamw(lr: f64) -> AdamConfig {
        AdamConfig {
            weight_decay: 0.01,
            decoupled: true,
            ..AdamConfig::adam(lr)
        }
    }

    pub fn with_weight_decay(self, weight_decay: f64) -> AdamConfig {
        AdamConfig {
            weight_decay,
            ..self
        }
    }

    /// `"Adam"` or `"AdamW"`.
    pub fn name(&self) -> &'static str {
        if self.decoupled {
            "AdamW"
        } else {
            "Adam"
        }
    }

    /// Checks the values as PyTorch's constructor does.
    pub fn validate(&self) -> Result<(), InvalidHyperParameter> {
        let op = self.name();
        check_hyper(op, "lr", self.lr, 0.0)?;
        check_hyper(op, "eps", self.eps, 0.0)?;
        check_hyper(op, "weight_decay", self.weight_decay, 0.0)?;
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(InvalidHyperParameter {
                    optimizer: op,
                    message: format!("{name} must be in [0, 1), got {beta}"),
                });
            }
        }
        Ok(())
    }
}

/// One Adam(W) update in place, `step` counting this step (1 on the first):
///
/// ```text
/// param *= 1 - lr * weight_decay            (AdamW)
/// grad  += weight_decay * param             (Adam)
/// m = lerp(m, grad, 1 - beta1);  v = beta2 * v + (1 - beta2) * grad²
/// param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
/// ```
pub fn adam_update<T: Float>(
    param: &mut [T],
    grad: &[T],
    exp_avg: &mut [T],
    exp_avg_sq: &mut [T],
    step: u64,
    config: &AdamConfig,
) {
    let c = config;
    let step = i32::try_from(step).unwrap_or(i32::MAX);
    let bias_correction1 = 1.0 - c.beta1.powi(step);
    let bias_correction2_sqrt = (1.0 - c.beta2.powi(step)).sqrt();
    let step_size = T::from_f64(c.lr / bias_correction1);
    let shrink = T::from_f64(1.0 - c.lr * c.weight_decay);
    let wd = T::from_f64(c.weight_decay);
    let (w1, b2, w2) = (
        T::from_f64(1.0 - c.beta1),
        T::from_f64(c.beta2),
        T::from_f64(1.0 - c.beta2),
    );
    let (bc2, eps) = (T::from_f64(bias_correction2_sqrt), T::from_f64(c.eps));
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(exp_avg.iter_mut())
        .zip(exp_avg_sq.iter_mut())
    {
        let mut g = g;
        if c.weight_decay != 0.0 {
            if c.decoupled {
                *p *= shrink;
            } else {
                g += wd * *p;
            }
        }
        *m += w1 * (g - *m);
        *v = *v * b2 + w2 * g * g;
        let denom = v.sqrt() / bc2 + eps;
        *p -= step_size * (*m / denom);
    }
}
