//! Shape ops (views in the forward pass) and their adjoints.

use crate::graph::OpSite;
use crate::graph::{record, BackwardOp};
use crate::{Result, Var};
use gradlab_tensor::{Dim, Shape};

/// reshape / flatten / squeeze / unsqueeze: the gradient takes the input's
/// shape back. Like every view below, no kernel runs: only the layout
/// (shape, strides, offset) changes.
struct ReshapeBackward(Shape);

impl BackwardOp for ReshapeBackward {
    fn name(&self) -> &'static str {
        "ReshapeBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.reshape(self.0.clone())?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].reshape(output_shape.clone()))
    }
}

/// The inverse permutation of the gradient (a view).
struct PermuteBackward(Vec<usize>);

impl BackwardOp for PermuteBackward {
    fn name(&self) -> &'static str {
        "PermuteBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let mut inverse = vec![0; self.0.len()];
        for (i, &d) in self.0.iter().enumerate() {
            inverse[d] = i;
        }
        Ok(vec![Some(g.permute(&inverse)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].permute(&self.0))
    }
}

/// The same transpose of the gradient (a view).
struct TransposeBackward(usize, usize);

impl BackwardOp for TransposeBackward {
    fn name(&self) -> &'static str {
        "TransposeBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.transpose(self.0, self.1)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].transpose(self.0, self.1))
    }
}

/// The gradient placed inside zeros of the input's shape: a copy into a
/// region of a new tensor (the `assemble` primitive).
struct NarrowBackward {
    dim: usize,
    start: usize,
    size: usize,
}

impl BackwardOp for NarrowBackward {
    fn name(&self) -> &'static str {
        "NarrowBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.embed(self.dim, self.start, self.size)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        let length = output_shape.dims()[self.dim];
        crate::graph::replay(inputs[0].narrow(self.dim, self.start, length))
    }
}

/// The adjoint of placing inside zeros is cutting the region out again (a view).
struct EmbedBackward {
    dim: usize,
    start: usize,
    len: usize,
}

impl BackwardOp for EmbedBackward {
    fn name(&self) -> &'static str {
        "EmbedBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.narrow(self.dim, self.start, self.len)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        let size = output_shape.dims()[self.dim];
        crate::graph::replay(inputs[0].embed(self.dim, self.start, size))
    }
}

/// Broadcast dims are summed away ([`gradlab_tensor::kernels::reference::sum`]).
struct ExpandBackward(Shape);

impl BackwardOp for ExpandBackward {
    fn name(&self) -> &'static str {
        "ExpandBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.sum_to(&self.0)?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].broadcast_to(output_shape.clone()))
    }
}

/// Summing dims away is undone by broadcasting the gradient back (a view).
struct SumToBackward(Shape);

impl BackwardOp for SumToBackward {
    fn name(&self) -> &'static str {
        "SumToBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.broadcast_to(self.0.clone())?)])
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        output_shape: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        crate::graph::replay(inputs[0].sum_to(output_shape))
    }
}

/// Each input's gradient is its slice of the output gradient (views).
struct CatBackward {
    dim: usize,
    sizes: Vec<usize>,
}

impl BackwardOp for CatBackward {
    fn name(&self) -> &'static str {
        "CatBackward"
    }
    fn backward(&self, _: &[Var], g: &Var) -> Result<Vec<Option<Var>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(self.sizes.len());
        for &len in &self.sizes {
            grads.push(Some(g.narrow(self.dim, start, len)?));
            start += len;
        }
        Ok(grads)
    }

    fn forward(
        &self,
        inputs: &[gradlab_tensor::Tensor],
        _: &Shape,
    ) -> Option<Result<gradlab_tensor::Tensor>> {
        let refs: Vec<_> = inputs.iter().collect();
        crate::graph::replay(gradlab_tensor::Tensor::cat(&refs, self.dim))
    }
}

impl Var {
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let out = x.reshape(shape)?;
        if out.shape() == x.shape() {
            return Ok(self.clone());
        }
        record(out, &[self], ReshapeBackward(x.shape().clone()), loc)
    }

    /// Merges dims `start_dim..` into one, like `torch.flatten(x, start_dim)`.
    #[track_caller]
    pub fn flatten(&self, start_dim: impl Into<Dim>) -> Result<Var> {
        let shape = self.data().flatten(start_dim)?.shape().clone();
        self.reshape(shape)
    }

    /// Merges dims `start_dim..=end_dim` into one, like
    /// `torch.flatten(x, start_dim, end_dim)`.
    #[track_caller]
    pub fn flatten_range(&self, start_dim: impl Into<Dim>, end_dim: impl Into<Dim>) -> Result<Var> {
        let shape = self
            .data()
            .flatten_range(start_dim, end_dim)?
            .shape()
            .clone();
        self.reshape(shape)
    }

    /// A size-1 dim inserted at `dim` (`-1` appends one).
    #[track_caller]
    pub fn unsqueeze(&self, dim: impl Into<Dim>) -> Result<Var> {
        let shape = self.data().unsqueeze(dim)?.shape().clone();
        self.reshape(shape)
    }

    /// `dim` removed when its size is 1.
    #[track_caller]
    pub fn squeeze(&self, dim: impl Into<Dim>) -> Result<Var> {
        let shape = self.data().squeeze(dim)?.shape().clone();
        self.reshape(shape)
    }

    /// The dims reordered (negative dims count from the end).
    #[track_caller]
    pub fn permute<D: Into<Dim> + Copy>(&self, dims: &[D]) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let out = x.permute(dims)?;
        let dims = gradlab_tensor::dim::permutation("permute", x.shape(), dims)?;
        record(out, &[self], PermuteBackward(dims), loc)
    }

    /// `dim0` and `dim1` swapped (negative dims count from the end).
    #[track_caller]
    pub fn transpose(&self, dim0: impl Into<Dim>, dim1: impl Into<Dim>) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let (dim0, dim1) = (dim0.into(), dim1.into());
        let out = x.transpose(dim0, dim1)?;
        if x.rank() == 0 {
            return Ok(self.clone());
        }
        let dim0 = dim0.index("transpose", x.shape())?;
        let dim1 = dim1.index("transpose", x.shape())?;
        record(out, &[self], TransposeBackward(dim0, dim1), loc)
    }

    /// The transpose of a 2-D var.
    #[track_caller]
    pub fn t(&self) -> Result<Var> {
        let loc = OpSite::caller();
        let out = self.data().t()?;
        record(out, &[self], TransposeBackward(0, 1), loc)
    }

    #[track_caller]
    pub fn narrow(&self, dim: impl Into<Dim>, start: usize, length: usize) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into();
        let out = x.narrow(dim, start, length)?;
        let dim = dim.index("narrow", x.shape())?;
        let size = x.dims()[dim];
        record(out, &[self], NarrowBackward { dim, start, size }, loc)
    }

    /// Zeros with `dim` grown to `size`, holding `self` at `start` (the adjoint of narrow).
    #[track_caller]
    pub fn embed(&self, dim: impl Into<Dim>, start: usize, size: usize) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let dim = dim.into();
        let out = x.embed(dim, start, size)?;
        let dim = dim.index("embed", x.shape())?;
        let len = x.dims()[dim];
        record(out, &[self], EmbedBackward { dim, start, len }, loc)
    }

    /// A broadcast view (`torch.expand`).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        let out = x.broadcast_to(shape)?;
        if out.shape() == x.shape() {
            return Ok(self.clone());
        }
        record(out, &[self], ExpandBackward(x.shape().clone()), loc)
    }

    #[track_caller]
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Var> {
        self.broadcast_to(shape)
    }

    /// Sums broadcast dims away to reach `shape` (the adjoint of `broadcast_to`).
    #[track_caller]
    pub fn sum_to(&self, shape: &Shape) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        if x.shape() == shape {
            return Ok(self.clone());
        }
        let out = x.sum_to(shape)?;
        record(out, &[self], SumToBackward(x.shape().clone()), loc)
    }

    /// Joins vars along `dim` (negative dims count from the end).
    #[track_caller]
    pub fn cat(vars: &[&Var], dim: impl Into<Dim>) -> Result<Var> {
        let loc = OpSite::caller();
        let data: Vec<_> = vars.iter().map(|v| v.data()).collect();
        let refs: Vec<_> = data.iter().collect();
        let dim = dim.into();
        let out = gradlab_tensor::Tensor::cat(&refs, dim)?;
        let dim = dim.index("cat", data[0].shape())?;
        let sizes = data.iter().map(|t| t.dims()[dim]).collect();
        record(out, vars, CatBackward { dim, sizes }, loc)
    }

    /// A contiguous copy of the value, same graph position.
    #[track_caller]
    pub fn contiguous(&self) -> Result<Var> {
        let loc = OpSite::caller();
        let x = self.data();
        if x.is_contiguous() {
            return Ok(self.clone());
        }
        let shape = x.shape().clone();
        record(x.contiguous()?, &[self], ReshapeBackward(shape), loc)
    }
}
