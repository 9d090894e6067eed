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
