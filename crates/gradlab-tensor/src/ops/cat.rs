//! Concatenation and its adjoint helper (placing a tensor inside zeros).

use super::elementwise::copy_into;
use crate::storage::{CpuStorage, StorageElement};
use crate::{Layout, Result, Shape, Tensor, TensorError};

fn cat_typed<T: StorageElement + Default>(
    tensors: &[&Tensor],
    dim: usize,
    shape: &Shape,
) -> Result<Tensor> {
    let mut out = vec![T::default(); shape.numel()];
    let out_layout = Layout::contiguous(shape.clone(), 0);
    let mut start = 0;
    for t in tensors {
        let len = t.dims()[dim];
        let dst = out_layout.narrow(dim, start, len)?;
        copy_into(t.storage_slice::<T>("cat")?, t.layout(), &mut out, &dst);
        start += len;
    }
    Tensor::from_vec(out, shape.clone())
}

impl Tensor {
    /// Joins tensors along `dim`; all other dims must match.
    pub fn cat(tensors: &[&Tensor], dim: usize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| TensorError::invalid("cat", "needs at least one tensor"))?;
        first.shape().check_dim("cat", dim)?;
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
        if first.is_cuda() {
            return crate::cuda::cat(tensors, dim, &shape);
        }
        match first.cpu_storage("cat")? {
            CpuStorage::F32(_) => cat_typed::<f32>(tensors, dim, &shape),
            CpuStorage::F64(_) => cat_typed::<f64>(tensors, dim, &shape),
            CpuStorage::I64(_) => cat_typed::<i64>(tensors, dim, &shape),
        }
    }

    /// Zeros of `self`'s shape with `dim` grown to `size`, holding `self` at
    /// `start..start + len`: the adjoint of `narrow`.
    pub fn embed(&self, dim: usize, start: usize, size: usize) -> Result<Tensor> {
        self.shape().check_dim("embed", dim)?;
        let len = self.dims()[dim];
        if start + len > size {
            return Err(TensorError::shape(
                "embed",
                format!("a slice of length {len} at {start} does not fit in size {size}"),
            ));
        }
        let mut dims = self.dims().to_vec();
        dims[dim] = size;
        let shape = Shape::new(dims);
        if self.is_cuda() {
            return crate::cuda::embed(self, dim, start, &shape);
        }
        crate::with_float!(self.dtype(), "embed", |T| {
            let mut out = vec![T::default(); shape.numel()];
            let dst = Layout::contiguous(shape.clone(), 0).narrow(dim, start, len)?;
            copy_into(
                self.storage_slice::<T>("embed")?,
                self.layout(),
                &mut out,
                &dst,
            );
            Tensor::from_vec(out, shape.clone())
        })
    }
}
