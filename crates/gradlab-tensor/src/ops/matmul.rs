//! Matrix products with `torch.matmul` rules.

use crate::{Result, Shape, Tensor, TensorError};

impl Tensor {
    /// Matrix product with `torch.matmul` rules: 1-D operands are promoted
    /// (and the added dim removed), batch dims broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.check_same_kind("matmul", other)?;
        self.check_float("matmul")?;
        if self.rank() == 0 || other.rank() == 0 {
            return Err(TensorError::shape(
                "matmul",
                format!(
                    "both operands need at least one dimension, got {} and {}",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let a = if self.rank() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if other.rank() == 1 {
            other.unsqueeze(1)?
        } else {
            other.clone()
        };
        let (ka, kb) = (a.dims()[a.rank() - 1], b.dims()[b.rank() - 2]);
        if ka != kb {
            return Err(TensorError::shape(
                "matmul",
                format!(
                    "cannot multiply {} by {}: inner dimensions {ka} and {kb} differ",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let batch = Shape::broadcast(
            "matmul",
            &Shape::new(&a.dims()[..a.rank() - 2]),
            &Shape::new(&b.dims()[..b.rank() - 2]),
        )?;
        let mut out_dims = batch.dims().to_vec();
        if self.rank() > 1 {
            out_dims.push(a.dims()[a.rank() - 2]);
        }
        if other.rank() > 1 {
            out_dims.push(b.dims()[b.rank() - 1]);
        }
        // The backend returns [batch.., m, n]; 1-D operands drop their dim.
        self.backend()
            .matmul(&a, &b, &batch)?
            .reshape(Shape::new(out_dims))
    }
}
