//! Reductions: sum and mean over any set of dims, max along a dim, and the
//! gather/scatter pair that routes max's gradient.

use crate::{Dim, Result, Shape, Tensor, TensorError};

/// The dims a reduction over `dims` covers, as sorted indices of `shape`:
/// every dim for `None` or an empty list (PyTorch's rule for `dim=[]`),
/// negative dims counted from the end, a dim named twice an error. A 0-d
/// tensor accepts `0` and `-1` and has no dim to reduce (the result is the
/// scalar itself).
pub fn reduced_dims(op: &'static str, shape: &Shape, dims: Option<&[isize]>) -> Result<Vec<usize>> {
    let mut dims = match dims {
        None | Some([]) => (0..shape.rank()).collect(),
        Some(d) => crate::dim::indices(op, shape, d)?,
    };
    if shape.rank() == 0 {
        return Ok(Vec::new());
    }
    dims.sort_unstable();
    Ok(dims)
}

/// The shape after reducing `dims`, keeping them as size 1 or dropping them.
pub fn reduced_shape(shape: &Shape, dims: &[usize], keepdim: bool) -> Shape {
    let mut out = Vec::with_capacity(shape.rank());
    for (i, &d) in shape.dims().iter().enumerate() {
        if !dims.contains(&i) {
            out.push(d);
        } else if keepdim {
            out.push(1);
        }
    }
    Shape::new(out)
}

impl Tensor {
    /// Sum over `dims` (None or empty = all; negative dims count from the
    /// end), keeping them as size 1 when `keepdim`.
    pub fn sum(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Tensor> {
        self.check_float("sum")?;
        let dims = reduced_dims("sum", self.shape(), dims)?;
        self.reduce_sum(&dims, keepdim, 1.0)
    }

    /// Sum of all elements as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(None, false)
    }

    /// Mean over `dims` (None or empty = all). A mean over no element is
    /// NaN, as in PyTorch.
    pub fn mean(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Tensor> {
        self.check_float("mean")?;
        let dims = reduced_dims("mean", self.shape(), dims)?;
        let count: usize = dims.iter().map(|&d| self.dims()[d]).product();
        let scale = if count == 0 {
            f64::NAN
        } else {
            1.0 / count as f64
        };
        self.reduce_sum(&dims, keepdim, scale)
    }

    /// `scale * Σ self` over checked, sorted `dims`, dropping them unless `keepdim`.
    pub(crate) fn reduce_sum(&self, dims: &[usize], keepdim: bool, scale: f64) -> Result<Tensor> {
        let kept = self.backend().sum(self, dims, scale)?;
        if keepdim {
            Ok(kept)
        } else {
            kept.reshape(reduced_shape(self.shape(), dims, false))
        }
    }

    /// Maximum along `dim`: values and their indices (i64) along that dim.
    /// A 0-d tensor is its own maximum, at index 0 (PyTorch's rule).
    pub fn max_dim(&self, dim: impl Into<Dim>, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let dim = dim.into().index("max_dim", self.shape())?;
        if self.rank() == 0 {
            return self.reshape([1])?.max_dim(0, false);
        }
        if self.dims()[dim] == 0 {
            return Err(TensorError::shape(
                "max_dim",
                format!(
                    "cannot take the max over empty dimension {dim} of shape {}",
                    self.shape()
                ),
            ));
        }
        self.check_float("max_dim")?;
        let (values, indices) = self.backend().max_along(self, dim)?;
        if keepdim {
            return Ok((values, indices));
        }
        let shape = reduced_shape(self.shape(), &[dim], false);
        Ok((values.reshape(shape.clone())?, indices.reshape(shape)?))
    }

    /// Sums broadcast dimensions away so that the result has `shape`: the
    /// adjoint of `broadcast_to`, used by the gradients of broadcasting ops.
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.rank()).ok_or_else(|| {
            TensorError::shape(
                "sum_to",
                format!("cannot sum shape {} to {shape}", self.shape()),
            )
        })?;
        let mut dims: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            let have = self.dims()[lead + i];
            if d == 1 && have != 1 {
                dims.push(lead + i);
            } else if d != have {
                return Err(TensorError::shape(
                    "sum_to",
                    format!("cannot sum shape {} to {shape}", self.shape()),
                ));
            }
        }
        self.check_float("sum_to")?;
        self.reduce_sum(&dims, true, 1.0)?.reshape(shape.clone())
    }

    /// `out[..., idx[...], ...] += self[...]` into zeros of `shape` along `dim`:
    /// `self` and `index` have `shape` with `dim` of any size; the adjoint of
    /// [`Tensor::gather_along`].
    pub fn scatter_add_along(
        &self,
        dim: impl Into<Dim>,
        index: &Tensor,
        shape: &Shape,
    ) -> Result<Tensor> {
        let op = "scatter_add_along";
        let dim = dim.into().index_among(op, shape, shape.rank())?;
        check_index_op(op, self, dim, index, shape)?;
        self.check_float(op)?;
        self.backend().scatter_add_along(self, dim, index, shape)
    }

    /// `out[...] = self[..., idx[...], ...]` along `dim`, as `torch.gather`.
    pub fn gather_along(&self, dim: impl Into<Dim>, index: &Tensor) -> Result<Tensor> {
        let op = "gather_along";
        let dim = dim.into().index_among(op, self.shape(), self.rank())?;
        check_index_op(op, index, dim, index, self.shape())?;
        self.check_float(op)?;
        self.backend().gather_along(self, dim, index)
    }
}

/// (product of dims before `dim`, dims[dim], product of dims after).
pub(crate) fn split_at_dim(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim],
        dims[dim + 1..].iter().product(),
    )
}

fn check_index_op(
    op: &'static str,
    src: &Tensor,
    dim: usize,
    index: &Tensor,
    full: &Shape,
) -> Result<()> {
    if index.dtype() != crate::DType::I64 {
        return Err(TensorError::UnsupportedDType {
            op,
            dtype: index.dtype(),
            expected: "i64 indices",
        });
    }
    src.check_same_device(op, index)?;
    full.check_dim(op, dim)?;
    let same_except_dim = src.rank() == full.rank()
        && index.shape() == src.shape()
        && (0..full.rank()).all(|d| d == dim || src.dims()[d] == full.dims()[d]);
    if !same_except_dim {
        return Err(TensorError::shape(
            op,
            format!(
                "source {} and index {} must match {full} in every dimension but {dim}",
                src.shape(),
                index.shape()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{DType, Rng, Tensor};

    /// Sums of a contiguous tensor (block path) and of a permuted view of
    /// the same values (strided path) agree for every subset of dims.
    #[test]
    fn contiguous_and_strided_sums_agree() {
        let x = Tensor::randn([3, 4, 5, 6], 0.0, 1.0, DType::F64, &mut Rng::new(5));
        let strided = x.permute(&[3, 2, 1, 0]).unwrap(); // dims [6, 5, 4, 3]
        for mask in 0u32..16 {
            let dims: Vec<isize> = (0..4).filter(|d| mask & (1 << d) != 0).collect();
            let flipped: Vec<isize> = dims.iter().map(|d| 3 - d).collect();
            for keepdim in [false, true] {
                let fast = x.sum(Some(&dims), keepdim).unwrap();
                let slow = strided
                    .sum(Some(&flipped), true)
                    .unwrap()
                    .permute(&[3, 2, 1, 0])
                    .unwrap();
                let slow = slow.reshape(fast.shape().clone()).unwrap();
                let (f, s) = (fast.to_vec::<f64>().unwrap(), slow.to_vec::<f64>().unwrap());
                assert_eq!(f.len(), s.len());
                for (a, b) in f.iter().zip(&s) {
                    assert!((a - b).abs() < 1e-12, "dims {dims:?}: {a} vs {b}");
                }
            }
        }
    }
}
