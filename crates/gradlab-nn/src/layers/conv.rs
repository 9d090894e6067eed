//! `Conv2d` on NCHW batches.

use crate::init::{default_bias, default_weight, fan_in};
use crate::{Module, Result};
use gradlab_autograd::Var;
use gradlab_tensor::{Conv2dParams, DType, Rng};

/// A 2-D convolution with weight `[out, in, k, k]` and bias `[out]`, as `torch.nn.Conv2d`.
pub struct Conv2d {
    pub weight: Var,
    pub bias: Option<Var>,
    pub params: Conv2dParams,
}

impl Conv2d {
    /// A square `kernel x kernel` convolution with the given stride and
    /// padding, initialised as PyTorch does (weight first, then bias).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
    ) -> Conv2d {
        let shape = [out_channels, in_channels, kernel, kernel];
        let weight = Var::parameter(default_weight(shape, dtype, rng));
        let fan = fan_in(&shape.into());
        let bias = bias.then(|| Var::parameter(default_bias(out_channels, fan, dtype, rng)));
        let params = Conv2dParams {
            stride: (stride, stride),
            padding: (padding, padding),
            ..Conv2dParams::default()
        };
        Conv2d {
            weight,
            bias,
            params,
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.conv2d(&self.weight, self.bias.as_ref(), self.params)?)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            params.push(("bias".to_string(), b.clone()));
        }
        params
    }
}

/// `Conv2d` and `MaxPool2d` take one unbatched image `[C, H, W]` as
/// PyTorch's layers do: the result is the batch-of-one result without its
/// batch dim, and the layer's parameters get the same gradients.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::MaxPool2d;
    use gradlab_tensor::Tensor;

    fn close(a: &Tensor, b: &Tensor) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.to_vec_f64().unwrap().iter().zip(b.to_vec_f64().unwrap()) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn a_conv_and_pool_stack_on_one_image_is_the_batch_of_one() {
        let mut rng = Rng::new(3);
        let conv = Conv2d::new(3, 4, 3, 1, 1, true, DType::F64, &mut rng);
        let pool = MaxPool2d::new(2);
        let image = Tensor::randn([3, 6, 8], 0.0, 1.0, DType::F64, &mut rng);
        let run = |x: Tensor| {
            let x = Var::parameter(x);
            let y = pool
                .forward(&conv.forward(&x).unwrap().relu().unwrap())
                .unwrap();
            y.tanh().unwrap().sum_all().unwrap().backward().unwrap();
            let grads = (
                x.grad().unwrap(),
                conv.weight.grad().unwrap(),
                conv.bias.as_ref().unwrap().grad().unwrap(),
            );
            conv.weight.zero_grad();
            conv.bias.as_ref().unwrap().zero_grad();
            (y.data(), grads)
        };
        let (y, (gx, gw, gb)) = run(image.clone());
        let (yb, (gxb, gwb, gbb)) = run(image.unsqueeze(0).unwrap());
        assert_eq!(y.dims(), [4, 3, 4]);
        close(&y, &yb.squeeze(0).unwrap());
        close(&gx, &gxb.squeeze(0).unwrap());
        close(&gw, &gwb);
        close(&gb, &gbb);
    }
}
