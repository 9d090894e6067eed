//! Reductions: sum and mean over any set of dims, max along a dim, and the
//! gather/scatter pair that routes max's gradient.

use crate::{Result, Shape, Tensor, TensorError};

/// Normalises a list of dims (None = all): checks range and duplicates, sorts.
pub fn reduced_dims(op: &'static str, shape: &Shape, dims: Option<&[usize]>) -> Result<Vec<usize>> {
    let mut dims: Vec<usize> = match dims {
        None => (0..shape.rank()).collect(),
        Some(d) => d.to_vec(),
    };
    for &d in &dims {
        shape.check_dim(op, d)?;
    }
    dims.sort_unstable();
    if dims.windows(2).any(|w| w[0] == w[1]) {
        return Err(TensorError::invalid(
            op,
            format!("dimension listed twice in {dims:?}"),
        ));
    }
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
    /// Sum over `dims` (None = all), keeping them as size 1 when `keepdim`.
    pub fn sum(&self, dims: Option<&[usize]>, keepdim: bool) -> Result<Tensor> {
        self.check_float("sum")?;
        let dims = reduced_dims("sum", self.shape(), dims)?;
        self.reduce_sum(&dims, keepdim, 1.0)
    }

    /// Sum of all elements as a rank-0 tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(None, false)
    }

    /// Mean over `dims` (None = all).
    pub fn mean(&self, dims: Option<&[usize]>, keepdim: bool) -> Result<Tensor> {
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

    /// `scale * Σ self` over checked `dims`, dropping them unless `keepdim`.
    fn reduce_sum(&self, dims: &[usize], keepdim: bool, scale: f64) -> Result<Tensor> {
        let kept = self.backend().sum(self, dims, scale)?;
        if keepdim {
            Ok(kept)
        } else {
            kept.reshape(reduced_shape(self.shape(), dims, false))
        }
    }

    /// Maximum along `dim`: values and their indices (i64) along that dim.
    pub fn max_dim(&self, dim: usize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.shape().check_dim("max_dim", dim)?;
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
        self.sum(Some(&dims), true)?.reshape(shape.clone())
    }

    /// `out[..., idx[...], ...] += self[...]` into zeros of `shape` along `dim`:
    /// `self` and `index` have `shape` with `dim` of any size; the adjoint of
    /// [`Tensor::gather_along`].
    pub fn scatter_add_along(&self, dim: usize, index: &Tensor, shape: &Shape) -> Result<Tensor> {
        check_index_op("scatter_add_along", self, dim, index, shape)?;
        self.check_float("scatter_add_along")?;
        self.backend().scatter_add_along(self, dim, index, shape)
    }

    /// `out[...] = self[..., idx[...], ...]` along `dim`, as `torch.gather`.
    pub fn gather_along(&self, dim: usize, index: &Tensor) -> Result<Tensor> {
        check_index_op("gather_along", index, dim, index, self.shape())?;
        self.check_float("gather_along")?;
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
            let dims: Vec<usize> = (0..4).filter(|d| mask & (1 << d) != 0).collect();
            let flipped: Vec<usize> = dims.iter().map(|d| 3 - d).collect();
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
