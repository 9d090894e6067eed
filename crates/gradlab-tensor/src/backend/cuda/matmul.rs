//! Batched matrix products on CUDA, reading strided operands in place.
//!
//! The GEMM kernels take any row and column strides and one batch stride, so
//! transposed views (`x @ w.t()`) cost nothing. Batch dims that do not fold
//! into one stride (a broadcast beside a real dim) run one launch per matrix.

use super::{alloc, backend, f32_buffer, from_f32};
use crate::layout::MatrixBatch;
use crate::{Result, Shape, Tensor};
use gradlab_cuda as cu;

/// The kernels' grid limit on the batch dimension.
const MAX_BATCH: usize = 65_535;

fn matrix(m: &MatrixBatch, offset: usize, batch_stride: usize) -> cu::MatrixLayout {
    cu::MatrixLayout {
        offset,
        row_stride: m.row_stride,
        col_stride: m.col_stride,
        batch_stride,
    }
}

/// `a @ b` for operands of rank >= 2 whose batch dims broadcast to `batch`.
pub(super) fn matmul(a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
    const OP: &str = "matmul";
    let (ma, mb) = (
        a.layout().matrix_batch(batch)?,
        b.layout().matrix_batch(batch)?,
    );
    let (m, k, n) = (ma.rows, ma.cols, mb.cols);
    let mut out_dims = batch.dims().to_vec();
    out_dims.extend([m, n]);
    let out_shape = Shape::new(out_dims);
    let count = batch.numel();
    let mut out = alloc(OP, a, count * m * n)?;
    if count * m * n == 0 {
        return Ok(from_f32(out, out_shape));
    }
    if k == 0 {
        cu::fill(&mut out, 0.0).map_err(backend(OP))?;
        return Ok(from_f32(out, out_shape));
    }
    let (buf_a, buf_b) = (f32_buffer(OP, a)?, f32_buffer(OP, b)?);
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
    let variant = cu::MatmulVariant::default();
    if let (Some(sa), Some(sb)) = (ma.batch.single_stride(), mb.batch.single_stride()) {
        let mut start = 0;
        while start < count {
            let len = (count - start).min(MAX_BATCH);
            let p = problem(
                len,
                matrix(&ma, ma.batch.offset() + start * sa, sa),
                matrix(&mb, mb.batch.offset() + start * sb, sb),
                start * m * n,
            );
            cu::gemm(variant, &p, buf_a, buf_b, &mut out).map_err(backend(OP))?;
            start += len;
        }
    } else {
        for (i, (pa, pb)) in ma.offsets().into_iter().zip(mb.offsets()).enumerate() {
            let p = problem(1, matrix(&ma, pa, 0), matrix(&mb, pb, 0), i * m * n);
            cu::gemm(variant, &p, buf_a, buf_b, &mut out).map_err(backend(OP))?;
        }
    }
    Ok(from_f32(out, out_shape))
}
