//! Matrix products and convolutions on the fast kernels of `gradlab_cpu`.

use crate::backend::host::{dense, dense_opt, tensor, zeros};
use crate::backend::recycle;
use crate::backend::reference::conv_output_shape;
use crate::{Element, Result, Shape, Tensor};
use gradlab_cpu::Conv2dShape;

pub(super) fn matmul<T: Element>(a: &Tensor, b: &Tensor, batch: &Shape) -> Result<Tensor> {
    let (ma, mb) = (
        a.layout().matrix_batch(batch)?,
        b.layout().matrix_batch(batch)?,
    );
    let (m, k, n) = (ma.rows, ma.cols, mb.cols);
    let (da, db) = (
        a.storage_slice::<T>("matmul")?,
        b.storage_slice::<T>("matmul")?,
    );
    // GEMM overwrites its output unless there is nothing to sum (k = 0).
    let len = batch.numel() * m * n;
    let mut out = if k > 0 {
        recycle::output::<T>("matmul", len)?
    } else {
        zeros::<T>("matmul", len)?
    };
    // Operands are read in place through their strides, whatever their layout.
    if m * n > 0 {
        for ((c, oa), ob) in out.chunks_mut(m * n).zip(ma.offsets()).zip(mb.offsets()) {
            gradlab_cpu::gemm(
                m,
                k,
                n,
                T::ONE,
                &da[oa..],
                ma.row_stride,
                ma.col_stride,
                &db[ob..],
                mb.row_stride,
                mb.col_stride,
                T::ZERO,
                c,
                n,
                1,
            );
        }
    }
    let mut dims = batch.dims().to_vec();
    dims.extend([m, n]);
    tensor(out, dims)
}

pub(super) fn conv2d<T: Element>(
    s: &Conv2dShape,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    let op = "conv2d";
    let (xs, ws, bs) = (
        dense::<T>(op, x)?,
        dense::<T>(op, w)?,
        dense_opt::<T>(op, b)?,
    );
    let mut out = recycle::output::<T>(op, s.output_len())?;
    gradlab_cpu::conv2d_forward(s, &xs, &ws, bs.as_deref(), &mut out);
    tensor(out, conv_output_shape(s))
}

pub(super) fn conv2d_backward_data<T: Element>(
    s: &Conv2dShape,
    grad: &Tensor,
    w: &Tensor,
) -> Result<Tensor> {
    let op = "conv2d_backward_data";
    let (g, ws) = (dense::<T>(op, grad)?, dense::<T>(op, w)?);
    let mut out = recycle::output::<T>(op, s.input_len())?;
    gradlab_cpu::conv2d_backward_data(s, &g, &ws, &mut out);
    tensor(out, [s.batch, s.in_channels, s.in_h, s.in_w])
}

pub(super) fn conv2d_backward_weight<T: Element>(
    s: &Conv2dShape,
    grad: &Tensor,
    x: &Tensor,
) -> Result<Tensor> {
    let op = "conv2d_backward_weight";
    let (g, xs) = (dense::<T>(op, grad)?, dense::<T>(op, x)?);
    let mut out = recycle::output::<T>(op, s.weight_len())?;
    gradlab_cpu::conv2d_backward_weight(s, &xs, &g, &mut out);
    tensor(
        out,
        [s.out_channels, s.in_per_group(), s.kernel_h, s.kernel_w],
    )
}
