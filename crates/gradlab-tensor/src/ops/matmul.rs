//! Matrix products with `torch.matmul` rules.

use crate::{with_float, Element, Layout, Result, Shape, Tensor, TensorError};

fn matmul_impl<T: Element>(
    a: &Tensor,
    b: &Tensor,
    batch: &Shape,
    out_shape: Shape,
) -> Result<Tensor> {
    let (m, k) = (a.dims()[a.rank() - 2], a.dims()[a.rank() - 1]);
    let n = b.dims()[b.rank() - 1];
    let (da, db) = (
        a.storage_slice::<T>("matmul")?,
        b.storage_slice::<T>("matmul")?,
    );
    // Offsets of each batch's matrix: the batch dims broadcast, strides kept,
    // so operands are read in place whatever their layout.
    let batch_offsets = |t: &Tensor| -> Result<Vec<usize>> {
        let r = t.rank();
        let batch_layout = Layout::new(
            Shape::new(&t.dims()[..r - 2]),
            t.strides()[..r - 2].to_vec(),
            t.layout().offset(),
        );
        Ok(batch_layout.broadcast_to(batch)?.offsets())
    };
    let (oa, ob) = (batch_offsets(a)?, batch_offsets(b)?);
    let (rsa, csa) = (a.strides()[a.rank() - 2], a.strides()[a.rank() - 1]);
    let (rsb, csb) = (b.strides()[b.rank() - 2], b.strides()[b.rank() - 1]);
    let mut out = vec![T::ZERO; batch.numel() * m * n];
    if m * n > 0 {
        for (i, c) in out.chunks_mut(m * n).enumerate() {
            gradlab_cpu::gemm(
                m,
                k,
                n,
                T::ONE,
                &da[oa[i]..],
                rsa,
                csa,
                &db[ob[i]..],
                rsb,
                csb,
                T::ZERO,
                c,
                n,
                1,
            );
        }
    }
    Tensor::from_vec(out, out_shape)
}

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
        let out_shape = Shape::new(out_dims);
        if self.is_cuda() {
            return crate::cuda::matmul(&a, &b, &batch, out_shape);
        }
        with_float!(self.dtype(), "matmul", |T| matmul_impl::<T>(
            &a, &b, &batch, out_shape
        ))
    }
}
