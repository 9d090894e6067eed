//! max_pool2d: the gradient is routed to each window's winner. The routing
//! (scatter) and its adjoint (gather) are ops of their own, so second
//! derivatives flow through pooling too.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::{MaxPool2dParams, Shape, Tensor};

/// Each pooled gradient goes to its window's winner, recorded as the
/// argmax of the forward pass ([`gradlab_tensor::kernels::reference::max_pool2d_backward`]; the
/// forward: [`gradlab_tensor::kernels::reference::max_pool2d_forward`]).
struct MaxPool2dBackward {
    params: MaxPool2dParams,
    argmax: Tensor,
}

impl BackwardOp for MaxPool2dBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.argmax.clone()]
    }
    fn name(&self) -> &'static str {
        "MaxPool2dBackward"
    }
    fn backward(&self, inputs: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let gx = g.max_pool2d_scatter(&self.argmax, &inputs[0].shape(), self.params)?;
        Ok(vec![Some(gx)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].max_pool2d(self.params).map(|(y, _)| y))
    }
}

/// The routing above is linear; its own gradient reads the winners back
/// ([`gradlab_tensor::kernels::reference::max_pool2d_gather`]).
struct MaxPoolScatterBackward {
    params: MaxPool2dParams,
    argmax: Tensor,
}

impl BackwardOp for MaxPoolScatterBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.argmax.clone()]
    }
    fn name(&self) -> &'static str {
        "MaxPoolScatterBackward"
    }
    fn backward(&self, _: &[Var], gg: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(gg.max_pool2d_gather(&self.argmax, self.params)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].max_pool2d_backward(&self.argmax, output_shape, self.params))
    }
}

/// The adjoint of the gather: route to the winners again
/// ([`gradlab_tensor::kernels::reference::max_pool2d_backward`]).
struct MaxPoolGatherBackward {
    params: MaxPool2dParams,
    argmax: Tensor,
}

impl BackwardOp for MaxPoolGatherBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.argmax.clone()]
    }
    fn name(&self) -> &'static str {
        "MaxPoolGatherBackward"
    }
    fn backward(&self, inputs: &[Var], gg: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(gg.max_pool2d_scatter(
            &self.argmax,
            &inputs[0].shape(),
            self.params,
        )?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].max_pool2d_gather(&self.argmax, self.params))
    }
}

impl Var {
    /// `torch.nn.functional.max_pool2d` (values only).
    #[track_caller]
    pub fn max_pool2d(&self, params: MaxPool2dParams) -> Result<Var> {
        Ok(self.max_pool2d_with_indices(params)?.0)
    }

    /// `max_pool2d` also returning the argmax (index within each input plane).
    #[track_caller]
    pub fn max_pool2d_with_indices(&self, params: MaxPool2dParams) -> Result<(Var, Tensor)> {
        let loc = OpSite::caller();
        let (out, argmax) = self.data().max_pool2d(params)?;
        let op = MaxPool2dBackward {
            params,
            argmax: argmax.clone(),
        };
        Ok((record(out, &[self], op, loc)?, argmax))
    }

    /// Sends each pooled gradient to its window's winner in an input of `input_shape`.
    #[track_caller]
    pub fn max_pool2d_scatter(
        &self,
        argmax: &Tensor,
        input_shape: &Shape,
        params: MaxPool2dParams,
    ) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self
            .data()
            .max_pool2d_backward(argmax, input_shape, params)?;
        let op = MaxPoolScatterBackward {
            params,
            argmax: argmax.clone(),
        };
        record(out, &[self], op, loc)
    }

    /// Reads each window's winner from `self` (shaped like the pool input).
    #[track_caller]
    pub fn max_pool2d_gather(&self, argmax: &Tensor, params: MaxPool2dParams) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self.data().max_pool2d_gather(argmax, params)?;
        let op = MaxPoolGatherBackward {
            params,
            argmax: argmax.clone(),
        };
        record(out, &[self], op, loc)
    }
}
