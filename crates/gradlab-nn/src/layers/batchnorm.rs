//! `BatchNorm2d`: batch statistics while training, running statistics in eval.

use crate::{Module, NnError, Result};
use gradlab_autograd::{
    batch_norm2d, batch_norm2d_relu_train_with_stats, batch_norm2d_train_with_stats,
    is_grad_enabled, no_grad, Var,
};
use gradlab_tensor::backend::{kernels, Kernels};
use gradlab_tensor::{DType, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// Per-channel normalisation of `[N, C, H, W]` batches, as `torch.nn.BatchNorm2d`.
///
/// Training normalises with the batch's mean and biased variance and moves
/// the running statistics towards the batch's mean and *unbiased* variance
/// by `momentum` (PyTorch's convention); evaluation normalises with the
/// running statistics.
pub struct BatchNorm2d {
    pub weight: Var,
    pub bias: Var,
    pub running_mean: Var,
    pub running_var: Var,
    pub num_batches_tracked: Var,
    pub eps: f64,
    pub momentum: f64,
    training: AtomicBool,
}

impl BatchNorm2d {
    /// PyTorch's defaults: weight 1, bias 0, running mean 0 and variance 1,
    /// eps 1e-5, momentum 0.1; starts in training mode.
    pub fn new(channels: usize, dtype: DType) -> BatchNorm2d {
        BatchNorm2d {
            weight: Var::parameter(Tensor::ones([channels], dtype)),
            bias: Var::parameter(Tensor::zeros([channels], dtype)),
            running_mean: Var::constant(Tensor::zeros([channels], dtype)),
            running_var: Var::constant(Tensor::ones([channels], dtype)),
            num_batches_tracked: Var::constant(Tensor::scalar(0i64)),
            eps: 1e-5,
            momentum: 0.1,
            training: AtomicBool::new(true),
        }
    }

    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Moves the running statistics towards this batch's, outside the graph.
    fn track(&self, batch_mean: &Tensor, batch_var: &Tensor, count: usize) -> Result<()> {
        let c = self.channels();
        let m = self.momentum;
        let mean = batch_mean.reshape([c])?;
        let unbiased = batch_var
            .reshape([c])?
            .mul_scalar(count as f64 / (count - 1) as f64)?;
        let blend = |running: &Var, batch: &Tensor| -> Result<()> {
            let next = running
                .data()
                .mul_scalar(1.0 - m)?
                .add(&batch.mul_scalar(m)?)?;
            running.set_data(next);
            Ok(())
        };
        blend(&self.running_mean, &mean)?;
        blend(&self.running_var, &unbiased)?;
        let tracked = self.num_batches_tracked.data().item::<i64>()?;
        self.num_batches_tracked
            .set_data(Tensor::scalar(tracked + 1));
        Ok(())
    }
}

impl BatchNorm2d {
    /// The input must be `[N, C, H, W]` with this layer's channels.
    fn check_input(&self, x: &Var) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 4 || dims[1] != self.channels() {
            return Err(NnError::invalid(
                "BatchNorm2d",
                format!(
                    "expects an input [N, {}, H, W], got {}",
                    self.channels(),
                    x.shape()
                ),
            ));
        }
        Ok(())
    }

    /// Values per channel of a training batch: more than one, or an error.
    fn training_count(&self, x: &Var) -> Result<usize> {
        let dims = x.dims();
        let count = dims[0] * dims[2] * dims[3];
        if count < 2 {
            return Err(NnError::invalid(
                "BatchNorm2d",
                format!(
                    "training needs more than 1 value per channel, got input {}",
                    x.shape()
                ),
            ));
        }
        Ok(count)
    }

    /// Training with ReLU after: one op (`BatchNormReluBackward`), the
    /// running statistics tracked as in [`Module::forward`].
    fn train_relu(&self, x: &Var) -> Result<Var> {
        self.check_input(x)?;
        let count = self.training_count(x)?;
        let (y, mean, var) =
            batch_norm2d_relu_train_with_stats(x, Some(&self.weight), Some(&self.bias), self.eps)?;
        no_grad(|| self.track(&mean, &var, count))?;
        Ok(y)
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.check_input(x)?;
        let c = self.channels();
        if !self.is_training() {
            let needs_graph = is_grad_enabled()
                && (x.requires_grad() || self.weight.requires_grad() || self.bias.requires_grad());
            if !needs_graph {
                // Evaluation without a graph: one pass per activation.
                let y = x.data().batch_norm2d_inference(
                    &self.running_mean.data(),
                    &self.running_var.data(),
                    Some(&self.weight.data()),
                    Some(&self.bias.data()),
                    self.eps,
                )?;
                return Ok(Var::constant(y));
            }
            let mean = Var::constant(self.running_mean.data().reshape([1, c, 1, 1])?);
            let var = Var::constant(self.running_var.data().reshape([1, c, 1, 1])?);
            return Ok(batch_norm2d(
                x,
                &mean,
                &var,
                Some(&self.weight),
                Some(&self.bias),
                self.eps,
            )?);
        }
        let count = self.training_count(x)?;
        let (y, mean, var) =
            batch_norm2d_train_with_stats(x, Some(&self.weight), Some(&self.bias), self.eps)?;
        no_grad(|| self.track(&mean, &var, count))?;
        Ok(y)
    }

    /// In training, batch norm and ReLU as one op, unless the reference
    /// kernels run host tensors: there the unfused pair is the reference.
    /// Evaluation applies batch norm, then ReLU.
    fn fuses_relu(&self, x: &Var) -> bool {
        let reference = !x.device().is_cuda() && kernels() == Kernels::Reference;
        self.is_training() && !reference
    }

    fn forward_relu(&self, x: &Var) -> Result<Var> {
        if self.is_training() {
            self.train_relu(x)
        } else {
            Ok(self.forward(x)?.relu()?)
        }
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn buffers(&self) -> Vec<(String, Var)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
            (
                "num_batches_tracked".to_string(),
                self.num_batches_tracked.clone(),
            ),
        ]
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
    use gradlab_tensor::Rng;

    /// Naive per-channel statistics in f64.
    fn channel_stats(x: &[f64], [n, c, h, w]: [usize; 4]) -> Vec<(f64, f64)> {
        (0..c)
            .map(|ch| {
                let vals: Vec<f64> = (0..n)
                    .flat_map(|i| (0..h * w).map(move |p| (i, p)))
                    .map(|(i, p)| x[(i * c + ch) * h * w + p])
                    .collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                (mean, var)
            })
            .collect()
    }

    #[test]
    fn training_normalises_and_tracks_unbiased_running_stats() {
        let dims = [3, 2, 2, 3];
        let x = Tensor::randn(dims, 1.5, 2.0, DType::F64, &mut Rng::new(1));
        let xs = x.to_vec::<f64>().unwrap();
        let stats = channel_stats(&xs, dims);
        let bn = BatchNorm2d::new(2, DType::F64);
        bn.weight
            .set_data(Tensor::from_vec(vec![2.0, 0.5], [2]).unwrap());
        bn.bias
            .set_data(Tensor::from_vec(vec![-1.0, 3.0], [2]).unwrap());
        let y = bn
            .forward(&Var::constant(x.clone()))
            .unwrap()
            .data()
            .to_vec::<f64>()
            .unwrap();
        let (w, b) = ([2.0, 0.5], [-1.0, 3.0]);
        for (i, &got) in y.iter().enumerate() {
            let ch = (i / 6) % 2;
            let (mean, var) = stats[ch];
            let want = (xs[i] - mean) / (var + 1e-5).sqrt() * w[ch] + b[ch];
            assert!((got - want).abs() < 1e-12, "{i}: {got} vs {want}");
        }
        let count = 18.0;
        let rm = bn.running_mean.data().to_vec::<f64>().unwrap();
        let rv = bn.running_var.data().to_vec::<f64>().unwrap();
        for ch in 0..2 {
            let (mean, var) = stats[ch];
            assert!((rm[ch] - 0.1 * mean).abs() < 1e-12);
            assert!((rv[ch] - (0.9 + 0.1 * var * count / (count - 1.0))).abs() < 1e-12);
        }
        assert_eq!(bn.num_batches_tracked.data().item::<i64>().unwrap(), 1);

        // Eval mode uses the running statistics and leaves them alone.
        bn.set_training(false);
        let y = bn
            .forward(&Var::constant(x.clone()))
            .unwrap()
            .data()
            .to_vec::<f64>()
            .unwrap();
        // With the weights recorded (they require grad): the composed form.
        // Without a graph (as in evaluation): the one-pass kernel.
        let y_no_graph = no_grad(|| bn.forward(&Var::constant(x.clone())))
            .unwrap()
            .data()
            .to_vec::<f64>()
            .unwrap();
        for (i, (&got, &fast)) in y.iter().zip(&y_no_graph).enumerate() {
            let ch = (i / 6) % 2;
            let want = (xs[i] - rm[ch]) / (rv[ch] + 1e-5).sqrt() * w[ch] + b[ch];
            assert!((got - want).abs() < 1e-12, "{i}: {got} vs {want}");
            assert!((fast - want).abs() < 1e-12, "{i}: {fast} vs {want}");
        }
        assert_eq!(bn.running_mean.data().to_vec::<f64>().unwrap(), rm);
    }

    #[test]
    fn rejects_wrong_channels_and_single_values() {
        let bn = BatchNorm2d::new(3, DType::F32);
        let err = bn
            .forward(&Var::constant(Tensor::zeros([2, 4, 2, 2], DType::F32)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "BatchNorm2d: expects an input [N, 3, H, W], got [2, 4, 2, 2]"
        );
        let err = bn
            .forward(&Var::constant(Tensor::zeros([1, 3, 1, 1], DType::F32)))
            .unwrap_err();
        assert!(
            err.to_string().contains("more than 1 value per channel"),
            "{err}"
        );
    }
}
