//! Batched matrix products on CUDA, reading strided operands in place.
//!
//! The GEMM kernels take any row and column strides and one batch stride, so
//! transposed views (`x @ w.t()`) cost nothing. Batch dims that do not fold
//! into one stride (a broadcast beside a real dim) run one launch per matrix.

use super::{alloc, backend, f32_buffer, from_f32};
use crate::{Layout, Result, Shape, Tensor};
use gradlab_cuda as cu;

/// The kernels' grid limit on the batch dimension.
const MAX_BATCH: usize = 65_535;

/// The one stride that steps through all batch dims in row-major order, if any.
fn single_batch_stride(dims: &[usize], strides: &[usize]) -> Option<usize> {
    let mut innermost = None;
    let mut inner: Option<(usize, usize)> = None; // (stride, size) of the next real dim to the right
    for (&n, &s) in dims.iter().zip(strides).rev() {
        if n == 1 {
            continue;
        }
        if let Some((inner_stride, inner_size)) = inner {
            if s != inner_stride * inner_size {
                return None;
            }
        }
        innermost.get_or_insert(s);
        inner = Some((s, n));
    }
    Some(innermost.unwrap_or(0))
}

/// One operand: its storage, the layout of its batch dims (broadcast to the
/// common batch shape) and its matrix strides.
struct Operand<'a> {
    buf: &'a cu::DeviceBuffer<f32>,
    batch: Layout,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Operand<'a> {
    fn new(t: &'a Tensor, batch: &Shape) -> Result<Operand<'a>> {
        let r = t.rank();
        let layout = Layout::new(
            Shape::new(&t.dims()[..r - 2]),
            t.strides()[..r - 2].to_vec(),
            t.layout().offset(),
        )
        .broadcast_to(batch)?;
        Ok(Operand {
            buf: f32_buffer("matmul", t)?,
            batch: layout,
            row_stride: t.strides()[r - 2],
            col_stride: t.strides()[r - 1],
        })
    }

    fn matrix(&self, offset: usize, batch_stride: usize) -> cu::MatrixLayout {
        cu::MatrixLayout {
            offset,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
            batch_stride,
        }
    }
}

/// `a @ b` for operands of rank >= 2 whose batch dims broadcast to `batch`.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, batch: &Shape, out_shape: Shape) -> Result<Tensor> {
    const OP: &str = "matmul";
    let (m, k) = (a.dims()[a.rank() - 2], a.dims()[a.rank() - 1]);
    let n = b.dims()[b.rank() - 1];
    let count = batch.numel();
    let mut out = alloc(OP, a, count * m * n)?;
    if count * m * n == 0 {
        return Ok(from_f32(out, out_shape));
    }
    if k == 0 {
        cu::fill(&mut out, 0.0).map_err(backend(OP))?;
        return Ok(from_f32(out, out_shape));
    }
    let (oa, ob) = (Operand::new(a, batch)?, Operand::new(b, batch)?);
    let c = cu::MatrixLayout::row_major(m, n);
    let problem = |batch_count, a_layout, b_layout, c_offset| cu::GemmProblem {
        m,
        n,
        k,
        batch: batch_count,
        alpha: 1.0,
        beta: 0.0,
        a: a_layout,
        b: b_layout,
        c: c.with_offset(c_offset),
    };
    let strides = (
        single_batch_stride(oa.batch.dims(), oa.batch.strides()),
        single_batch_stride(ob.batch.dims(), ob.batch.strides()),
    );
    let variant = cu::MatmulVariant::default();
    if let (Some(sa), Some(sb)) = strides {
        let mut start = 0;
        while start < count {
            let len = (count - start).min(MAX_BATCH);
            let p = problem(
                len,
                oa.matrix(oa.batch.offset() + start * sa, sa),
                ob.matrix(ob.batch.offset() + start * sb, sb),
                start * m * n,
            );
            cu::gemm(variant, &p, oa.buf, ob.buf, &mut out).map_err(backend(OP))?;
            start += len;
        }
    } else {
        let (offsets_a, offsets_b) = (oa.batch.offsets(), ob.batch.offsets());
        for (i, (&pa, &pb)) in offsets_a.iter().zip(&offsets_b).enumerate() {
            let p = problem(1, oa.matrix(pa, 0), ob.matrix(pb, 0), i * m * n);
            cu::gemm(variant, &p, oa.buf, ob.buf, &mut out).map_err(backend(OP))?;
        }
    }
    Ok(from_f32(out, out_shape))
}

#[cfg(test)]
mod tests {
    use super::single_batch_stride;

    #[test]
    fn batch_dims_fold_into_one_stride_when_they_can() {
        assert_eq!(single_batch_stride(&[], &[]), Some(0));
        assert_eq!(single_batch_stride(&[2, 3], &[36, 12]), Some(12));
        assert_eq!(single_batch_stride(&[2, 1, 3], &[36, 99, 12]), Some(12));
        assert_eq!(single_batch_stride(&[2, 3], &[0, 0]), Some(0));
        // A broadcast outer dim beside a real inner one cannot fold.
        assert_eq!(single_batch_stride(&[2, 3], &[0, 12]), None);
        assert_eq!(single_batch_stride(&[2, 3], &[12, 24]), None);
    }
}
