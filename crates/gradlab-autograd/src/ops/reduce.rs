//! Reductions and their backward rules.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::ops::reduce::{reduced_dims, reduced_shape};
use gradlab_tensor::{Dim, Shape, Tensor};

/// sum and mean: the gradient is spread back over the reduced dims (times
/// `scale`, which is 1/count for mean, applied to the reduced gradient
/// first). The spreading is a broadcast view (no kernel runs); the scaling
/// is [`gradlab_tensor::kernels::reference::unary`]. The forward:
/// [`gradlab_tensor::kernels::reference::sum`].
struct SumBackward {
    name: &'static str,
    input_shape: Shape,
    dims: Vec<usize>,
    scale: f64,
}

impl BackwardOp for SumBackward {
    fn name(&self) -> &'static str {
        self.name
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let kept = reduced_shape(&self.input_shape, &self.dims, true);
        // Scaled before the broadcast: on the reduced gradient, not on every
        // element of the input's shape (a walk over a broadcast view).
        let g = if self.scale != 1.0 {
            g.mul_scalar(self.scale)?
        } else {
            g.clone()
        };
        Ok(vec![Some(
            g.reshape(kept)?.broadcast_to(self.input_shape.clone())?,
        )])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        let x = &inputs[0];
        let keepdim = output_shape.rank() == x.rank();
        let dims = as_dim_list(&self.dims);
        crate::graph::replay(if self.scale == 1.0 {
            x.sum(Some(&dims), keepdim)
        } else {
            x.mean(Some(&dims), keepdim)
        })
    }
}

/// Resolved dims as the list the reductions take (ranks are tiny).
fn as_dim_list(dims: &[usize]) -> Vec<isize> {
    dims.iter().map(|&d| d as isize).collect()
}

/// max along a dim: the gradient goes to the position of each maximum
/// ([`gradlab_tensor::kernels::reference::scatter_add_along`]; the forward: [`gradlab_tensor::kernels::reference::max_along`]).
struct MaxBackward {
    dim: usize,
    input_shape: Shape,
    /// Argmax positions, with the reduced dim kept (size 1).
    indices: Tensor,
}

impl BackwardOp for MaxBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.indices.clone()]
    }
    fn name(&self) -> &'static str {
        "MaxBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let g = g.reshape(self.indices.shape().clone())?;
        Ok(vec![Some(g.scatter_add_along(
            self.dim,
            &self.indices,
            &self.input_shape,
        )?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        let x = &inputs[0];
        let keepdim = output_shape.rank() == x.rank();
        crate::graph::replay(x.max_dim(self.dim, keepdim).map(|(values, _)| values))
    }
}

/// The adjoint of scatter-add is a gather ([`gradlab_tensor::kernels::reference::gather_along`]).
struct ScatterAddBackward {
    dim: usize,
    index: Tensor,
}

impl BackwardOp for ScatterAddBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.index.clone()]
    }
    fn name(&self) -> &'static str {
        "ScatterAddBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.gather_along(self.dim, &self.index)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].scatter_add_along(self.dim, &self.index, output_shape))
    }
}

/// The adjoint of a gather is a scatter-add ([`gradlab_tensor::kernels::reference::scatter_add_along`]).
struct GatherBackward {
    dim: usize,
    index: Tensor,
    input_shape: Shape,
}

impl BackwardOp for GatherBackward {
    fn saved_tensors(&self) -> Vec<Tensor> {
        vec![self.index.clone()]
    }
    fn name(&self) -> &'static str {
        "GatherBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.scatter_add_along(
            self.dim,
            &self.index,
            &self.input_shape,
        )?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].gather_along(self.dim, &self.index))
    }
}

impl Var {
    /// Sum over `dims` (None or empty = all dims; negative dims count from
    /// the end).
    #[track_caller]
    pub fn sum(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let out = x.sum(dims, keepdim)?;
        let dims = reduced_dims("sum", x.shape(), dims)?;
        let op = SumBackward {
            name: "SumBackward",
            input_shape: x.shape().clone(),
            dims,
            scale: 1.0,
        };
        record(out, &[self], op, loc)
    }

    /// Sum of all elements (a scalar).
    #[track_caller]
    pub fn sum_all(&self) -> Result<Var> {
        self.sum(None, false)
    }

    /// Mean over `dims` (None or empty = all dims; negative dims count
    /// from the end).
    #[track_caller]
    pub fn mean(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let out = x.mean(dims, keepdim)?;
        let dims = reduced_dims("mean", x.shape(), dims)?;
        let count: usize = dims.iter().map(|&d| x.dims()[d]).product();
        let op = SumBackward {
            name: "MeanBackward",
            input_shape: x.shape().clone(),
            dims,
            scale: 1.0 / count as f64,
        };
        record(out, &[self], op, loc)
    }

    /// Mean of all elements (a scalar).
    #[track_caller]
    pub fn mean_all(&self) -> Result<Var> {
        self.mean(None, false)
    }

    /// Maximum along `dim` (`-1`: the last): the values (differentiable)
    /// and their indices. A 0-d var is its own maximum, at index 0.
    #[track_caller]
    pub fn max_dim(&self, dim: impl Into<Dim>, keepdim: bool) -> Result<(Var, Tensor)> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into().index("max_dim", x.shape())?;
        if x.rank() == 0 {
            return self.reshape([1])?.max_dim(0, false);
        }
        let (values, indices) = x.max_dim(dim, keepdim)?;
        let kept = reduced_shape(x.shape(), &[dim], true);
        let op = MaxBackward {
            dim,
            input_shape: x.shape().clone(),
            indices: indices.reshape(kept)?,
        };
        Ok((record(values, &[self], op, loc)?, indices))
    }

    /// Adds `self` into zeros of `shape` at positions `index` along `dim`.
    #[track_caller]
    pub fn scatter_add_along(
        &self,
        dim: impl Into<Dim>,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Var> {
        let loc = OpSite::caller();
        let dim = dim.into();
        let out = self.data().scatter_add_along(dim, index, shape)?;
        let dim = dim.index_among("scatter_add_along", shape, shape.rank())?;
        let op = ScatterAddBackward {
            dim,
            index: index.clone(),
        };
        record(out, &[self], op, loc)
    }

    /// Reads `self` at positions `index` along `dim` (`torch.gather`).
    #[track_caller]
    pub fn gather_along(&self, dim: impl Into<Dim>, index: &Tensor) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into();
        let out = x.gather_along(dim, index)?;
        let dim = dim.index_among("gather_along", x.shape(), x.rank())?;
        let op = GatherBackward {
            dim,
            index: index.clone(),
            input_shape: x.shape().clone(),
        };
        record(out, &[self], op, loc)
    }
}
