//! conv2d and the two products of its backward pass, each differentiable, so
//! that gradients of gradients of convolutions work.
//!
//! With `y = conv2d(x, w)`: `dx = conv2d_backward_data(g, w)` and
//! `dw = conv2d_backward_weight(g, x)`. Both are bilinear, and their own
//! derivatives are again convolutions of the same three kinds.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::{Conv2dParams, Shape};

/// `y = conv2d(x, w, b)`: `dx` is the transposed convolution of the output
/// gradient with `w` ([`gradlab_tensor::kernels::reference::conv2d_backward_data`]), `dw` the
/// correlation of `x` with the output gradient
/// ([`gradlab_tensor::kernels::reference::conv2d_backward_weight`]), `db` its sum over batch and
/// positions ([`gradlab_tensor::kernels::reference::sum`]).
struct Conv2dBackward(Conv2dParams);

impl BackwardOp for Conv2dBackward {
    fn name(&self) -> &'static str {
        "Conv2dBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let gx = x
            .requires_grad()
            .then(|| g.conv2d_backward_data(w, &x.shape(), self.0))
            .transpose()?;
        let gw = w
            .requires_grad()
            .then(|| g.conv2d_backward_weight(x, &w.shape(), self.0))
            .transpose()?;
        let mut grads = vec![gx, gw];
        if let Some(b) = inputs.get(2) {
            grads.push(
                b.requires_grad()
                    // Over the batch (when there is one) and the positions.
                    .then(|| {
                        let dims: &[isize] = if g.rank() == 4 {
                            &[0, -2, -1]
                        } else {
                            &[-2, -1]
                        };
                        g.sum(Some(dims), false)
                    })
                    .transpose()?,
            );
        }
        Ok(grads)
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].conv2d(&inputs[1], inputs.get(2), self.0))
    }
}

/// Inputs `(g, w)`, output the input gradient. Bilinear: its own gradients
/// are a forward convolution ([`gradlab_tensor::kernels::reference::conv2d_forward`]) and a weight
/// gradient ([`gradlab_tensor::kernels::reference::conv2d_backward_weight`]).
struct Conv2dBackwardDataBackward(Conv2dParams);

impl BackwardOp for Conv2dBackwardDataBackward {
    fn name(&self) -> &'static str {
        "Conv2dBackwardDataBackward"
    }
    fn backward(&self, inputs: &[Var], gg: &Var) -> Result<Vec<Option<Var>>> {
        let (g, w) = (&inputs[0], &inputs[1]);
        let d_g = g
            .requires_grad()
            .then(|| gg.conv2d(w, None, self.0))
            .transpose()?;
        let d_w = w
            .requires_grad()
            .then(|| g.conv2d_backward_weight(gg, &w.shape(), self.0))
            .transpose()?;
        Ok(vec![d_g, d_w])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].conv2d_backward_data(&inputs[1], output_shape, self.0))
    }
}

/// Inputs `(g, x)`, output the weight gradient. Bilinear: its own gradients
/// are a forward convolution ([`gradlab_tensor::kernels::reference::conv2d_forward`]) and an input
/// gradient ([`gradlab_tensor::kernels::reference::conv2d_backward_data`]).
struct Conv2dBackwardWeightBackward(Conv2dParams);

impl BackwardOp for Conv2dBackwardWeightBackward {
    fn name(&self) -> &'static str {
        "Conv2dBackwardWeightBackward"
    }
    fn backward(&self, inputs: &[Var], gg: &Var) -> Result<Vec<Option<Var>>> {
        let (g, x) = (&inputs[0], &inputs[1]);
        let d_g = g
            .requires_grad()
            .then(|| x.conv2d(gg, None, self.0))
            .transpose()?;
        let d_x = x
            .requires_grad()
            .then(|| g.conv2d_backward_data(gg, &x.shape(), self.0))
            .transpose()?;
        Ok(vec![d_g, d_x])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].conv2d_backward_weight(&inputs[1], output_shape, self.0))
    }
}

impl Var {
    /// `torch.nn.functional.conv2d` on NCHW input with weight `[O, C/groups, KH, KW]`.
    #[track_caller]
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, params: Conv2dParams) -> Result<Var> {
        let loc = OpSite::caller();
        let b = bias.map(|b| b.data());
        let out = self.data().conv2d(&weight.data(), b.as_ref(), params)?;
        match bias {
            Some(b) => record(out, &[self, weight, b], Conv2dBackward(params), loc),
            None => record(out, &[self, weight], Conv2dBackward(params), loc),
        }
    }

    /// The input gradient of a convolution, `self` being the output gradient.
    #[track_caller]
    pub fn conv2d_backward_data(
        &self,
        weight: &Var,
        input_shape: &Shape,
        params: Conv2dParams,
    ) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self
            .data()
            .conv2d_backward_data(&weight.data(), input_shape, params)?;
        record(
            out,
            &[self, weight],
            Conv2dBackwardDataBackward(params),
            loc,
        )
    }

    /// The weight gradient of a convolution, `self` being the output gradient.
    #[track_caller]
    pub fn conv2d_backward_weight(
        &self,
        input: &Var,
        weight_shape: &Shape,
        params: Conv2dParams,
    ) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self
            .data()
            .conv2d_backward_weight(&input.data(), weight_shape, params)?;
        record(
            out,
            &[self, input],
            Conv2dBackwardWeightBackward(params),
            loc,
        )
    }
}
