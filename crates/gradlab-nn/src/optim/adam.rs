//! Adam and AdamW with `torch.optim.Adam`/`AdamW`'s semantics (no amsgrad).

use super::{check_state_fits, checked_grad, locate_state, Optimizer};
use crate::{NnError, Result};
use gradlab_autograd::Var;
pub use gradlab_tensor::optim::{adam_update, AdamConfig};
use gradlab_tensor::Tensor;

/// The moments of one parameter and the number of steps taken.
#[derive(Clone, Debug)]
pub struct AdamState {
    pub step: u64,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

impl AdamState {
    pub fn zeros_like(param: &Tensor) -> Result<AdamState> {
        Ok(AdamState {
            step: 0,
            exp_avg: param.zeros_like()?,
            exp_avg_sq: param.zeros_like()?,
        })
    }
}

/// One step of `param` in place through the device contract.
fn step(
    param: &mut Tensor,
    grad: &Tensor,
    state: &mut AdamState,
    config: &AdamConfig,
) -> Result<()> {
    state.step += 1;
    let AdamState {
        step,
        exp_avg,
        exp_avg_sq,
    } = state;
    Ok(param.adam_step_(grad, exp_avg, exp_avg_sq, *step, config)?)
}

/// One Adam(W) step as a pure function: returns the updated parameter and
/// advances `state` (created on the first step).
pub fn adam_step_tensor(
    param: &Tensor,
    grad: &Tensor,
    state: &mut Option<AdamState>,
    config: &AdamConfig,
) -> Result<Tensor> {
    let mut out = param.copy()?;
    if state.is_none() {
        *state = Some(AdamState::zeros_like(param)?);
    }
    step(
        &mut out,
        grad,
        state.as_mut().expect("created above"),
        config,
    )?;
    Ok(out)
}

/// `torch.optim.Adam` (or `AdamW` with a decoupled config) over named parameters.
pub struct Adam {
    params: Vec<(String, Var)>,
    config: AdamConfig,
    states: Vec<Option<AdamState>>,
}

impl Adam {
    pub fn new(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Adam> {
        config.validate()?;
        let states = vec![None; params.len()];
        Ok(Adam {
            params,
            config,
            states,
        })
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }
}

const KEYS: [&str; 3] = ["step", "exp_avg", "exp_avg_sq"];

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        if self.config.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }

    fn step(&mut self) -> Result<()> {
        for ((name, param), state) in self.params.iter().zip(&mut self.states) {
            let Some(grad) = checked_grad("Adam", name, param)? else {
                continue;
            };
            let config = &self.config;
            if state.is_none() {
                *state = Some(AdamState::zeros_like(&param.data())?);
            }
            let state = state.as_mut().expect("created above");
            param.update_data(|p| step(p, &grad, state, config))?;
        }
        Ok(())
    }

    fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn momentum(&self) -> f64 {
        self.config.beta1
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.config.beta1 = momentum;
    }

    fn hyper_parameters(&self) -> Vec<(&'static str, f64)> {
        let c = &self.config;
        vec![
            ("lr", c.lr),
            ("beta1", c.beta1),
            ("beta2", c.beta2),
            ("eps", c.eps),
            ("weight_decay", c.weight_decay),
        ]
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for ((name, _), state) in self.params.iter().zip(&self.states) {
            if let Some(s) = state {
                out.push((format!("{name}.step"), Tensor::scalar(s.step as i64)));
                out.push((format!("{name}.exp_avg"), s.exp_avg.clone()));
                out.push((format!("{name}.exp_avg_sq"), s.exp_avg_sq.clone()));
            }
        }
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        const OP: &str = "Adam::load_state";
        let mut parts: Vec<[Option<Tensor>; 3]> = vec![[None, None, None]; self.params.len()];
        for (name, tensor) in state {
            let (i, key) = locate_state(OP, &self.params, name, &KEYS)?;
            let slot = KEYS
                .iter()
                .position(|k| *k == key)
                .expect("key comes from KEYS");
            if key == "step" {
                if tensor.numel() != 1 || tensor.dtype() != gradlab_tensor::DType::I64 {
                    return Err(NnError::invalid(
                        OP,
                        format!(
                            "state '{name}' must be one i64, got {} {}",
                            tensor.dtype(),
                            tensor.shape()
                        ),
                    ));
                }
            } else {
                check_state_fits(OP, name, tensor, &self.params[i].1)?;
            }
            parts[i][slot] = Some(tensor.copy()?);
        }
        let mut states = Vec::with_capacity(parts.len());
        for ((name, _), part) in self.params.iter().zip(parts) {
            states.push(match part {
                [None, None, None] => None,
                [Some(step), Some(m), Some(v)] => Some(AdamState {
                    step: checked_step(name, step.item::<i64>()?)?,
                    exp_avg: m,
                    exp_avg_sq: v,
                }),
                _ => {
                    return Err(NnError::invalid(
                        OP,
                        format!("state of '{name}' needs all of step, exp_avg and exp_avg_sq"),
                    ))
                }
            });
        }
        self.states = states;
        Ok(())
    }

    fn missing_state(&self) -> Vec<String> {
        self.params
            .iter()
            .zip(&self.states)
            .filter(|(_, state)| state.is_none())
            .flat_map(|((name, _), _)| KEYS.iter().map(move |key| format!("{name}.{key}")))
            .collect()
    }
}

/// A saved step count: at least 1 (state exists only after a step) and at
/// most `i32::MAX`, the largest the bias corrections (`beta.powi(step)`) take.
fn checked_step(name: &str, step: i64) -> Result<u64> {
    if !(1..=i64::from(i32::MAX)).contains(&step) {
        return Err(NnError::invalid(
            "Adam::load_state",
            format!(
                "state '{name}.step' is {step}; a saved step count is between 1 and {}",
                i32::MAX
            ),
        ));
    }
    Ok(step as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's `_single_tensor_adam`, written out per element in f64.
    fn reference(p0: &[f64], grads: &[Vec<f64>], c: &AdamConfig) -> Vec<Vec<f64>> {
        let n = p0.len();
        let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0; n], vec![0.0; n]);
        let mut out = Vec::new();
        for (t, g) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..n {
                let mut gi = g[i];
                if c.decoupled {
                    p[i] *= 1.0 - c.lr * c.weight_decay;
                } else {
                    gi += c.weight_decay * p[i];
                }
                m[i] += (1.0 - c.beta1) * (gi - m[i]);
                v[i] = v[i] * c.beta2 + (1.0 - c.beta2) * gi * gi;
                let bc1 = 1.0 - c.beta1.powi(t);
                let bc2 = 1.0 - c.beta2.powi(t);
                p[i] -= c.lr / bc1 * (m[i] / (v[i].sqrt() / bc2.sqrt() + c.eps));
            }
            out.push(p.clone());
        }
        out
    }

    fn run(config: AdamConfig, p0: &[f64], grads: &[Vec<f64>]) -> (Var, Adam) {
        let v = Var::parameter(Tensor::from_vec(p0.to_vec(), [p0.len()]).unwrap());
        let mut opt = Adam::new(vec![("w".into(), v.clone())], config).unwrap();
        for g in grads {
            v.set_grad(Some(Var::constant(
                Tensor::from_vec(g.clone(), [g.len()]).unwrap(),
            )));
            opt.step().unwrap();
        }
        (v, opt)
    }

    #[test]
    fn first_step_moves_each_weight_by_about_lr() {
        // After one step m/sqrt(v) is exactly sign(g) once bias-corrected:
        // p -= lr * g / (|g| + eps).
        let (v, _) = run(AdamConfig::adam(0.01), &[1.0, 2.0], &[vec![0.5, -4.0]]);
        let got = v.data().to_vec::<f64>().unwrap();
        let want = [
            1.0 - 0.01 * 0.5 / (0.5 + 1e-8),
            2.0 + 0.01 * 4.0 / (4.0 + 1e-8),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?} vs {want:?}");
        }
        // AdamW shrinks first: p = 1 * (1 - 0.01 * 0.1) - 0.01 * sign.
        let config = AdamConfig::adamw(0.01).with_weight_decay(0.1);
        let (v, _) = run(config, &[1.0], &[vec![0.5]]);
        let want = 0.999 - 0.01 * 0.5 / (0.5 + 1e-8);
        assert!((v.data().to_vec::<f64>().unwrap()[0] - want).abs() < 1e-15);
    }

    #[test]
    fn matches_the_pytorch_formulas_over_several_steps() {
        let p0 = vec![0.3, -0.7, 1.1, 0.0];
        let grads: Vec<Vec<f64>> = (0..5)
            .map(|t| (0..4).map(|i| ((t * 4 + i) as f64 * 0.37).sin()).collect())
            .collect();
        let configs = [
            AdamConfig::adam(1e-3),
            AdamConfig::adam(0.05).with_weight_decay(0.01),
            AdamConfig::adamw(0.02),
            AdamConfig {
                beta1: 0.5,
                beta2: 0.9,
                eps: 1e-3,
                ..AdamConfig::adamw(0.1).with_weight_decay(0.2)
            },
        ];
        for c in configs {
            let want = reference(&p0, &grads, &c);
            let (v, opt) = run(c, &p0, &grads);
            let got = v.data().to_vec::<f64>().unwrap();
            for (a, b) in got.iter().zip(want.last().unwrap()) {
                assert!((a - b).abs() <= 1e-14, "{c:?}: {got:?} vs {want:?}");
            }
            // The pure function follows the same path.
            let mut p = Tensor::from_vec(p0.clone(), [4]).unwrap();
            let mut state = None;
            for g in &grads {
                p = adam_step_tensor(
                    &p,
                    &Tensor::from_vec(g.clone(), [4]).unwrap(),
                    &mut state,
                    &c,
                )
                .unwrap();
            }
            assert_eq!(p.to_vec::<f64>().unwrap(), got);
            assert_eq!(state.unwrap().step, 5);
            assert_eq!(opt.state().len(), 3);
        }
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let grads: Vec<Vec<f64>> = (0..4).map(|t| vec![0.1 * t as f64 - 0.15, 0.3]).collect();
        let c = AdamConfig::adam(0.01);
        let (full, _) = run(c, &[1.0, -1.0], &grads);
        let (half, opt) = run(c, &[1.0, -1.0], &grads[..2]);
        let mut resumed = Adam::new(vec![("w".into(), half.clone())], c).unwrap();
        resumed.load_state(&opt.state()).unwrap();
        for g in &grads[2..] {
            half.set_grad(Some(Var::constant(
                Tensor::from_vec(g.clone(), [2]).unwrap(),
            )));
            resumed.step().unwrap();
        }
        assert_eq!(
            half.data().to_vec::<f64>().unwrap(),
            full.data().to_vec::<f64>().unwrap()
        );
        let partial: Vec<(String, Tensor)> = opt
            .state()
            .into_iter()
            .filter(|(n, _)| n != "w.exp_avg")
            .collect();
        let err = resumed.load_state(&partial).unwrap_err();
        assert!(
            err.to_string()
                .contains("state of 'w' needs all of step, exp_avg and exp_avg_sq"),
            "{err}"
        );
    }

    #[test]
    fn missing_moments_and_impossible_step_counts_are_named() {
        let (_, opt) = run(AdamConfig::adam(0.01), &[1.0, -1.0], &[vec![0.1, 0.2]]);
        assert!(opt.missing_state().is_empty());
        let fresh = Adam::new(opt.params().to_vec(), AdamConfig::adam(0.01)).unwrap();
        assert_eq!(
            fresh.missing_state(),
            ["w.step", "w.exp_avg", "w.exp_avg_sq"]
        );
        for bad in [0i64, -5, i64::MAX, i64::from(i32::MAX) + 1] {
            let state: Vec<(String, Tensor)> = opt
                .state()
                .into_iter()
                .map(|(n, t)| {
                    if n == "w.step" {
                        (n, Tensor::scalar(bad))
                    } else {
                        (n, t)
                    }
                })
                .collect();
            let mut resumed = Adam::new(opt.params().to_vec(), AdamConfig::adam(0.01)).unwrap();
            let err = resumed.load_state(&state).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("Adam::load_state: state 'w.step' is {bad}; a saved step count is between 1 and 2147483647")
            );
        }
    }
}
