//! Sums over any dims, and max along a dim with its index gradient.
//!
//! `max_dim` has no kernel of its own: a max-pool whose window spans a whole
//! row is exactly a row maximum with its argmax (first maximum wins, NaN
//! propagates, as on the CPU), and the pool's backward routes a gradient to
//! those argmax positions, which is `scatter_add_along` for one index per row.

use super::{alloc, backend, dense, dense_index, from_f32, from_index, move_dim_last};
use crate::ops::reduce::reduced_shape;
use crate::{Result, Shape, Tensor, TensorError};
use gradlab_cpu::Pool2dShape;
use gradlab_cuda as cu;

/// `sum(x, dims) * scale` (dims sorted and unique), the dims kept with size 1.
pub(super) fn sum(x: &Tensor, dims: &[usize], scale: f64) -> Result<Tensor> {
    const OP: &str = "sum";
    let d = x.dims();
    let is_run = dims.windows(2).all(|w| w[1] == w[0] + 1);
    // View x as [outer, len, inner] with the reduced dims in the middle,
    // permuting (and copying) only when they are not one contiguous run.
    let (source, outer, len, inner) = match (dims.first(), dims.last()) {
        (Some(&first), Some(&last)) if is_run => (
            x.clone(),
            d[..first].iter().product(),
            d[first..=last].iter().product(),
            d[last + 1..].iter().product(),
        ),
        (Some(_), Some(_)) => {
            let mut perm: Vec<usize> = (0..x.rank()).filter(|i| !dims.contains(i)).collect();
            perm.extend_from_slice(dims);
            let kept: usize = perm[..x.rank() - dims.len()]
                .iter()
                .map(|&i| d[i])
                .product();
            (
                x.permute(&perm)?,
                kept,
                dims.iter().map(|&i| d[i]).product(),
                1,
            )
        }
        _ => (x.clone(), x.numel(), 1, 1),
    };
    let src = dense(OP, &source)?;
    let mut out = alloc(OP, x, outer * inner)?;
    cu::reduce(cu::ReduceOp::Sum, &src, outer, len, inner, &mut out).map_err(backend(OP))?;
    if scale != 1.0 {
        cu::unary_inplace(cu::UnaryOp::MulScalar(scale), &mut out).map_err(backend(OP))?;
    }
    Ok(from_f32(out, reduced_shape(x.shape(), dims, true)))
}

/// A pool whose windows are the `len`-long rows of a `[rows, len]` matrix.
fn row_pool(rows: usize, len: usize) -> Pool2dShape {
    Pool2dShape {
        batch: rows,
        channels: 1,
        in_h: 1,
        in_w: len,
        kernel: (1, len),
        stride: (1, len),
        padding: (0, 0),
        dilation: (1, 1),
        ceil_mode: false,
    }
}

/// Maximum along `dim` (non-empty) and its index, the dim kept with size 1.
pub(super) fn max_along(x: &Tensor, dim: usize) -> Result<(Tensor, Tensor)> {
    const OP: &str = "max_dim";
    let (perm, _) = move_dim_last(x.rank(), dim);
    let len = x.dims()[dim];
    let rows = x.numel() / len;
    let rows_view = x.permute(&perm)?;
    let src = dense(OP, &rows_view)?;
    let gpu = super::gpu_of(OP, x)?;
    let mut values = cu::DeviceBuffer::uninit(&gpu, rows).map_err(backend(OP))?;
    let mut indices = cu::DeviceBuffer::uninit(&gpu, rows).map_err(backend(OP))?;
    cu::max_pool2d_forward(&row_pool(rows, len), &src, &mut values, &mut indices)
        .map_err(backend(OP))?;
    let shape = reduced_shape(x.shape(), &[dim], true);
    Ok((from_f32(values, shape.clone()), from_index(indices, shape)))
}

/// `scatter_add_along` for one index per row along `dim` (the gradient of
/// `max_dim`); an index out of range drops its value instead of failing, as
/// checking would need the indices on the host.
pub(super) fn scatter_add_along(
    src: &Tensor,
    dim: usize,
    index: &Tensor,
    shape: &Shape,
) -> Result<Tensor> {
    const OP: &str = "scatter_add_along";
    if index.dims()[dim] != 1 {
        return Err(TensorError::Backend {
            op: OP,
            msg: format!(
                "on CUDA only one index per row along dim {dim} is supported (index shape {})",
                index.shape()
            ),
        });
    }
    let (perm, inverse) = move_dim_last(src.rank(), dim);
    let len = shape.dims()[dim];
    let rows = src.numel();
    let (src_rows, index_rows) = (src.permute(&perm)?, index.permute(&perm)?);
    let grad = dense(OP, &src_rows)?;
    let idx = dense_index(OP, &index_rows)?;
    let mut out = alloc(OP, src, rows * len)?;
    cu::max_pool2d_backward(&row_pool(rows, len), &grad, &idx, &mut out).map_err(backend(OP))?;
    let permuted: Vec<usize> = perm.iter().map(|&d| shape.dims()[d]).collect();
    from_f32(out, Shape::new(permuted))
        .permute(&inverse)?
        .contiguous()
}
