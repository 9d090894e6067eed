//! Pooling layers: `MaxPool2d` and `GlobalAvgPool2d`.

use crate::{Module, NnError, Result};
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

/// The mean of each channel over its whole plane: `[N, C, H, W] -> [N, C]`,
/// as `torch.nn.AdaptiveAvgPool2d(1)` followed by `torch.flatten(x, 1)`.
///
/// A classifier head behind it sees one feature per channel whatever the
/// image size, instead of `C * H * W` flattened activations.
///
/// ```
/// use gradlab_autograd::Var;
/// use gradlab_nn::{layers::GlobalAvgPool2d, Module};
/// use gradlab_tensor::Tensor;
/// let x = Var::constant(Tensor::from_vec((0..8).map(f64::from).collect(), [1, 2, 2, 2]).unwrap());
/// let y = GlobalAvgPool2d.forward(&x).unwrap();
/// assert_eq!(y.data().to_vec::<f64>().unwrap(), vec![1.5, 5.5]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool2d;

impl Module for GlobalAvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        if x.rank() != 4 {
            return Err(NnError::invalid(
                "GlobalAvgPool2d",
                format!("expects [N, C, H, W] input, got {:?}", x.dims()),
            ));
        }
        Ok(x.mean(Some(&[2, 3]), false)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradlab_tensor::{DType, Rng, Tensor};

    #[test]
    fn averages_each_plane_and_spreads_the_gradient_evenly() {
        let (n, c, h, w) = (2, 3, 4, 5);
        let mut rng = Rng::new(7);
        let data = Tensor::randn([n, c, h, w], 0.0, 1.0, DType::F64, &mut rng);
        let values = data.to_vec::<f64>().unwrap();
        let x = Var::parameter(data);
        let y = GlobalAvgPool2d.forward(&x).unwrap();
        assert_eq!(y.dims(), [n, c]);
        // A naive twin: plain loops over each plane.
        let plane = h * w;
        let expected: Vec<f64> = values
            .chunks(plane)
            .map(|p| p.iter().sum::<f64>() / plane as f64)
            .collect();
        let got = y.data().to_vec::<f64>().unwrap();
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-12, "{g} vs {e}");
        }
        // d sum(y * u) / dx[n, c, i, j] = u[n, c] / (h * w).
        let upstream: Vec<f64> = (0..n * c).map(|i| i as f64 - 2.0).collect();
        let u = Var::constant(Tensor::from_vec(upstream.clone(), [n, c]).unwrap());
        y.mul(&u).unwrap().sum_all().unwrap().backward().unwrap();
        let grad = x.grad().unwrap().to_vec::<f64>().unwrap();
        for (i, g) in grad.iter().enumerate() {
            let e = upstream[i / plane] / plane as f64;
            assert!((g - e).abs() < 1e-12, "element {i}: {g} vs {e}");
        }
    }

    #[test]
    fn refuses_inputs_that_are_not_image_batches() {
        let x = Var::constant(Tensor::ones([2, 3], DType::F32));
        let err = GlobalAvgPool2d.forward(&x).unwrap_err().to_string();
        assert!(
            err.contains("GlobalAvgPool2d") && err.contains("[2, 3]"),
            "{err}"
        );
    }
}
