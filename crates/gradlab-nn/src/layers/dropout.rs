//! `Dropout` with a seeded, reproducible mask stream.

use crate::{Module, NnError, Result};
use gradlab_autograd::Var;
use gradlab_tensor::{Rng, Tensor};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Zeroes each element with probability `p` while training and scales the
/// survivors by `1 / (1 - p)`, as `torch.nn.Dropout`; the identity in eval.
///
/// The mask of the k-th training call is drawn from a generator seeded by
/// (seed, k), so a run is reproducible and a mask never depends on thread timing.
pub struct Dropout {
    p: f64,
    seed: u64,
    calls: AtomicU64,
    training: AtomicBool,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(NnError::invalid(
                "Dropout",
                format!("p must be in [0, 1), got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            seed,
            calls: AtomicU64::new(0),
            training: AtomicBool::new(true),
        })
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    /// Training calls made so far (the position in the mask stream).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Sets the position in the mask stream (to resume a run).
    pub fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::Relaxed);
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> Result<Var> {
        if !self.is_training() || self.p == 0.0 {
            return Ok(x.clone());
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::new(self.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let keep = 1.0 / (1.0 - self.p);
        let data = x.data();
        let mask: Vec<f64> = (0..data.numel())
            .map(|_| if rng.next_f64() < self.p { 0.0 } else { keep })
            .collect();
        let mask = Tensor::from_f64_values(mask, data.shape().clone(), data.dtype());
        Ok(x.mul(&Var::constant(mask))?)
    }

    fn set_training(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradlab_tensor::DType;

    #[test]
    fn drops_about_p_scales_survivors_and_is_reproducible() {
        let x = Var::constant(Tensor::ones([4000], DType::F64));
        let d = Dropout::new(0.25, 3).unwrap();
        let y = d.forward(&x).unwrap().data().to_vec::<f64>().unwrap();
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert!((900..1100).contains(&zeros), "{zeros} of 4000 dropped");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-15));
        // A second call draws a new mask; a fresh layer replays the first.
        let y2 = d.forward(&x).unwrap().data().to_vec::<f64>().unwrap();
        assert_ne!(y, y2);
        let replay = Dropout::new(0.25, 3)
            .unwrap()
            .forward(&x)
            .unwrap()
            .data()
            .to_vec::<f64>()
            .unwrap();
        assert_eq!(y, replay);
        d.set_training(false);
        assert_eq!(
            d.forward(&x).unwrap().data().to_vec::<f64>().unwrap(),
            vec![1.0; 4000]
        );
        assert!(Dropout::new(1.0, 0).is_err());
    }
}
