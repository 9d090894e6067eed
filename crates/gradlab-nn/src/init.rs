//! PyTorch's default initialisation of linear and convolution layers.
//!
//! `nn.Linear` and `nn.Conv2d` call `kaiming_uniform_(weight, a=sqrt(5))`:
//! gain = sqrt(2 / (1 + a²)) = sqrt(1/3), std = gain / sqrt(fan_in), and
//! samples from U(-bound, bound) with bound = sqrt(3) * std = 1 / sqrt(fan_in).
//! The bias is drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

use gradlab_tensor::{DType, Rng, Shape, Tensor};

/// Inputs feeding one output unit: `in_features` for a linear weight
/// `[out, in]`, `in_channels/groups * kh * kw` for a conv weight `[O, C, KH, KW]`.
pub fn fan_in(weight_shape: &Shape) -> usize {
    weight_shape.dims().iter().skip(1).product::<usize>().max(1)
}

/// The bound of `kaiming_uniform_` with leaky-ReLU slope `a`.
pub fn kaiming_uniform_bound(fan_in: usize, a: f64) -> f64 {
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    3f64.sqrt() * std
}

/// `torch.nn.init.kaiming_uniform_(w, a=a)` (fan-in mode) from `rng`.
pub fn kaiming_uniform(shape: impl Into<Shape>, a: f64, dtype: DType, rng: &mut Rng) -> Tensor {
    let shape = shape.into();
    let bound = kaiming_uniform_bound(fan_in(&shape), a);
    Tensor::rand_uniform(shape, -bound, bound, dtype, rng)
}

/// A weight as PyTorch's `Linear`/`Conv2d` initialise it.
pub fn default_weight(shape: impl Into<Shape>, dtype: DType, rng: &mut Rng) -> Tensor {
    kaiming_uniform(shape, 5f64.sqrt(), dtype, rng)
}

/// A bias of `len` as PyTorch's `Linear`/`Conv2d` initialise it for `fan_in` inputs.
pub fn default_bias(len: usize, fan_in: usize, dtype: DType, rng: &mut Rng) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Tensor::rand_uniform([len], -bound, bound, dtype, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bound_is_one_over_sqrt_fan_in() {
        for fan in [1, 75, 400, 4096] {
            let b = kaiming_uniform_bound(fan, 5f64.sqrt());
            assert!(
                (b - 1.0 / (fan as f64).sqrt()).abs() < 1e-15,
                "fan_in {fan}: {b}"
            );
        }
        assert_eq!(fan_in(&Shape::new([6, 3, 5, 5])), 75);
        assert_eq!(fan_in(&Shape::new([120, 400])), 400);
    }

    #[test]
    fn samples_stay_in_bounds_and_fill_them() {
        let mut rng = Rng::new(7);
        let w = default_weight([16, 6, 5, 5], DType::F64, &mut rng)
            .to_vec::<f64>()
            .unwrap();
        let bound = 1.0 / 150f64.sqrt();
        assert!(w.iter().all(|v| v.abs() < bound));
        // U(-b, b) has variance b²/3; 2,400 samples pin it within a few percent.
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!(
            (var / (bound * bound / 3.0) - 1.0).abs() < 0.1,
            "variance {var}"
        );
        let b = default_bias(16, 150, DType::F32, &mut rng)
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(b.len(), 16);
        assert!(b.iter().all(|v| (v.abs() as f64) < bound));
        // Seeded: the same seed gives the same draw.
        let again = default_weight([16, 6, 5, 5], DType::F64, &mut Rng::new(7))
            .to_vec::<f64>()
            .unwrap();
        assert_eq!(w, again);
    }
}
