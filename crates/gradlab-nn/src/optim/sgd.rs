//! Stochastic gradient descent with `torch.optim.SGD`'s semantics.

use super::{check_state_fits, checked_grad, locate_state, Optimizer};
use crate::Result;
use gradlab_autograd::Var;
pub use gradlab_tensor::optim::{sgd_update, SgdConfig};
use gradlab_tensor::Tensor;

/// One SGD step as a pure function: returns the updated parameter and
/// updates (or creates) the momentum buffer.
pub fn sgd_step_tensor(
    param: &Tensor,
    grad: &Tensor,
    momentum_buffer: &mut Option<Tensor>,
    config: &SgdConfig,
) -> Result<Tensor> {
    let mut out = param.copy()?;
    step(&mut out, grad, momentum_buffer, config)?;
    Ok(out)
}

/// One step of `param` in place through the device contract; the momentum
/// buffer is created (from the gradient, on the first step) when needed.
fn step(
    param: &mut Tensor,
    grad: &Tensor,
    momentum_buffer: &mut Option<Tensor>,
    config: &SgdConfig,
) -> Result<()> {
    if config.momentum == 0.0 {
        return Ok(param.sgd_step_(grad, None, config)?);
    }
    let first = momentum_buffer.is_none();
    if first {
        *momentum_buffer = Some(param.zeros_like()?);
    }
    let buf = momentum_buffer.as_mut().expect("created above");
    Ok(param.sgd_step_(grad, Some((buf, first)), config)?)
}

/// `torch.optim.SGD` over named parameters.
pub struct Sgd {
    params: Vec<(String, Var)>,
    config: SgdConfig,
    momentum_buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(params: Vec<(String, Var)>, config: SgdConfig) -> Result<Sgd> {
        config.validate()?;
        let momentum_buffers = vec![None; params.len()];
        Ok(Sgd {
            params,
            config,
            momentum_buffers,
        })
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }
}

const MOMENTUM_BUFFER: &str = "momentum_buffer";

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self) -> Result<()> {
        for ((name, param), buf) in self.params.iter().zip(&mut self.momentum_buffers) {
            let Some(grad) = checked_grad("SGD", name, param)? else {
                continue;
            };
            let config = &self.config;
            param.update_data(|p| step(p, &grad, buf, config))?;
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
        self.config.momentum
    }

    fn set_momentum(&mut self, momentum: f64) {
        self.config.momentum = momentum;
    }

    fn hyper_parameters(&self) -> Vec<(&'static str, f64)> {
        let c = &self.config;
        vec![
            ("lr", c.lr),
            ("momentum", c.momentum),
            ("dampening", c.dampening),
            ("weight_decay", c.weight_decay),
            ("nesterov", if c.nesterov { 1.0 } else { 0.0 }),
        ]
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .filter_map(|((name, _), buf)| {
                buf.as_ref()
                    .map(|b| (format!("{name}.{MOMENTUM_BUFFER}"), b.clone()))
            })
            .collect()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut buffers = vec![None; self.params.len()];
        for (name, tensor) in state {
            let (i, _) = locate_state("SGD::load_state", &self.params, name, &[MOMENTUM_BUFFER])?;
            check_state_fits("SGD::load_state", name, tensor, &self.params[i].1)?;
            buffers[i] = Some(tensor.copy()?);
        }
        self.momentum_buffers = buffers;
        Ok(())
    }

    fn missing_state(&self) -> Vec<String> {
        if self.config.momentum == 0.0 {
            return Vec::new();
        }
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .filter(|(_, buf)| buf.is_none())
            .map(|((name, _), _)| format!("{name}.{MOMENTUM_BUFFER}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradlab_tensor::DType;

    /// PyTorch's SGD written out per element in f64, three steps.
    fn reference(p0: &[f64], grads: &[Vec<f64>], c: &SgdConfig) -> Vec<Vec<f64>> {
        let mut p = p0.to_vec();
        let mut buf: Option<Vec<f64>> = None;
        let mut out = Vec::new();
        for g in grads {
            let d: Vec<f64> = g
                .iter()
                .zip(&p)
                .map(|(g, p)| g + c.weight_decay * p)
                .collect();
            let step: Vec<f64> = if c.momentum != 0.0 {
                let b = match buf.take() {
                    None => d.clone(),
                    Some(b) => b
                        .iter()
                        .zip(&d)
                        .map(|(b, d)| c.momentum * b + (1.0 - c.dampening) * d)
                        .collect(),
                };
                let s = if c.nesterov {
                    d.iter().zip(&b).map(|(d, b)| d + c.momentum * b).collect()
                } else {
                    b.clone()
                };
                buf = Some(b);
                s
            } else {
                d
            };
            p = p.iter().zip(&step).map(|(p, s)| p - c.lr * s).collect();
            out.push(p.clone());
        }
        out
    }

    #[test]
    fn matches_the_pytorch_rule_for_every_option() {
        let p0 = vec![0.5, -1.25, 2.0];
        let grads = vec![
            vec![0.1, 0.2, -0.3],
            vec![-0.4, 0.05, 0.6],
            vec![0.7, -0.8, 0.9],
        ];
        let configs = [
            SgdConfig::new(0.1),
            SgdConfig::new(0.01).with_momentum(0.9),
            SgdConfig {
                nesterov: true,
                ..SgdConfig::new(0.05)
                    .with_momentum(0.9)
                    .with_weight_decay(5e-4)
            },
            SgdConfig {
                dampening: 0.3,
                ..SgdConfig::new(0.2)
                    .with_momentum(0.5)
                    .with_weight_decay(0.1)
            },
        ];
        for c in configs {
            let want = reference(&p0, &grads, &c);
            // The pure function.
            let mut p = Tensor::from_vec(p0.clone(), [3]).unwrap();
            let mut buf = None;
            for (g, w) in grads.iter().zip(&want) {
                p = sgd_step_tensor(&p, &Tensor::from_vec(g.clone(), [3]).unwrap(), &mut buf, &c)
                    .unwrap();
                let got = p.to_vec::<f64>().unwrap();
                for (a, b) in got.iter().zip(w) {
                    assert!(
                        (a - b).abs() <= 1e-15 * b.abs().max(1.0),
                        "{c:?}: {got:?} vs {w:?}"
                    );
                }
            }
            // The optimizer over a Var, in place.
            let v = Var::parameter(Tensor::from_vec(p0.clone(), [3]).unwrap());
            let mut opt = Sgd::new(vec![("w".into(), v.clone())], c).unwrap();
            for g in &grads {
                v.set_grad(Some(Var::constant(
                    Tensor::from_vec(g.clone(), [3]).unwrap(),
                )));
                opt.step().unwrap();
            }
            assert_eq!(
                v.data().to_vec::<f64>().unwrap(),
                p.to_vec::<f64>().unwrap()
            );
        }
    }

    #[test]
    fn first_momentum_step_by_hand() {
        // buf = g, p = 1 - 0.1 * 2 = 0.8; then buf = 0.9 * 2 + 1 = 2.8, p = 0.8 - 0.28 = 0.52.
        let v = Var::parameter(Tensor::from_vec(vec![1.0f64], [1]).unwrap());
        let mut opt = Sgd::new(
            vec![("w".into(), v.clone())],
            SgdConfig::new(0.1).with_momentum(0.9),
        )
        .unwrap();
        v.set_grad(Some(Var::constant(
            Tensor::from_vec(vec![2.0f64], [1]).unwrap(),
        )));
        opt.step().unwrap();
        assert!((v.data().to_vec::<f64>().unwrap()[0] - 0.8).abs() < 1e-15);
        v.set_grad(Some(Var::constant(
            Tensor::from_vec(vec![1.0f64], [1]).unwrap(),
        )));
        opt.step().unwrap();
        assert!((v.data().to_vec::<f64>().unwrap()[0] - 0.52).abs() < 1e-15);
        let state = opt.state();
        assert_eq!(state.len(), 1);
        assert_eq!(state[0].0, "w.momentum_buffer");
        assert!((state[0].1.to_vec::<f64>().unwrap()[0] - 2.8).abs() < 1e-15);
    }

    #[test]
    fn updates_in_place_without_copying_unshared_storage() {
        let v = Var::parameter(Tensor::zeros([1000], DType::F32));
        let ptr = |v: &Var| v.data().storage_slice::<f32>("test").unwrap().as_ptr() as usize;
        let before = ptr(&v);
        let mut opt = Sgd::new(
            vec![("w".into(), v.clone())],
            SgdConfig::new(0.5).with_momentum(0.9),
        )
        .unwrap();
        for _ in 0..3 {
            v.set_grad(Some(Var::constant(Tensor::ones([1000], DType::F32))));
            opt.step().unwrap();
        }
        assert_eq!(ptr(&v), before, "the parameter's buffer was reallocated");
        // A tensor still holding the old value keeps it (copy-on-write).
        let snapshot = v.data();
        v.set_grad(Some(Var::constant(Tensor::ones([1000], DType::F32))));
        opt.step().unwrap();
        assert_ne!(
            snapshot.to_vec::<f32>().unwrap(),
            v.data().to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn state_round_trips_and_bad_state_is_named() {
        let v = Var::parameter(Tensor::from_vec(vec![1.0f64, 2.0], [2]).unwrap());
        let params = vec![("fc.weight".to_string(), v.clone())];
        let mut opt = Sgd::new(params.clone(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap();
        v.set_grad(Some(Var::constant(
            Tensor::from_vec(vec![1.0f64, -1.0], [2]).unwrap(),
        )));
        let mut other = Sgd::new(params.clone(), SgdConfig::new(0.1).with_momentum(0.9)).unwrap();
        assert_eq!(other.missing_state(), ["fc.weight.momentum_buffer"]);
        let plain = Sgd::new(params.clone(), SgdConfig::new(0.1)).unwrap();
        assert!(plain.missing_state().is_empty(), "plain SGD keeps no state");
        opt.step().unwrap();
        assert!(opt.missing_state().is_empty());
        other.load_state(&opt.state()).unwrap();
        assert!(other.missing_state().is_empty());
        assert_eq!(other.state()[0].1.to_vec::<f64>().unwrap(), vec![1.0, -1.0]);

        let err = other
            .load_state(&[(
                "fc.bias.momentum_buffer".into(),
                Tensor::zeros([2], DType::F64),
            )])
            .unwrap_err();
        assert_eq!(err.to_string(), "SGD::load_state: state 'fc.bias.momentum_buffer' names no parameter of this model ('fc.bias')");
        let err = other
            .load_state(&[(
                "fc.weight.momentum_buffer".into(),
                Tensor::zeros([3], DType::F64),
            )])
            .unwrap_err();
        assert_eq!(err.to_string(), "SGD::load_state: state 'fc.weight.momentum_buffer' is f64 [3] but the parameter is f64 [2]");
        let err = Sgd::new(params, SgdConfig::new(-1.0)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "SGD: lr must be a finite number >= 0, got -1"
        );
    }
}
