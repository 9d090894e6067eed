//! Concatenation and its adjoint helper (placing a tensor inside zeros).

use crate::{Dim, Layout, Result, Shape, Tensor, TensorError};

impl Tensor {
    /// Joins tensors along `dim` (`-1`: the last); all other dims must
    /// match. 0-d tensors cannot be joined, as in PyTorch.
    pub fn cat(tensors: &[&Tensor], dim: impl Into<Dim>) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::invalid("cat", "needs at least one tensor"))?;
        if let Some(at) = tensors.iter().position(|t| t.rank() == 0) {
            return Err(TensorError::shape(
                "cat",
                format!("the 0-d tensor at position {at} cannot be concatenated"),
            ));
        }
        let dim = dim.into().index("cat", first.shape())?;
        let mut dims = first.dims().to_vec();
        dims[dim] = 0;
        for t in tensors {
            first.check_same_kind("cat", t)?;
            let fits = t.rank() == first.rank()
                && (0..t.rank()).all(|d| d == dim || t.dims()[d] == first.dims()[d]);
            if !fits {
                return Err(TensorError::shape(
                    "cat",
                    format!(
                        "shapes {} and {} differ outside dimension {dim}",
                        first.shape(),
                        t.shape()
                    ),
                ));
            }
            dims[dim] += t.dims()[dim];
        }
        let shape = Shape::new(dims);
        let whole = Layout::contiguous(shape.clone(), 0);
        let mut parts = Vec::with_capacity(tensors.len());
        let mut start = 0;
        for t in tensors {
            let len = t.dims()[dim];
            parts.push((*t, whole.narrow(dim, start, len)?));
            start += len;
        }
        first.backend().assemble(&shape, first.dtype(), &parts)
    }

    /// Zeros of `self`'s shape with `dim` grown to `size`, holding `self` at
    /// `start..start + len`: the adjoint of `narrow`.
    pub fn embed(&self, dim: impl Into<Dim>, start: usize, size: usize) -> Result<Tensor> {
        let dim = self.dim_of_non_scalar("embed", dim.into())?;
        let len = self.dims()[dim];
        if start.checked_add(len).is_none_or(|end| end > size) {
            return Err(TensorError::shape(
                "embed",
                format!("a slice of length {len} at {start} does not fit in size {size}"),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[dim] = size;
        let shape = Shape::new(dims);
        let region = Layout::contiguous(shape.clone(), 0).narrow(dim, start, len)?;
        self.backend()
            .assemble(&shape, self.dtype(), &[(self, region)])
    }
}
