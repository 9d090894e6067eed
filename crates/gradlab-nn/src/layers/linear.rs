//! `Linear`: `y = x @ weight^T + bias`.

use crate::init::{default_bias, default_weight};
use crate::{Module, Result};
use gradlab_autograd::Var;
use gradlab_tensor::{DType, Rng};

/// A fully connected layer with weight `[out, in]` and bias `[out]`, as `torch.nn.Linear`.
pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
}

impl Linear {
    /// PyTorch's default initialisation, drawn from `rng` (weight first, then bias).
    pub fn new(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
    ) -> Linear {
        let weight = Var::parameter(default_weight([out_features, in_features], dtype, rng));
        let bias =
            bias.then(|| Var::parameter(default_bias(out_features, in_features, dtype, rng)));
        Linear { weight, bias }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.linear(&self.weight, self.bias.as_ref())?)
    }

    fn parameters(&self) -> Vec<(String, Var)> {
        let mut params = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            params.push(("bias".to_string(), b.clone()));
        }
        params
    }
}
